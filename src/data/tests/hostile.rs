//! Damaged files found by fuzzing (`fuzz/`, docs/reliability.md): each is a clear error that
//! names the file, never a panic or an allocation the file cannot back.

use super::*;
use crate::data::load_tokenizer;

/// The tokenizers crate panicked (`expect("Helper")` in its decoder deserializer) on a
/// tokenizer.json whose decoder section is not well-formed JSON (a line break inside a key).
#[test]
fn a_tokenizer_that_is_not_json_is_an_error_not_a_panic() {
    let text = std::fs::read_to_string(fixture("tokenizer/tokenizer.json")).unwrap();
    let (head, decoder) = text.split_at(text.find("\"decoder\"").unwrap());
    let broken = format!(
        "{head}{}",
        decoder.replacen("\"replacement\":", "\"replacement\n\":", 1)
    );
    assert_ne!(broken, text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, broken).unwrap();
    let err = format!("{:#}", load_tokenizer(&path).unwrap_err());
    assert!(err.contains("tokenizer.json is not valid JSON"), "{err}");
    assert!(err.contains("control character"), "{err}");
    let err = format!(
        "{:#}",
        DocumentTokenizer::from_file(&path, Default::default()).unwrap_err()
    );
    assert!(err.contains("is not valid JSON"), "{err}");
}
