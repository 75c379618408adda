//! `manifest.json` and `skipped_indexes.json`, beside every export: what the folder holds (the
//! counts, what could not be filled in, every file with its SHA-256) and the features listed
//! apart. The manifest is written last, so a folder with one is complete; `--check` compares
//! the files with it.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::prepare::Prepared;
use super::{ExportMode, WrittenFile, MANIFEST_FILE, MANIFEST_FORMAT};
use crate::samples::LogitConvention;
use crate::util::atomic::{write_atomic, write_json_atomic};

/// The manifest's layout version.
pub const MANIFEST_VERSION: u32 = 1;
/// Where the features listed apart go.
pub const SKIPPED_FILE: &str = "skipped_indexes.json";

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub saectl_version: String,
    /// `bulk` or `api`.
    pub mode: String,
    pub model_id: String,
    pub source_set: String,
    /// `{layer}-{source_set}`.
    pub source_id: String,
    pub layer: usize,
    /// Every feature of the SAE.
    pub features: usize,
    pub dead_features: usize,
    pub activations: usize,
    pub explanations: usize,
    pub examples: usize,
    /// Examples whose every token carries the feature's activation (the others: the marked
    /// token only).
    pub examples_with_per_token_activations: usize,
    /// The logit effects' convention (`None`: the folder had none).
    pub logit_convention: Option<LogitConvention>,
    /// The checkpoint of the decoder neighbours and alignments (`None`: not at hand).
    pub checkpoint: Option<String>,
    /// What could not be filled in.
    pub notes: Vec<String>,
    /// The collection's provenance (its summary's `source`) and size.
    pub collection: serde_json::Value,
    pub files: Vec<WrittenFile>,
}

/// `skipped_indexes.json`: SAEDashboard's file of the same name, with the reasons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub model_id: String,
    pub layer: String,
    pub sae_set: String,
    /// Every feature listed apart, ascending.
    pub skipped_indexes: Vec<u32>,
    /// Never fired on the collection's tokens.
    pub dead: Vec<u32>,
    /// Fired, but no example was kept (the API takes no feature without one).
    pub without_examples: Vec<u32>,
}

impl Manifest {
    pub fn new(
        prepared: &Prepared,
        mode: ExportMode,
        counts: (usize, usize),
        files: Vec<WrittenFile>,
    ) -> Self {
        let summary = &prepared.summary;
        Self {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            saectl_version: env!("CARGO_PKG_VERSION").into(),
            mode: mode.name().into(),
            model_id: prepared.target.model_id.clone(),
            source_set: prepared.target.source_set.clone(),
            source_id: prepared.names.source_id.clone(),
            layer: prepared.layer,
            features: prepared.set.features.len(),
            dead_features: prepared
                .set
                .features
                .iter()
                .filter(|f| f.flags.dead)
                .count(),
            activations: counts.0,
            explanations: counts.1,
            examples: prepared.examples,
            examples_with_per_token_activations: prepared.per_token_examples,
            logit_convention: prepared.logit_convention,
            checkpoint: prepared
                .checkpoint
                .as_ref()
                .map(|p| p.display().to_string()),
            notes: prepared.notes.clone(),
            collection: serde_json::json!({
                "source": summary.source.to_map(),
                "tokens_seen": summary.tokens_seen,
                "sequences_seen": summary.sequences_seen,
            }),
            files,
        }
    }

    /// Reads `dir/manifest.json`, `None` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(MANIFEST_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        let manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a saectl export manifest", path.display()))?;
        Ok(Some(manifest))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json_atomic(&dir.join(MANIFEST_FILE), self)
    }
}

/// Writes `bytes` to `dir/relative` and describes the file for the manifest.
pub fn put(dir: &Path, relative: &str, bytes: &[u8], records: u64) -> Result<WrittenFile> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    write_atomic(&path, bytes)?;
    Ok(WrittenFile {
        path: relative.to_string(),
        bytes: bytes.len() as u64,
        records,
        sha256: sha256_hex(bytes),
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh staging folder beside `dir` (an interrupted export's is removed first).
pub fn staging_for(dir: &Path) -> Result<std::path::PathBuf> {
    let parent = dir.parent().context("the export folder has no parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create {}", parent.display()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!(".{name}.saectl-partial"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("failed to remove {}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("failed to create {}", staging.display()))?;
    Ok(staging)
}
