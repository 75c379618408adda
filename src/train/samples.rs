//! Sample collection while training (the original's `save_activation_samples`).
//!
//! Every `sample_collection_freq` steps, step 0 included, the SAE as it is then encodes a fresh
//! batch of `model_batch_size` whole sequences — in inference mode on flattened tokens
//! (BatchTopK with its learned threshold; the original used training-mode batch top-k on
//! `[batch, seq, d]`) — and the shared collector takes it. Sequences come from the activation
//! cache in cache order, or, live, from the training text in corpus order (the held-out
//! evaluation sequences excluded) through the model; either way they wrap around, and each
//! collection's sequences get fresh indices, so a wrapped sequence is a new sample (seen by a
//! later SAE), never a duplicate key. Special tokens are the cache's or the tokenizer's.
//!
//! The collector's state is saved inside every checkpoint, so a resumed run continues the
//! collection exactly; the readable folder `<run>/activation_samples/` is rewritten with each
//! checkpoint and at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use candle_core::Tensor;
use serde_json::{Map, Value};

use super::config::TrainConfig;
use super::corpus::WindowCursor;
use crate::collect::{
    collect_batch, write_samples_folder, Collector, CollectorConfig, FlagConfig, SaveConfig,
    TokenDecoder, TokenizerDecoder, STATE_FILE_NAME,
};
use crate::data::cache::ActivationCache;
use crate::model::{Gemma2, HookPoint};
use crate::sae::Sae;

/// The readable samples folder of a run.
pub const SAMPLES_DIR: &str = "activation_samples";

/// Decodes token ids as `⟨id⟩` when a cache has no tokenizer (synthetic caches in tests).
struct IdDecoder;

impl TokenDecoder for IdDecoder {
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|id| format!("⟨{id}⟩")).collect()
    }
}

/// Where the collected sequences come from.
pub enum SampleSource {
    Cache(Box<ActivationCache>),
    /// The training text through the model, to the SAE's input hook.
    Live(Box<LiveSamples>),
}

/// A live run's sequences for collection.
pub struct LiveSamples {
    pub cursor: WindowCursor,
    pub model: Gemma2,
    pub hook: HookPoint,
    pub tokenizer: PathBuf,
    pub special_token_ids: Vec<u32>,
    /// Provenance for the samples folder (model, hook point, dataset).
    pub description: Map<String, Value>,
}

/// The collector of a training run and where its sequences come from.
pub struct TrainingSampler {
    collector: Collector,
    source: SampleSource,
    decoder: Box<dyn TokenDecoder>,
    save: SaveConfig,
    sequences_per_collection: usize,
    /// Time spent collecting, for the overhead report.
    pub elapsed: Duration,
}

impl TrainingSampler {
    /// A new sampler, or the one saved in `checkpoint` (a resumed run).
    pub fn open(
        cfg: &TrainConfig,
        source: SampleSource,
        d_sae: usize,
        checkpoint: Option<&Path>,
    ) -> Result<Self> {
        let config = cfg.collector_config();
        let (special, tokenizer) = match &source {
            SampleSource::Cache(cache) => (
                cache.index().spec.special_token_ids.clone(),
                cache.tokenizer_path(),
            ),
            SampleSource::Live(live) => {
                (live.special_token_ids.clone(), Some(live.tokenizer.clone()))
            }
        };
        let collector = match checkpoint.map(|dir| dir.join(STATE_FILE_NAME)) {
            Some(state) if state.exists() => Collector::load_state(&state)?,
            _ => Collector::new(config, d_sae, &special)?,
        };
        let decoder: Box<dyn TokenDecoder> = match tokenizer {
            Some(path) => Box::new(TokenizerDecoder(crate::data::load_tokenizer(&path)?)),
            None => Box::new(IdDecoder),
        };
        Ok(Self {
            collector,
            source,
            decoder,
            save: SaveConfig {
                top_features_to_save: cfg.top_features_to_save,
                samples_per_feature_to_save: cfg.samples_per_feature_to_save,
                flags: cfg.flag_config(),
            },
            sequences_per_collection: cfg.model_batch_size.max(1),
            elapsed: Duration::ZERO,
        })
    }

    /// Encodes the next batch of sequences with `sae` and collects it.
    pub fn collect(&mut self, sae: &Sae) -> Result<()> {
        let started = Instant::now();
        let (tokens, activations) = self.next_sequences()?;
        let first = self.collector.sequences_seen();
        collect_batch(sae, &mut self.collector, &tokens, &activations, first)
            .context("sample collection during training failed")?;
        self.elapsed += started.elapsed();
        Ok(())
    }

    /// The next `sequences_per_collection` sequences: tokens and activations
    /// `[rows, seq_len, d_in]`.
    fn next_sequences(&mut self) -> Result<(Vec<u32>, Tensor)> {
        let position = self.collector.sequences_seen();
        let count = self.sequences_per_collection;
        match &mut self.source {
            SampleSource::Cache(cache) => cached_sequences(cache, position, count),
            SampleSource::Live(live) => {
                let tokens = live.cursor.rows(position, count)?;
                let shape = (count, live.cursor.seq_len());
                let ids = Tensor::from_slice(&tokens, shape, live.model.device())?;
                let activations = live
                    .model
                    .forward_to_hook(&ids, &live.hook)
                    .context("forward pass for sample collection failed")?;
                Ok((tokens, activations))
            }
        }
    }

    /// Complete windows of the live corpus, once this sampler's reading has learnt it.
    pub fn corpus_windows(&self) -> Option<u64> {
        match &self.source {
            SampleSource::Live(live) => live.cursor.corpus_windows(),
            SampleSource::Cache(_) => None,
        }
    }

    /// Saves the collector's state into `checkpoint` (resumption) and rewrites the run's
    /// samples folder (reading).
    pub fn save(&self, checkpoint: &Path, run_root: &Path) -> Result<PathBuf> {
        self.collector
            .save_state(&checkpoint.join(STATE_FILE_NAME))?;
        let folder = run_root.join(SAMPLES_DIR);
        let mut source = serde_json::Map::new();
        source.insert("training_run".into(), run_root.display().to_string().into());
        source.insert("checkpoint".into(), checkpoint.display().to_string().into());
        match &self.source {
            SampleSource::Cache(cache) => {
                source.insert(
                    "activations".into(),
                    cache.dir().display().to_string().into(),
                );
            }
            SampleSource::Live(live) => source.extend(live.description.clone()),
        }
        write_samples_folder(
            &folder,
            &self.collector,
            self.decoder.as_ref(),
            &self.save,
            source,
        )?;
        Ok(folder)
    }
}

/// `count` cached sequences from global sequence `position` on, wrapping around the cache.
pub(super) fn cached_sequences(
    cache: &ActivationCache,
    position: u64,
    count: usize,
) -> Result<(Vec<u32>, Tensor)> {
    let index = cache.index();
    let total = index.num_sequences as u64;
    let seq_len = index.spec.seq_len;
    let mut tokens = Vec::new();
    let mut parts = Vec::new();
    let mut position = position % total;
    let mut wanted = count;
    while wanted > 0 {
        let (shard, row, shard_len) = locate(cache, position);
        let take = wanted.min(shard_len - row);
        let data = cache.load_shard(shard)?;
        tokens.extend_from_slice(&data.tokens[row * seq_len..(row + take) * seq_len]);
        parts.push(data.activations.narrow(0, row, take)?);
        wanted -= take;
        position = (position + take as u64) % total;
    }
    Ok((tokens, Tensor::cat(&parts, 0)?))
}

/// Shard, row in it and the shard's length of global cached sequence `position`.
fn locate(cache: &ActivationCache, position: u64) -> (usize, usize, usize) {
    let mut start = 0u64;
    for (shard, entry) in cache.index().shards.iter().enumerate() {
        let len = entry.num_sequences as u64;
        if position < start + len {
            return (shard, (position - start) as usize, entry.num_sequences);
        }
        start += len;
    }
    unreachable!("position {position} is below num_sequences, so some shard holds it")
}

impl TrainConfig {
    /// The collector settings of this run.
    pub fn collector_config(&self) -> CollectorConfig {
        CollectorConfig {
            max_samples_per_feature: self.max_samples_per_feature,
            sample_context_size: self.sample_context_size,
            sample_activation_threshold: self.sample_activation_threshold,
            exclude_special_tokens: self.exclude_special_tokens,
            dedup_context_windows: self.dedup_context_windows,
            interval_count: self.interval_count,
            samples_per_interval: self.samples_per_interval,
        }
    }

    /// The flag thresholds of this run's samples folder.
    pub fn flag_config(&self) -> FlagConfig {
        FlagConfig {
            ultra_rare_density: self.ultra_rare_density,
            dominant_share: self.dominant_share,
        }
    }
}
