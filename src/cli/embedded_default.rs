//! What `cache`, `collect` and `train` run on when no `--model` is given: the embedded demo
//! model (`crate::demo::embedded`), and, without `--dataset`, a generated planted-concept
//! corpus. Each default is announced on stderr, so nobody mistakes it for their own model.

use anyhow::Result;

use super::data_args::DataArgs;
use super::model_args::ModelArgs;
use crate::demo::corpus_file::{write_corpus, HELD_OUT_SEED};
use crate::demo::embedded::{demo_model_dir, DEMO_MODEL_NAME};

/// Documents in the default corpus (about 170k tokens).
const DEFAULT_DOCUMENTS: usize = 5_000;
/// `--num-tokens` when the default corpus is used and none is given.
const DEFAULT_NUM_TOKENS: u64 = 100_000;

/// Fills in `--model` (and `--dataset`, `--num-tokens` for the default corpus) when absent.
pub fn apply(model: &mut ModelArgs, data: &mut DataArgs) -> Result<()> {
    if model.model.is_some() {
        return Ok(());
    }
    let dir = demo_model_dir()?;
    eprintln!(
        "note: no --model given: using the embedded {DEMO_MODEL_NAME}, a tiny Gemma-2 trained on \
         a synthetic corpus (see `saectl demo`)"
    );
    model.model = Some(dir.display().to_string());
    if data.dataset.is_none() {
        let corpus = dir.join("corpus.jsonl");
        if !corpus.is_file() {
            write_corpus(&corpus, HELD_OUT_SEED, DEFAULT_DOCUMENTS)?;
        }
        eprintln!(
            "note: no --dataset given: using the demo's synthetic corpus {}",
            corpus.display()
        );
        data.dataset = Some(corpus.display().to_string());
        if data.num_tokens.is_none() {
            eprintln!("note: no --num-tokens given: reading {DEFAULT_NUM_TOKENS} tokens");
            data.num_tokens = Some(DEFAULT_NUM_TOKENS);
        }
    }
    Ok(())
}
