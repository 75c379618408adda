//! `saectl cache`: run the model to a hook point over a corpus and store the activations, so
//! one expensive forward pass serves many SAE runs (docs/cache.md).
//!
//! Args → [`CacheSource`] and [`CacheConfig`] → [`cache::run`], with a progress bar. Running
//! it again with the same `--out` resumes after the last complete shard; a larger
//! `--num-tokens` extends a finished cache.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use super::data_args::DataArgs;
use super::model_args::ModelArgs;
use super::progress::token_bar;
use crate::cache::{self, CacheConfig, CacheEvent, CacheSource};
use crate::model::{resolve_device, DTypeChoice};
use crate::util::paths::check_apart;

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  saectl cache --model google/gemma-2-2b --hook blocks.12.hook_resid_post \\\n    --dataset data/corpus.jsonl --num-tokens 10000000 --out caches/gemma-l12"
)]
pub struct CacheArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Where to read activations, e.g. blocks.12.hook_resid_post (TransformerLens names).
    #[arg(long, value_name = "HOOK")]
    pub hook: String,

    #[command(flatten)]
    pub data: DataArgs,

    /// The cache folder (created; an existing cache made with the same settings is resumed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Storage dtype of the activations [default: the model's dtype].
    #[arg(long, value_name = "DTYPE")]
    pub cache_dtype: Option<DTypeChoice>,

    /// Sequences per shard file (a shard is the unit of resumption and of reading).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub sequences_per_shard: usize,
}

impl CacheArgs {
    /// The model, hook and text to cache; `--model` and `--dataset` are required.
    fn cache_source(&self) -> Result<CacheSource> {
        self.model.require_model("cache")?;
        let (text, _) = self.data.require("cache")?;
        Ok(CacheSource {
            model: self.model.spec().expect("required above"),
            hook: self.hook.clone(),
            text,
        })
    }

    fn cache_config(&self) -> Result<CacheConfig> {
        let (_, num_tokens) = self.data.require("cache")?;
        Ok(CacheConfig {
            num_tokens,
            seq_len: self.data.seq_len,
            model_batch_size: self.data.model_batch_size,
            dtype: self.cache_dtype,
            sequences_per_shard: self.sequences_per_shard,
        })
    }
}

pub fn run(args: CacheArgs) -> Result<()> {
    let source = args.cache_source()?;
    let config = args.cache_config()?;
    let device = resolve_device(args.model.device)?;
    if let Some(note) = &device.note {
        eprintln!("note: {note}");
    }
    let out = &args.out;
    // A local text folder (or file) only; a Hub dataset has no place on disk.
    let dataset = Path::new(&source.text.dataset);
    if dataset.exists() {
        check_apart(out, "--out", dataset, "--dataset")?;
    }
    let mut bar = None;
    let summary = cache::run(
        &source,
        out,
        &config,
        &device.device,
        &mut |event| match event {
            CacheEvent::Resuming { sequences } => {
                eprintln!("resuming {} after {sequences} sequences", out.display())
            }
            CacheEvent::Start { tokens } => bar = Some(token_bar(tokens, "caching")),
            CacheEvent::Batch { tokens } => {
                if let Some(bar) = &bar {
                    bar.inc(tokens)
                }
            }
        },
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = summary?;
    let Some(counts) = &summary.counts else {
        eprintln!(
            "{} already holds {} sequences ({} tokens): nothing to do",
            out.display(),
            summary.num_sequences,
            summary.num_tokens
        );
        return Ok(());
    };
    let tokens = summary.written * config.seq_len as u64;
    let seconds = summary.elapsed.as_secs_f64();
    eprintln!(
        "cached {} sequences ({tokens} tokens) in {seconds:.1} s ({:.0} tokens/s); {} holds {} \
         sequences in {} shards; documents read {}, empty {}, tokens unused at the end {}",
        summary.written,
        tokens as f64 / seconds.max(1e-9),
        out.display(),
        summary.num_sequences,
        summary.shards,
        counts.documents_read,
        counts.documents_empty,
        counts.tokens_unused
    );
    Ok(())
}
