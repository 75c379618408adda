//! Which tokenizer turns the collection's token ids back into text, and each id's text.
//!
//! The collector keeps token ids only. The dashboard and the export need the tokenizer the collection used:
//! `--tokenizer`, else the one its summary records (`source.tokenizer`, the activation
//! cache's copy, the model folder's or the Hub repo's `tokenizer.json`), else — for a
//! collection made with the embedded demo model whose unpacked folder is gone — the demo's
//! own tokenizer, which the binary can always rebuild. Anything else is an error that says
//! to pass `--tokenizer`: decoding with a wrong tokenizer would show plausible nonsense.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use crate::collect::recorded_tokenizer;
use crate::samples::CollectionSummary;

/// Prefix of the folder the embedded demo model is unpacked to (`demo-model-<hash>`).
pub const DEMO_MODEL_DIR_PREFIX: &str = "demo-model-";

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
        let recorded_model = summary.source.model.as_deref().map(Path::new);
        let is_missing_demo = recorded_model.is_some_and(|model| {
            !model.exists()
                && model
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(DEMO_MODEL_DIR_PREFIX))
        });
        if summary.source.tokenizer.is_none()
            && summary.source.activations.is_none()
            && is_missing_demo
        {
            return Ok(Self::EmbeddedDemo);
        }
        recorded_tokenizer(&summary.source).map(Self::File)
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
