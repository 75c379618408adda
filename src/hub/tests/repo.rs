//! `HubRepo`: cache lookup by branch and by commit, offline errors, listings from the cache
//! and from a stand-in Hub, downloads with the token, and no cache folder at all.

use std::path::Path;

use super::{assert_token_sent, listing_body, offline_settings, online_settings};
use super::{response, serve, serve_once};
use crate::hub::fixtures::add_to_cache;
use crate::hub::{HubRepo, HubSettings, RepoKind, RepoListing};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// `org/name` of `kind` at [`COMMIT`]: a README, a nested shard, and a link whose blob is gone.
fn fake_cache(kind: RepoKind) -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let files: [(&str, &[u8]); 3] = [
        ("README.md", b"# org/name"),
        ("data/train-00000-of-00001.parquet", b"shard"),
        ("data/lost.parquet", b"gone"),
    ];
    add_to_cache(cache.path(), kind, "org/name", COMMIT, &files).unwrap();
    let blobs = cache
        .path()
        .join(format!("{}s--org--name/blobs", kind.noun()));
    std::fs::remove_file(blobs.join(format!("blob2-{COMMIT}"))).unwrap();
    cache
}

fn repo(settings: HubSettings, kind: RepoKind, revision: Option<&str>) -> HubRepo {
    HubRepo::new(settings, kind, "org/name", revision)
}

fn error_text<T: std::fmt::Debug>(result: anyhow::Result<T>) -> String {
    format!("{:#}", result.expect_err("expected an error"))
}

#[test]
fn cached_files_are_found_by_branch_and_by_commit() {
    for kind in [RepoKind::Model, RepoKind::Dataset] {
        let cache = fake_cache(kind);
        let settings = offline_settings(cache.path());
        for revision in [None, Some("main"), Some(COMMIT)] {
            let repo = repo(settings.clone(), kind, revision);
            assert_eq!(repo.cached_commit().as_deref(), Some(COMMIT));
            let readme = repo.cached("README.md").unwrap();
            assert_eq!(std::fs::read_to_string(&readme).unwrap(), "# org/name");
            assert_eq!(repo.get("README.md").unwrap(), readme);
            assert!(repo.cached("data/lost.parquet").is_none());
        }
        for revision in ["other-branch", "../../..", "refs/../main"] {
            let repo = repo(settings.clone(), kind, Some(revision));
            assert!(repo.cached_commit().is_none(), "{revision}");
            assert!(repo.cached("README.md").is_none(), "{revision}");
        }
    }
}

#[test]
fn offline_a_missing_file_names_file_repo_and_cache() {
    let cache = fake_cache(RepoKind::Model);
    let repo = repo(offline_settings(cache.path()), RepoKind::Model, None);
    let err = error_text(repo.get("model.safetensors"));
    let expected = "`model.safetensors` of model `org/name` (revision main) is not in the local \
                    Hugging Face cache";
    assert!(err.contains(expected), "{err}");
    assert!(err.contains(cache.path().to_str().unwrap()), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
    // The dataset folder is another one: the model's files are not the dataset's.
    let dataset = HubRepo::new(
        offline_settings(cache.path()),
        RepoKind::Dataset,
        "org/name",
        None,
    );
    assert!(dataset.get("README.md").is_err());
}

#[test]
fn offline_listings_come_from_the_cached_snapshot() {
    let cache = fake_cache(RepoKind::Dataset);
    let settings = offline_settings(cache.path());
    let expected = RepoListing {
        commit: COMMIT.to_owned(),
        files: vec![
            "README.md".to_owned(),
            "data/train-00000-of-00001.parquet".to_owned(),
        ],
    };
    for revision in ["main", COMMIT] {
        let listing = repo(settings.clone(), RepoKind::Dataset, Some(revision)).list();
        assert_eq!(listing.unwrap(), expected);
    }
    let err = error_text(repo(settings, RepoKind::Dataset, Some("v2")).list());
    assert!(
        err.contains("dataset `org/name` (revision v2) is not in the local Hugging Face cache"),
        "{err}"
    );
    assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
}

#[test]
fn online_listings_ask_the_hub_with_the_token() {
    for (kind, api) in [(RepoKind::Model, "models"), (RepoKind::Dataset, "datasets")] {
        let cache = tempfile::tempdir().unwrap();
        let (endpoint, server) = serve_once(listing_body(COMMIT, &["a.txt", "b/c.json"]));
        let settings = online_settings(cache.path(), endpoint);
        let listing = repo(settings, kind, Some("dev")).list().unwrap();
        assert_eq!(listing.commit, COMMIT);
        assert_eq!(listing.files, ["a.txt", "b/c.json"]);
        let head = server.join().unwrap();
        let request = format!("GET /api/{api}/org/name/revision/dev ");
        assert!(head[0].starts_with(&request), "{head:?}");
        assert_token_sent(&head);
    }
}

#[test]
fn online_a_missing_file_is_downloaded_into_the_cache_once() {
    let cache = tempfile::tempdir().unwrap();
    let body = "{\"vocab_size\": 256}";
    let headers = format!(
        "ETag: \"abc123\"\r\nX-Repo-Commit: {COMMIT}\r\nContent-Range: bytes 0-0/{}\r\n",
        body.len()
    );
    let (endpoint, server) = serve(vec![
        response(
            "206 Partial Content",
            "application/json",
            &body[..1],
            &headers,
        ),
        response("200 OK", "application/json", body, ""),
    ]);
    let repo = repo(
        online_settings(cache.path(), endpoint),
        RepoKind::Model,
        None,
    );
    let path = repo.get("config.json").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), body);
    let snapshot = cache
        .path()
        .join("models--org--name/snapshots")
        .join(COMMIT);
    assert_eq!(path, snapshot.join("config.json"));
    for head in server.join().unwrap() {
        let request = "GET /org/name/resolve/main/config.json ";
        assert!(head[0].starts_with(request), "{head:?}");
        assert_token_sent(&head);
    }
    // The server is gone: the second request must be answered by the cache.
    assert_eq!(repo.cached_commit().as_deref(), Some(COMMIT));
    assert_eq!(repo.get("config.json").unwrap(), path);
}

#[test]
fn an_unreachable_hub_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let settings = HubSettings {
        offline: false,
        ..offline_settings(cache.path())
    };
    let repo = repo(settings, RepoKind::Dataset, None);
    let err = error_text(repo.list());
    let expected = "failed to list the files of dataset `org/name` (revision main) on \
                    http://127.0.0.1:9";
    assert!(err.contains(expected), "{err}");
    assert!(err.contains("need HF_TOKEN"), "{err}");
    assert!(err.contains("set HF_HUB_OFFLINE=1"), "{err}");
    let err = error_text(repo.get("README.md"));
    assert!(
        err.contains("failed to download `README.md` of dataset"),
        "{err}"
    );
}

#[test]
fn without_a_cache_folder_only_hub_calls_fail() {
    let repo = repo(HubSettings::from_vars(|_| None), RepoKind::Model, None);
    assert!(repo.cached("config.json").is_none());
    assert!(repo.cached_commit().is_none());
    for err in [error_text(repo.get("config.json")), error_text(repo.list())] {
        assert!(err.contains("cannot find the Hugging Face cache"), "{err}");
    }
}

#[test]
fn pinning_keeps_the_repo_and_debug_hides_the_token() {
    let settings = HubSettings {
        token: Some("hf_secret".to_owned()),
        ..offline_settings(Path::new("/nonexistent"))
    };
    let pinned = repo(settings, RepoKind::Dataset, None).at_commit(COMMIT);
    assert_eq!((pinned.repo_id(), pinned.revision()), ("org/name", COMMIT));
    assert_eq!(pinned.kind(), RepoKind::Dataset);
    assert!(pinned.is_offline());
    let shown = format!("{pinned:?}");
    assert!(!shown.contains("hf_secret"), "{shown}");
    assert_eq!(shown, format!("HubRepo(dataset org/name@{COMMIT})"));
}
