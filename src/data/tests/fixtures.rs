//! The committed fixtures are what `examples/make_fixtures.rs` writes, and have the layout
//! the tiny model relies on.

use super::*;
use crate::data::fixtures::{tiny_tokenizer, SPECIAL_TOKENS, TINY_VOCAB_SIZE};

#[test]
fn tokenizer_fixture_has_gemma_special_ids_and_a_small_vocabulary() {
    let tokenizer = fixture_tokenizer();
    let tokenizer = tokenizer.tokenizer();
    for (id, name) in SPECIAL_TOKENS.iter().enumerate() {
        assert_eq!(tokenizer.token_to_id(name), Some(id as u32), "{name}");
    }
    assert!(tokenizer.get_vocab_size(true) <= TINY_VOCAB_SIZE);
    let size = std::fs::metadata(fixture("tokenizer/tokenizer.json"))
        .unwrap()
        .len();
    assert!(size < 100_000, "{size} bytes");
    let encoding = tokenizer.encode("the river ran", false).unwrap();
    assert_eq!(
        tokenizer.decode(encoding.get_ids(), true).unwrap(),
        "the river ran"
    );
}

#[test]
fn committed_tokenizer_is_what_the_generator_writes() {
    let docs = read_all(&fixture("corpus/tiny.txt"), &SourceOptions::default()).unwrap();
    let fresh = tiny_tokenizer(&texts(&docs))
        .unwrap()
        .to_string(true)
        .unwrap();
    let committed = std::fs::read_to_string(fixture("tokenizer/tokenizer.json")).unwrap();
    assert_eq!(
        fresh.trim_end(),
        committed.trim_end(),
        "rerun `cargo run --example make_fixtures`"
    );
}
