//! What the feature view is built from: a samples folder's summary, the collector state holding
//! every feature, the logit effects when the folder has them, and the per-token activations
//! that samples files may record.
//!
//! `collect` keeps its state in the samples folder; `train` keeps it in the checkpoint that
//! wrote `<run>/activation_samples` (recorded in the summary's `source.checkpoint`), so both
//! are looked for. The state and the summary must describe the same collection: a folder
//! rewritten after its state (an interrupted write) would otherwise show mismatched numbers.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::model::ContextActivations;
use crate::collect::Collector;
use crate::samples::{CollectionSummary, FlagConfig, LogitEffects, SamplesDir, STATE_FILE_NAME};

/// A loaded samples folder with its collector state.
pub struct FolderInput {
    pub dir: PathBuf,
    pub summary: CollectionSummary,
    pub collector: Collector,
    pub logit_effects: Option<LogitEffects>,
    /// Per-token activations recorded by samples files (empty for folders without them).
    pub context_activations: ContextActivations,
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
            context_activations: read_context_activations(dir)?,
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

/// The keys of a samples file this module reads; everything else is ignored.
#[derive(Deserialize)]
struct SamplesFile {
    #[serde(default)]
    top_samples: Vec<SampleKeys>,
    #[serde(default)]
    interval_samples: Option<Vec<IntervalKeys>>,
}

#[derive(Deserialize)]
struct IntervalKeys {
    #[serde(default)]
    samples: Vec<SampleKeys>,
}

#[derive(Deserialize)]
struct SampleKeys {
    feature_idx: u32,
    #[serde(default)]
    sequence_idx: u64,
    position: u32,
    /// `[[index into context_tokens, value], …]`: the feature's activation on each token of
    /// the window (sparse; planned for the collector, see docs/dashboard.md).
    #[serde(default)]
    context_activations: Option<Vec<(u32, f32)>>,
}

/// Every sample of the folder's feature files that records per-token activations.
fn read_context_activations(dir: &Path) -> Result<ContextActivations> {
    let mut out = ContextActivations::new();
    let folder = SamplesDir::new(dir);
    for feature in folder.feature_indices()? {
        let path = folder.feature(feature);
        let bytes =
            std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        // Cheap check first: most folders have no per-token activations at all.
        if !contains(&bytes, b"\"context_activations\"") {
            continue;
        }
        let file: SamplesFile = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a valid samples file", path.display()))?;
        let intervals = file.interval_samples.unwrap_or_default();
        let samples = file
            .top_samples
            .into_iter()
            .chain(intervals.into_iter().flat_map(|i| i.samples));
        for sample in samples {
            if let Some(values) = sample.context_activations {
                out.insert(
                    (sample.feature_idx, sample.sequence_idx, sample.position),
                    values,
                );
            }
        }
    }
    Ok(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
