//! Choosing the shards of a Hugging Face dataset repo for one split (and configuration).
//!
//! Without a loading script or README metadata to read, saectl follows the conventions the
//! `datasets` library applies to repos that have neither: a file belongs to a split when a
//! part of its path — cut at `/`, `-`, `_`, `.`, spaces and digits — is one of that split's
//! keywords (`train`, `training`; `validation`, `valid`, `val`, `dev`; `test`, `testing`,
//! `eval`, `evaluation`), and when no file names any split, every file is `train`. A
//! configuration is a folder of that name anywhere in the path. `--data-files` replaces both
//! rules with an explicit glob. Anything ambiguous is an error that lists the choices.

use std::collections::BTreeSet;

use anyhow::{bail, Result};

use super::files::{Format, SUPPORTED_EXTENSIONS};

/// What to read from a dataset repo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSelection<'a> {
    pub split: &'a str,
    pub config: Option<&'a str>,
    /// A glob over repo paths (`*`, `?` within a folder, `**` across folders).
    pub data_files: Option<&'a str>,
}

const SPLIT_KEYWORDS: [(&str, &[&str]); 3] = [
    ("train", &["train", "training"]),
    ("validation", &["validation", "valid", "val", "dev"]),
    ("test", &["test", "testing", "eval", "evaluation"]),
];

/// The readable files of `files` (repo paths) that `selection` names, sorted.
pub fn select_shards(files: &[String], selection: &ShardSelection) -> Result<Vec<String>> {
    let mut data: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|file| Format::of(file).is_some())
        .collect();
    data.sort_unstable();
    if data.is_empty() {
        bail!("the dataset has no data files saectl can read ({SUPPORTED_EXTENSIONS})");
    }
    if let Some(pattern) = selection.data_files {
        let chosen: Vec<&str> = data
            .iter()
            .copied()
            .filter(|f| glob_match(pattern, f))
            .collect();
        if chosen.is_empty() {
            bail!(
                "no data file matches `{pattern}`; data files: {}",
                preview(&data)
            );
        }
        return Ok(chosen.into_iter().map(str::to_owned).collect());
    }
    if let Some(config) = selection.config {
        data.retain(|file| folders(file).any(|folder| folder == config));
        if data.is_empty() {
            bail!(
                "no data files in a folder named `{config}`; folders: {}",
                folder_list(files)
            );
        }
    }
    let chosen = files_of_split(&data, selection.split)?;
    if selection.config.is_none() {
        check_single_top_folder(&chosen)?;
    }
    Ok(chosen.into_iter().map(str::to_owned).collect())
}

fn files_of_split<'a>(data: &[&'a str], split: &str) -> Result<Vec<&'a str>> {
    let keywords = keywords_of(split);
    let chosen: Vec<&str> = data
        .iter()
        .copied()
        .filter(|file| words(file).any(|word| keywords.contains(&word)))
        .collect();
    if !chosen.is_empty() {
        return Ok(chosen);
    }
    let named: BTreeSet<&str> = data.iter().filter_map(|file| split_named(file)).collect();
    if named.is_empty() && split == "train" {
        return Ok(data.to_vec());
    }
    bail!(
        "no data files for split `{split}`; splits found: {}",
        if named.is_empty() {
            "none (every file is `train`)".to_owned()
        } else {
            named.into_iter().collect::<Vec<_>>().join(", ")
        }
    )
}

/// Several configurations mixed into one split is almost never intended.
fn check_single_top_folder(chosen: &[&str]) -> Result<()> {
    let tops: BTreeSet<&str> = chosen
        .iter()
        .map(|file| file.split_once('/').map_or("", |(top, _)| top))
        .collect();
    if tops.len() > 1 {
        let names: Vec<&str> = tops
            .iter()
            .map(|t| if t.is_empty() { "." } else { t })
            .collect();
        bail!(
            "the split's files lie in several top-level folders ({}), usually one per \
             configuration; choose one with --config or name files with --data-files",
            names.join(", ")
        );
    }
    Ok(())
}

fn keywords_of(split: &str) -> Vec<&str> {
    SPLIT_KEYWORDS
        .iter()
        .find(|(name, _)| *name == split)
        .map_or_else(|| vec![split], |(_, words)| words.to_vec())
}

fn split_named(file: &str) -> Option<&'static str> {
    SPLIT_KEYWORDS
        .iter()
        .find(|(_, keywords)| words(file).any(|word| keywords.contains(&word)))
        .map(|(name, _)| *name)
}

/// The words of a path, cut at separators and digits; the extension is not a word.
fn words(file: &str) -> impl Iterator<Item = &str> {
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    stem.split(|c: char| matches!(c, '/' | '-' | '_' | '.' | ' ') || c.is_ascii_digit())
        .filter(|word| !word.is_empty())
}

fn folders(file: &str) -> impl Iterator<Item = &str> {
    let parent = file.rsplit_once('/').map_or("", |(parent, _)| parent);
    parent.split('/').filter(|folder| !folder.is_empty())
}

fn folder_list(files: &[String]) -> String {
    let all: BTreeSet<&str> = files.iter().flat_map(|file| folders(file)).collect();
    if all.is_empty() {
        "none".to_owned()
    } else {
        all.into_iter().collect::<Vec<_>>().join(", ")
    }
}

fn preview(files: &[&str]) -> String {
    const SHOWN: usize = 10;
    let mut text = files
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > SHOWN {
        text.push_str(&format!(" … ({} in all)", files.len()));
    }
    text
}

/// Glob matching on `/`-separated paths: `*` and `?` stay within a folder, `**/` spans any
/// number of folders (zero included), a trailing `**` matches everything below.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    match_bytes(pattern.as_bytes(), path.as_bytes())
}

fn match_bytes(pattern: &[u8], path: &[u8]) -> bool {
    if let Some(rest) = pattern.strip_prefix(b"**") {
        let rest = rest.strip_prefix(b"/").unwrap_or(rest);
        // `**` consumes whole folders: try the rest here and after every `/`.
        return match_bytes(rest, path)
            || path
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'/' && match_bytes(rest, &path[i + 1..]))
            || rest.is_empty();
    }
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            match_bytes(&pattern[1..], path)
                || (path.first().is_some_and(|&b| b != b'/') && match_bytes(pattern, &path[1..]))
        }
        (Some(b'?'), Some(&b)) => b != b'/' && match_bytes(&pattern[1..], &path[1..]),
        (Some(p), Some(c)) => p == c && match_bytes(&pattern[1..], &path[1..]),
        _ => false,
    }
}
