//! What `inspect` and `steer` share: the SAE (`--checkpoint`, `--hook`), the model flags, the
//! texts (one as an argument, or `--file` with one per line) and `--json`; and opening them
//! into a [`Probe`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::model_args::ModelArgs;
use crate::probe::open::{open, ProbeSpec};
use crate::probe::{read_texts, Probe};

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
        read_texts(path)
    }

    /// Loads the SAE, then the model (to the hook, or `whole` with its head), and checks
    /// that they fit; the notes go to stderr.
    pub fn open(&self, whole: bool) -> Result<Probe> {
        let spec = ProbeSpec {
            checkpoint: self.checkpoint.clone(),
            hook: self.hook.clone(),
            model: self.model.spec().context("no --model given")?,
            device: self.model.device,
            whole,
        };
        let opened = open(&spec)?;
        for note in &opened.notes {
            eprintln!("note: {note}");
        }
        Ok(opened.probe)
    }
}
