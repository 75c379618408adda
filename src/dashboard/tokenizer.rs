//! Which tokenizer turns the collection's token ids back into text, and each id's text.
//!
//! The collector keeps token ids only. The dashboard needs the tokenizer the collection used:
//! `--tokenizer`, else the one its summary records (`source.tokenizer`, the activation
//! cache's copy, the model folder's or the Hub repo's `tokenizer.json`), else — for a
//! collection made with the embedded demo model whose unpacked folder is gone — the demo's
//! own tokenizer, which the binary can always rebuild. Anything else is an error that says
//! to pass `--tokenizer`: decoding with a wrong tokenizer would show plausible nonsense.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::collect::format::CollectionSummary;
use crate::data::cache::ActivationCache;
use crate::hub::{HubRepo, HubSettings, RepoKind};
use crate::model::ModelSource;

/// Prefix of the folder the embedded demo model is unpacked to (`demo-model-<hash>`).
const DEMO_MODEL_DIR_PREFIX: &str = "demo-model-";

/// Where the tokenizer comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenizerSource {
    File(PathBuf),
    /// The embedded demo model's word-level tokenizer.
    EmbeddedDemo,
}

impl std::fmt::Display for TokenizerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::EmbeddedDemo => f.write_str("the embedded demo tokenizer"),
        }
    }
}

impl TokenizerSource {
    /// `explicit` when given, else the tokenizer the collection recorded.
    pub fn resolve(explicit: Option<&Path>, summary: &CollectionSummary) -> Result<Self> {
        if let Some(path) = explicit {
            if !path.is_file() {
                bail!("--tokenizer {} does not exist", path.display());
            }
            return Ok(Self::File(path.to_path_buf()));
        }
        let text = |key: &str| summary.source.get(key).and_then(|v| v.as_str());
        if let Some(path) = text("tokenizer") {
            return Ok(Self::File(PathBuf::from(path)));
        }
        if let Some(dir) = text("activations") {
            let cache = ActivationCache::open(Path::new(dir))
                .with_context(|| format!("cannot find the tokenizer of the cache {dir}"))?;
            return cache.tokenizer_path().map(Self::File).with_context(|| {
                format!("the cache {dir} has no tokenizer.json; give one with --tokenizer")
            });
        }
        match text("model").filter(|m| !m.is_empty()) {
            Some(model) => model_tokenizer(model),
            None => bail!(
                "the samples folder records no tokenizer, cache or model; give one with --tokenizer"
            ),
        }
    }

    pub fn load(&self) -> Result<tokenizers::Tokenizer> {
        match self {
            Self::File(path) => tokenizers::Tokenizer::from_file(path).map_err(|err| {
                anyhow!(
                    "failed to load tokenizer {} (give another with --tokenizer): {err}",
                    path.display()
                )
            }),
            Self::EmbeddedDemo => {
                let json = crate::demo::vocab::tokenizer_json();
                json.parse()
                    .map_err(|err| anyhow!("the embedded demo tokenizer does not load: {err}"))
            }
        }
    }
}

/// The `tokenizer.json` of a model folder or Hub repo (only that file is fetched).
fn model_tokenizer(model: &str) -> Result<TokenizerSource> {
    let is_demo_dir = Path::new(model)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(DEMO_MODEL_DIR_PREFIX));
    let local = Path::new(model).join("tokenizer.json");
    if local.is_file() {
        return Ok(TokenizerSource::File(local));
    }
    if is_demo_dir {
        return Ok(TokenizerSource::EmbeddedDemo);
    }
    match model.parse::<ModelSource>() {
        Ok(ModelSource::Hub { repo_id, revision }) => {
            let repo = HubRepo::new(
                HubSettings::from_env(),
                RepoKind::Model,
                &repo_id,
                revision.as_deref(),
            );
            let path = repo.get("tokenizer.json").with_context(|| {
                format!("cannot find the tokenizer of {model}; give one with --tokenizer")
            })?;
            Ok(TokenizerSource::File(path))
        }
        _ => bail!(
            "the collection's model {model} has no tokenizer.json (moved or deleted?); give one with --tokenizer"
        ),
    }
}

/// The text of each token id as it reads inside running text, special tokens shown.
///
/// Decoding an id alone loses what a decoder strips at the start of a text (SentencePiece's
/// leading space) or adds between tokens (word-level tokenizers join with spaces), so each id
/// is decoded after an anchor token and the anchor's own text removed: `▁cat` reads ` cat`.
/// Where that fails (the anchor's text is not a prefix) the id is decoded alone.
pub fn token_texts(tokenizer: &tokenizers::Tokenizer, ids: &[u32]) -> Vec<String> {
    // "a" where the vocabulary has it, else the first id that decodes to plain letters.
    let plain = |id: &u32| {
        tokenizer
            .decode(&[*id], true)
            .is_ok_and(|t| !t.is_empty() && t.chars().all(char::is_alphabetic))
    };
    let anchor = ["a", "▁a", "Ġa"]
        .iter()
        .filter_map(|t| tokenizer.token_to_id(t))
        .chain(ids.iter().copied())
        .find(plain)
        .and_then(|id| Some((id, tokenizer.decode(&[id], false).ok()?)));
    ids.iter()
        .map(|&id| {
            let after_anchor = anchor.as_ref().and_then(|(anchor, prefix)| {
                let text = tokenizer.decode(&[*anchor, id], false).ok()?;
                text.strip_prefix(prefix.as_str()).map(str::to_string)
            });
            after_anchor
                .filter(|text| !text.is_empty())
                .or_else(|| tokenizer.decode(&[id], false).ok())
                .filter(|text| !text.is_empty())
                .or_else(|| tokenizer.id_to_token(id))
                .unwrap_or_else(|| format!("⟨{id}⟩"))
        })
        .collect()
}
