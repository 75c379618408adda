//! `TokenWindows` end to end with the fixture tokenizer: BOS handling, formats, counts,
//! budget, determinism, and the empty-corpus errors.

use super::*;
use crate::data::fixtures::tiny_tokenizer;
use crate::data::{Bos, PackConfig, PackCounts, TokenWindows, WindowBatch};

fn windows_of(spec: &Path, config: PackConfig, bos: Bos) -> Result<(Vec<WindowBatch>, PackCounts)> {
    let tokenizer = DocumentTokenizer::new(fixture_tokenizer().tokenizer().clone(), bos)?;
    let documents = resolve(spec, &SourceOptions::default())?.documents();
    let mut windows = TokenWindows::new(documents, tokenizer, config)?;
    let batches = windows.by_ref().collect::<Result<Vec<_>>>()?;
    Ok((batches, windows.counts().clone()))
}

fn flat(batches: &[WindowBatch]) -> Vec<u32> {
    batches
        .iter()
        .flat_map(|b| b.tokens.iter().copied())
        .collect()
}

#[test]
fn every_document_gets_exactly_one_bos() {
    let tokenizer = fixture_tokenizer();
    assert_eq!(tokenizer.bos_id(), Some(2));
    let docs = read_all(&fixture("corpus/tiny.txt"), &SourceOptions::default()).unwrap();
    // The fixture, like Gemma's tokenizer, adds <bos> itself when asked for special tokens.
    let templated = tokenizer
        .tokenizer()
        .encode(docs[0].text.as_str(), true)
        .unwrap();
    assert_eq!(
        templated.get_ids()[..2],
        [2, tokenizer.encode(&docs[0].text).unwrap()[0]]
    );
    let mut expected = Vec::new();
    for doc in &docs {
        expected.push(2);
        expected.extend(tokenizer.encode(&doc.text).unwrap());
    }
    let (batches, counts) = windows_of(
        &fixture("corpus/tiny.txt"),
        PackConfig::new(3, 16),
        Bos::FromTokenizer,
    )
    .unwrap();
    let packed = flat(&batches);
    assert_eq!(packed[..], expected[..packed.len()]);
    assert_eq!(counts.tokens_read, expected.len() as u64);
    assert_eq!(counts.tokens_unused, expected.len() as u64 % 16);
    assert_eq!(counts.windows, expected.len() as u64 / 16);
    assert_eq!(counts.documents_read, 12);
    assert!(packed.iter().all(|&id| id < 512));
}

#[test]
fn all_formats_give_the_same_windows_deterministically() {
    let config = PackConfig::new(4, 8);
    let (txt, _) = windows_of(
        &fixture("corpus/tiny.txt"),
        config.clone(),
        Bos::FromTokenizer,
    )
    .unwrap();
    let (again, _) = windows_of(
        &fixture("corpus/tiny.txt"),
        config.clone(),
        Bos::FromTokenizer,
    )
    .unwrap();
    let (jsonl, _) = windows_of(
        &fixture("corpus/tiny.jsonl"),
        config.clone(),
        Bos::FromTokenizer,
    )
    .unwrap();
    let (parquet, _) =
        windows_of(&fixture("corpus/tiny.parquet"), config, Bos::FromTokenizer).unwrap();
    assert_eq!(txt, again);
    assert_eq!(flat(&txt), flat(&jsonl));
    assert_eq!(flat(&txt), flat(&parquet));
    assert_eq!(
        jsonl[1].origins[0].origin.file.as_ref(),
        fixture("corpus/tiny.jsonl").to_str().unwrap()
    );
}

#[test]
fn bos_can_be_chosen_or_left_out() {
    let config = PackConfig::new(1, 4);
    let path = fixture("corpus/tiny.jsonl");
    let (none, counts) = windows_of(&path, config.clone(), Bos::None).unwrap();
    assert!(!flat(&none).contains(&2));
    let (with, with_counts) = windows_of(&path, config.clone(), Bos::FromTokenizer).unwrap();
    assert_eq!(with_counts.tokens_read, counts.tokens_read + 12);
    let (custom, _) = windows_of(&path, config, Bos::Id(1)).unwrap();
    assert_eq!(custom[0].tokens[0], 1);
    assert_eq!(with[0].tokens[0], 2);
    let bare = tokenizers::Tokenizer::new(tokenizers::models::bpe::BPE::default());
    let err = error_text(DocumentTokenizer::new(bare, Bos::FromTokenizer));
    assert!(
        err.contains("no BOS token") && err.contains("--bos-id"),
        "{err}"
    );
}

#[test]
fn the_budget_stops_the_stream() {
    let mut config = PackConfig::new(2, 8);
    config.num_tokens = Some(33); // 5 windows
    let (batches, counts) =
        windows_of(&fixture("corpus/tiny.txt"), config, Bos::FromTokenizer).unwrap();
    assert_eq!(
        batches.iter().map(|b| b.rows).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert_eq!(counts.windows, 5);
    assert!(counts.documents_read < 12);
}

#[test]
fn corpora_without_a_window_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = PackConfig::new(1, 64);
    let empty = write(dir.path(), "empty.txt", "\n\n");
    let err = error_text(windows_of(&empty, config.clone(), Bos::FromTokenizer));
    assert!(err.contains("the corpus has no documents"), "{err}");
    let blank = write(
        dir.path(),
        "blank.jsonl",
        "{\"text\": \"\"}\n{\"text\": null}\n",
    );
    let err = error_text(windows_of(&blank, config.clone(), Bos::FromTokenizer));
    assert!(
        err.contains("all 2 documents of the corpus are empty"),
        "{err}"
    );
    let short = write(dir.path(), "short.txt", "the cat\n\nthe dog\n");
    let err = error_text(windows_of(&short, config, Bos::FromTokenizer));
    assert!(
        err.contains("in 2 non-empty documents: not enough for one window of 64"),
        "{err}"
    );
}

#[test]
fn windows_can_be_produced_on_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<TokenWindows<crate::data::DocumentStream>>();
}

#[test]
fn a_literal_bos_in_the_text_is_the_special_token() {
    let ids = fixture_tokenizer().encode("the <bos> cat").unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == 2).count(), 1, "{ids:?}");
}

#[test]
fn tokenizer_truncation_in_the_file_is_ignored() {
    let docs = read_all(&fixture("corpus/tiny.txt"), &SourceOptions::default()).unwrap();
    let mut tokenizer = tiny_tokenizer(&texts(&docs)).unwrap();
    let truncation = tokenizers::TruncationParams {
        max_length: 3,
        ..Default::default()
    };
    tokenizer.with_truncation(Some(truncation)).unwrap();
    let tokenizer = DocumentTokenizer::new(tokenizer, Bos::FromTokenizer).unwrap();
    assert!(tokenizer.encode(&docs[0].text).unwrap().len() > 3);
}
