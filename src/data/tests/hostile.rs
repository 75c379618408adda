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

/// Fuzzing (tokenizer target, after 3 k executions): an invalid UTF-8 byte inside the
/// decoder's type name passed the JSON check (`IgnoredAny` skips a string's bytes unchecked)
/// and the tokenizers crate panicked on it ("invalid unicode code point").
#[test]
fn a_tokenizer_that_is_not_utf8_is_an_error_not_a_panic() {
    let text = std::fs::read_to_string(fixture("tokenizer/tokenizer.json")).unwrap();
    let decoder = text.find("\"decoder\"").unwrap();
    let at = decoder + text[decoder..].find("\"Metaspace\"").unwrap() + "\"Metas".len();
    let mut bytes = text.into_bytes();
    bytes[at] = 0xff;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, bytes).unwrap();
    let err = format!("{:#}", load_tokenizer(&path).unwrap_err());
    assert!(err.contains("tokenizer.json is not UTF-8 text"), "{err}");
}

/// Fuzzing (parquet target, after 195 k executions): a footer naming a column chunk at a
/// negative offset made the parquet crate panic ("column start and length should not be
/// negative"). Every chunk is now checked against the file's length first.
#[test]
fn a_parquet_column_chunk_outside_the_file_is_an_error_not_a_panic() {
    use parquet::file::metadata::ParquetMetaDataWriter;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let path = fixture("corpus/tiny.parquet");
    let bytes = std::fs::read(&path).unwrap();
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let footer = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let data_end = bytes.len() - 8 - footer as usize;
    for (offset, size) in [(-4, None), (0, Some(1 << 40))] {
        let mut builder = reader.metadata().clone().into_builder();
        let row_groups = builder
            .take_row_groups()
            .into_iter()
            .map(|group| {
                let columns = group
                    .columns()
                    .iter()
                    .map(|column| {
                        let column = column
                            .clone()
                            .into_builder()
                            .set_dictionary_page_offset(None)
                            .set_data_page_offset(offset);
                        match size {
                            Some(size) => column.set_total_compressed_size(size),
                            None => column,
                        }
                        .build()
                        .unwrap()
                    })
                    .collect();
                group
                    .into_builder()
                    .set_column_metadata(columns)
                    .build()
                    .unwrap()
            })
            .collect();
        let metadata = builder.set_row_groups(row_groups).build();
        let mut damaged = bytes[..data_end].to_vec();
        ParquetMetaDataWriter::new(&mut damaged, &metadata)
            .finish()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "damaged.parquet", &damaged);
        let err = error_text(read_all(&file, &SourceOptions::default()));
        assert!(err.contains("lies outside the file"), "{err}");
    }
}

/// The first error reading every document of the hostile fixture `name` gives, which must
/// name the file.
fn first_error_of_hostile_parquet(name: &str) -> String {
    let path = fixture(&format!("hostile/{name}"));
    let hub = crate::hub::HubSettings::from_vars(|_| None);
    let source =
        DataSource::resolve(&path.to_string_lossy(), &SourceOptions::default(), &hub).unwrap();
    let err = source
        .documents()
        .find_map(|document| document.err())
        .expect("the damage is an error");
    let err = format!("{err:#}");
    assert!(err.contains(name), "{err}");
    err
}

/// Fuzzing (parquet target, after 4.6 k executions of the second 1M run): a dictionary page
/// shorter than its header says made the parquet crate assert (`size <= src.len()` in
/// `bit_util`). The reader now turns a panic inside the crate into an error naming the file.
#[test]
fn a_parquet_page_shorter_than_it_says_is_an_error_not_a_panic() {
    let err = first_error_of_hostile_parquet("parquet-short-dictionary-page.parquet");
    assert!(err.contains("is damaged"), "{err}");
}

/// Fuzzing (parquet target, at 515 k executions of the third 1M run): a page header whose
/// unknown field is a list of millions of doubles. The crate skips each double by copying
/// "up to 8 bytes", which succeeds at the end of the file, so it issued millions of empty
/// reads (14 s in release on this 3 KB file) before failing. Reads past the end of the file
/// are now an error at once.
#[test]
fn a_parquet_page_header_that_runs_past_the_file_stops_at_its_end() {
    let err = first_error_of_hostile_parquet("parquet-endless-page-header.parquet");
    assert!(err.contains("past the end of the file"), "{err}");
}
