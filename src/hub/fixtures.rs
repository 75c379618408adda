//! A Hugging Face cache laid out as hf-hub and `huggingface_hub` write it, for tests: the
//! content in `blobs/`, a symbolic link (a copy off Unix) per file in `snapshots/<commit>/`,
//! and the commit in `refs/main`. saectl's commands never call this.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::RepoKind;

/// Puts `files` (repo path, content) of `repo_id` at `commit` into the cache folder `cache`
/// and points `refs/main` at it. Returns the snapshot folder.
pub fn add_to_cache(
    cache: &Path,
    kind: RepoKind,
    repo_id: &str,
    commit: &str,
    files: &[(&str, &[u8])],
) -> anyhow::Result<PathBuf> {
    let repo = cache.join(format!("{}s--{}", kind.noun(), repo_id.replace('/', "--")));
    let snapshot = repo.join("snapshots").join(commit);
    write(&repo.join("refs/main"), commit.as_bytes())?;
    for (index, (name, bytes)) in files.iter().enumerate() {
        let blob = repo.join("blobs").join(format!("blob{index}-{commit}"));
        write(&blob, bytes)?;
        let link = snapshot.join(name);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(&blob, &link)
            .with_context(|| format!("failed to link {}", link.display()))?;
        #[cfg(not(unix))]
        std::fs::copy(&blob, &link)
            .with_context(|| format!("failed to copy {}", link.display()))?;
    }
    std::fs::create_dir_all(&snapshot)?;
    Ok(snapshot)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("failed to write {}", path.display()))
}
