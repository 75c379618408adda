//! Rewrites the text-pipeline fixtures under `tests/fixtures/` from `corpus/tiny.txt`:
//! the same documents as JSON Lines and as parquet, and the tiny tokenizer trained on them.
//!
//! Run from the repository root: `cargo run --example make_fixtures`. The outputs are
//! committed; `src/data/tests/fixtures.rs` checks that they still match what this writes.

use std::path::Path;

use anyhow::{Context, Result};
use parquet::basic::Compression;
use saectl::data::fixtures::{tiny_tokenizer, write_string_parquet, StringColumn};
use saectl::data::{DataSource, SourceOptions};
use saectl::hub::HubSettings;

const CORPUS: &str = "tests/fixtures/corpus";

fn main() -> Result<()> {
    let source = DataSource::resolve(
        &format!("{CORPUS}/tiny.txt"),
        &SourceOptions::default(),
        &HubSettings::from_env(),
    )?;
    let texts: Vec<String> = source
        .documents()
        .map(|doc| doc.map(|doc| doc.text))
        .collect::<Result<_>>()?;
    let ids: Vec<String> = (0..texts.len()).map(|i| format!("doc-{i:03}")).collect();
    write_jsonl(&ids, &texts)?;
    write_parquet(&ids, &texts)?;

    let tokenizer = tiny_tokenizer(&texts)?;
    let path = "tests/fixtures/tokenizer/tokenizer.json";
    tokenizer
        .save(path, true)
        .map_err(|err| anyhow::anyhow!("failed to save {path}: {err}"))?;
    println!(
        "wrote {} documents and a tokenizer with {} ids",
        texts.len(),
        tokenizer.get_vocab_size(true)
    );
    Ok(())
}

fn write_jsonl(ids: &[String], texts: &[String]) -> Result<()> {
    let mut jsonl = String::new();
    for (id, text) in ids.iter().zip(texts) {
        jsonl.push_str(&serde_json::to_string(
            &serde_json::json!({ "id": id, "text": text }),
        )?);
        jsonl.push('\n');
    }
    write(&format!("{CORPUS}/tiny.jsonl"), jsonl.as_bytes())
}

fn write_parquet(ids: &[String], texts: &[String]) -> Result<()> {
    let id_values: Vec<Option<&str>> = ids.iter().map(|s| Some(s.as_str())).collect();
    let text_values: Vec<Option<&str>> = texts.iter().map(|s| Some(s.as_str())).collect();
    let columns = [
        StringColumn {
            name: "id",
            values: &id_values,
        },
        StringColumn {
            name: "text",
            values: &text_values,
        },
    ];
    // Several row groups, snappy-compressed as the `datasets` library writes them.
    let parquet = Path::new(CORPUS).join("tiny.parquet");
    write_string_parquet(&parquet, &columns, 5, Compression::SNAPPY)
}

fn write(path: &str, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("failed to write {path}"))
}
