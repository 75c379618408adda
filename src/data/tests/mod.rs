//! Tests of the text pipeline: formats, errors, packing, windows, Hub datasets, fixtures.
//!
//! Every test works on files in a temporary folder or on the committed fixtures under
//! `tests/fixtures/`; none touches the network (the online Hub test talks to a local server).
//! The Hub client itself is tested in `src/hub/tests/`.

mod errors;
mod fixtures;
mod formats;
mod hostile;
mod hub;
mod packer;
mod split;
mod windows;

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{DataSource, Document, DocumentTokenizer, SourceOptions};
use crate::hub::HubSettings;

pub(super) fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

pub(super) fn fixture_tokenizer() -> DocumentTokenizer {
    DocumentTokenizer::from_file(&fixture("tokenizer/tokenizer.json"), Default::default())
        .expect("the fixture tokenizer loads")
}

/// Settings that never reach the network or the user's cache.
pub(super) fn offline_hub(cache: &Path) -> HubSettings {
    crate::hub::tests::offline_settings(cache)
}

pub(super) fn resolve(spec: &Path, options: &SourceOptions) -> Result<DataSource> {
    let cache = tempfile::tempdir()?;
    DataSource::resolve(spec.to_str().unwrap(), options, &offline_hub(cache.path()))
}

/// All documents of `spec`, or the first error.
pub(super) fn read_all(spec: &Path, options: &SourceOptions) -> Result<Vec<Document>> {
    resolve(spec, options)?.documents().collect()
}

pub(super) fn texts(documents: &[Document]) -> Vec<&str> {
    documents.iter().map(|d| d.text.as_str()).collect()
}

/// The error of `result` with its whole context chain, on one line.
pub(super) fn error_text<T: std::fmt::Debug>(result: Result<T>) -> String {
    format!("{:#}", result.expect_err("expected an error"))
}

pub(super) fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, bytes).unwrap();
    path
}
