//! `saectl cache`: run the model to a hook point over a corpus and store the activations, so
//! one expensive forward pass serves many SAE runs (docs/cache.md).
//!
//! Running it again with the same `--out` resumes after the last complete shard; a larger
//! `--num-tokens` extends a finished cache.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::DType;
use clap::Args;

use super::data_args::DataArgs;
use super::model_args::{special_token_ids, ModelArgs};
use super::progress::token_bar;
use crate::cache::{fill_cache, CacheDtype, CacheSpec, CacheWriter};
use crate::data::{DataSource, TokenWindows};
use crate::model::DTypeChoice;

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

pub fn run(args: CacheArgs) -> Result<()> {
    let model_id = args.model.require_model("cache")?.to_string();
    let (dataset, _) = args.data.require("cache")?;
    let dataset = dataset.to_string();
    let pack_check = args.data.pack_config(0)?;
    let total_windows = pack_check.window_limit().unwrap_or(0);
    let hooked = args.model.load_for_hook(&args.hook)?;
    if let Some(note) = &hooked.device_note {
        eprintln!("note: {note}");
    }
    let source = DataSource::resolve(
        &dataset,
        &args.data.source_options(),
        &args.data.hub_settings(),
    )?;
    let model = &hooked.loaded.model;
    let spec = CacheSpec {
        model: model_id,
        hook_point: hooked.hook.to_string(),
        d_in: model.d_model(),
        seq_len: args.data.seq_len,
        dtype: storage_dtype(args.cache_dtype, model.dtype()),
        special_token_ids: special_token_ids(&hooked.tokenizer),
        source: source_description(&args.data, &source)?,
    };
    let mut writer = CacheWriter::create_or_resume(
        &args.out,
        spec,
        args.sequences_per_shard,
        Some(&hooked.tokenizer_path),
    )?;
    let done = writer.sequences_done() as u64;
    if done >= total_windows {
        let index = writer.finish(true)?;
        eprintln!(
            "{} already holds {} sequences ({} tokens): nothing to do",
            args.out.display(),
            index.num_sequences,
            index.num_tokens
        );
        return Ok(());
    }
    if done > 0 {
        eprintln!("resuming {} after {done} sequences", args.out.display());
    }
    let mut windows = TokenWindows::new(
        source.documents(),
        hooked.tokenizer.clone(),
        args.data.pack_config(done)?,
    )
    .with_context(|| format!("cannot read text from {dataset}"))?;
    let bar = token_bar((total_windows - done) * args.data.seq_len as u64, "caching");
    let started = Instant::now();
    let written = fill_cache(model, &hooked.hook, &mut windows, &mut writer, |tokens| {
        bar.inc(tokens)
    })
    .with_context(|| format!("caching {dataset} failed"))?;
    bar.finish_and_clear();
    let index = writer.finish(true)?;
    let counts = windows.counts();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "cached {} sequences ({} tokens) in {:.1} s ({:.0} tokens/s); {} holds {} sequences in {} shards; \
         documents read {}, empty {}, tokens unused at the end {}",
        written,
        written * args.data.seq_len,
        seconds,
        (written * args.data.seq_len) as f64 / seconds.max(1e-9),
        args.out.display(),
        index.num_sequences,
        index.shards.len(),
        counts.documents_read,
        counts.documents_empty,
        counts.tokens_unused
    );
    if index.num_sequences == 0 {
        anyhow::bail!(
            "the corpus {} produced no complete sequence of {} tokens",
            dataset,
            args.data.seq_len
        );
    }
    Ok(())
}

fn storage_dtype(choice: Option<DTypeChoice>, model_dtype: DType) -> CacheDtype {
    match choice.map(DType::from).unwrap_or(model_dtype) {
        DType::BF16 => CacheDtype::Bf16,
        DType::F16 => CacheDtype::F16,
        _ => CacheDtype::F32,
    }
}

/// What decides the token stream, so a resume with another corpus is refused.
fn source_description(
    data: &DataArgs,
    source: &DataSource,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut map = serde_json::Map::new();
    map.insert(
        "dataset".into(),
        data.text.dataset.clone().unwrap_or_default().into(),
    );
    map.insert("text_field".into(), data.text.text_field.clone().into());
    map.insert(
        "txt_documents".into(),
        serde_json::to_value(data.text.txt_documents)?,
    );
    map.insert("resolved".into(), serde_json::to_value(source.summary())?);
    Ok(map)
}
