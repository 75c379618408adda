//! The training loop, from an activation cache or live from the model, and resuming it.
//!
//! [`train_from`] opens what the run reads ([`super::source`]), writes `run.json` and the
//! config, and steps until `num_tokens`; [`resume`] reopens the same source at the latest
//! checkpoint's position. Every step: the next batch (a transcoder's comes with its
//! targets), one [`Trainer`] step, then — when due — a metrics line, the loss-recovered
//! evaluation (every `perf_log_freq` steps and at the end, when the model is at hand) and a
//! checkpoint. A NaN or infinite value in a batch or in the loss stops the run with an error
//! naming the step, after saving the last good state as a checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use super::checkpoint::{self, RunPosition};
use super::config::TrainConfig;
use super::eval::{CeEval, LossRecovered};
use super::metrics::{self, MetricsLine, RunClock};
pub use super::run_dir::RunDir;
use super::run_dir::{load_data_state, read_json, save_data_state, DataState, RunInfo};
use super::samples::{CollectionTime, TrainingSampler};
use super::source::{self, Batches, Opened, Position};
use super::spec::RunSource;
use super::step::{NonFiniteLoss, StepStats, Trainer};
use crate::sae::checkpoint::CheckpointMeta;
use crate::util::atomic::{remove_stale_temporaries, write_json_atomic};
use crate::util::lock::RunLock;

/// What the progress callback sees after every step.
pub struct StepReport<'a> {
    pub step: u64,
    pub total_steps: u64,
    pub tokens: u64,
    pub stats: &'a StepStats,
    /// The latest loss-recovered evaluation, if any has run.
    pub eval: Option<&'a LossRecovered>,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub steps: u64,
    pub tokens: u64,
    pub final_checkpoint: PathBuf,
    pub last: Option<StepStats>,
    /// The last loss-recovered evaluation and its number of sequences.
    pub eval: Option<(LossRecovered, usize)>,
    /// With sample collection on: the samples folder and where collection's time went.
    pub samples: Option<(PathBuf, CollectionTime)>,
}

/// Trains a fresh SAE on the cache at `activations` (see [`train_from`]).
pub fn train(
    activations: &Path,
    run_dir: &Path,
    cfg: TrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<RunSummary> {
    train_from(
        &RunSource::cache(activations),
        run_dir,
        cfg,
        device,
        progress,
    )
}

/// Trains a fresh SAE (or transcoder) on `source`, writing the run into `run_dir` (which must
/// not hold a run already: resume it instead).
pub fn train_from(
    source: &RunSource,
    run_dir: &Path,
    mut cfg: TrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<RunSummary> {
    let run = RunDir::new(run_dir);
    refuse_existing_run(&run)?;
    let mut opened = source::open(source, &mut cfg, device, Position::default())?;
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("failed to create {}", run_dir.display()))?;
    // Held until the run ends; checked again under it, as another run may have begun.
    let _lock = RunLock::acquire(run_dir)?;
    refuse_existing_run(&run)?;
    let info = RunInfo {
        format_version: super::run_dir::RUN_FORMAT_VERSION,
        source: opened.resolved.clone(),
        cache_tokens: opened.cache_tokens,
        text_files: opened.text_summary.clone(),
    };
    if run.metrics().exists() {
        std::fs::remove_file(run.metrics())
            .with_context(|| format!("failed to remove {}", run.metrics().display()))?;
    }
    // Synced with the first checkpoint's pointer (`RunDir::set_latest`): until then there is
    // nothing to resume, and a run that lost them starts over.
    write_json_atomic(&run.info(), &info)?;
    write_json_atomic(&run.config(), &cfg)?;
    let sampler = sampler_for(&cfg, &mut opened, None)?;
    let mut trainer = Trainer::new(cfg, opened.d_in, device)?;
    let sae = &mut trainer.sae_cfg;
    sae.hook_name = Some(opened.hook.clone());
    sae.model_name = Some(opened.model_name.clone());
    if let Some(hook_out) = &opened.hook_out {
        // A transcoder's b_dec is in the output space (DESIGN §4; SAELens transcoders).
        sae.hook_name_out = Some(hook_out.clone());
        sae.apply_b_dec_to_input = false;
    }
    let clock = RunClock::start(RunPosition::default());
    run_loop(&run, trainer, opened, device, progress, sampler, clock)
}

/// A folder with a config but no checkpoint is a run that died before its first checkpoint:
/// nothing to resume, so it starts over; one with a checkpoint is refused.
fn refuse_existing_run(run: &RunDir) -> Result<()> {
    if run.latest_checkpoint()?.is_some() {
        bail!(
            "{} already holds a training run; resume it with --resume, or choose another --out",
            run.root.display()
        );
    }
    Ok(())
}

/// Continues the run in `run_dir` from its latest checkpoint, exactly where it stopped.
pub fn resume(
    run_dir: &Path,
    device: &Device,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<RunSummary> {
    let run = RunDir::new(run_dir);
    let info: RunInfo = read_json(&run.info())?;
    let lock = RunLock::acquire(run_dir)?;
    remove_stale_temporaries(&lock)?;
    let mut cfg = TrainConfig::from_json_file(&run.config())?;
    let Some(latest) = run.latest_checkpoint()? else {
        bail!(
            "{} has no checkpoint to resume from (the run stopped before its first); run the \
             command that started it again to start over",
            run_dir.display()
        );
    };
    let (mut trainer, at, _) = checkpoint::load(&latest, cfg.clone(), device)?;
    let data = load_data_state(&latest)?;
    let position = Position {
        tokens: at.tokens,
        corpus_windows: data.corpus_windows,
    };
    let mut opened = source::open(&info.source, &mut cfg, device, position)
        .context("the run's data cannot be opened again")?;
    check_same_data(&info, &opened)?;
    trainer.cfg = cfg;
    let sampler = sampler_for(&trainer.cfg, &mut opened, Some(&latest))?;
    metrics::truncate_after(&run.metrics(), trainer.step)?;
    // The clock continues from the checkpoint: the time the interrupted part spent past it
    // was lost with its steps.
    let clock = RunClock::start(at);
    run_loop(&run, trainer, opened, device, progress, sampler, clock)
}

/// Refuses to continue on data that changed since the run started: the stream would differ.
fn check_same_data(info: &RunInfo, opened: &Opened) -> Result<()> {
    if let (Some(then), Some(now)) = (info.cache_tokens, opened.cache_tokens) {
        if then != now {
            bail!(
                "the activation cache {} now holds {now} tokens, not the {then} this run started \
                 with; the data order would change, so the run cannot continue exactly",
                opened.dataset
            );
        }
    }
    if let (Some(then), Some(now)) = (&info.text_files, &opened.text_summary) {
        if then != now {
            bail!(
                "the text {} now resolves to other files than when this run started; the data \
                 order would change, so the run cannot continue exactly",
                opened.dataset
            );
        }
    }
    Ok(())
}

/// The run's sample collector when `save_activation_samples` is on (from `checkpoint` when
/// resuming).
fn sampler_for(
    cfg: &TrainConfig,
    opened: &mut Opened,
    checkpoint: Option<&Path>,
) -> Result<Option<TrainingSampler>> {
    let Some(source) = opened.samples.take() else {
        return Ok(None);
    };
    TrainingSampler::open(cfg, source, cfg.dict_size, checkpoint).map(Some)
}

/// What the loop carries besides the trainer.
struct Session<'a> {
    run: &'a RunDir,
    batches: Batches,
    eval: Option<CeEval>,
    sampler: Option<TrainingSampler>,
    meta: CheckpointMeta,
    clock: RunClock,
}

fn run_loop(
    run: &RunDir,
    mut trainer: Trainer,
    opened: Opened,
    device: &Device,
    progress: &mut dyn FnMut(&StepReport),
    sampler: Option<TrainingSampler>,
    clock: RunClock,
) -> Result<RunSummary> {
    let total = trainer.cfg.total_steps();
    let mut meta = CheckpointMeta::new(trainer.sae_cfg.clone());
    meta.context_size = Some(trainer.cfg.seq_len);
    meta.dataset_path = Some(opened.dataset.clone());
    let mut session = Session {
        run,
        batches: opened.batches,
        eval: opened.eval,
        sampler,
        meta,
        clock,
    };
    let (mut last, mut last_eval) = (None, None);
    let mut final_checkpoint = run.latest_checkpoint()?;
    while trainer.step < total {
        if let Some(sampler) = session.sampler.as_mut() {
            // Step 0 included: the samples of the initial SAE are the baseline.
            if trainer.step % trainer.cfg.sample_collection_freq == 0 {
                sampler.collect(&trainer.sae()?)?;
            }
        }
        let stats = guarded_step(&mut session, &mut trainer, device)?;
        let (step, tokens) = (trainer.step, session.batches.offset());
        let mut line = MetricsLine::new(step, tokens, &stats);
        let evaluate = step % trainer.cfg.perf_log_freq == 0 || step == total;
        if let Some(eval) = session.eval.as_ref().filter(|_| evaluate) {
            let result = eval
                .evaluate(&trainer.sae()?)
                .with_context(|| format!("step {step}: the loss-recovered evaluation failed"))?;
            line.set_eval(&result);
            last_eval = Some(result);
        }
        if step % trainer.cfg.log_freq == 0 || step == total || line.ce_sae.is_some() {
            session.clock.stamp(&mut line);
            metrics::append(&run.metrics(), &line)?;
        }
        if step % trainer.cfg.checkpoint_freq == 0 || step == total {
            final_checkpoint = Some(save(&session, &trainer, tokens)?);
        }
        progress(&StepReport {
            step,
            total_steps: total,
            tokens,
            stats: &stats,
            eval: last_eval.as_ref(),
        });
        last = Some(stats);
    }
    let tokens = session.batches.offset();
    let final_checkpoint = match final_checkpoint {
        Some(dir) => dir,
        None => save(&session, &trainer, tokens)?,
    };
    let sequences = session.eval.as_ref().map_or(0, CeEval::sequences);
    Ok(RunSummary {
        steps: trainer.step,
        tokens,
        final_checkpoint,
        last,
        eval: last_eval.map(|result| (result, sequences)),
        samples: session.sampler.map(|s| (run.samples(), s.time())),
    })
}

/// One step on the next batch. A non-finite batch, loss or gradient stops the run with an
/// error naming the step, after checkpointing the state before it (which the step left as is).
fn guarded_step(
    session: &mut Session,
    trainer: &mut Trainer,
    device: &Device,
) -> Result<StepStats> {
    let tokens_before = session.batches.offset();
    let step = trainer.step + 1;
    let (xs, target) = session.batches.next_batch(device)?; // [batch_size, d_in] each
    let bad = count_non_finite(&xs)? + target.as_ref().map_or(Ok(0), count_non_finite)?;
    if bad > 0 {
        let dir = save(session, trainer, tokens_before)?;
        bail!(
            "step {step}: the activation batch holds {bad} NaN or infinite values; the last good state is saved in {}",
            dir.display()
        );
    }
    match trainer.step_to(&xs, target.as_ref()) {
        Ok(stats) => Ok(stats),
        Err(err) if err.is::<NonFiniteLoss>() => {
            let dir = save(session, trainer, tokens_before)?;
            Err(err.context(format!(
                "step {step}: training stopped; the last good state is saved in {}",
                dir.display()
            )))
        }
        Err(err) => Err(err.context(format!("step {step}"))),
    }
}

/// Saves a checkpoint for the trainer's current step and points `latest_checkpoint` at it.
/// A live run's data state goes in first; with sample collection on, the collector's state
/// goes inside the checkpoint (so resuming continues it exactly) and the run's samples folder
/// is rewritten.
fn save(session: &Session, trainer: &Trainer, tokens: u64) -> Result<PathBuf> {
    let run = session.run;
    let dir = run.checkpoint(trainer.step);
    if let Batches::Live(_) = &session.batches {
        let sampler_windows = session.sampler.as_ref().and_then(|s| s.corpus_windows());
        let corpus_windows = session.batches.corpus_windows().or(sampler_windows);
        save_data_state(&dir, &DataState { corpus_windows })?;
    }
    let position = RunPosition {
        tokens,
        elapsed_s: session.clock.elapsed_s(),
    };
    checkpoint::save(&dir, trainer, position, &session.meta)?;
    if let Some(sampler) = &session.sampler {
        sampler.save(&dir, run)?;
    }
    run.set_latest(&dir)?;
    // Only once the new checkpoint is complete and named the latest: a crash before this
    // leaves the previous one, collector state included, to resume from.
    run.prune_checkpoints(&dir, trainer.cfg.keep_checkpoints)?;
    Ok(dir)
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
