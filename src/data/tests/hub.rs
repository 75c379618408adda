//! Hugging Face datasets as text sources, without the network: split selection, origins and
//! the summary over a fake hub cache ([`crate::hub::fixtures`]), and an online listing from a
//! one-shot local server whose shards then come from the cache. The Hub client's own rules
//! (settings, lookup, errors) are tested in `src/hub/tests/`.

use parquet::basic::Compression;

use super::*;
use crate::data::fixtures::{write_string_parquet, StringColumn};
use crate::hub::fixtures::add_to_cache;
use crate::hub::tests::{assert_token_sent, listing_body, online_settings, serve_once};
use crate::hub::RepoKind;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A cache holding dataset `org/name` at [`COMMIT`]: the fixture parquet as the train shard,
/// a one-row test shard, and a README.
fn fake_cache() -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let test_path = cache.path().join("test.parquet");
    let test = StringColumn {
        name: "text",
        values: &[Some("a test document")],
    };
    write_string_parquet(&test_path, &[test], 10, Compression::SNAPPY).unwrap();
    let train = std::fs::read(fixture("corpus/tiny.parquet")).unwrap();
    let test = std::fs::read(&test_path).unwrap();
    let files: [(&str, &[u8]); 3] = [
        ("data/train-00000-of-00001.parquet", &train),
        ("data/test-00000-of-00001.parquet", &test),
        ("README.md", b"# org/name"),
    ];
    add_to_cache(cache.path(), RepoKind::Dataset, "org/name", COMMIT, &files).unwrap();
    cache
}

fn hub_documents(
    options: &SourceOptions,
    hub: &HubSettings,
) -> Result<(DataSource, Vec<Document>)> {
    let source = DataSource::resolve("org/name", options, hub)?;
    let documents = source.documents().collect::<Result<Vec<_>>>()?;
    Ok((source, documents))
}

#[test]
fn offline_reads_the_cached_split() {
    let cache = fake_cache();
    let (source, docs) =
        hub_documents(&SourceOptions::default(), &offline_hub(cache.path())).unwrap();
    let local = read_all(&fixture("corpus/tiny.parquet"), &SourceOptions::default()).unwrap();
    assert_eq!(texts(&docs), texts(&local));
    assert_eq!(
        docs[0].origin.to_string(),
        "org/name:data/train-00000-of-00001.parquet row 0"
    );
    let summary = source.summary();
    assert_eq!(
        (summary.kind.as_str(), summary.commit.as_deref()),
        ("hub", Some(COMMIT))
    );
    assert_eq!(summary.files, ["data/train-00000-of-00001.parquet"]);

    let test = SourceOptions {
        split: "test".to_owned(),
        ..SourceOptions::default()
    };
    let (_, docs) = hub_documents(&test, &offline_hub(cache.path())).unwrap();
    assert_eq!(texts(&docs), ["a test document"]);
    let pinned = SourceOptions {
        revision: COMMIT.to_owned(),
        ..SourceOptions::default()
    };
    assert_eq!(
        hub_documents(&pinned, &offline_hub(cache.path()))
            .unwrap()
            .1
            .len(),
        12
    );
}

#[test]
fn offline_without_a_cached_copy_says_so() {
    let cache = tempfile::tempdir().unwrap();
    let err = error_text(hub_documents(
        &SourceOptions::default(),
        &offline_hub(cache.path()),
    ));
    assert!(
        err.contains("`org/name` (revision main) is not a local file or folder"),
        "{err}"
    );
    assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
    let cache = fake_cache();
    let validation = SourceOptions {
        split: "validation".to_owned(),
        ..SourceOptions::default()
    };
    let err = error_text(hub_documents(&validation, &offline_hub(cache.path())));
    assert!(
        err.contains("no data files for split `validation`; splits found: test, train"),
        "{err}"
    );
}

#[test]
fn an_unreachable_hub_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let hub = HubSettings {
        offline: false,
        ..offline_hub(cache.path())
    };
    let err = error_text(hub_documents(&SourceOptions::default(), &hub));
    assert!(
        err.contains("`org/name` (revision main) is not a local file or folder"),
        "{err}"
    );
    assert!(
        err.contains("failed to list the files of dataset `org/name`"),
        "{err}"
    );
    assert!(err.contains("HF_HUB_OFFLINE=1"), "{err}");
}

#[test]
fn online_lists_files_sends_the_token_and_uses_cached_shards() {
    let cache = fake_cache();
    let files = [
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
    ];
    let (endpoint, server) = serve_once(listing_body(COMMIT, &files));
    let hub = online_settings(cache.path(), endpoint);
    // The one request is the listing: the shard comes from the cache, not a download.
    let (source, docs) = hub_documents(&SourceOptions::default(), &hub).unwrap();
    assert_eq!(docs.len(), 12);
    assert_eq!(source.summary().commit.as_deref(), Some(COMMIT));
    let head = server.join().unwrap();
    assert!(
        head[0].starts_with("GET /api/datasets/org/name/revision/main "),
        "{head:?}"
    );
    assert_token_sent(&head);
}
