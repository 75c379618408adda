//! `--model`, `--device`, `--dtype`, `--tokenizer`: shared by every command that runs the model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::data::{Bos, DocumentTokenizer};
use crate::hub::HubSettings;
use crate::model::{
    load_model, locate, read_config, resolve_device, resolve_dtype, DTypeChoice, DeviceChoice,
    HookPoint, LoadOptions, LoadedModel, ModelSource,
};

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

/// A model loaded up to a hook point, with its tokenizer.
pub struct HookedModel {
    pub loaded: LoadedModel,
    pub hook: HookPoint,
    pub tokenizer: DocumentTokenizer,
    pub tokenizer_path: PathBuf,
    /// Why the device is not the one asked for, to show the user.
    pub device_note: Option<String>,
}

impl ModelArgs {
    /// The `--model` value, or an error saying the command needs it.
    pub fn require_model(&self, command: &str) -> Result<&str> {
        self.model.as_deref().with_context(|| {
            format!("`saectl {command}` needs --model (a Hugging Face repo id or a local folder)")
        })
    }

    /// Loads blocks `0..=L` of the model for `hook`, after checking the hook against its config.
    pub fn load_for_hook(&self, hook: &str) -> Result<HookedModel> {
        self.load(hook, false)
    }

    /// Loads the whole model, head included (for generation), after checking `hook` against it.
    pub fn load_with_head(&self, hook: &str) -> Result<HookedModel> {
        self.load(hook, true)
    }

    fn load(&self, hook: &str, whole: bool) -> Result<HookedModel> {
        let model = self.model.as_deref().context("no --model given")?;
        let source: ModelSource = model.parse()?;
        // Never fails: a local folder needs no cache, HOME or HF_* variable.
        let hub = HubSettings::from_env();
        let hook: HookPoint = hook.parse()?;
        let config_files = locate(&source, Some(1), &hub)?;
        let config = read_config(&config_files.config)?;
        hook.validate(config.num_hidden_layers)?;
        let resolved = resolve_device(self.device)?;
        let dtype = resolve_dtype(self.dtype, &resolved.device);
        let options = LoadOptions {
            device: resolved.device,
            dtype,
            layers: (!whole).then(|| hook.layers_needed()),
        };
        let loaded = load_model(&source, &options, &hub)?;
        let tokenizer_path = match (&self.tokenizer, &loaded.files.tokenizer) {
            (Some(path), _) | (None, Some(path)) => path.clone(),
            (None, None) => {
                anyhow::bail!("{model} has no tokenizer.json; give one with --tokenizer")
            }
        };
        let tokenizer = DocumentTokenizer::from_file(&tokenizer_path, Bos::FromTokenizer)
            .with_context(|| format!("cannot use the tokenizer of {model}"))?;
        Ok(HookedModel {
            loaded,
            hook,
            tokenizer,
            tokenizer_path,
            device_note: resolved.note,
        })
    }
}

/// The tokenizer's special token ids (BOS, EOS, PAD…), sorted.
pub fn special_token_ids(tokenizer: &DocumentTokenizer) -> Vec<u32> {
    tokenizer.special_token_ids()
}
