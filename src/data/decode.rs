//! Token ids back to text: what a samples folder shows next to every id.

use std::path::Path;

use anyhow::Result;

/// Turns token ids into text (a tokenizer, or a test vocabulary).
pub trait TokenDecoder {
    /// Decodes `ids`; implementations return a visible marker rather than fail, so one bad id
    /// cannot lose a whole collection at save time.
    fn decode(&self, ids: &[u32]) -> String;
}

/// A context decoded once, cut around one of its tokens: `prefix + token + suffix` is the
/// context's text wherever the decoder allows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkedText {
    pub text: String,
    pub prefix: String,
    /// The marked token decoded alone.
    pub token: String,
    pub suffix: String,
}

/// Decodes `ids` and locates token `index` in the text. Decoding the parts separately would
/// lose what the decoder puts between tokens (a word-level tokenizer's spaces: `and` `jack`
/// `found` decode to `and jack found`, but the parts to `and`, `jack`, `found`). So the text
/// up to and including the token is decoded too: where it is a prefix of the whole (decoders
/// that only append), the token is found in the span it adds, and the prefix and suffix are cut
/// from the whole text. Other decoders get the parts decoded separately.
pub fn decode_marked(decoder: &dyn TokenDecoder, ids: &[u32], index: usize) -> MarkedText {
    let text = decoder.decode(ids);
    let token = decoder.decode(&ids[index..=index]);
    let before = decoder.decode(&ids[..index]);
    let through = decoder.decode(&ids[..=index]);
    let located = (text.starts_with(&through) && through.starts_with(&before)).then(|| {
        let span = &through[before.len()..];
        match span.find(&token).filter(|_| !token.is_empty()) {
            Some(at) => (before.len() + at, before.len() + at + token.len()),
            None => (before.len(), through.len()),
        }
    });
    let (prefix, suffix) = match located {
        Some((start, end)) => (text[..start].to_string(), text[end..].to_string()),
        None => (before, decoder.decode(&ids[index + 1..])),
    };
    MarkedText {
        text,
        prefix,
        token,
        suffix,
    }
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

    /// A word-level tokenizer without a decoder, as the demo's: tokenizers joins words with
    /// spaces.
    fn word_level() -> TokenizerDecoder {
        let json = r#"{"version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "mia": 1, "and": 2,
                      "jack": 3, "found": 4}, "unk_token": "<unk>"}}"#;
        TokenizerDecoder(json.parse().unwrap())
    }

    #[test]
    fn a_marked_token_keeps_the_spaces_the_decoder_puts_around_it() {
        let decoder = word_level();
        let marked = decode_marked(&decoder, &[1, 2, 3, 4], 2);
        assert_eq!(marked.text, "mia and jack found");
        assert_eq!(
            (
                marked.prefix.as_str(),
                marked.token.as_str(),
                marked.suffix.as_str()
            ),
            ("mia and ", "jack", " found")
        );
        // First and last tokens, and a one-token context.
        let first = decode_marked(&decoder, &[1, 2, 3], 0);
        assert_eq!(
            (first.prefix.as_str(), first.suffix.as_str()),
            ("", " and jack")
        );
        let last = decode_marked(&decoder, &[1, 2, 3], 2);
        assert_eq!(
            (last.prefix.as_str(), last.suffix.as_str()),
            ("mia and ", "")
        );
        let alone = decode_marked(&decoder, &[3], 0);
        assert_eq!((alone.prefix.as_str(), alone.token.as_str()), ("", "jack"));
        // A decoder whose parts concatenate: the same as decoding them separately.
        let ids = decode_marked(&IdDecoder, &[3, 14, 15], 1);
        assert_eq!(
            (ids.prefix.as_str(), ids.token.as_str(), ids.suffix.as_str()),
            ("⟨3⟩", "⟨14⟩", "⟨15⟩")
        );
    }

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
