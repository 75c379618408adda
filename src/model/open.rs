//! Opening a model the way every stage does: locate it, read its config, check the hook points
//! against it, then load the blocks they need in the chosen dtype, and find the tokenizer to
//! read text with (`--tokenizer`, else the model's own).
//!
//! The two steps are separate so that a stage can check its own settings against the config
//! (the SAE's width, the training config) before any weight is read.

use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::config::Gemma2Config;
use super::device::{resolve_dtype, DTypeChoice};
use super::gemma2::Gemma2;
use super::hook_point::HookPoint;
use super::loading::{load_model, locate, read_config, LoadOptions, ModelSource};
use super::unembed::Unembedding;
use crate::hub::HubSettings;

/// `--model`, `--tokenizer` and `--dtype`, as a run records them.
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

/// A model found and its config read, no weight loaded yet.
pub struct LocatedModel {
    pub spec: ModelSpec,
    pub source: ModelSource,
    pub config: Gemma2Config,
    hub: HubSettings,
}

/// A loaded model and the tokenizer its text is read with.
pub struct OpenedModel {
    pub model: Gemma2,
    /// `--tokenizer`, or the model's own `tokenizer.json`.
    pub tokenizer: PathBuf,
    source: ModelSource,
    hub: HubSettings,
}

impl ModelSpec {
    /// A spec for `model` with its own tokenizer and the default dtype.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            ..Self::default()
        }
    }

    /// The model as records name it (`cfg.json`'s `model_name`): a Hub id as given, a local
    /// folder as an absolute path, so that a record reads the same from any working directory
    /// and before and after a resume.
    pub fn stable_id(&self) -> String {
        let path = std::path::Path::new(&self.model);
        match path.is_dir().then(|| std::fs::canonicalize(path)) {
            Some(Ok(absolute)) => absolute.display().to_string(),
            _ => self.model.clone(),
        }
    }

    /// The `--dtype` asked for, if any.
    pub fn dtype_choice(&self) -> Result<Option<DTypeChoice>> {
        self.dtype.as_deref().map(str::parse).transpose()
    }

    /// Finds the model (on disk or on the Hub: only its config is fetched) and checks `hooks`
    /// against its layer count.
    pub fn locate(&self, hooks: &[HookPoint]) -> Result<LocatedModel> {
        let source: ModelSource = self.model.parse()?;
        // Never fails: a local folder needs no cache, HOME or HF_* variable.
        let hub = HubSettings::from_env();
        let config = read_config(&locate(&source, Some(1), &hub)?.config)?;
        for hook in hooks {
            hook.validate(config.num_hidden_layers)?;
        }
        Ok(LocatedModel {
            spec: self.clone(),
            source,
            config,
            hub,
        })
    }
}

impl LocatedModel {
    /// Loads blocks `0..layers` (all when `None`: the head needs them) on `device`, in the
    /// spec's dtype (bf16 on a GPU, f32 on the CPU by default), and finds the tokenizer.
    pub fn load(self, layers: Option<usize>, device: &Device) -> Result<OpenedModel> {
        let options = LoadOptions {
            device: device.clone(),
            dtype: resolve_dtype(self.spec.dtype_choice()?, device),
            layers,
        };
        let loaded = load_model(&self.source, &options, &self.hub)?;
        let tokenizer = match (&self.spec.tokenizer, loaded.files.tokenizer) {
            (Some(path), _) => path.clone(),
            (None, Some(path)) => path,
            (None, None) => bail!(
                "{} has no tokenizer.json; give one with --tokenizer",
                self.source
            ),
        };
        Ok(OpenedModel {
            model: loaded.model,
            tokenizer,
            source: self.source,
            hub: self.hub,
        })
    }

    /// Only the final norm and the unembedding (no block), on `device`.
    pub fn unembedding(&self, device: &Device) -> Result<Unembedding> {
        Unembedding::load(&self.source, &self.config, device, &self.hub, None)
    }
}

impl OpenedModel {
    /// The final norm and the unembedding, sharing the loaded embedding when they are tied.
    pub fn unembedding(&self) -> Result<Unembedding> {
        let model = &self.model;
        let embedding = Some(model.embedding_matrix());
        Unembedding::load(
            &self.source,
            model.config(),
            model.device(),
            &self.hub,
            embedding,
        )
    }
}
