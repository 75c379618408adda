//! What a run reads, as `run.json` records it: an activation cache, or a model, its hook
//! point(s) and a text source. Plain data; [`super::source`] opens it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{SourceOptions, TxtDocuments};

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

/// `--model`, `--tokenizer` and `--dtype`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// A Hugging Face repo id (`org/name[@revision]`) or a local folder.
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// `f32`, `bf16` or `f16`; `None`: bf16 on a GPU, f32 on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
}

/// `--dataset` and how to read it (the text flags of `saectl cache`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextSpec {
    pub dataset: String,
    pub text_field: String,
    pub txt_documents: TxtDocuments,
    pub split: String,
    pub config: Option<String>,
    pub data_files: Option<String>,
    pub revision: String,
}

impl TextSpec {
    /// `dataset` read with the default options.
    pub fn new(dataset: &str) -> Self {
        let options = SourceOptions::default();
        Self {
            dataset: dataset.to_string(),
            text_field: options.text_field,
            txt_documents: options.txt_documents,
            split: options.split,
            config: options.config,
            data_files: options.data_files,
            revision: options.revision,
        }
    }

    pub(super) fn options(&self) -> SourceOptions {
        SourceOptions {
            text_field: self.text_field.clone(),
            txt_documents: self.txt_documents,
            split: self.split.clone(),
            config: self.config.clone(),
            data_files: self.data_files.clone(),
            revision: self.revision.clone(),
        }
    }
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
