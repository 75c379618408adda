//! Atomic file writes: write a temporary file beside the target, flush it, then rename.
//!
//! A crash or Ctrl-C in the middle of a write leaves either the old file or the new one,
//! never half of one, so an interrupted run can always be resumed from what is on disk.
//!
//! Three more promises live here (docs/reliability.md):
//! - Files follow the umask, like any other tool's output (0644 under umask 022): the
//!   temporary file is created with mode 0666 and the kernel applies the umask, where a plain
//!   temporary file would be 0600 and stay so after the rename.
//! - The file's data reaches the disk before the rename ([`write_atomic`] syncs it). The
//!   rename itself is an entry in the folder; [`sync_dir`] makes it durable, and callers whose
//!   data must survive a power loss (checkpoints, collector state, cache shards, samples
//!   folders) call it once after their group of writes.
//! - Every temporary is named `.saectl-tmp-…` ([`TEMP_PREFIX`]): readers skip such names
//!   ([`is_temporary`]), and a resumed run that holds the folder's lock deletes the ones a
//!   killed run left behind ([`remove_stale_temporaries`]).

use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::lock::RunLock;

/// The name prefix of every temporary file or folder saectl creates beside its outputs.
pub const TEMP_PREFIX: &str = ".saectl-tmp-";

/// Whether `name` (a file name, not a path) is one of saectl's temporaries.
pub fn is_temporary(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes())
}

/// The mode asked of `open(2)` for new files and folders; the kernel removes the umask's bits.
pub(crate) fn umask_mode(folder: bool) -> Permissions {
    Permissions::from_mode(if folder { 0o777 } else { 0o666 })
}

/// Writes `bytes` to `path` atomically (same-folder temp file, synced, then renamed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| Ok(file.write_all(bytes)?))
}

/// Like [`write_atomic`] for content too large to hold twice in memory (cache shards): `write`
/// streams it into the temporary file, which is then synced and renamed. If `write` fails, the
/// temporary is removed and `path` is untouched.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = parent_of(path);
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(umask_mode(false))
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a temporary file in {}", dir.display()))?;
    write(temp.as_file_mut())
        .and_then(|()| Ok(temp.as_file().sync_all()?))
        .with_context(|| format!("failed to write {}", path.display()))?;
    temp.persist(path)
        .map_err(|err| err.error)
        .with_context(|| {
            format!(
                "failed to move the new file into place at {}",
                path.display()
            )
        })?;
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Serializes `value` as pretty JSON (2-space indent, as the original's `json.dump(indent=2)`)
/// and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .with_context(|| format!("failed to serialize {}", path.display()))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Flushes `dir`'s entries to disk, so that files renamed into it (and folders created in it)
/// survive a power loss, not only a crash of this process.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let synced = std::fs::File::open(dir).and_then(|folder| folder.sync_all());
    match synced {
        // Some file systems cannot sync a folder (EINVAL); their renames are as durable as
        // they get, and refusing to write there would help nobody.
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other.with_context(|| format!("failed to sync folder {}", dir.display())),
    }
}

/// [`sync_dir`] on the folder holding `path` (a file just renamed there, or a folder just
/// created there).
pub fn sync_parent(path: &Path) -> Result<()> {
    sync_dir(parent_of(path))
}

/// Removes the `.saectl-tmp-…` files and folders under the locked folder (recursively, links
/// not followed) that a killed run left behind, and returns how many it removed.
///
/// Only the holder of the folder's [`RunLock`] may call it: any other live saectl process
/// writing there would have the lock, so every temporary found is stale, never another
/// process's write in progress.
pub fn remove_stale_temporaries(lock: &RunLock) -> Result<usize> {
    remove_temporaries_under(lock.dir())
}

fn remove_temporaries_under(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("failed to read {}", path.display()))?;
        if is_temporary(&entry.file_name()) {
            let gone = if kind.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            gone.with_context(|| format!("failed to remove stale temporary {}", path.display()))?;
            removed += 1;
        } else if kind.is_dir() {
            removed += remove_temporaries_under(&path)?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["a.json"]);
    }

    #[test]
    fn missing_folder_is_an_error_that_names_it() {
        let err = write_atomic(Path::new("/nonexistent-saectl-dir/x.json"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent-saectl-dir"));
    }

    /// The umask is process-wide, so the test does not set one: it compares with a file that
    /// `File::create` (mode 0666 minus the umask) makes now, and insists the result is not the
    /// temporary file's private 0600 unless the umask itself says so.
    #[test]
    fn files_follow_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let reference = dir.path().join("reference");
        std::fs::File::create(&reference).unwrap();
        let expected = std::fs::metadata(&reference).unwrap().mode() & 0o777;
        let plain = dir.path().join("plain.json");
        write_atomic(&plain, b"{}").unwrap();
        let with = dir.path().join("with.bin");
        write_atomic_with(&with, |file| Ok(file.write_all(b"x")?)).unwrap();
        for path in [&plain, &with] {
            let mode = std::fs::metadata(path).unwrap().mode() & 0o777;
            assert_eq!(mode, expected, "{}: {mode:o}", path.display());
        }
    }

    #[test]
    fn write_atomic_with_renames_what_the_writer_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard.safetensors");
        write_atomic_with(&path, |file| {
            let mut names = names(dir.path());
            assert!(names.len() == 1 && is_temporary(names.pop().unwrap().as_ref()));
            Ok(file.write_all(b"data")?)
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        let err = write_atomic_with(&path, |file| {
            file.write_all(b"half")?;
            anyhow::bail!("writer failed")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("writer failed"));
        // The failed write's temporary is gone and the old file untouched.
        assert_eq!(names(dir.path()), ["shard.safetensors"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn sync_dir_syncs_a_folder_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        sync_dir(dir.path()).unwrap();
        let err = sync_dir(&dir.path().join("missing")).unwrap_err();
        assert!(format!("{err:#}").contains("missing"));
    }

    #[test]
    fn stale_temporaries_are_removed_under_the_lock_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("checkpoints/step_1")).unwrap();
        std::fs::create_dir_all(root.join(".saectl-tmp-merge")).unwrap();
        for name in [
            ".saectl-tmp-abc",
            "checkpoints/step_1/.saectl-tmp-x",
            ".saectl-tmp-merge/inner",
            "checkpoints/step_1/cfg.json",
            ".hidden",
            "saectl-tmp-not-ours",
            "feature_00001_samples.json",
        ] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        let lock = RunLock::acquire(root).unwrap();
        assert_eq!(remove_stale_temporaries(&lock).unwrap(), 3);
        let mut left = names(root);
        left.retain(|n| n != crate::util::lock::LOCK_FILE_NAME);
        assert_eq!(
            left,
            [
                ".hidden",
                "checkpoints",
                "feature_00001_samples.json",
                "saectl-tmp-not-ours"
            ]
        );
        assert_eq!(names(&root.join("checkpoints/step_1")), ["cfg.json"]);
    }

    #[test]
    fn links_are_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join(".saectl-tmp-keep"), b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(remove_stale_temporaries(&lock).unwrap(), 0);
        assert!(outside.path().join(".saectl-tmp-keep").exists());
    }
}
