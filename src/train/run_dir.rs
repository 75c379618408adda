//! The run folder: one type owns every file name in it, and the run's own records.
//!
//! ```text
//! <run>/run.json               what the run reads (cache, or model + hooks + text) and its size
//! <run>/train_config.json      the resolved TrainConfig (the original's keys)
//! <run>/metrics.jsonl          one line every log_freq steps, every evaluation and at the end
//! <run>/checkpoints/step_NNNNNNNNN/   every checkpoint_freq steps and at the end
//!     …/collector_state.safetensors   the sample collection at that step (when it is on)
//! <run>/latest_checkpoint      the newest complete checkpoint (written after it)
//! <run>/activation_samples/    the samples folder (`crate::samples`), rewritten at each checkpoint
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::spec::RunSource;
use crate::data::SourceSummary;
use crate::samples::STATE_FILE_NAME;
use crate::util::atomic::{sync_dir, write_atomic, write_json_atomic};

pub(super) const RUN_FORMAT_VERSION: u32 = 1;

/// A live run's position in its text besides the tokens consumed, inside each checkpoint.
pub(super) const DATA_STATE_FILE: &str = "data_state.json";

/// `run.json`. Version 1 folders written before live training (cache fields only) still read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct RunInfo {
    pub format_version: u32,
    #[serde(flatten)]
    pub source: RunSource,
    /// A cache run: the cache's size when the run started. The data order depends on it, so a
    /// cache that grew since cannot continue the same stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_tokens: Option<u64>,
    /// A live run: the text files it reads (a changed corpus cannot continue the stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_files: Option<SourceSummary>,
}

/// `data_state.json`: what a live run learnt about its text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct DataState {
    /// Complete windows in the corpus, once a pass reached its end.
    pub corpus_windows: Option<u64>,
}

/// The run folder and the names of everything in it.
pub struct RunDir {
    pub(super) root: PathBuf,
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

    /// The run's samples folder (`save_activation_samples`).
    pub fn samples(&self) -> PathBuf {
        self.root.join("activation_samples")
    }

    /// The collector's state inside `checkpoint`, where a resumed run's collection continues.
    pub fn collector_state(checkpoint: &Path) -> PathBuf {
        checkpoint.join(STATE_FILE_NAME)
    }

    pub(super) fn info(&self) -> PathBuf {
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

    /// The checkpoint folders (`checkpoints/step_*`), oldest first.
    pub fn checkpoints(&self) -> Result<Vec<PathBuf>> {
        let dir = self.root.join("checkpoints");
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("failed to list {}", dir.display()))?;
        let mut found = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("failed to list {}", dir.display()))?
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("step_") && path.is_dir() {
                found.push(path);
            }
        }
        // Zero-padded step numbers: the names sort as the steps.
        found.sort();
        Ok(found)
    }

    /// After `latest` is complete: the checkpoints older than it lose their collector state
    /// (only resuming needs it, and resuming reads the latest), and with `keep > 0` only the
    /// `keep` newest checkpoints remain. Checkpoints newer than `latest` (left by a run that
    /// died before naming them) are not touched: the resumed run rewrites them.
    pub(super) fn prune_checkpoints(&self, latest: &Path, keep: usize) -> Result<()> {
        let all = self.checkpoints()?;
        let latest_name = latest.file_name();
        let older: Vec<&PathBuf> = all
            .iter()
            .filter(|path| path.file_name() < latest_name)
            .collect();
        for checkpoint in &older {
            let state = Self::collector_state(checkpoint);
            if state.exists() {
                std::fs::remove_file(&state)
                    .with_context(|| format!("failed to remove {}", state.display()))?;
            }
        }
        if keep > 0 {
            // The latest counts as one of the `keep`.
            let surplus = (older.len() + 1).saturating_sub(keep);
            for checkpoint in older.into_iter().take(surplus) {
                std::fs::remove_dir_all(checkpoint)
                    .with_context(|| format!("failed to remove {}", checkpoint.display()))?;
            }
        }
        Ok(())
    }

    pub(super) fn set_latest(&self, checkpoint: &Path) -> Result<()> {
        let relative = checkpoint.strip_prefix(&self.root).unwrap_or(checkpoint);
        write_atomic(&self.pointer(), relative.to_string_lossy().as_bytes())?;
        // The pointer is what a resume reads first; also makes run.json, train_config.json and
        // checkpoints/ (renamed or created in the root before it) durable.
        sync_dir(&self.root)
    }
}

/// Writes the data state into a checkpoint folder.
pub(super) fn save_data_state(checkpoint: &Path, state: &DataState) -> Result<()> {
    std::fs::create_dir_all(checkpoint)
        .with_context(|| format!("failed to create {}", checkpoint.display()))?;
    write_json_atomic(&checkpoint.join(DATA_STATE_FILE), state)
}

/// The data state of a checkpoint (empty for cache runs and older folders).
pub(super) fn load_data_state(checkpoint: &Path) -> Result<DataState> {
    let path = checkpoint.join(DATA_STATE_FILE);
    match path.exists() {
        true => read_json(&path),
        false => Ok(DataState::default()),
    }
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("failed to parse {}", path.display()))
}
