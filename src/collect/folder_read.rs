//! Reading a samples folder back: `collection_summary.json` and every
//! `feature_XXXXX_samples.json`, with errors that name the file at fault.
//!
//! Analysis and reporting only ever see this type, never the collector, so they work on
//! folders written by the Python original as well as by saectl.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::bins::ACTIVATION_BINS;
use super::format::{parse_feature_file_name, CollectionSummary, FeatureFile, SUMMARY_FILE_NAME};
use super::logit_effects::LogitEffects;
use crate::util::atomic::is_temporary;

/// A loaded samples folder.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplesFolder {
    pub dir: PathBuf,
    /// Absent in folders whose producer wrote none (the original always wrote one).
    pub summary: Option<CollectionSummary>,
    /// Feature files by feature index.
    pub features: BTreeMap<u32, FeatureFile>,
    /// `logit_effects.json`, when the collection had the model at hand.
    pub logit_effects: Option<LogitEffects>,
}

impl SamplesFolder {
    /// Loads every feature file and the summary. A folder with no feature file is an error:
    /// there is nothing to analyze, and it usually means the wrong path.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.exists() {
            bail!("samples folder {} does not exist", dir.display());
        }
        if !dir.is_dir() {
            bail!(
                "{} is not a folder (expected a samples folder)",
                dir.display()
            );
        }
        let summary_path = dir.join(SUMMARY_FILE_NAME);
        let summary = if summary_path.exists() {
            Some(read_json::<CollectionSummary>(&summary_path)?)
        } else {
            None
        };
        let mut features = BTreeMap::new();
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("failed to list samples folder {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
            let name = entry.file_name();
            if is_temporary(&name) {
                continue; // a write in progress, or one a killed run left: never data
            }
            let Some(feature_idx) = name.to_str().and_then(parse_feature_file_name) else {
                continue;
            };
            let path = entry.path();
            let file: FeatureFile = read_json(&path)?;
            if file.statistics.feature_idx != feature_idx {
                bail!(
                    "{}: statistics.feature_idx is {} but the file name says {}",
                    path.display(),
                    file.statistics.feature_idx,
                    feature_idx
                );
            }
            check_feature_view(&file).with_context(|| format!("{}", path.display()))?;
            features.insert(feature_idx, file);
        }
        if features.is_empty() {
            bail!(
                "samples folder {} holds no feature_XXXXX_samples.json files",
                dir.display()
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            summary,
            features,
            logit_effects: LogitEffects::read(dir)?,
        })
    }

    /// The feature's file, or an error listing what the folder does hold.
    pub fn feature(&self, feature_idx: u32) -> Result<&FeatureFile> {
        self.features.get(&feature_idx).with_context(|| {
            let first: Vec<String> = self.features.keys().take(10).map(u32::to_string).collect();
            let more = if self.features.len() > 10 {
                ", …"
            } else {
                ""
            };
            format!(
                "feature {feature_idx} is not in {} ({} features saved: {}{more})",
                self.dir.display(),
                self.features.len(),
                first.join(", ")
            )
        })
    }
}

/// `collection_summary.json` of `dir` alone, `None` when there is none (a folder whose
/// collection saw no sample has a summary but no feature file, which [`SamplesFolder::load`]
/// refuses).
pub fn read_summary(dir: &Path) -> Result<Option<CollectionSummary>> {
    let path = dir.join(SUMMARY_FILE_NAME);
    if !path.exists() {
        return Ok(None);
    }
    read_json(&path).map(Some)
}

/// The feature view's arrays must fit together (the views draw them without further checks).
fn check_feature_view(file: &FeatureFile) -> Result<()> {
    if let Some(h) = &file.activation_histogram {
        if h.edges.len() != h.counts.len() + 1
            || h.counts.is_empty()
            || h.first_bin as usize + h.counts.len() > ACTIVATION_BINS
        {
            bail!(
                "activation_histogram has {} edges and {} counts from bin {} (expected one more edge than counts, within {ACTIVATION_BINS} bins)",
                h.edges.len(),
                h.counts.len(),
                h.first_bin
            );
        }
        if h.edges.iter().any(|e| !e.is_finite()) || h.edges.windows(2).any(|w| w[0] >= w[1]) {
            bail!("activation_histogram edges must be finite and increasing");
        }
    }
    if let Some(p) = &file.position_histogram {
        if p.starts.len() != p.counts.len() {
            bail!(
                "position_histogram has {} starts and {} counts",
                p.starts.len(),
                p.counts.len()
            );
        }
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a valid samples file", path.display()))
}
