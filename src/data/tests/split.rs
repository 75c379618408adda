//! Shard selection for Hub datasets, on file lists shaped like real repos.

use crate::data::{glob_match, select_shards, ShardSelection};

fn select(
    files: &[&str],
    split: &str,
    config: Option<&str>,
    data_files: Option<&str>,
) -> Result<Vec<String>, String> {
    let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    let selection = ShardSelection {
        split,
        config,
        data_files,
    };
    select_shards(&files, &selection).map_err(|err| format!("{err:#}"))
}

#[test]
fn split_keywords_pick_the_shards() {
    let files = [
        ".gitattributes",
        "README.md",
        "data/train-00001-of-00002.parquet",
        "data/train-00000-of-00002.parquet",
        "data/validation-00000-of-00001.parquet",
        "data/test.jsonl",
    ];
    assert_eq!(
        select(&files, "train", None, None).unwrap(),
        [
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet"
        ]
    );
    assert_eq!(
        select(&files, "validation", None, None).unwrap(),
        ["data/validation-00000-of-00001.parquet"]
    );
    assert_eq!(
        select(&files, "test", None, None).unwrap(),
        ["data/test.jsonl"]
    );
    let dev = ["dev.jsonl", "train.jsonl"];
    assert_eq!(
        select(&dev, "validation", None, None).unwrap(),
        ["dev.jsonl"]
    );
}

#[test]
fn unnamed_files_are_all_train() {
    let files = [
        "sample/10BT/000_00000.parquet",
        "sample/10BT/001_00000.parquet",
    ];
    assert_eq!(select(&files, "train", None, None).unwrap().len(), 2);
    let err = select(&files, "test", None, None).unwrap_err();
    assert!(
        err.contains("splits found: none (every file is `train`)"),
        "{err}"
    );
}

#[test]
fn configurations_must_be_chosen() {
    let files = [
        "wikitext-2-raw-v1/train-00000-of-00001.parquet",
        "wikitext-103-raw-v1/train-00000-of-00002.parquet",
        "wikitext-103-raw-v1/train-00001-of-00002.parquet",
    ];
    let err = select(&files, "train", None, None).unwrap_err();
    assert!(
        err.contains("several top-level folders (wikitext-103-raw-v1, wikitext-2-raw-v1)"),
        "{err}"
    );
    assert_eq!(
        select(&files, "train", Some("wikitext-2-raw-v1"), None)
            .unwrap()
            .len(),
        1
    );
    let err = select(&files, "train", Some("wikitext-3"), None).unwrap_err();
    assert!(
        err.contains("no data files in a folder named `wikitext-3`"),
        "{err}"
    );
    let glob = select(&files, "ignored", None, Some("wikitext-103-*/*.parquet")).unwrap();
    assert_eq!(glob.len(), 2);
    let err = select(&files, "train", None, Some("*.jsonl")).unwrap_err();
    assert!(err.contains("no data file matches `*.jsonl`"), "{err}");
    let err = select(&["README.md", "data.csv"], "train", None, None).unwrap_err();
    assert!(err.contains("no data files saectl can read"), "{err}");
}

#[test]
fn glob_semantics() {
    assert!(glob_match("data/*.parquet", "data/train-0.parquet"));
    assert!(!glob_match("data/*.parquet", "data/x/train-0.parquet"));
    assert!(glob_match("**/*.parquet", "train.parquet"));
    assert!(glob_match("**/*.parquet", "a/b/c.parquet"));
    assert!(glob_match("data/**", "data/a/b.jsonl"));
    assert!(glob_match(
        "sample/10BT/00?_*.parquet",
        "sample/10BT/001_00000.parquet"
    ));
    assert!(!glob_match(
        "sample/10BT/00?_*.parquet",
        "sample/10BT/0011_00000.parquet"
    ));
    assert!(!glob_match("a?b", "a/b"));
}
