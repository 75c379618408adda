//! Reading the local Hugging Face cache without the network, in the layout hf-hub and
//! Python's `huggingface_hub` share: `<kind>s--org--name/refs/<branch or tag>` holds a
//! commit hash, `snapshots/<commit>/<path>` are the files (symbolic links into `blobs/`).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The commit a cached revision stands for: the content of `refs/<revision>`, or the revision
/// itself when it is a commit with a snapshot folder. `None` when the cache does not know it.
pub(crate) fn cached_commit(repo_dir: &Path, revision: &str) -> Option<String> {
    // A revision may contain `/` (`refs/pr/1`); it must not climb out of the repo folder.
    if revision
        .split('/')
        .any(|part| part.is_empty() || part == "..")
    {
        return None;
    }
    if let Ok(text) = std::fs::read_to_string(repo_dir.join("refs").join(revision)) {
        return Some(text.trim().to_owned()).filter(|commit| !commit.is_empty());
    }
    let snapshot = repo_dir.join("snapshots").join(revision);
    snapshot.is_dir().then(|| revision.to_owned())
}

/// The snapshot folder of `commit`.
pub(crate) fn snapshot_dir(repo_dir: &Path, commit: &str) -> PathBuf {
    repo_dir.join("snapshots").join(commit)
}

/// Repo paths (`/`-separated) of the files in a snapshot, sorted. Links whose blob is gone
/// (an interrupted download, a pruned cache) are skipped: they cannot be read.
pub(crate) fn snapshot_files(snapshot: &Path) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    collect_files(snapshot, "", &mut files)?;
    files.sort_unstable();
    Ok(files)
}

fn collect_files(dir: &Path, prefix: &str, files: &mut Vec<String>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("failed to list the cached snapshot {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
        let repo_path = format!("{prefix}{}", entry.file_name().to_string_lossy());
        // `metadata` follows the link, so a dangling one is an error and is passed over.
        match std::fs::metadata(entry.path()) {
            Ok(meta) if meta.is_dir() => {
                collect_files(&entry.path(), &format!("{repo_path}/"), files)?
            }
            Ok(meta) if meta.is_file() => files.push(repo_path),
            _ => {}
        }
    }
    Ok(())
}
