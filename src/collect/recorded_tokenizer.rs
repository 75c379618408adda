//! The tokenizer a collection read its text with, found from what its summary records.
//!
//! The collector keeps token ids only, so whatever turns a folder back into text (`merge`
//! rewriting the samples files, the dashboard) needs the collection's own tokenizer: the
//! `--tokenizer` given to collect (`source.tokenizer`), else the activation cache's copy, else
//! the model folder's or the Hub repo's `tokenizer.json` (only that file is fetched). Decoding
//! with another tokenizer would show plausible nonsense, so anything else is an error that
//! says to pass `--tokenizer`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cache::ActivationCache;
use crate::hub::{HubRepo, HubSettings, RepoKind};
use crate::model::ModelSource;
use crate::samples::CollectionSource;

/// The `tokenizer.json` the collection described by `source` used.
pub fn recorded_tokenizer(source: &CollectionSource) -> Result<PathBuf> {
    if let Some(path) = &source.tokenizer {
        return Ok(PathBuf::from(path));
    }
    if let Some(dir) = &source.activations {
        let cache = ActivationCache::open(Path::new(dir))
            .with_context(|| format!("cannot find the tokenizer of the cache {dir}"))?;
        return cache.tokenizer_path().with_context(|| {
            format!("the cache {dir} has no tokenizer.json; give one with --tokenizer")
        });
    }
    match source.model.as_deref().filter(|m| !m.is_empty()) {
        Some(model) => model_tokenizer(model),
        None => bail!(
            "the samples folder records no tokenizer, cache or model; give one with --tokenizer"
        ),
    }
}

/// The `tokenizer.json` of a model folder, or of a Hub repo (only that file is fetched).
fn model_tokenizer(model: &str) -> Result<PathBuf> {
    let local = Path::new(model).join("tokenizer.json");
    if local.is_file() {
        return Ok(local);
    }
    match model.parse::<ModelSource>() {
        Ok(ModelSource::Hub { repo_id, revision }) => {
            let repo = HubRepo::new(
                HubSettings::from_env(),
                RepoKind::Model,
                &repo_id,
                revision.as_deref(),
            );
            repo.get("tokenizer.json").with_context(|| {
                format!("cannot find the tokenizer of {model}; give one with --tokenizer")
            })
        }
        _ => bail!(
            "the collection's model {model} has no tokenizer.json (moved or deleted?); give one with --tokenizer"
        ),
    }
}
