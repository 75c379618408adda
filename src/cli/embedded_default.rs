//! What `cache`, `collect`, `train`, `inspect` and `steer` run on when no `--model` is given:
//! the embedded demo model (`crate::demo::embedded`), and, without `--dataset`, a generated
//! planted-concept corpus. Each default is announced on stderr, so nobody mistakes it for
//! their own model.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::data_args::DataArgs;
use super::model_args::ModelArgs;
use super::train::TrainArgs;
use crate::demo::corpus_file::{write_corpus, HELD_OUT_SEED, SAE_TRAIN_SEED};
use crate::demo::embedded::{demo_model_dir, DEMO_HOOK, DEMO_MODEL_NAME};

/// Documents in a default corpus (about 170k tokens).
const DEFAULT_DOCUMENTS: usize = 5_000;
/// `--num-tokens` when the default corpus is read and none is given.
const DEFAULT_NUM_TOKENS: u64 = 100_000;
/// Training tokens when `train` runs on the embedded model and none are given.
const DEFAULT_TRAIN_TOKENS: u64 = 400_000;
/// The demo's SAE shape, for `train` on the embedded model when no shape is given.
const DEMO_DICT_SIZE: usize = 512;
const DEMO_TOP_K: usize = 8;
const DEMO_BATCH_SIZE: usize = 1024;
const DEMO_SEQ_LEN: usize = 64;

/// `cache` and live `collect`: fills in `--model` (and `--dataset`, `--num-tokens` for the
/// default corpus) when absent.
pub fn apply(model: &mut ModelArgs, data: &mut DataArgs) -> Result<()> {
    if model.model.is_some() {
        return Ok(());
    }
    let dir = use_embedded_model(model)?;
    if data.text.dataset.is_none() {
        data.text.dataset = Some(default_corpus(&dir, "corpus.jsonl", HELD_OUT_SEED)?);
        if data.num_tokens.is_none() {
            eprintln!("note: no --num-tokens given: reading {DEFAULT_NUM_TOKENS} tokens");
            data.num_tokens = Some(DEFAULT_NUM_TOKENS);
        }
    }
    Ok(())
}

/// `inspect` and `steer`: fills in `--model` when absent (they read no corpus).
pub fn apply_model(model: &mut ModelArgs) -> Result<()> {
    if model.model.is_none() {
        use_embedded_model(model)?;
    }
    Ok(())
}

/// `train` without `--activations`, `--resume` or `--model` trains live on the embedded model:
/// at the demo's hook, on the demo's training corpus, for 400k tokens unless told otherwise.
pub fn apply_train(args: &mut TrainArgs) -> Result<()> {
    if args.activations.is_some() || args.resume.is_some() || args.model.model.is_some() {
        return Ok(());
    }
    let dir = use_embedded_model(&mut args.model)?;
    if args.hook.is_none() {
        eprintln!("note: no --hook given: training at {DEMO_HOOK}");
        args.hook = Some(DEMO_HOOK.to_string());
    }
    if args.text.dataset.is_none() {
        args.text.dataset = Some(default_corpus(&dir, "train-corpus.jsonl", SAE_TRAIN_SEED)?);
        if args.keys.num_tokens.is_none() {
            eprintln!("note: no --num-tokens given: training on {DEFAULT_TRAIN_TOKENS} tokens");
            args.keys.num_tokens = Some(DEFAULT_TRAIN_TOKENS);
        }
    }
    // The defaults are sized for Gemma-2-2B (12288 latents, 4096-token batches); a 128-wide
    // model wants the demo's shape. Only what the user (or --config) left open is filled in.
    let keys = &mut args.keys;
    if args.config.is_none()
        && keys.dict_size.is_none()
        && keys.top_k.is_none()
        && keys.batch_size.is_none()
    {
        eprintln!(
            "note: sized for the embedded model: --dict-size {DEMO_DICT_SIZE} --top-k {DEMO_TOP_K} \
             --batch-size {DEMO_BATCH_SIZE} --seq-len {DEMO_SEQ_LEN}"
        );
        keys.dict_size = Some(DEMO_DICT_SIZE);
        keys.top_k = Some(DEMO_TOP_K);
        keys.batch_size = Some(DEMO_BATCH_SIZE);
        keys.seq_len = keys.seq_len.or(Some(DEMO_SEQ_LEN));
        keys.model_batch_size = keys.model_batch_size.or(Some(64));
    }
    Ok(())
}

fn use_embedded_model(model: &mut ModelArgs) -> Result<PathBuf> {
    let dir = demo_model_dir()?;
    eprintln!(
        "note: no --model given: using the embedded {DEMO_MODEL_NAME}, a tiny Gemma-2 trained on \
         a synthetic corpus (see `saectl demo`)"
    );
    model.model = Some(dir.display().to_string());
    Ok(dir)
}

/// The demo corpus `name` in the model folder, generated on first use.
fn default_corpus(dir: &Path, name: &str, seed: u64) -> Result<String> {
    let corpus = dir.join(name);
    if !corpus.is_file() {
        write_corpus(&corpus, seed, DEFAULT_DOCUMENTS)?;
    }
    eprintln!(
        "note: no --dataset given: using the demo's synthetic corpus {}",
        corpus.display()
    );
    Ok(corpus.display().to_string())
}
