//! Neuronpedia's bulk layout, the one it publishes its own data in and imports from
//! (`app/api/admin/import/route.ts`, `lib/db/import.ts`):
//!
//! ```text
//! OUT/{model}/{layer}-{set}/
//!   model.jsonl  sourceset.jsonl  source.jsonl      one row each (created only if absent)
//!   features/batch-N.jsonl.gz                        Neuron rows, 1,024 per file
//!   activations/batch-N.jsonl.gz                     Activation rows, ≤ 65,000 per file
//!   explanations/batch-N.jsonl.gz                    Explanation rows (with --labels)
//!   skipped_indexes.json  manifest.json              saectl's: the dead features; the contents
//! ```
//!
//! Every feature of the SAE has its `Neuron` row (dead ones too, with density 0 and no
//! examples; they are also listed in `skipped_indexes.json`). The folder is built under a
//! temporary name and moved into place whole.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;

use super::limits::{FEATURES_PER_FILE, MAX_FILES_PER_FOLDER, MAX_LINES_PER_FILE};
use super::manifest::{put, staging_for, Manifest, Skipped, SKIPPED_FILE};
use super::prepare::Prepared;
use super::{replace_folder, ExportMode, Written, WrittenFile};

/// Lines waiting to become one gzipped file of a folder.
struct Batch {
    folder: &'static str,
    lines: Vec<u8>,
    count: usize,
    features: usize,
    written: usize,
}

impl Batch {
    fn new(folder: &'static str) -> Self {
        Self {
            folder,
            lines: Vec::new(),
            count: 0,
            features: 0,
            written: 0,
        }
    }

    fn push(&mut self, row: &impl Serialize) -> Result<()> {
        serde_json::to_writer(&mut self.lines, row).context("failed to serialize a row")?;
        self.lines.push(b'\n');
        self.count += 1;
        Ok(())
    }

    /// Whether `more` lines (of one more feature) would break a limit.
    fn full_for(&self, more: usize) -> bool {
        self.count > 0
            && (self.count + more > MAX_LINES_PER_FILE || self.features >= FEATURES_PER_FILE)
    }

    /// Writes the batch as `folder/batch-N.jsonl.gz` (nothing when it is empty).
    fn flush(&mut self, dir: &Path, files: &mut Vec<WrittenFile>) -> Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        if self.written >= MAX_FILES_PER_FOLDER {
            bail!(
                "{} would need more than {MAX_FILES_PER_FOLDER} files, more than Neuronpedia's importer lists in one folder",
                self.folder
            );
        }
        let relative = format!("{}/batch-{}.jsonl.gz", self.folder, self.written);
        files.push(put(dir, &relative, &gzip(&self.lines)?, self.count as u64)?);
        self.written += 1;
        self.lines.clear();
        (self.count, self.features) = (0, 0);
        Ok(())
    }
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// One row as a JSON-lines file.
fn jsonl(row: &impl Serialize) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(row)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes the bulk layout of `prepared` under `out`.
pub fn write(prepared: &Prepared, out: &Path) -> Result<Written> {
    let dir = out
        .join(&prepared.target.model_id)
        .join(&prepared.names.source_id);
    let staging = staging_for(&dir)?;
    let mut files = vec![
        put(&staging, "model.jsonl", &jsonl(&prepared.model_row())?, 1)?,
        put(
            &staging,
            "sourceset.jsonl",
            &jsonl(&prepared.source_set_row())?,
            1,
        )?,
        put(&staging, "source.jsonl", &jsonl(&prepared.source_row())?, 1)?,
    ];
    let (mut features, mut activations, mut explanations) = (
        Batch::new("features"),
        Batch::new("activations"),
        Batch::new("explanations"),
    );
    let (mut dead, mut counts) = (Vec::new(), (0usize, 0usize));
    for f in 0..prepared.set.features.len() as u32 {
        let rows = prepared.rows(f);
        if prepared.is_dead(f) {
            dead.push(f);
        }
        features.push(&rows.neuron)?;
        features.features += 1;
        if features.features == FEATURES_PER_FILE {
            features.flush(&staging, &mut files)?;
        }
        if activations.full_for(rows.activations.len()) {
            activations.flush(&staging, &mut files)?;
        }
        for row in &rows.activations {
            activations.push(row)?;
        }
        activations.features += 1;
        counts.0 += rows.activations.len();
        if let Some(row) = &rows.explanation {
            if explanations.full_for(1) {
                explanations.flush(&staging, &mut files)?;
            }
            explanations.push(row)?;
            counts.1 += 1;
        }
    }
    for batch in [&mut features, &mut activations, &mut explanations] {
        batch.flush(&staging, &mut files)?;
    }
    let skipped = Skipped {
        model_id: prepared.target.model_id.clone(),
        layer: prepared.names.source_id.clone(),
        sae_set: prepared.target.source_set.clone(),
        skipped_indexes: dead.clone(),
        dead: dead.clone(),
        without_examples: Vec::new(),
    };
    let skipped_bytes = serde_json::to_vec_pretty(&skipped)?;
    files.push(put(
        &staging,
        SKIPPED_FILE,
        &skipped_bytes,
        dead.len() as u64,
    )?);
    Manifest::new(prepared, ExportMode::Bulk, counts, files.clone()).write(&staging)?;
    replace_folder(&staging, &dir)?;
    Ok(Written {
        dir,
        files,
        skipped: dead.len(),
        activations: counts.0,
        explanations: counts.1,
    })
}
