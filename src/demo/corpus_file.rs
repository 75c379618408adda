//! Demo corpora on disk: the generated documents as JSON lines (`{"text": …}`), the format
//! every text command reads.

use std::path::Path;

use anyhow::Result;

use super::grammar::CorpusGenerator;
use crate::util::atomic::write_atomic;

/// Seeds of the corpora. The language model trained on `LM_TRAIN` (and was evaluated on
/// `LM_TRAIN + 1`); the SAE and collection corpora are further seeds it never saw.
pub const SAE_TRAIN_SEED: u64 = 3;
pub const HELD_OUT_SEED: u64 = 4;

/// Writes `documents` documents generated from `seed` to `path` as JSON lines, atomically.
pub fn write_corpus(path: &Path, seed: u64, documents: usize) -> Result<()> {
    let mut text = String::new();
    for doc in CorpusGenerator::new(seed).documents(documents) {
        text.push_str(&serde_json::json!({ "text": doc }).to_string());
        text.push('\n');
    }
    // No folder sync: the corpus is regenerated from its seed.
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_one_json_document_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        write_corpus(&path, 9, 12).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(docs, CorpusGenerator::new(9).documents(12));
    }
}
