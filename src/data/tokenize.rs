//! Tokenizing documents: the text's ids without the tokenizer's own special tokens, plus the
//! BOS id the packer puts in front of every document.
//!
//! Gemma's `tokenizer.json` adds `<bos>` in its post-processor; TransformerLens'
//! `to_tokens(prepend_bos=True)`, which the original calls, yields exactly one BOS per
//! document. Encoding without special tokens and prepending the BOS ourselves gives that one
//! BOS whatever the tokenizer's template says, and lets `--bos-id` / no BOS override it.
//! Truncation and padding stored in a tokenizer file are switched off: either would silently
//! cut or pad documents.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::Tokenizer;

/// Loads a `tokenizer.json`: every command reads tokenizers through here.
///
/// The file is checked to be well-formed JSON first: the tokenizers crate panics (an
/// `expect` in its decoder, normalizer, … deserializers) instead of failing on some malformed
/// files, a control character inside a string for one (found by fuzzing, `fuzz/` tokenizer).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("failed to load tokenizer {}", path.display()))?;
    if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        bail!("tokenizer {} is not valid JSON: {err}", path.display());
    }
    Tokenizer::from_bytes(&bytes)
        .map_err(|err| anyhow!("failed to load tokenizer {}: {err}", path.display()))
}

/// Which token starts every document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bos {
    /// The tokenizer's BOS token: the first of `<bos>`, `<s>`, `<|begin_of_text|>`,
    /// `<|endoftext|>` in its vocabulary.
    #[default]
    FromTokenizer,
    /// This id (for instance `bos_token_id` from the model's `config.json`).
    Id(u32),
    /// No BOS: documents are concatenated as they are.
    None,
}

/// BOS token names, most specific first (Gemma, Llama 2, Llama 3, GPT-2).
const BOS_NAMES: [&str; 4] = ["<bos>", "<s>", "<|begin_of_text|>", "<|endoftext|>"];

/// A tokenizer and the BOS id put before each document.
#[derive(Clone)]
pub struct DocumentTokenizer {
    tokenizer: Tokenizer,
    bos: Option<u32>,
}

impl std::fmt::Debug for DocumentTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The derived form would print the whole vocabulary.
        f.debug_struct("DocumentTokenizer")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .field("bos", &self.bos)
            .finish()
    }
}

impl DocumentTokenizer {
    /// Loads a `tokenizer.json` ([`load_tokenizer`]).
    pub fn from_file(path: &Path, bos: Bos) -> Result<Self> {
        Self::new(load_tokenizer(path)?, bos)
    }

    pub fn new(mut tokenizer: Tokenizer, bos: Bos) -> Result<Self> {
        tokenizer
            .with_truncation(None)
            .map_err(|err| anyhow!("failed to switch off the tokenizer's truncation: {err}"))?;
        tokenizer.with_padding(None);
        let bos = match bos {
            Bos::FromTokenizer => {
                let found = BOS_NAMES
                    .iter()
                    .find_map(|name| tokenizer.token_to_id(name));
                match found {
                    Some(id) => Some(id),
                    None => bail!(
                        "the tokenizer has no BOS token (looked for {}); give its id with \
                         --bos-id or read without one",
                        BOS_NAMES.join(", ")
                    ),
                }
            }
            Bos::Id(id) => Some(id),
            Bos::None => None,
        };
        Ok(Self { tokenizer, bos })
    }

    /// The id put before every document, if any.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The special token ids (BOS, EOS, PAD…), sorted: what the collector skips with
    /// `exclude_special_tokens`.
    pub fn special_token_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .tokenizer
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, token)| token.special)
            .map(|(&id, _)| id)
            .collect();
        ids.extend(self.bos);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The ids of `text`, without BOS or any other template token.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|err| anyhow!("{err}"))?;
        Ok(encoding.get_ids().to_vec())
    }
}
