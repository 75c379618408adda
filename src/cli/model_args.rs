//! `--model`, `--device`, `--dtype`, `--tokenizer`: shared by every command that runs the model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::model::{DTypeChoice, DeviceChoice, ModelSpec};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Model")]
pub struct ModelArgs {
    /// Hugging Face repo id (`google/gemma-2-2b`, optionally `@revision`) or a local folder with
    /// config.json, tokenizer.json and safetensors weights. HF_TOKEN, HF_HOME, HF_HUB_CACHE and
    /// HF_HUB_OFFLINE=1 are honoured.
    #[arg(long, value_name = "REPO|DIR")]
    pub model: Option<String>,

    /// auto (a GPU when this build has one and it is usable, else the CPU), cpu, cuda[:N], metal[:N].
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: DeviceChoice,

    /// Model dtype: f32, bf16 or f16 [default: bf16 on a GPU, f32 on the CPU].
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<DTypeChoice>,

    /// tokenizer.json to use instead of the model's own.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
}

impl ModelArgs {
    /// The `--model` value, or an error saying the command needs it.
    pub fn require_model(&self, command: &str) -> Result<&str> {
        self.model.as_deref().with_context(|| {
            format!("`saectl {command}` needs --model (a Hugging Face repo id or a local folder)")
        })
    }

    /// `--model`, `--tokenizer` and `--dtype`, when a model is given.
    pub fn spec(&self) -> Option<ModelSpec> {
        Some(ModelSpec {
            model: self.model.clone()?,
            tokenizer: self.tokenizer.clone(),
            dtype: self.dtype.map(|dtype| dtype.to_string()),
        })
    }
}
