//! Token ids back to text: what a samples folder shows next to every id.

use std::path::Path;

use anyhow::Result;

/// Turns token ids into text (a tokenizer, or a test vocabulary).
pub trait TokenDecoder {
    /// Decodes `ids`; implementations return a visible marker rather than fail, so one bad id
    /// cannot lose a whole collection at save time.
    fn decode(&self, ids: &[u32]) -> String;
}

/// Decodes with a Hugging Face tokenizer, special tokens shown (BOS in a context is real text
/// position information); a failure shows as a marker instead of losing the collection.
pub struct TokenizerDecoder(pub tokenizers::Tokenizer);

impl TokenizerDecoder {
    /// Loads a `tokenizer.json` for decoding.
    pub fn from_file(path: &Path) -> Result<Self> {
        super::load_tokenizer(path).map(Self)
    }
}

impl TokenDecoder for TokenizerDecoder {
    fn decode(&self, ids: &[u32]) -> String {
        self.0
            .decode(ids, false)
            .unwrap_or_else(|err| format!("<decode error: {err}>"))
    }
}

/// Shows ids as `⟨id⟩`, for activations with no tokenizer at hand (synthetic caches in tests).
pub struct IdDecoder;

impl TokenDecoder for IdDecoder {
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|id| format!("⟨{id}⟩")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_ids_or_fails_in_one_line() {
        assert_eq!(IdDecoder.decode(&[3, 14]), "⟨3⟩⟨14⟩");
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer/tokenizer.json");
        let decoder = TokenizerDecoder::from_file(&path).unwrap();
        assert_eq!(decoder.decode(&[2]), "<bos>", "special tokens are shown");
        let err = TokenizerDecoder::from_file(Path::new("/no/such/tokenizer.json"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("failed to load tokenizer /no/such"),
            "{err}"
        );
    }
}
