//! Hugging Face datasets without the network: a fake hub cache (the layout hf-hub 0.4.3
//! writes: `datasets--org--name/refs/main`, `snapshots/<commit>/…` linking into `blobs/`),
//! and a one-shot local HTTP server standing in for the Hub's file listing.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use parquet::basic::Compression;

use super::*;
use crate::data::fixtures::{write_string_parquet, StringColumn};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A cache holding `org/name` at [`COMMIT`]: the fixture parquet as the train shard (a
/// symbolic link into `blobs/`, as hf-hub stores it), a one-row test shard, and a README.
fn fake_cache() -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("datasets--org--name");
    write(&repo, "refs/main", COMMIT);
    let blob = write(
        &repo,
        "blobs/5f1e",
        std::fs::read(fixture("corpus/tiny.parquet")).unwrap(),
    );
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(snapshot.join("data")).unwrap();
    std::os::unix::fs::symlink(&blob, snapshot.join("data/train-00000-of-00001.parquet")).unwrap();
    let test = StringColumn {
        name: "text",
        values: &[Some("a test document")],
    };
    let test_path = snapshot.join("data/test-00000-of-00001.parquet");
    write_string_parquet(&test_path, &[test], 10, Compression::SNAPPY).unwrap();
    write(&snapshot, "README.md", "# org/name");
    cache
}

fn hub_documents(options: &SourceOptions, hub: &HubOptions) -> Result<(DataSource, Vec<Document>)> {
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
    let hub = HubOptions {
        offline: false,
        ..offline_hub(cache.path())
    };
    let err = error_text(hub_documents(&SourceOptions::default(), &hub));
    assert!(
        err.contains("failed to list the files of dataset `org/name`"),
        "{err}"
    );
    assert!(err.contains("HF_HUB_OFFLINE=1"), "{err}");
}

/// Serves one request with `body`; returns the server's address and the request head.
fn serve_once(body: String) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let head: Vec<String> = BufReader::new(stream.try_clone().unwrap())
            .lines()
            .map(Result::unwrap)
            .take_while(|line| !line.is_empty())
            .collect();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).unwrap();
        head
    });
    (address, server)
}

#[test]
fn online_lists_files_sends_the_token_and_uses_cached_shards() {
    let cache = fake_cache();
    let files = [
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
    ];
    let siblings: Vec<_> = files
        .iter()
        .map(|f| serde_json::json!({ "rfilename": f }))
        .collect();
    let body = serde_json::json!({ "sha": COMMIT, "siblings": siblings }).to_string();
    let (endpoint, server) = serve_once(body);
    let hub = HubOptions {
        cache_dir: cache.path().to_path_buf(),
        token: Some("secret".to_owned()),
        offline: false,
        endpoint,
    };
    // The one request is the listing: the shard comes from the cache, not a download.
    let (_, docs) = hub_documents(&SourceOptions::default(), &hub).unwrap();
    assert_eq!(docs.len(), 12);
    let head = server.join().unwrap();
    assert!(
        head[0].starts_with("GET /api/datasets/org/name/revision/main "),
        "{head:?}"
    );
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: Bearer secret")),
        "{head:?}"
    );
}

#[test]
fn options_come_from_the_environment_like_huggingface_hub() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = write(dir.path(), "hf/token", "from-file\n");
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let options = HubOptions::from_vars(vars(&[("HOME", "/home/u")]));
    assert_eq!(
        options.cache_dir,
        Path::new("/home/u/.cache/huggingface/hub")
    );
    assert_eq!(
        (options.offline, options.endpoint.as_str()),
        (false, "https://huggingface.co")
    );
    let options = HubOptions::from_vars(vars(&[
        ("HF_HOME", "/data/hf"),
        ("HF_TOKEN", "tok"),
        ("HF_HUB_OFFLINE", "True"),
        ("HF_ENDPOINT", "https://mirror.example/"),
    ]));
    assert_eq!(options.cache_dir, Path::new("/data/hf/hub"));
    assert_eq!(options.token.as_deref(), Some("tok"));
    assert!(options.offline);
    assert_eq!(options.endpoint, "https://mirror.example");
    assert!(!format!("{options:?}").contains("tok\""), "{options:?}");
    let hf_home = token_file.parent().unwrap().to_str().unwrap().to_owned();
    let options = HubOptions::from_vars(move |name| match name {
        "HF_HOME" => Some(hf_home.clone()),
        "HF_HUB_CACHE" => Some("/cache".to_owned()),
        _ => None,
    });
    assert_eq!(options.cache_dir, Path::new("/cache"));
    assert_eq!(options.token.as_deref(), Some("from-file"));
}
