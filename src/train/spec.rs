//! What a run reads, as `run.json` records it: an activation cache, or a model, its hook
//! point(s) and a text source. Plain data; [`super::source`] opens it (the model with
//! [`ModelSpec::locate`], the text with `DataSource::resolve`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::TextSpec;
use crate::model::ModelSpec;

/// What a run reads (the contents of `run.json` besides its bookkeeping).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSource {
    /// The activation cache of a cache run; `None`: live from `model` over `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activations: Option<PathBuf>,
    /// The model: a live run's, or the one a cache run evaluates the loss recovered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    /// The SAE's input hook point (a cache run: the cache's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// A transcoder's target hook point (SAELens `hook_name_out`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_out: Option<String>,
    /// A live run's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextSpec>,
}

impl RunSource {
    /// A run on the activation cache at `dir`.
    pub fn cache(dir: &Path) -> Self {
        Self {
            activations: Some(dir.to_path_buf()),
            ..Self::default()
        }
    }
}
