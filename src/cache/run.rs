//! `saectl cache` as a library stage: run the model to a hook point over packed token windows
//! and append each batch's activations to the cache, resuming after its last complete shard.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};

use super::index::{CacheDtype, CacheSpec};
use super::writer::CacheWriter;
use crate::data::{
    Bos, DataSource, DocumentTokenizer, PackConfig, PackCounts, TextSpec, TokenWindows,
};
use crate::hub::HubSettings;
use crate::model::{DTypeChoice, HookPoint, ModelSpec};
use crate::stream::for_each_hooked_batch;

/// What a cache is made from: a model, read at one hook point, over a text.
#[derive(Clone, Debug)]
pub struct CacheSource {
    pub model: ModelSpec,
    /// A TransformerLens hook name, e.g. `blocks.12.hook_resid_post`.
    pub hook: String,
    pub text: TextSpec,
}

/// How much of the text, cut how, stored how.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheConfig {
    /// Tokens to cache (rounded up to whole sequences); a larger budget extends a cache.
    pub num_tokens: u64,
    pub seq_len: usize,
    /// Sequences per forward pass.
    pub model_batch_size: usize,
    /// Storage dtype of the activations (`None`: the model's).
    pub dtype: Option<DTypeChoice>,
    /// Sequences per shard file (the unit of resumption and of reading).
    pub sequences_per_shard: usize,
}

/// What caching tells its caller while it runs.
#[derive(Clone, Debug, PartialEq)]
pub enum CacheEvent {
    /// The folder holds this many sequences of this cache already: caching continues after them.
    Resuming { sequences: u64 },
    /// The forward passes start: this many tokens to cache.
    Start { tokens: u64 },
    /// A batch of this many tokens was stored.
    Batch { tokens: u64 },
}

/// How caching ended.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheSummary {
    /// Sequences written by this run (0: the cache already held the budget).
    pub written: u64,
    /// The cache as it now is: sequences, tokens and shard files.
    pub num_sequences: u64,
    pub num_tokens: u64,
    pub shards: usize,
    /// What the text gave (documents read, empty, tokens unused); absent when nothing ran.
    pub counts: Option<PackCounts>,
    /// Time spent reading text and running the model.
    pub elapsed: Duration,
}

/// Caches `source` into `out` (an existing cache made with the same settings is resumed).
/// A new cache that fails before its first shard leaves no folder behind.
pub fn run(
    source: &CacheSource,
    out: &Path,
    config: &CacheConfig,
    device: &Device,
    on_progress: &mut dyn FnMut(CacheEvent),
) -> Result<CacheSummary> {
    let created = !out.exists();
    let result = cache_into(source, out, config, device, on_progress);
    if result.is_err() && created {
        remove_if_no_shard(out);
    }
    result
}

/// Removes `dir` when it holds no shard (only the index, the tokenizer, the lock's file).
fn remove_if_no_shard(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let has_shard = entries
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("shard_"));
    if !has_shard {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn cache_into(
    source: &CacheSource,
    out: &Path,
    config: &CacheConfig,
    device: &Device,
    on_progress: &mut dyn FnMut(CacheEvent),
) -> Result<CacheSummary> {
    let pack = PackConfig {
        num_tokens: Some(config.num_tokens),
        ..PackConfig::new(config.model_batch_size, config.seq_len)
    };
    pack.validate()?;
    let total_windows = pack.window_limit().unwrap_or(0);
    let hook: HookPoint = source.hook.parse()?;
    let opened = source
        .model
        .locate(&[hook])?
        .load(Some(hook.layers_needed()), device)?;
    let tokenizer = DocumentTokenizer::from_file(&opened.tokenizer, Bos::FromTokenizer)
        .with_context(|| format!("cannot use the tokenizer of {}", source.model.model))?;
    let text = &source.text;
    let files = DataSource::resolve(&text.dataset, &text.options, &HubSettings::from_env())?;
    let model = &opened.model;
    let spec = CacheSpec {
        model: source.model.model.clone(),
        hook_point: hook.to_string(),
        d_in: model.d_model(),
        seq_len: config.seq_len,
        dtype: storage_dtype(config.dtype, model.dtype()),
        special_token_ids: tokenizer.special_token_ids(),
        source: text_description(text, &files)?,
    };
    let mut writer = CacheWriter::create_or_resume(
        out,
        spec,
        config.sequences_per_shard,
        Some(&opened.tokenizer),
    )?;
    let done = writer.sequences_done() as u64;
    if done >= total_windows {
        let index = writer.finish(true)?;
        return Ok(CacheSummary {
            written: 0,
            num_sequences: index.num_sequences as u64,
            num_tokens: index.num_tokens,
            shards: index.shards.len(),
            counts: None,
            elapsed: Duration::ZERO,
        });
    }
    if done > 0 {
        on_progress(CacheEvent::Resuming { sequences: done });
    }
    let pack = PackConfig {
        start_window: done,
        ..pack
    };
    let mut windows = TokenWindows::new(files.documents(), tokenizer, pack)
        .with_context(|| format!("cannot read text from {}", text.dataset))?;
    on_progress(CacheEvent::Start {
        tokens: (total_windows - done) * config.seq_len as u64,
    });
    let started = Instant::now();
    for_each_hooked_batch(model, &hook, &mut windows, done, |batch, activations| {
        writer.push(&batch.tokens, activations)?;
        on_progress(CacheEvent::Batch {
            tokens: (batch.rows * batch.seq_len) as u64,
        });
        Ok(())
    })
    .with_context(|| format!("caching {} failed", text.dataset))?;
    let written = writer.sequences_done() as u64 - done;
    let index = writer.finish(true)?;
    if index.num_sequences == 0 {
        bail!(
            "the corpus {} produced no complete sequence of {} tokens",
            text.dataset,
            config.seq_len
        );
    }
    Ok(CacheSummary {
        written,
        num_sequences: index.num_sequences as u64,
        num_tokens: index.num_tokens,
        shards: index.shards.len(),
        counts: Some(windows.counts().clone()),
        elapsed: started.elapsed(),
    })
}

fn storage_dtype(choice: Option<DTypeChoice>, model_dtype: DType) -> CacheDtype {
    match choice.map(DType::from).unwrap_or(model_dtype) {
        DType::BF16 => CacheDtype::Bf16,
        DType::F16 => CacheDtype::F16,
        _ => CacheDtype::F32,
    }
}

/// What decides the token stream, so a resume with another corpus is refused.
fn text_description(
    text: &TextSpec,
    files: &DataSource,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut map = serde_json::Map::new();
    map.insert("dataset".into(), text.dataset.clone().into());
    map.insert("text_field".into(), text.options.text_field.clone().into());
    map.insert(
        "txt_documents".into(),
        serde_json::to_value(text.options.txt_documents)?,
    );
    map.insert("resolved".into(), serde_json::to_value(files.summary())?);
    Ok(map)
}
