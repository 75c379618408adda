//! [`SamplesDir`]: one samples folder on disk, the one place its file names are spelled.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::format::{CollectionSummary, FeatureFile};
use super::logit_effects::LogitEffects;
use crate::util::atomic::{is_temporary, write_atomic, write_json_atomic};

/// The collector's state beside a samples folder (also inside a training checkpoint, where
/// the run's collection resumes from). The names are public for messages; paths come from
/// [`SamplesDir`].
pub const STATE_FILE_NAME: &str = "collector_state.safetensors";
pub const SUMMARY_FILE_NAME: &str = "collection_summary.json";
pub const REPORT_FILE_NAME: &str = "interpretability_report.md";
pub const LOGIT_EFFECTS_FILE_NAME: &str = "logit_effects.json";

/// A samples folder (which need not exist yet) and the names of everything in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SamplesDir {
    root: PathBuf,
}

impl SamplesDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `collection_summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.root.join(SUMMARY_FILE_NAME)
    }

    /// `feature_XXXXX_samples.json` of one feature.
    pub fn feature(&self, feature_idx: u32) -> PathBuf {
        self.root.join(feature_file_name(feature_idx))
    }

    /// `interpretability_report.md`, where `saectl report` writes by default.
    pub fn report(&self) -> PathBuf {
        self.root.join(REPORT_FILE_NAME)
    }

    /// `logit_effects.json`.
    pub fn logit_effects(&self) -> PathBuf {
        self.root.join(LOGIT_EFFECTS_FILE_NAME)
    }

    /// `collector_state.safetensors`.
    pub fn state(&self) -> PathBuf {
        self.root.join(STATE_FILE_NAME)
    }

    /// Creates the folder (and its parents) if missing.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("failed to create samples folder {}", self.root.display()))
    }

    /// The features that have a file here, in index order.
    pub fn feature_indices(&self) -> Result<Vec<u32>> {
        let entries = std::fs::read_dir(&self.root)
            .with_context(|| format!("failed to list samples folder {}", self.root.display()))?;
        let mut indices = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to list {}", self.root.display()))?;
            let name = entry.file_name();
            if is_temporary(&name) {
                continue; // a write in progress, or one a killed run left: never data
            }
            if let Some(index) = name.to_str().and_then(parse_feature_file_name) {
                indices.push(index);
            }
        }
        indices.sort_unstable();
        Ok(indices)
    }

    /// `collection_summary.json`, `None` when there is none.
    pub fn read_summary(&self) -> Result<Option<CollectionSummary>> {
        let path = self.summary();
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    pub fn read_feature(&self, feature_idx: u32) -> Result<FeatureFile> {
        read_json(&self.feature(feature_idx))
    }

    /// `logit_effects.json`, `None` when the collection had no model at hand.
    pub fn read_logit_effects(&self) -> Result<Option<LogitEffects>> {
        let path = self.logit_effects();
        if !path.exists() {
            return Ok(None);
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        LogitEffects::from_json(&bytes)
            .with_context(|| format!("{} is not a valid logit effects file", path.display()))
            .map(Some)
    }

    pub fn write_summary(&self, summary: &CollectionSummary) -> Result<()> {
        write_json_atomic(&self.summary(), summary)
    }

    pub fn write_feature(&self, file: &FeatureFile) -> Result<()> {
        write_json_atomic(&self.feature(file.statistics.feature_idx), file)
    }

    pub fn write_logit_effects(&self, effects: &LogitEffects) -> Result<()> {
        write_atomic(&self.logit_effects(), effects.to_json()?.as_bytes())
    }

    /// Removes the feature files of features not in `keep` (left by an earlier write of the
    /// folder), so a folder never mixes two collections.
    pub fn remove_features_except(&self, keep: &[u32]) -> Result<()> {
        for feature in self.feature_indices()? {
            if !keep.contains(&feature) {
                let path = self.feature(feature);
                std::fs::remove_file(&path)
                    .with_context(|| format!("failed to remove stale {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Removes `logit_effects.json` if there is one.
    pub fn remove_logit_effects(&self) -> Result<()> {
        let path = self.logit_effects();
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("failed to remove stale {}", path.display()))?;
        }
        Ok(())
    }
}

/// File name of one feature's samples, as the original formatted it (`{:05d}`).
fn feature_file_name(feature_idx: u32) -> String {
    format!("feature_{feature_idx:05}_samples.json")
}

/// The feature index in a `feature_XXXXX_samples.json` name, if it is one.
fn parse_feature_file_name(name: &str) -> Option<u32> {
    name.strip_prefix("feature_")?
        .strip_suffix("_samples.json")?
        .parse()
        .ok()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a valid samples file", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_file_names_round_trip() {
        assert_eq!(feature_file_name(42), "feature_00042_samples.json");
        assert_eq!(feature_file_name(123456), "feature_123456_samples.json");
        assert_eq!(
            parse_feature_file_name("feature_00042_samples.json"),
            Some(42)
        );
        assert_eq!(
            parse_feature_file_name("feature_123456_samples.json"),
            Some(123456)
        );
        assert_eq!(parse_feature_file_name("feature_x_samples.json"), None);
        assert_eq!(parse_feature_file_name("collection_summary.json"), None);
    }

    #[test]
    fn lists_only_feature_files_in_index_order() {
        let dir = tempfile::tempdir().unwrap();
        let samples = SamplesDir::new(dir.path());
        for name in [
            "feature_00010_samples.json",
            "feature_00002_samples.json",
            "collection_summary.json",
            "feature_x_samples.json",
        ] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        assert_eq!(samples.feature_indices().unwrap(), vec![2, 10]);
        samples.remove_features_except(&[10]).unwrap();
        assert_eq!(samples.feature_indices().unwrap(), vec![10]);
        assert!(samples.summary().exists() && samples.read_logit_effects().unwrap().is_none());
    }
}
