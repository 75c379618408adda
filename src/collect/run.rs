//! `saectl collect` as a library stage: an SAE checkpoint over activations — read from a cache,
//! or made live by the model over text — into a samples folder, like `train::train_from`.
//!
//! [`run`] opens the SAE, the activations and the folder's earlier collection (resumed when it
//! was made from the same source with the same settings), writes the logit effects when the
//! model is at hand, then sweeps the sequences of its shard, saving every
//! `save_every_tokens` ([`super::saver`]). Everything the user should see goes through the
//! `on_progress` callback; nothing here prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use candle_core::Device;

use super::collector::Collector;
use super::logit_compute::LogitSource;
use super::nonfinite::{saved_count, NonFiniteGuard, SavedCount};
use super::saver::FolderSaver;
use super::shard::Shard;
use super::sweep::{sweep_cache, sweep_model, StageTimes};
use crate::cache::ActivationCache;
use crate::data::{
    Bos, DataSource, DocumentTokenizer, PackConfig, TextSpec, TokenWindows, TokenizerDecoder,
};
use crate::hub::HubSettings;
use crate::model::{HookPoint, ModelSpec, OpenedModel};
use crate::sae::hub_path::resolve_checkpoint;
use crate::sae::import::load_any;
use crate::sae::Sae;
use crate::samples::{
    CollectionSource, CollectorConfig, SamplesDir, SaveConfig, LOGIT_EFFECTS_FILE_NAME,
};
use crate::util::atomic::{is_temporary, remove_stale_temporaries};
use crate::util::lock::{RunLock, LOCK_FILE_NAME};

/// Where the activations come from.
#[derive(Clone, Debug)]
pub enum Activations {
    /// An activation cache (`saectl cache`). The model, when given, is used only for the logit
    /// effects (its final norm and unembedding are loaded, no block); `tokenizer` replaces the
    /// cache's copy.
    Cache {
        dir: PathBuf,
        model: Option<ModelSpec>,
        tokenizer: Option<PathBuf>,
    },
    /// The model run live over `num_tokens` of `text` (rounded up to whole windows of
    /// `seq_len`), `model_batch_size` windows per forward pass.
    Live {
        model: ModelSpec,
        text: TextSpec,
        num_tokens: u64,
        seq_len: usize,
        model_batch_size: usize,
    },
}

/// What a collection reads: the SAE and its activations.
#[derive(Clone, Debug)]
pub struct CollectSource {
    /// The SAE, as given: a checkpoint folder, a SAELens folder, a Gemma Scope `params.npz`,
    /// on disk or on the Hub (`org/name/path`).
    pub checkpoint: String,
    pub activations: Activations,
    /// The hook point to read [default: the checkpoint's].
    pub hook: Option<String>,
}

/// How a collection runs (validated settings).
#[derive(Clone, Debug, PartialEq)]
pub struct CollectConfig {
    pub collector: CollectorConfig,
    pub save: SaveConfig,
    /// Sequences encoded per batch when reading a cache.
    pub batch_sequences: usize,
    /// Save the folder and the collector state every this many tokens (resumption points).
    pub save_every_tokens: u64,
    /// Collect only this shard of the sequences (`None`: all of them).
    pub shard: Option<Shard>,
    /// Write `logit_effects.json` when the model is at hand.
    pub logit_effects: bool,
    /// Skip and count tokens with NaN or infinite activations instead of stopping.
    pub allow_nonfinite: bool,
}

impl CollectConfig {
    /// Refuses the settings no collection can run with (before anything is loaded).
    pub fn validate(&self) -> Result<()> {
        if self.batch_sequences == 0 {
            bail!("--batch-sequences must be at least 1");
        }
        if self.save_every_tokens == 0 {
            bail!("--save-every-tokens must be at least 1");
        }
        self.collector.validate()?;
        self.save.flags.validate()
    }
}

/// What a collection tells its caller while it runs.
#[derive(Clone, Debug, PartialEq)]
pub enum CollectEvent {
    /// Something the user should know.
    Note(String),
    /// The folder holds an earlier collection of this one, continued after this many sequences.
    Resuming { sequences: u64 },
    /// `logit_effects.json` was written.
    LogitEffects { features: usize, path: PathBuf },
    /// The sweep starts: this many tokens to collect.
    Start { tokens: u64 },
    /// A batch of this many tokens was collected.
    Batch { tokens: u64 },
}

/// How a collection ended.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectSummary {
    /// Tokens collected by this run (a resumed run: since it resumed).
    pub tokens: u64,
    pub elapsed: Duration,
    pub features_with_samples: usize,
    pub d_sae: usize,
    pub special_tokens_excluded: u64,
    /// Tokens skipped for NaN or infinite activations (`--allow-nonfinite`), resumed runs
    /// included.
    pub nonfinite_tokens_skipped: u64,
    /// Where the sweep's time went.
    pub times: StageTimes,
}

/// Collects `source` into the samples folder `out` (resuming the collection saved there).
pub fn run(
    source: &CollectSource,
    out: &Path,
    config: CollectConfig,
    device: &Device,
    on_progress: &mut dyn FnMut(CollectEvent),
) -> Result<CollectSummary> {
    config.validate()?;
    let checkpoint = resolve_checkpoint(&source.checkpoint, &HubSettings::from_env())?;
    let sae = load_any(&checkpoint, device)
        .with_context(|| format!("failed to load the SAE {}", source.checkpoint))?;
    // One collection per folder at a time, for the run's whole life (docs/reliability.md).
    let created = !out.exists();
    std::fs::create_dir_all(out).with_context(|| format!("failed to create {}", out.display()))?;
    let result = RunLock::acquire(out).and_then(|lock| {
        remove_stale_temporaries(&lock)?;
        let stage = Stage {
            source,
            out: SamplesDir::new(out),
            config,
            sae,
            device,
            on_progress,
        };
        let summary = match &source.activations {
            Activations::Cache { dir, .. } => stage.cached(dir),
            Activations::Live { .. } => stage.live(),
        };
        drop(lock);
        summary
    });
    if result.is_err() && created {
        // A collection that failed before its first save leaves no folder behind (it made
        // the folder, and nothing in it could be resumed).
        remove_if_nothing_to_resume(out);
    }
    result
}

/// Removes `dir` — made by this run — when it holds only the run lock's file and what a
/// collection writes before its first save (the logit effects, temporaries).
fn remove_if_nothing_to_resume(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let early = |name: &std::ffi::OsStr| {
        name == LOCK_FILE_NAME || name == LOGIT_EFFECTS_FILE_NAME || is_temporary(name)
    };
    if entries
        .filter_map(|e| e.ok())
        .all(|e| e.file_type().is_ok_and(|t| t.is_file()) && early(&e.file_name()))
    {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// One collection while it is being set up (its steps: [`super::resume`],
/// [`super::logit_compute`]).
pub(super) struct Stage<'a> {
    pub(super) source: &'a CollectSource,
    pub(super) out: SamplesDir,
    pub(super) config: CollectConfig,
    pub(super) sae: Sae,
    pub(super) device: &'a Device,
    pub(super) on_progress: &'a mut dyn FnMut(CollectEvent),
}

impl Stage<'_> {
    fn cached(mut self, dir: &Path) -> Result<CollectSummary> {
        let source = self.source;
        let Activations::Cache {
            model, tokenizer, ..
        } = &source.activations
        else {
            unreachable!("called for a cache")
        };
        let cache = ActivationCache::open(dir)?;
        let spec = &cache.index().spec;
        let place = format!("the cache {}", dir.display());
        check_hook(source.hook.as_deref(), &self.sae, &spec.hook_point, &place)?;
        let tokenizer = match (tokenizer.clone(), cache.tokenizer_path()) {
            (Some(path), _) | (None, Some(path)) => path,
            (None, None) => bail!(
                "the cache {} has no tokenizer.json; give one with --tokenizer",
                dir.display()
            ),
        };
        let recorded = CollectionSource {
            activations: Some(dir.display().to_string()),
            model: Some(spec.model.clone()),
            hook_point: Some(spec.hook_point.clone()),
            ..self.base_source()
        };
        let mut collector = self.open_collector(&spec.special_token_ids, &recorded)?;
        let (mut guard, saved) = self.nonfinite_guard(&collector)?;
        let range = self.shard().range(cache.index().num_sequences as u64);
        let start = self.resume_at(&collector, &range)?;
        let mut saver = self.saver(
            &tokenizer,
            recorded,
            (range.end - start) * spec.seq_len as u64,
            saved,
        )?;
        let hook: HookPoint = spec.hook_point.parse()?;
        let logits = model.as_ref().map(|model| LogitSource::Unembedding {
            model,
            cache_model: &spec.model,
        });
        self.logit_effects(logits, &hook, &collector, &saver)?;
        let on_progress = &mut *self.on_progress;
        let times = sweep_cache(
            &cache,
            &self.sae,
            &mut collector,
            &mut guard,
            self.config.batch_sequences,
            start..range.end,
            |tokens, c, g| saver.after_batch(tokens, c, g, on_progress),
        )?;
        self.finish(saver, &collector, &guard, times)
    }

    fn live(mut self) -> Result<CollectSummary> {
        let source = self.source;
        let Activations::Live {
            model,
            text,
            num_tokens,
            seq_len,
            model_batch_size,
        } = &source.activations
        else {
            unreachable!("called for a live collection")
        };
        let budget = PackConfig {
            num_tokens: Some(*num_tokens),
            ..PackConfig::new(*model_batch_size, *seq_len)
        };
        budget.validate()?;
        let hook = self.live_hook()?;
        let (opened, tokenizer) = self.open_model(model, hook)?;
        let files = DataSource::resolve(&text.dataset, &text.options, &HubSettings::from_env())?;
        let recorded = CollectionSource {
            model: Some(model.model.clone()),
            hook_point: Some(hook.to_string()),
            dataset: Some(text.dataset.clone()),
            text_field: Some(text.options.text_field.clone()),
            seq_len: Some(*seq_len as u64),
            ..self.base_source()
        };
        let mut collector = self.open_collector(&tokenizer.special_token_ids(), &recorded)?;
        let (mut guard, saved) = self.nonfinite_guard(&collector)?;
        let seq_len64 = *seq_len as u64;
        // Every window the token budget allows, split into shards.
        let range = self.shard().range(num_tokens.div_ceil(seq_len64));
        let start = self.resume_at(&collector, &range)?;
        let tokens = (range.end - start) * seq_len64;
        let saver = self.saver(&opened.tokenizer, recorded, tokens, saved)?;
        let logits = LogitSource::Model {
            opened: &opened,
            model,
        };
        self.logit_effects(Some(logits), &hook, &collector, &saver)?;
        if start == range.end {
            // Nothing left to do (a finished or empty shard): only rewrite the folder.
            return self.finish(saver, &collector, &guard, StageTimes::default());
        }
        let pack = PackConfig {
            // The packer stops at the shard's last window.
            num_tokens: Some(range.end * seq_len64),
            start_window: start,
            ..budget
        };
        let mut windows = TokenWindows::new(files.documents(), tokenizer, pack)
            .with_context(|| format!("cannot read text from {}", text.dataset))?;
        let mut saver = saver;
        let on_progress = &mut *self.on_progress;
        let times = sweep_model(
            &opened.model,
            &hook,
            &mut windows,
            &self.sae,
            &mut collector,
            &mut guard,
            start,
            |tokens, c, g| saver.after_batch(tokens, c, g, on_progress),
        )?;
        self.finish(saver, &collector, &guard, times)
    }

    /// `--hook`, else the one the SAE was trained at.
    fn live_hook(&self) -> Result<HookPoint> {
        match (&self.source.hook, &self.sae.config().hook_name) {
            (Some(hook), _) | (None, Some(hook)) => Ok(hook.parse()?),
            (None, None) => bail!("the checkpoint names no hook point; give one with --hook"),
        }
    }

    /// The model's blocks up to `hook`, checked against the SAE's width, and its tokenizer.
    fn open_model(
        &self,
        model: &ModelSpec,
        hook: HookPoint,
    ) -> Result<(OpenedModel, DocumentTokenizer)> {
        let located = model.locate(&[hook])?;
        let d_in = self.sae.config().d_in;
        if located.config.hidden_size != d_in {
            bail!(
                "the SAE reads d_in {d_in} but the model's d_model is {} ({hook})",
                located.config.hidden_size
            );
        }
        let opened = located.load(Some(hook.layers_needed()), self.device)?;
        let tokenizer = DocumentTokenizer::from_file(&opened.tokenizer, Bos::FromTokenizer)
            .with_context(|| format!("cannot use the tokenizer of {}", model.model))?;
        Ok((opened, tokenizer))
    }

    pub(super) fn shard(&self) -> Shard {
        self.config.shard.unwrap_or(Shard::WHOLE)
    }

    /// The NaN screen, with the count saved with `collector`'s state when it was resumed
    /// (and that saved count, which the saver keeps until its first save).
    fn nonfinite_guard(
        &self,
        collector: &Collector,
    ) -> Result<(NonFiniteGuard, Option<SavedCount>)> {
        let sequences_seen = collector.sequences_seen();
        let saved = if self.out.state().exists() {
            let saved = saved_count(self.out.root(), sequences_seen)?;
            Some(saved.unwrap_or(SavedCount {
                sequences_seen,
                tokens_skipped: 0,
            }))
        } else {
            None
        };
        let skipped = saved.map_or(0, |s| s.tokens_skipped);
        Ok((
            NonFiniteGuard::new(self.config.allow_nonfinite, skipped),
            saved,
        ))
    }

    fn saver(
        &mut self,
        tokenizer: &Path,
        source: CollectionSource,
        tokens: u64,
        saved: Option<SavedCount>,
    ) -> Result<FolderSaver> {
        let saver = FolderSaver::new(
            self.out.clone(),
            TokenizerDecoder::from_file(tokenizer)?,
            self.config.save.clone(),
            source,
            self.config.save_every_tokens,
            saved,
        );
        (self.on_progress)(CollectEvent::Start { tokens });
        Ok(saver)
    }

    pub(super) fn note(&mut self, note: String) {
        (self.on_progress)(CollectEvent::Note(note));
    }

    /// The final save, and what the run did.
    fn finish(
        self,
        saver: FolderSaver,
        collector: &Collector,
        guard: &NonFiniteGuard,
        times: StageTimes,
    ) -> Result<CollectSummary> {
        if collector.sequences_seen() == 0 {
            let Some(shard) = self.config.shard.filter(|s| !s.is_whole()) else {
                bail!("no tokens were collected (empty cache or corpus)");
            };
            // An empty shard (more shards than sequences, or a corpus shorter than
            // --num-tokens) is still a folder `merge` takes, so a job array does not fail.
            (self.on_progress)(CollectEvent::Note(format!(
                "shard {shard} holds no sequences (the corpus ends before it)"
            )));
        }
        saver.save(collector, guard)?;
        if guard.skipped() > 0 {
            (self.on_progress)(CollectEvent::Note(format!(
                "skipped {} tokens whose activations were NaN or infinite (--allow-nonfinite); \
                 the count is in {}",
                guard.skipped(),
                self.out.summary().display()
            )));
        }
        Ok(CollectSummary {
            tokens: saver.tokens(),
            elapsed: saver.elapsed(),
            features_with_samples: collector.features_by_max_activation().len(),
            d_sae: collector.d_sae(),
            special_tokens_excluded: collector.special_tokens_excluded(),
            nonfinite_tokens_skipped: guard.skipped(),
            times,
        })
    }
}

/// Refuses a hook that disagrees with the SAE's own or with where the activations come from.
fn check_hook(asked: Option<&str>, sae: &Sae, available: &str, place: &str) -> Result<()> {
    if let Some(asked) = asked {
        if asked != available {
            bail!("--hook {asked} but {place} holds {available}");
        }
        return Ok(());
    }
    match &sae.config().hook_name {
        Some(trained) if trained != available => bail!(
            "the SAE was trained at {trained} but {place} holds {available}; pass --hook {available} to use it anyway"
        ),
        _ => Ok(()),
    }
}
