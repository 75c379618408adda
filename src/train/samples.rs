//! Sample collection while training (the original's `save_activation_samples`).
//!
//! Every `sample_collection_freq` steps, step 0 included, the SAE as it is then encodes a fresh
//! batch of `model_batch_size` whole sequences — in inference mode on flattened tokens
//! (BatchTopK with its learned threshold; the original used training-mode batch top-k on
//! `[batch, seq, d]`) — and the shared collector takes it. Sequences come from the activation
//! cache in cache order, or, live, from the training text in corpus order (the held-out
//! evaluation sequences excluded) through the model. One collection never takes a sequence
//! twice: a cache or corpus smaller than `model_batch_size` gives each collection all of its
//! sequences once, so the counts are of distinct tokens and a top list is never one sentence
//! many times. Successive collections continue where the last one stopped and wrap around;
//! each collection's sequences get fresh indices, so a sequence seen again by a later SAE is a
//! new sample, never a duplicate key. Special tokens are the cache's or the tokenizer's.
//!
//! The collector's state is saved inside every checkpoint, so a resumed run continues the
//! collection exactly; the readable folder `<run>/activation_samples/` is rewritten with each
//! checkpoint and at the end.
//!
//! The collector takes each batch on a thread of its own ([`Ingest`]) while training goes on:
//! a collection stalls the training step only for its forward pass and encode. The next
//! collection and every save wait for it first, so what is collected and saved is what the
//! serial order gives.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use candle_core::Tensor;

use super::config::TrainConfig;
use super::corpus::WindowCursor;
use super::run_dir::RunDir;
use crate::cache::ActivationCache;
use crate::collect::{encode_batch, write_samples_folder, Collector, NonFiniteGuard};
use crate::data::{IdDecoder, TokenDecoder, TokenizerDecoder};
use crate::model::{Gemma2, HookPoint};
use crate::sae::Sae;
use crate::samples::{CollectionSettings, CollectionSource, SamplesDir, SaveConfig};

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
    pub description: CollectionSource,
}

/// The collector of a training run and where its sequences come from.
pub struct TrainingSampler {
    collector: RefCell<Ingest>,
    source: SampleSource,
    decoder: Box<dyn TokenDecoder>,
    save: SaveConfig,
    sequences_per_collection: usize,
    /// Where collection's time went, for the overhead report.
    time: Cell<CollectionTime>,
}

/// Where the time of a run's sample collection went. The training step waits for `source`
/// and `waited` only: the collector's `ingest` runs beside the next steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CollectionTime {
    /// On the training thread: reading the sequences (live: the forward pass to the hook)
    /// and encoding them with the SAE.
    pub source: Duration,
    /// On the training thread: waiting for the collector to finish the previous batch
    /// (before the next collection, or a save).
    pub waited: Duration,
    /// On the collector's own thread: taking the batches.
    pub ingest: Duration,
}

/// The collector, in hand or taking a batch on its own thread (which returns how long it
/// took).
enum Ingest {
    Ready(Box<Collector>),
    Busy(JoinHandle<Result<(Box<Collector>, Duration)>>),
    /// Only while switching between the two, or after an ingest failed.
    Gone,
}

impl Ingest {
    /// The collector once its batch is in (the ingest's error, if it failed), adding the
    /// wait for it and the ingest's own time to `time`.
    fn settle(&mut self, time: &Cell<CollectionTime>) -> Result<&mut Collector> {
        if let Ingest::Busy(_) = self {
            let Ingest::Busy(handle) = std::mem::replace(self, Ingest::Gone) else {
                unreachable!("matched above")
            };
            let started = Instant::now();
            let (collector, ingest) = match handle.join() {
                Ok(done) => done?,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            let mut spent = time.get();
            spent.waited += started.elapsed();
            spent.ingest += ingest;
            time.set(spent);
            *self = Ingest::Ready(collector);
        }
        match self {
            Ingest::Ready(collector) => Ok(collector),
            _ => anyhow::bail!("sample collection during training failed earlier"),
        }
    }
}

impl TrainingSampler {
    /// A new sampler, or the one saved in `checkpoint` (a resumed run).
    pub fn open(
        cfg: &TrainConfig,
        source: SampleSource,
        d_sae: usize,
        checkpoint: Option<&Path>,
    ) -> Result<Self> {
        let CollectionSettings { collector, save } = cfg.collection_settings();
        let (special, tokenizer) = match &source {
            SampleSource::Cache(cache) => (
                cache.index().spec.special_token_ids.clone(),
                cache.tokenizer_path(),
            ),
            SampleSource::Live(live) => {
                (live.special_token_ids.clone(), Some(live.tokenizer.clone()))
            }
        };
        let collector = match checkpoint.map(RunDir::collector_state) {
            Some(state) if state.exists() => Collector::load_state(&state)?,
            _ => Collector::new(collector, d_sae, &special)?,
        };
        let decoder: Box<dyn TokenDecoder> = match tokenizer {
            Some(path) => Box::new(TokenizerDecoder::from_file(&path)?),
            None => Box::new(IdDecoder),
        };
        Ok(Self {
            collector: RefCell::new(Ingest::Ready(Box::new(collector))),
            source,
            decoder,
            save,
            sequences_per_collection: cfg.model_batch_size.max(1),
            time: Cell::default(),
        })
    }

    /// Where collection's time went so far (the last batch's ingest counts once a save or the
    /// next collection has waited for it).
    pub fn time(&self) -> CollectionTime {
        self.time.get()
    }

    /// Encodes the next batch of sequences with `sae` and hands it to the collector's thread.
    pub fn collect(&mut self, sae: &Sae) -> Result<()> {
        let context = "sample collection during training failed";
        let position = self
            .collector
            .get_mut()
            .settle(&self.time)
            .context(context)?
            .sequences_seen();
        let started = Instant::now();
        let (tokens, activations) = self.next_sequences(position)?;
        let encoded = encode_batch(
            sae,
            tokens,
            &activations,
            position,
            &mut NonFiniteGuard::strict(),
        )
        .context(context)?;
        let Ingest::Ready(mut collector) =
            std::mem::replace(self.collector.get_mut(), Ingest::Gone)
        else {
            unreachable!("settled above")
        };
        let handle = std::thread::Builder::new()
            .name("sample-collector".into())
            .spawn(move || {
                let started = Instant::now();
                encoded.ingest_into(&mut collector).context(context)?;
                Ok((collector, started.elapsed()))
            })
            .context("cannot start the sample collector's thread")?;
        *self.collector.get_mut() = Ingest::Busy(handle);
        let mut spent = self.time.get();
        spent.source += started.elapsed();
        self.time.set(spent);
        Ok(())
    }

    /// The next `sequences_per_collection` sequences from global sequence `position`, or every
    /// sequence once when there are fewer: tokens and activations `[rows, seq_len, d_in]`.
    fn next_sequences(&mut self, position: u64) -> Result<(Vec<u32>, Tensor)> {
        let count = self.sequences_per_collection;
        match &mut self.source {
            SampleSource::Cache(cache) => {
                let total = cache.index().num_sequences;
                cached_sequences(cache, position, count.min(total))
            }
            SampleSource::Live(live) => {
                let (tokens, rows) = live.cursor.distinct_rows(position, count)?;
                let shape = (rows, live.cursor.seq_len());
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
    pub fn save(&self, checkpoint: &Path, run: &RunDir) -> Result<PathBuf> {
        let mut ingest = self.collector.borrow_mut();
        let collector = ingest
            .settle(&self.time)
            .context("sample collection during training failed")?;
        collector.save_state(&RunDir::collector_state(checkpoint))?;
        let folder = run.samples();
        let read = match &self.source {
            SampleSource::Cache(cache) => CollectionSource {
                activations: Some(cache.dir().display().to_string()),
                ..CollectionSource::default()
            },
            SampleSource::Live(live) => live.description.clone(),
        };
        let source = CollectionSource {
            training_run: Some(run.root.display().to_string()),
            checkpoint: Some(checkpoint.display().to_string()),
            ..read
        };
        write_samples_folder(
            &SamplesDir::new(&folder),
            collector,
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
    let total = cache.index().num_sequences as u64;
    let mut tokens = Vec::new();
    let mut parts = Vec::new();
    let mut position = position % total;
    let mut wanted = count as u64;
    while wanted > 0 {
        let take = wanted.min(total - position);
        for rows in cache.rows(position..position + take) {
            let rows = rows?;
            tokens.extend(rows.tokens);
            parts.push(rows.activations);
        }
        wanted -= take;
        position = (position + take) % total;
    }
    Ok((tokens, Tensor::cat(&parts, 0)?))
}
