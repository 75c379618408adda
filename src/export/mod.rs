//! `saectl export neuronpedia`: every feature of a collection in the formats Neuronpedia
//! imports — its bulk layout (what Neuronpedia publishes and its admin import reads) or the
//! JSON payloads of its public upload API — and `--check`, which reads a layout back and
//! validates it. docs/export.md describes the files field by field.
//!
//! The rows are made from the same per-feature view the dashboard draws ([`crate::features`]):
//! [`prepare`] gathers it with the tokenizer, the decoder and the labels; [`build`] turns one
//! feature into its rows ([`rows`]); [`bulk`] and [`api`] write them within Neuronpedia's
//! limits ([`limits`]), with a [`manifest`]; [`check`] validates what is on disk against the
//! tables' columns ([`schema`]). Nothing here touches the network.

pub mod api;
pub mod build;
pub mod bulk;
pub mod check;
pub mod limits;
pub mod manifest;
pub mod prepare;
pub mod rows;
pub mod schema;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use prepare::Prepared;

/// The file naming what an export folder holds (written last: its presence marks a complete
/// export, and a folder with it may be replaced by the next export).
pub const MANIFEST_FILE: &str = "manifest.json";
/// The `format` the manifest carries.
pub const MANIFEST_FORMAT: &str = "saectl-neuronpedia-export";
/// Neuronpedia's seed user, the `creatorId` of rows when none is given (its local
/// `prisma/seed.ts`, and SAEDashboard's fallback).
pub const DEFAULT_CREATOR_ID: &str = "clkht01d40000jv08hvalcvly";

/// Which of Neuronpedia's import routes the files are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportMode {
    /// The bulk layout: `model.jsonl`, `sourceset.jsonl`, `source.jsonl`,
    /// `features/`, `activations/`, `explanations/` (gzipped JSON lines).
    Bulk,
    /// The bodies of `POST /api/model/new`, `/api/source-set/new` and
    /// `/api/feature/upload-batch`, one file each (no request is made).
    Api,
}

impl ExportMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bulk => "bulk",
            Self::Api => "api",
        }
    }
}

/// Where the features go on Neuronpedia, and who made them.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The model's id on Neuronpedia (`gemma-2-2b`).
    pub model_id: String,
    /// The source set (the SAE family: `saectl-res-16k`); the source is `{layer}-{set}`.
    pub source_set: String,
    /// The layer; `None`: the hook's layer, from the collection.
    pub layer: Option<usize>,
    pub creator_id: String,
    pub creator_name: String,
}

/// A validated `export neuronpedia` invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportConfig {
    pub samples: PathBuf,
    /// The export root: the source's files go to `out/{model}/{layer}-{set}/`.
    pub out: PathBuf,
    pub mode: ExportMode,
    pub target: Target,
    /// The SAE, for decoder neighbours and alignments; `None`: the one the collection
    /// recorded, when it is on disk.
    pub checkpoint: Option<PathBuf>,
    pub tokenizer: Option<PathBuf>,
    /// Labels exported from the dashboard, written as explanations.
    pub labels: Option<PathBuf>,
    /// Top examples per feature.
    pub top_examples: usize,
    /// The model's layer count, when its `config.json` is not at hand.
    pub model_layers: Option<usize>,
}

impl Target {
    /// Checks the names against the rules of the route they are for (Neuronpedia refuses
    /// others: its API validates them, and its bulk import keys rows by them).
    pub fn validate(&self, mode: ExportMode) -> Result<()> {
        let model = &self.model_id;
        let model_ok = match mode {
            // Model ids on the API: 2–32 characters, a letter first, letters, digits, `-`, `.`.
            ExportMode::Api => {
                (2..=32).contains(&model.len())
                    && model.starts_with(|c: char| c.is_ascii_lowercase())
                    && model.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && model
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
            }
            // The schema's rule, lower-cased as Neuronpedia stores ids.
            ExportMode::Bulk => {
                (1..=128).contains(&model.len())
                    && model
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c))
            }
        };
        if !model_ok {
            bail!(
                "--model-id {model:?} is not a Neuronpedia model id ({})",
                match mode {
                    ExportMode::Api =>
                        "2-32 lowercase letters, digits, '-' or '.', starting with a letter",
                    ExportMode::Bulk => "lowercase letters, digits, '-' or '_'",
                }
            );
        }
        let set = &self.source_set;
        let set_ok = !set.is_empty()
            && set.len() <= 64
            && set.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && set.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && set
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !set.contains("--")
            && set != "neurons";
        if !set_ok {
            bail!(
                "--source-set {set:?} is not a Neuronpedia source set name (lowercase letters, digits and single '-', \
                 not starting or ending with '-', not \"neurons\")"
            );
        }
        if self.creator_id.trim().is_empty() || self.creator_name.trim().is_empty() {
            bail!("--creator-id and --creator-name must not be empty");
        }
        Ok(())
    }

    /// `{layer}-{set}`: the source id (Neuronpedia's `layer` column).
    pub fn source_id(&self, layer: usize) -> String {
        format!("{layer}-{}", self.source_set)
    }
}

/// What an export wrote, for the command to report.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportOutcome {
    /// The source folder (`out/{model}/{source}`).
    pub dir: PathBuf,
    pub mode: ExportMode,
    pub features: usize,
    /// Features listed apart: dead ones (and, for the API, those without an example).
    pub skipped: usize,
    pub activations: usize,
    pub explanations: usize,
    pub files: usize,
    pub bytes: u64,
    /// Examples with the feature's activation on every token of their window.
    pub per_token_examples: usize,
    /// What the export could not fill in, for the user to know (one line each).
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// Writes the export; `stage` hears what is being done (for a progress line).
pub fn run(config: &ExportConfig, stage: &mut dyn FnMut(&str)) -> Result<ExportOutcome> {
    let started = std::time::Instant::now();
    config.target.validate(config.mode)?;
    if config.top_examples == 0 {
        bail!("--top-examples must be at least 1");
    }
    let prepared = prepare::prepare(config, stage)?;
    stage("writing");
    let written = match config.mode {
        ExportMode::Bulk => bulk::write(&prepared, &config.out)?,
        ExportMode::Api => api::write(&prepared, &config.out)?,
    };
    Ok(ExportOutcome {
        dir: written.dir,
        mode: config.mode,
        features: prepared.set.features.len(),
        skipped: written.skipped,
        activations: written.activations,
        explanations: written.explanations,
        files: written.files.len(),
        bytes: written.files.iter().map(|f| f.bytes).sum(),
        per_token_examples: prepared.per_token_examples,
        notes: prepared.notes.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One file an export wrote, as the manifest lists it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WrittenFile {
    /// Relative to the source folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// JSON lines (bulk files) or features (API batches).
    pub records: u64,
    pub sha256: String,
}

/// What a writer put in the source folder.
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<WrittenFile>,
    pub skipped: usize,
    pub activations: usize,
    pub explanations: usize,
}

/// Moves a finished `staging` folder to `dir`, replacing an earlier saectl export there (and
/// nothing else): the folder is either the old export or the new one, never a mix.
pub(crate) fn replace_folder(staging: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        let manifest = dir.join(MANIFEST_FILE);
        let ours = std::fs::read(&manifest)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|json| json["format"] == MANIFEST_FORMAT);
        if !ours {
            bail!(
                "{} exists and is not an export of saectl (no {MANIFEST_FILE} of its own): choose another -o",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("failed to remove the earlier export {}", dir.display()))?;
    }
    std::fs::rename(staging, dir).with_context(|| {
        format!(
            "failed to move {} into place at {}",
            staging.display(),
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(model: &str, set: &str) -> Target {
        Target {
            model_id: model.into(),
            source_set: set.into(),
            layer: Some(12),
            creator_id: DEFAULT_CREATOR_ID.into(),
            creator_name: "me".into(),
        }
    }

    #[test]
    fn names_follow_neuronpedia_rules() {
        let ok = target("gemma-2-2b", "saectl-res-16k");
        ok.validate(ExportMode::Bulk).unwrap();
        ok.validate(ExportMode::Api).unwrap();
        assert_eq!(ok.source_id(12), "12-saectl-res-16k");
        assert!(target("my_model", "s").validate(ExportMode::Bulk).is_ok());
        for (model, mode) in [
            ("Gemma", ExportMode::Bulk),
            ("my_model", ExportMode::Api),
            ("2b", ExportMode::Api),
            ("a", ExportMode::Api),
            ("", ExportMode::Bulk),
        ] {
            let err = target(model, "s").validate(mode).unwrap_err().to_string();
            assert!(err.contains("--model-id"), "{model}: {err}");
        }
        for set in ["", "-a", "a-", "a--b", "neurons", "Res", "res_16k"] {
            let err = target("m2", set)
                .validate(ExportMode::Bulk)
                .unwrap_err()
                .to_string();
            assert!(err.contains("--source-set"), "{set}: {err}");
        }
    }

    #[test]
    fn only_an_earlier_export_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        let (staging, dir) = (root.path().join("new"), root.path().join("dir"));
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let err = replace_folder(&staging, &dir).unwrap_err().to_string();
        assert!(err.contains("not an export of saectl"), "{err}");
        assert!(dir.join("notes.txt").exists());
        std::fs::write(
            dir.join(MANIFEST_FILE),
            format!("{{\"format\": \"{MANIFEST_FORMAT}\"}}"),
        )
        .unwrap();
        std::fs::write(staging.join("new.txt"), "new").unwrap();
        replace_folder(&staging, &dir).unwrap();
        assert!(dir.join("new.txt").exists() && !dir.join("notes.txt").exists());
    }
}
