//! Each format reads the documents it should, in order, with their origins.

use parquet::basic::{Compression, ZstdLevel};

use super::*;
use crate::data::fixtures::{write_string_parquet, StringColumn};
use crate::data::{Locator, SourceFile, TxtDocuments};

fn txt_options(mode: TxtDocuments) -> SourceOptions {
    SourceOptions {
        txt_documents: mode,
        ..SourceOptions::default()
    }
}

#[test]
fn txt_paragraphs_are_blank_line_separated() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "a.txt",
        "\u{feff}one\r\ntwo\n\n  \nthree\n\n\n four \n",
    );
    let docs = read_all(&path, &SourceOptions::default()).unwrap();
    assert_eq!(texts(&docs), ["one\ntwo", "three", " four "]);
    let lines: Vec<_> = docs.iter().map(|d| d.origin.locator).collect();
    assert_eq!(
        lines,
        [Locator::Line(1), Locator::Line(5), Locator::Line(8)]
    );
    assert_eq!(docs[1].origin.to_string(), format!("{}:5", path.display()));
    assert_eq!(docs.iter().map(|d| d.index).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn txt_lines_and_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.txt", "one\ntwo\n\nthree\n");
    let docs = read_all(&path, &txt_options(TxtDocuments::Line)).unwrap();
    assert_eq!(texts(&docs), ["one", "two", "three"]);
    assert_eq!(docs[2].origin.locator, Locator::Line(4));
    let docs = read_all(&path, &txt_options(TxtDocuments::File)).unwrap();
    assert_eq!(texts(&docs), ["one\ntwo\n\nthree\n"]);
    assert_eq!(docs[0].origin.locator, Locator::WholeFile);
    assert_eq!("line".parse::<TxtDocuments>().unwrap(), TxtDocuments::Line);
    assert!("lines".parse::<TxtDocuments>().is_err());
}

#[test]
fn jsonl_reads_the_text_field_and_nulls_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let body =
        "{\"text\": \"a b\", \"id\": 1}\n\n{\"body\": \"x\", \"text\": null}\n{\"text\": \"\"}\n";
    let path = write(dir.path(), "a.jsonl", body);
    let docs = read_all(&path, &SourceOptions::default()).unwrap();
    assert_eq!(texts(&docs), ["a b", "", ""]);
    assert_eq!(docs[1].origin.locator, Locator::Line(3));
    let options = SourceOptions {
        text_field: "body".to_owned(),
        ..SourceOptions::default()
    };
    let path = write(dir.path(), "b.ndjson", "{\"body\": \"x\"}\n");
    assert_eq!(texts(&read_all(&path, &options).unwrap()), ["x"]);
}

fn parquet_file(dir: &Path, values: &[Option<&str>], groups: usize, codec: Compression) -> PathBuf {
    let ids: Vec<Option<&str>> = values.iter().map(|_| Some("id")).collect();
    let path = dir.join("a.parquet");
    let columns = [
        StringColumn {
            name: "id",
            values: &ids,
        },
        StringColumn {
            name: "text",
            values,
        },
    ];
    write_string_parquet(&path, &columns, groups, codec).unwrap();
    path
}

#[test]
fn parquet_streams_row_groups_and_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<String> = (0..600).map(|i| format!("doc {i}")).collect();
    let mut column: Vec<Option<&str>> = values.iter().map(|v| Some(v.as_str())).collect();
    column[7] = None;
    // 600 rows in groups of 250: reads cross both row-group and read-batch boundaries.
    let path = parquet_file(dir.path(), &column, 250, Compression::SNAPPY);
    let docs = read_all(&path, &SourceOptions::default()).unwrap();
    assert_eq!(docs.len(), 600);
    assert_eq!(docs[7].text, "");
    assert_eq!(docs[599].text, "doc 599");
    assert_eq!(docs[300].origin.locator, Locator::Row(300));
}

#[test]
fn parquet_codecs_hugging_face_uses() {
    let dir = tempfile::tempdir().unwrap();
    let codecs = [
        Compression::ZSTD(ZstdLevel::default()),
        Compression::GZIP(Default::default()),
        Compression::LZ4_RAW,
        Compression::UNCOMPRESSED,
    ];
    for codec in codecs {
        let path = parquet_file(dir.path(), &[Some("héllo"), Some("world")], 1, codec);
        let docs = read_all(&path, &SourceOptions::default()).unwrap();
        assert_eq!(texts(&docs), ["héllo", "world"], "{codec:?}");
    }
}

#[test]
fn the_three_fixture_formats_hold_the_same_documents() {
    let txt = read_all(&fixture("corpus/tiny.txt"), &SourceOptions::default()).unwrap();
    let jsonl = read_all(&fixture("corpus/tiny.jsonl"), &SourceOptions::default()).unwrap();
    let parquet = read_all(&fixture("corpus/tiny.parquet"), &SourceOptions::default()).unwrap();
    assert_eq!(txt.len(), 12);
    assert_eq!(texts(&txt), texts(&jsonl));
    assert_eq!(texts(&txt), texts(&parquet));
}

#[test]
fn folders_are_read_recursively_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b/2.txt", "b2");
    write(dir.path(), "b/10.txt", "b10");
    write(dir.path(), "a.jsonl", "{\"text\": \"a\"}\n");
    write(dir.path(), "c.txt", "c");
    write(dir.path(), "notes.md", "ignored");
    write(dir.path(), ".hidden/x.txt", "hidden");
    write(dir.path(), ".y.txt", "hidden");
    let source = resolve(dir.path(), &SourceOptions::default()).unwrap();
    let docs: Vec<Document> = source.documents().collect::<Result<_>>().unwrap();
    // Byte-wise name order: "10.txt" sorts before "2.txt".
    assert_eq!(texts(&docs), ["a", "b10", "b2", "c"]);
    assert_eq!(source.ignored(), [dir.path().join("notes.md")]);
    assert_eq!(source.summary().kind, "folder");
    let json = serde_json::to_string(source.summary()).unwrap();
    assert!(json.contains("\"txt_documents\":\"paragraph\""), "{json}");
    assert!(matches!(&source.files()[0], SourceFile::Local(p) if p.ends_with("a.jsonl")));
    assert_eq!(
        docs.iter().map(|d| d.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

#[test]
fn documents_are_streamed_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.txt", "a");
    write(dir.path(), "b.txt", "b");
    let source = resolve(dir.path(), &SourceOptions::default()).unwrap();
    let mut stream = source.documents();
    assert_eq!(stream.files_opened(), 0);
    stream.next().unwrap().unwrap();
    assert_eq!(stream.files_opened(), 1);
    assert!(stream.current_file().unwrap().ends_with("a.txt"));
    // The second file is opened only when the stream reaches it: deleting it now is seen.
    std::fs::remove_file(dir.path().join("b.txt")).unwrap();
    let err = stream.next().unwrap().unwrap_err();
    assert!(format!("{err:#}").contains("b.txt"), "{err:#}");
}
