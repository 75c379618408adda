//! Every input problem is a clear error naming the file and the place, never a panic.

use parquet::basic::Compression;

use super::*;
use crate::data::fixtures::{write_string_parquet, StringColumn};
use crate::data::TxtDocuments;

fn read_error(path: &Path, options: &SourceOptions) -> String {
    error_text(read_all(path, options))
}

#[test]
fn non_utf8_text_names_file_line_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.txt", b"fine\nab\xffc\n");
    let err = read_error(&path, &SourceOptions::default());
    assert!(err.contains("bad.txt"), "{err}");
    assert!(err.contains("line 2 at byte offset 7 (byte 0xff)"), "{err}");
    let whole = SourceOptions {
        txt_documents: TxtDocuments::File,
        ..SourceOptions::default()
    };
    let err = read_error(&path, &whole);
    assert!(err.contains("line 2 at byte offset 7"), "{err}");
    let path = write(dir.path(), "bad.jsonl", b"{\"text\": \"\xc3\x28\"}\n");
    let err = read_error(&path, &SourceOptions::default());
    assert!(
        err.contains("bad.jsonl: invalid UTF-8 on line 1 at byte offset 10"),
        "{err}"
    );
}

#[test]
fn jsonl_problems_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{\"body\": \"x\", \"id\": 1}",
            "a.jsonl:2: no field `text` (fields on this line: body, id)",
        ),
        ("{\"text\": 1", "a.jsonl:2: malformed JSON"),
        (
            "[1, 2]",
            "a.jsonl:2: expected a JSON object, found an array",
        ),
        (
            "{\"text\": 3}",
            "a.jsonl:2: field `text` is a number, expected a string",
        ),
    ];
    for (line, expected) in cases {
        let path = write(
            dir.path(),
            "a.jsonl",
            format!("{{\"text\": \"ok\"}}\n{line}\n"),
        );
        let err = read_error(&path, &SourceOptions::default());
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn parquet_without_the_text_column_lists_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    let columns = [
        StringColumn {
            name: "id",
            values: &[Some("1")],
        },
        StringColumn {
            name: "content",
            values: &[Some("x")],
        },
    ];
    write_string_parquet(&path, &columns, 10, Compression::SNAPPY).unwrap();
    let err = read_error(&path, &SourceOptions::default());
    assert!(
        err.contains("has no column `text`; its columns are: id, content"),
        "{err}"
    );
}

#[test]
fn parquet_non_utf8_value_names_the_row() {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    // The fixture writer takes &str, so the bad bytes go through the raw writer.
    let schema = "message schema { REQUIRED BYTE_ARRAY text (UTF8); }";
    let schema = Arc::new(parquet::schema::parser::parse_message_type(schema).unwrap());
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, Default::default()).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    let values = [ByteArray::from("fine"), ByteArray::from(b"ok\xff".to_vec())];
    column
        .typed::<ByteArrayType>()
        .write_batch(&values, None, None)
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
    let err = read_error(&path, &SourceOptions::default());
    assert!(
        err.contains("row 1: column `text` is not valid UTF-8 at byte offset 2"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "fake.parquet", "not parquet at all");
    let err = read_error(&path, &SourceOptions::default());
    assert!(
        err.contains("failed to read") && err.contains("fake.parquet as a parquet file"),
        "{err}"
    );
}

#[test]
fn unreadable_and_unknown_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.csv", "x");
    let err = error_text(resolve(&path, &SourceOptions::default()));
    assert!(err.contains("a.csv: unsupported file type"), "{err}");
    let err = error_text(resolve(
        &dir.path().join("missing.txt"),
        &SourceOptions::default(),
    ));
    assert!(
        err.contains("no such file or folder") && err.contains("missing.txt"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    write(empty.path(), "readme.md", "x");
    let err = error_text(resolve(empty.path(), &SourceOptions::default()));
    assert!(
        err.contains("holds no text files") && err.contains("1 other file(s) ignored"),
        "{err}"
    );
    // A folder named like a text file cannot be read as one.
    let folder = dir.path().join("folder.txt");
    std::fs::create_dir(&folder).unwrap();
    let reader =
        crate::data::txt::TxtReader::open(&folder, "folder.txt".into(), TxtDocuments::File);
    let err = error_text(reader.and_then(|mut r| r.next().unwrap()));
    assert!(err.contains("failed to read folder.txt"), "{err}");
}

#[test]
fn the_stream_ends_after_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.jsonl",
        "{\"text\": \"a\"}\nnot json\n{\"text\": \"c\"}\n",
    );
    let mut stream = resolve(dir.path(), &SourceOptions::default())
        .unwrap()
        .documents();
    assert!(stream.next().unwrap().is_ok());
    assert!(stream.next().unwrap().is_err());
    assert!(stream.next().is_none());
}
