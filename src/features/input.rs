//! What the feature view is built from: a samples folder's summary, the collector state holding
//! every feature (with each kept sample's per-token activations) and the logit effects when the
//! folder has them.
//!
//! `collect` keeps its state in the samples folder; `train` keeps it in the checkpoint that
//! wrote `<run>/activation_samples` (recorded in the summary's `source.checkpoint`), so both
//! are looked for. The state and the summary must describe the same collection: a folder
//! rewritten after its state (an interrupted write) would otherwise show mismatched numbers.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::collect::Collector;
use crate::samples::{CollectionSummary, FlagConfig, LogitEffects, SamplesDir, STATE_FILE_NAME};

/// A loaded samples folder with its collector state.
pub struct FolderInput {
    pub dir: PathBuf,
    pub summary: CollectionSummary,
    pub collector: Collector,
    pub logit_effects: Option<LogitEffects>,
}

impl FolderInput {
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("samples folder {} does not exist", dir.display());
        }
        let summary = SamplesDir::new(dir).read_summary()?.with_context(|| {
            format!(
                "{} has no collection_summary.json: is it a samples folder from `saectl collect` or `train`?",
                dir.display()
            )
        })?;
        let state = state_path(dir, &summary)?;
        let collector = Collector::load_state(&state)?;
        if summary.d_sae != collector.d_sae() as u64
            || summary.sequences_seen != collector.sequences_seen()
        {
            bail!(
                "{}: collection_summary.json does not match {} (written by another run, or a write was interrupted)",
                dir.display(),
                state.display()
            );
        }
        let logit_effects = SamplesDir::new(dir).read_logit_effects()?;
        if let Some(effects) = &logit_effects {
            if effects.header.d_sae != summary.d_sae {
                bail!(
                    "{}: logit_effects.json has {} features but the collection has {}",
                    dir.display(),
                    effects.header.d_sae,
                    summary.d_sae
                );
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            summary,
            collector,
            logit_effects,
        })
    }

    /// The flag thresholds the folder was written with.
    pub fn flag_config(&self) -> FlagConfig {
        let defaults = FlagConfig::default();
        self.summary
            .settings
            .as_ref()
            .map_or(defaults, |settings| settings.save.flags.clone())
    }
}

/// The collector state of the folder: its own, or the training checkpoint's.
fn state_path(dir: &Path, summary: &CollectionSummary) -> Result<PathBuf> {
    let own = dir.join(STATE_FILE_NAME);
    if own.is_file() {
        return Ok(own);
    }
    let recorded = summary
        .source
        .checkpoint
        .as_deref()
        .filter(|_| summary.source.training_run.is_some())
        .map(|checkpoint| Path::new(checkpoint).join(STATE_FILE_NAME));
    match recorded {
        Some(path) if path.is_file() => Ok(path),
        Some(path) => bail!(
            "{} has no {STATE_FILE_NAME}, and the training checkpoint it names has none either ({}); every feature of the SAE is read from the collector's state",
            dir.display(),
            path.display()
        ),
        None => bail!(
            "{} has no {STATE_FILE_NAME}: every feature of the SAE is read from the collector's state (folders written by `saectl collect` or `train` have it)",
            dir.display()
        ),
    }
}
