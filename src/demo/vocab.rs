//! The demo's word-level tokenizer: one token per word of the grammar, written as a standard
//! Hugging Face `tokenizer.json` so every part of saectl loads it like any other tokenizer.
//!
//! The ids follow Gemma's layout for the special tokens (`<pad>` 0, `<eos>` 1, `<bos>` 2,
//! `<unk>` 3), then punctuation, function words and the concept words in concept order. The
//! JSON is built by hand rather than through the `tokenizers` builder API so that the file is
//! byte-for-byte reproducible and readable in a diff; a test loads it back with `tokenizers`.

use serde_json::{json, Value};

use super::concepts::{Concept, FUNCTION_WORDS, PUNCTUATION};

/// Gemma's special tokens and their ids.
pub const SPECIAL_TOKENS: [&str; 4] = ["<pad>", "<eos>", "<bos>", "<unk>"];
pub const BOS_ID: u32 = 2;
pub const EOS_ID: u32 = 1;
pub const PAD_ID: u32 = 0;

/// Every token of the vocabulary, in id order.
pub fn vocabulary() -> Vec<&'static str> {
    let mut tokens: Vec<&'static str> = SPECIAL_TOKENS.to_vec();
    tokens.extend_from_slice(PUNCTUATION);
    tokens.extend_from_slice(FUNCTION_WORDS);
    for concept in Concept::ALL {
        tokens.extend_from_slice(concept.words());
    }
    tokens
}

/// The model's vocabulary size: the tokenizer's, rounded up to a multiple of 16 as model
/// vocabularies usually are (the extra rows are never produced by the tokenizer).
pub fn model_vocab_size() -> usize {
    vocabulary().len().div_ceil(16) * 16
}

/// The `tokenizer.json` text: WordLevel on whitespace, `<bos>` prepended by the template.
pub fn tokenizer_json() -> String {
    let tokens = vocabulary();
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.to_string(), json!(id)))
        .collect();
    let added: Vec<Value> = SPECIAL_TOKENS
        .iter()
        .enumerate()
        .map(|(id, token)| {
            json!({
                "id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true
            })
        })
        .collect();
    let bos = SPECIAL_TOKENS[BOS_ID as usize];
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": { "type": "WhitespaceSplit" },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                { "SpecialToken": { "id": bos, "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } }
            ],
            "pair": [
                { "SpecialToken": { "id": bos, "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } },
                { "Sequence": { "id": "B", "type_id": 1 } }
            ],
            "special_tokens": { bos: { "id": bos, "ids": [BOS_ID], "tokens": [bos] } }
        },
        "decoder": null,
        "model": { "type": "WordLevel", "vocab": vocab, "unk_token": "<unk>" }
    });
    // serde_json's map keeps insertion order only with `preserve_order`; without it keys are
    // sorted, which is just as deterministic.
    serde_json::to_string_pretty(&tokenizer).expect("a JSON value always serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::super::grammar::CorpusGenerator;
    use super::*;
    use std::str::FromStr;
    use tokenizers::Tokenizer;

    #[test]
    fn the_tokenizer_loads_and_round_trips_the_corpus_one_token_per_word() {
        let tokenizer = Tokenizer::from_str(&tokenizer_json()).unwrap();
        assert_eq!(tokenizer.get_vocab_size(true), vocabulary().len());
        assert_eq!(tokenizer.token_to_id("<bos>"), Some(BOS_ID));
        assert_eq!(tokenizer.token_to_id("<eos>"), Some(EOS_ID));
        for doc in CorpusGenerator::new(3).documents(50) {
            let plain = tokenizer.encode(doc.as_str(), false).unwrap();
            assert_eq!(plain.get_ids().len(), doc.split(' ').count());
            assert!(!plain.get_ids().contains(&3), "no <unk> in {doc}");
            assert_eq!(tokenizer.decode(plain.get_ids(), true).unwrap(), doc);
            let with_bos = tokenizer.encode(doc.as_str(), true).unwrap();
            assert_eq!(with_bos.get_ids()[0], BOS_ID);
        }
        assert!(model_vocab_size() >= vocabulary().len() && model_vocab_size() % 16 == 0);
    }
}
