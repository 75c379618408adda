//! The training loop over an activation cache, and resuming it.
//!
//! ```text
//! <run>/run.json               the activation cache used and the format version
//! <run>/train_config.json      the resolved TrainConfig (the original's keys)
//! <run>/metrics.jsonl          one line every log_freq steps and at the end
//! <run>/checkpoints/step_NNNNNNNNN/   every checkpoint_freq steps and at the end
//! <run>/latest_checkpoint      the newest complete checkpoint (written after it)
//! ```
//! [`RunDir`] owns every file name. A NaN or infinite value in a batch or in the loss stops
//! the run with an error naming the step, after saving the last good state as a checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::config::TrainConfig;
use super::data::BatchStream;
use super::metrics::{self, MetricsLine};
use super::samples::{TrainingSampler, SAMPLES_DIR};
use super::step::{NonFiniteLoss, StepStats, Trainer};
use crate::data::cache::ActivationCache;
use crate::sae::checkpoint::CheckpointMeta;
use crate::util::atomic::{write_atomic, write_json_atomic};

const RUN_FORMAT_VERSION: u32 = 1;

/// What the progress callback sees after every step.
pub struct StepReport<'a> {
    pub step: u64,
    pub total_steps: u64,
    pub tokens: u64,
    pub stats: &'a StepStats,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub steps: u64,
    pub tokens: u64,
    pub final_checkpoint: PathBuf,
    pub last: Option<StepStats>,
    /// With sample collection on: the samples folder and the time spent collecting.
    pub samples: Option<(PathBuf, std::time::Duration)>,
}

/// `run.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunInfo {
    format_version: u32,
    activations: PathBuf,
    /// The cache's size when the run started: the data order depends on it, so a cache that
    /// grew since cannot continue the same stream.
    cache_tokens: u64,
}

/// The run folder and the names of everything in it.
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("train_config.json")
    }

    fn info(&self) -> PathBuf {
        self.root.join("run.json")
    }

    fn pointer(&self) -> PathBuf {
        self.root.join(crate::sae::hub_path::LATEST_CHECKPOINT_FILE)
    }

    pub fn checkpoint(&self, step: u64) -> PathBuf {
        self.root
            .join("checkpoints")
            .join(format!("step_{step:09}"))
    }

    /// The newest complete checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<PathBuf>> {
        let pointer = self.pointer();
        if !pointer.exists() {
            return Ok(None);
        }
        let name = std::fs::read_to_string(&pointer)
            .with_context(|| format!("failed to read {}", pointer.display()))?;
        Ok(Some(self.root.join(name.trim())))
    }

    fn set_latest(&self, checkpoint: &Path) -> Result<()> {
        let relative = checkpoint.strip_prefix(&self.root).unwrap_or(checkpoint);
        write_atomic(&self.pointer(), relative.to_string_lossy().as_bytes())
    }
}

/// Trains a fresh SAE on the cache at `activations`, writing the run into `run_dir` (which
/// must not hold a run already: resume it instead).
pub fn train(
    activations: &Path,
    run_dir: &Path,
    cfg: TrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<RunSummary> {
    let cache = ActivationCache::open(activations)?;
    let spec = cache.index().spec.clone();
    cfg.validate(spec.d_in)
        .context("invalid training configuration")?;
    let run = RunDir::new(run_dir);
    // A folder with a config but no checkpoint is a run that died before its first
    // checkpoint: nothing to resume, so it starts over.
    if run.latest_checkpoint()?.is_some() {
        bail!(
            "{} already holds a training run; resume it with --resume, or choose another --out",
            run_dir.display()
        );
    }
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("failed to create {}", run_dir.display()))?;
    // Absolute, so that `--resume` works from any working directory.
    let activations = std::fs::canonicalize(activations)
        .with_context(|| format!("failed to resolve {}", activations.display()))?;
    let info = RunInfo {
        format_version: RUN_FORMAT_VERSION,
        activations,
        cache_tokens: cache.index().num_tokens,
    };
    if run.metrics().exists() {
        std::fs::remove_file(run.metrics())
            .with_context(|| format!("failed to remove {}", run.metrics().display()))?;
    }
    write_json_atomic(&run.info(), &info)?;
    write_json_atomic(&run.config(), &cfg)?;
    let sampler = sampler_for(&cfg, &cache, None)?;
    let mut trainer = Trainer::new(cfg, spec.d_in, device)?;
    trainer.sae_cfg.hook_name = Some(spec.hook_point.clone());
    trainer.sae_cfg.model_name = Some(spec.model.clone());
    let stream = batch_stream(cache, &trainer.cfg, 0);
    run_loop(&run, trainer, stream, device, progress, sampler)
}

/// Continues the run in `run_dir` from its latest checkpoint, exactly where it stopped.
pub fn resume(
    run_dir: &Path,
    device: &Device,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<RunSummary> {
    let run = RunDir::new(run_dir);
    let info: RunInfo = read_json(&run.info())?;
    let cfg = TrainConfig::from_json_file(&run.config())?;
    let Some(latest) = run.latest_checkpoint()? else {
        bail!("{} has no checkpoint to resume from", run_dir.display());
    };
    let cache = ActivationCache::open(&info.activations).with_context(|| {
        format!(
            "the run's activation cache {} cannot be opened",
            info.activations.display()
        )
    })?;
    if cache.index().num_tokens != info.cache_tokens {
        bail!(
            "the activation cache {} now holds {} tokens, not the {} this run started with; \
             the data order would change, so the run cannot continue exactly",
            info.activations.display(),
            cache.index().num_tokens,
            info.cache_tokens
        );
    }
    let sampler = sampler_for(&cfg, &cache, Some(&latest))?;
    let (trainer, tokens, _) = checkpoint::load(&latest, cfg, device)?;
    metrics::truncate_after(&run.metrics(), trainer.step)?;
    let stream = batch_stream(cache, &trainer.cfg, tokens);
    run_loop(&run, trainer, stream, device, progress, sampler)
}

/// The run's sample collector when `save_activation_samples` is on (from `checkpoint` when
/// resuming).
fn sampler_for(
    cfg: &TrainConfig,
    cache: &ActivationCache,
    checkpoint: Option<&Path>,
) -> Result<Option<TrainingSampler>> {
    if !cfg.save_activation_samples {
        return Ok(None);
    }
    TrainingSampler::open(cfg, cache, cfg.dict_size, checkpoint).map(Some)
}

/// The shuffling buffer holds the original's `num_batches_in_buffer` model batches.
fn batch_stream(cache: ActivationCache, cfg: &TrainConfig, offset: u64) -> BatchStream {
    let seq_len = cache.index().spec.seq_len as u64;
    let buffer_tokens = (cfg.num_batches_in_buffer * cfg.model_batch_size) as u64 * seq_len;
    BatchStream::new(cache, cfg.seed, cfg.batch_size, buffer_tokens, offset)
}

fn run_loop(
    run: &RunDir,
    mut trainer: Trainer,
    mut stream: BatchStream,
    device: &Device,
    progress: &mut dyn FnMut(&StepReport),
    mut sampler: Option<TrainingSampler>,
) -> Result<RunSummary> {
    let total = trainer.cfg.total_steps();
    let meta = checkpoint_meta(&trainer, &stream);
    let mut last = None;
    let mut final_checkpoint = run.latest_checkpoint()?;
    while trainer.step < total {
        if let Some(sampler) = sampler.as_mut() {
            // Step 0 included: the samples of the initial SAE are the baseline.
            if trainer.step % trainer.cfg.sample_collection_freq == 0 {
                sampler.collect(&trainer.sae()?)?;
            }
        }
        let stats = guarded_step(
            run,
            &mut trainer,
            &mut stream,
            device,
            &meta,
            sampler.as_ref(),
        )?;
        let (step, tokens) = (trainer.step, stream.offset());
        if step % trainer.cfg.log_freq == 0 || step == total {
            metrics::append(&run.metrics(), &MetricsLine::new(step, tokens, &stats))?;
        }
        if step % trainer.cfg.checkpoint_freq == 0 || step == total {
            final_checkpoint = Some(save(run, &trainer, tokens, &meta, sampler.as_ref())?);
        }
        progress(&StepReport {
            step,
            total_steps: total,
            tokens,
            stats: &stats,
        });
        last = Some(stats);
    }
    let final_checkpoint = match final_checkpoint {
        Some(dir) => dir,
        None => save(run, &trainer, stream.offset(), &meta, sampler.as_ref())?,
    };
    Ok(RunSummary {
        steps: trainer.step,
        tokens: stream.offset(),
        final_checkpoint,
        last,
        samples: sampler.map(|s| (run.root.join(SAMPLES_DIR), s.elapsed)),
    })
}

/// One step on the next batch. A non-finite batch, loss or gradient stops the run with an
/// error naming the step, after checkpointing the state before it (which the step left as is).
fn guarded_step(
    run: &RunDir,
    trainer: &mut Trainer,
    stream: &mut BatchStream,
    device: &Device,
    meta: &CheckpointMeta,
    sampler: Option<&TrainingSampler>,
) -> Result<StepStats> {
    let tokens_before = stream.offset();
    let step = trainer.step + 1;
    let xs = stream.next_batch(device)?; // [batch_size, d_in]
    let bad = count_non_finite(&xs)?;
    if bad > 0 {
        let dir = save(run, trainer, tokens_before, meta, sampler)?;
        bail!(
            "step {step}: the activation batch holds {bad} NaN or infinite values; the last good state is saved in {}",
            dir.display()
        );
    }
    match trainer.step(&xs) {
        Ok(stats) => Ok(stats),
        Err(err) if err.is::<NonFiniteLoss>() => {
            let dir = save(run, trainer, tokens_before, meta, sampler)?;
            Err(err.context(format!(
                "step {step}: training stopped; the last good state is saved in {}",
                dir.display()
            )))
        }
        Err(err) => Err(err.context(format!("step {step}"))),
    }
}

/// Saves a checkpoint for the trainer's current step and points `latest_checkpoint` at it.
/// With sample collection on, the collector's state goes inside the checkpoint (so resuming
/// continues it exactly) and the run's samples folder is rewritten.
fn save(
    run: &RunDir,
    trainer: &Trainer,
    tokens: u64,
    meta: &CheckpointMeta,
    sampler: Option<&TrainingSampler>,
) -> Result<PathBuf> {
    let dir = run.checkpoint(trainer.step);
    checkpoint::save(&dir, trainer, tokens, meta)?;
    if let Some(sampler) = sampler {
        sampler.save(&dir, &run.root)?;
    }
    run.set_latest(&dir)?;
    Ok(dir)
}

fn checkpoint_meta(trainer: &Trainer, stream: &BatchStream) -> CheckpointMeta {
    let mut meta = CheckpointMeta::new(trainer.sae_cfg.clone());
    meta.context_size = Some(stream.cache().index().spec.seq_len);
    meta.dataset_path = Some(stream.cache().dir().display().to_string());
    meta
}

/// NaN and ±∞ in `xs`: `x · 0` is 0 exactly for finite `x`.
fn count_non_finite(xs: &Tensor) -> Result<u64> {
    let zeroed = (xs * 0.0)?;
    Ok(zeroed
        .ne(0f32)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()? as u64)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("failed to parse {}", path.display()))
}
