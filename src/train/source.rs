//! Opening what a run trains on ([`RunSource`]: an activation cache, or the model live over
//! text): the batch stream, the loss-recovered evaluation set and the source of collected
//! samples.
//!
//! A cache holds one hook point, so transcoders (input at `hook`, target at `hook_out`) train
//! live. A live run loads the whole model when it evaluates (the evaluation needs the head),
//! and otherwise only the blocks up to its last hook. `Opened::resolved` is the source as
//! `run.json` records it for a resumed run: absolute local paths, the model dtype actually
//! used, and a Hub dataset pinned to the commit that was read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use super::cache_batches::BatchStream;
use super::config::TrainConfig;
use super::corpus::WindowCursor;
use super::eval::CeEval;
use super::live::{LiveLayout, LiveStream};
use super::samples::{cached_sequences, LiveSamples, SampleSource};
use super::spec::RunSource;
use crate::cache::ActivationCache;
use crate::data::{Bos, DataSource, DocumentTokenizer, SourceSummary};
use crate::hub::HubSettings;
use crate::model::{resolve_dtype, DTypeChoice, Gemma2, HookPoint, ModelSpec};
use crate::samples::CollectionSource;

/// Training batches: inputs and, for a transcoder, targets.
pub(super) enum Batches {
    Cache(Box<BatchStream>),
    Live(Box<LiveStream>),
}

impl Batches {
    /// Inputs `[batch_size, d_in]` and targets (transcoders), f32 on `device`.
    pub fn next_batch(&mut self, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
        match self {
            Batches::Cache(stream) => Ok((stream.next_batch(device)?, None)),
            Batches::Live(stream) => stream.next_batch(device),
        }
    }

    /// Tokens consumed: the position a checkpoint records.
    pub fn offset(&self) -> u64 {
        match self {
            Batches::Cache(stream) => stream.offset(),
            Batches::Live(stream) => stream.offset(),
        }
    }

    pub fn corpus_windows(&self) -> Option<u64> {
        match self {
            Batches::Cache(_) => None,
            Batches::Live(stream) => stream.corpus_windows(),
        }
    }
}

/// Where a run continues from.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Position {
    pub tokens: u64,
    /// Complete windows of a live run's corpus, when a checkpoint knew it.
    pub corpus_windows: Option<u64>,
}

/// Everything a run reads, opened.
pub(super) struct Opened {
    pub batches: Batches,
    pub d_in: usize,
    pub hook: String,
    pub hook_out: Option<String>,
    pub model_name: String,
    pub dataset: String,
    pub eval: Option<CeEval>,
    pub samples: Option<SampleSource>,
    /// A cache run: the cache's size in tokens (its data order depends on it).
    pub cache_tokens: Option<u64>,
    /// A live run: the text files read (a resumed run must read the same).
    pub text_summary: Option<SourceSummary>,
    /// `source` as a resumed run must open it again.
    pub resolved: RunSource,
}

/// Opens `source` for `cfg` (a cache run's `seq_len` becomes the cache's), validating the
/// config against the input width first.
pub(super) fn open(
    source: &RunSource,
    cfg: &mut TrainConfig,
    device: &Device,
    position: Position,
) -> Result<Opened> {
    match &source.activations {
        Some(dir) => open_cache(source, dir, cfg, device, position),
        None => open_live(source, cfg, device, position),
    }
}

fn open_cache(
    source: &RunSource,
    dir: &Path,
    cfg: &mut TrainConfig,
    device: &Device,
    position: Position,
) -> Result<Opened> {
    let cache = ActivationCache::open(dir)?;
    let spec = cache.index().spec.clone();
    if let Some(hook_out) = &source.hook_out {
        bail!(
            "the activation cache {} holds one hook point ({}), but a transcoder needs its \
             target ({hook_out}) from the same tokens: train it live (--model, --hook, \
             --hook-out, --dataset)",
            dir.display(),
            spec.hook_point
        );
    }
    if let Some(hook) = source.hook.as_ref().filter(|&h| *h != spec.hook_point) {
        bail!(
            "--hook {hook}, but the activation cache holds {}",
            spec.hook_point
        );
    }
    cfg.seq_len = spec.seq_len;
    cfg.validate(spec.d_in)
        .context("invalid training configuration")?;
    let hook: HookPoint = spec.hook_point.parse()?;
    let eval = match (&source.model, cfg.eval_sequences) {
        (Some(model), n) if n > 0 => {
            let model = load_full(model, &[hook], device)?;
            if model.d_model() != spec.d_in {
                bail!(
                    "the cache holds activations of width {}, but the model's d_model is {}",
                    spec.d_in,
                    model.d_model()
                );
            }
            // The evaluation reads the cache's first sequences (training sees them too).
            let count = n.min(cache.index().num_sequences);
            let (tokens, _) = cached_sequences(&cache, 0, count)?;
            Some(CeEval::new(model, hook, hook, &tokens, spec.seq_len)?)
        }
        _ => None,
    };
    // The shuffling buffer holds the original's `num_batches_in_buffer` model batches.
    let buffer_tokens = (cfg.num_batches_in_buffer * cfg.model_batch_size * spec.seq_len) as u64;
    let stream = BatchStream::new(
        cache.clone(),
        cfg.seed,
        cfg.batch_size,
        buffer_tokens,
        position.tokens,
    );
    let mut resolved = source.clone();
    resolved.activations = Some(absolute(dir)?);
    resolved.hook = Some(spec.hook_point.clone());
    if let Some(model) = &mut resolved.model {
        resolve_model_spec(model, device)?;
    }
    Ok(Opened {
        batches: Batches::Cache(Box::new(stream)),
        d_in: spec.d_in,
        hook: spec.hook_point.clone(),
        hook_out: None,
        // The stable forms (a Hub id, or an absolute path) cfg.json records.
        model_name: ModelSpec::new(&spec.model).stable_id(),
        dataset: absolute(dir)?.display().to_string(),
        eval,
        samples: cfg
            .save_activation_samples
            .then(|| SampleSource::Cache(Box::new(cache.clone()))),
        cache_tokens: Some(cache.index().num_tokens),
        text_summary: None,
        resolved,
    })
}

fn open_live(
    source: &RunSource,
    cfg: &mut TrainConfig,
    device: &Device,
    position: Position,
) -> Result<Opened> {
    let (Some(model_spec), Some(text)) = (&source.model, &source.text) else {
        bail!("training live needs --model, --hook and --dataset (or --activations for a cache)");
    };
    let (hook, hook_out) = live_hooks(source)?;
    let hooks: Vec<HookPoint> = std::iter::once(hook).chain(hook_out).collect();
    let located = model_spec.locate(&hooks)?;
    let d_in = located.config.hidden_size;
    cfg.validate(d_in)
        .context("invalid training configuration")?;
    let evaluating = cfg.eval_sequences > 0;
    let layers = hooks.iter().map(HookPoint::layers_needed).max();
    let opened = located.load(if evaluating { None } else { layers }, device)?;
    let tokenizer_path = absolute(&opened.tokenizer)?;
    let tokenizer = DocumentTokenizer::from_file(&tokenizer_path, Bos::FromTokenizer)
        .with_context(|| format!("cannot use the tokenizer of {}", model_spec.model))?;
    // Absolute before resolving, so that the files recorded match from any working directory.
    let dataset = absolute_if_local(&text.dataset)?;
    let data = DataSource::resolve(&dataset, &text.options, &HubSettings::from_env())?;
    let model = opened.model;
    let held_out = cfg.eval_sequences as u64;
    let cursor = |windows| {
        WindowCursor::new(
            data.clone(),
            tokenizer.clone(),
            cfg.seq_len,
            held_out,
            windows,
        )
    };
    let mut training = cursor(position.corpus_windows);
    let eval = match evaluating {
        // The SAE's output replaces the activation at its target: a transcoder's hook_out.
        true => {
            let tokens = training.held_out_rows()?;
            let splice = hook_out.unwrap_or(hook);
            Some(CeEval::new(
                model.clone(),
                hook,
                splice,
                &tokens,
                cfg.seq_len,
            )?)
        }
        false => None,
    };
    let layout = LiveLayout {
        seed: cfg.seed,
        batch_size: cfg.batch_size,
        model_batch_size: cfg.model_batch_size,
        buffer_windows: (cfg.num_batches_in_buffer * cfg.model_batch_size) as u64,
        total_tokens: cfg.total_steps() * cfg.batch_size as u64,
    };
    let samples = cfg.save_activation_samples.then(|| {
        SampleSource::Live(Box::new(LiveSamples {
            cursor: cursor(position.corpus_windows),
            model: model.clone(),
            hook,
            tokenizer: tokenizer_path.clone(),
            special_token_ids: tokenizer.special_token_ids(),
            description: CollectionSource {
                model: Some(model_spec.model.clone()),
                hook_point: Some(hook.to_string()),
                dataset: Some(dataset.clone()),
                ..CollectionSource::default()
            },
        }))
    });
    let stream = LiveStream::new(training, model, hooks, layout, position.tokens);
    let summary = data.summary().clone();
    let mut resolved = source.clone();
    resolved.hook = Some(hook.to_string());
    resolved.hook_out = hook_out.map(|h| h.to_string());
    resolve_live(&mut resolved, tokenizer_path, &dataset, &summary, device)?;
    Ok(Opened {
        batches: Batches::Live(Box::new(stream)),
        d_in,
        hook: hook.to_string(),
        hook_out: hook_out.map(|h| h.to_string()),
        model_name: model_spec.stable_id(),
        dataset: dataset.clone(),
        eval,
        samples,
        cache_tokens: None,
        text_summary: Some(summary),
        resolved,
    })
}

/// `--hook` and, for a transcoder, `--hook-out`; the same hook twice is an SAE.
fn live_hooks(source: &RunSource) -> Result<(HookPoint, Option<HookPoint>)> {
    let Some(hook) = &source.hook else {
        bail!("training live needs --model, --hook and --dataset (or --activations for a cache)");
    };
    let hook: HookPoint = hook.parse()?;
    let hook_out: Option<HookPoint> = source.hook_out.as_deref().map(str::parse).transpose()?;
    if hook_out == Some(hook) {
        bail!("--hook-out is --hook ({hook}): that is an SAE, not a transcoder; drop --hook-out");
    }
    Ok((hook, hook_out))
}

/// Pins what a resumed live run must read again: the model's dtype and folder, the
/// tokenizer, the dataset as an absolute path, and a Hub dataset at the commit that was read.
fn resolve_live(
    resolved: &mut RunSource,
    tokenizer: PathBuf,
    dataset: &str,
    files: &SourceSummary,
    device: &Device,
) -> Result<()> {
    let model = resolved.model.as_mut().expect("a live run has a model");
    resolve_model_spec(model, device)?;
    model.tokenizer = Some(tokenizer);
    let text = resolved.text.as_mut().expect("a live run has a text");
    text.dataset = dataset.to_string();
    if let Some(commit) = &files.commit {
        text.options.revision = commit.clone();
    }
    Ok(())
}

/// `dataset` made absolute when it names a local path (a Hub id stays as it is).
fn absolute_if_local(dataset: &str) -> Result<String> {
    Ok(match Path::new(dataset).exists() {
        true => absolute(Path::new(dataset))?.display().to_string(),
        false => dataset.to_string(),
    })
}

/// The whole model (the evaluation needs its head), checked against `hooks`.
fn load_full(spec: &ModelSpec, hooks: &[HookPoint], device: &Device) -> Result<Gemma2> {
    Ok(spec.locate(hooks)?.load(None, device)?.model)
}

/// Pins the dtype that `device` resolves to and makes a local model folder absolute.
fn resolve_model_spec(spec: &mut ModelSpec, device: &Device) -> Result<()> {
    let dtype = resolve_dtype(spec.dtype_choice()?, device);
    let choice = match dtype {
        candle_core::DType::BF16 => DTypeChoice::Bf16,
        candle_core::DType::F16 => DTypeChoice::F16,
        _ => DTypeChoice::F32,
    };
    spec.dtype = Some(choice.to_string());
    if Path::new(&spec.model).is_dir() {
        spec.model = absolute(Path::new(&spec.model))?.display().to_string();
    }
    Ok(())
}

/// `path` made absolute, so that `--resume` works from any working directory.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).with_context(|| format!("failed to resolve {}", path.display()))
}
