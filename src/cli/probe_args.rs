//! What `inspect` and `steer` share: the SAE (`--checkpoint`, `--hook`), the model flags, the
//! texts (one as an argument, or `--file` with one per line) and `--json`; and opening them
//! into a [`Probe`].

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::model_args::ModelArgs;
use crate::data::{Bos, DocumentTokenizer};
use crate::hub::HubSettings;
use crate::model::HookPoint;
use crate::probe::Probe;
use crate::sae::hub_path::resolve_checkpoint;
use crate::sae::import::load_any;

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The text (read as a document: BOS, then its tokens).
    #[arg(
        value_name = "TEXT",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub text: Option<String>,

    /// Texts, one per line (empty lines skipped); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// SAE: a training run, a checkpoint folder, a SAELens folder or a Gemma Scope params.npz,
    /// on disk or on the Hugging Face Hub (org/name/path/in/repo).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: String,

    /// Hook point the SAE reads [default: the one the checkpoint names].
    #[arg(long, value_name = "HOOK")]
    pub hook: Option<String>,

    /// Write JSON to stdout instead of the text view.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub model: ModelArgs,
}

impl ProbeArgs {
    /// The texts to read: the argument, or the lines of `--file`.
    pub fn texts(&self) -> Result<Vec<String>> {
        let Some(path) = &self.file else {
            let text = self.text.clone().context("give a TEXT or --file")?;
            return Ok(vec![text]);
        };
        let content = if path.as_os_str() == "-" {
            let mut content = String::new();
            std::io::stdin()
                .read_to_string(&mut content)
                .context("failed to read texts from standard input")?;
            content
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("failed to read texts from {}", path.display()))?
        };
        let texts: Vec<String> = content
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_string)
            .collect();
        if texts.is_empty() {
            bail!("{} holds no text (one per line)", path.display());
        }
        Ok(texts)
    }

    /// Loads the SAE, then the model (to the hook, or `whole` with its head), and checks
    /// that they fit.
    pub fn open(&self, whole: bool) -> Result<Probe> {
        let hub = HubSettings::from_env();
        let path = resolve_checkpoint(&self.checkpoint, &hub)?;
        let resolved = crate::model::resolve_device(self.model.device)?;
        let sae = load_any(&path, &resolved.device)?;
        let trained_at = sae.config().hook_name.clone();
        let hook = match (&self.hook, &trained_at) {
            (Some(hook), _) | (None, Some(hook)) => hook.clone(),
            (None, None) => bail!("the checkpoint names no hook point; give one with --hook"),
        };
        let hook: HookPoint = hook.parse()?;
        let spec = self.model.spec().context("no --model given")?;
        let opened = spec
            .locate(std::slice::from_ref(&hook))?
            .load((!whole).then(|| hook.layers_needed()), &resolved.device)?;
        let tokenizer = DocumentTokenizer::from_file(&opened.tokenizer, Bos::FromTokenizer)
            .with_context(|| format!("cannot use the tokenizer of {}", spec.model))?;
        if let (Some(asked), Some(trained)) = (&self.hook, &trained_at) {
            if asked != trained {
                eprintln!(
                    "note: the SAE was trained at {trained}; reading it at {asked} as --hook asks"
                );
            }
        }
        if let Some(note) = &resolved.note {
            eprintln!("note: {note}");
        }
        Probe::new(opened.model, sae, tokenizer, hook)
    }
}
