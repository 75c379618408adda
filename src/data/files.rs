//! Local files: recognizing a format by its extension and listing a folder.
//!
//! A folder is read recursively in sorted order (component by component, byte-wise), so the
//! same folder always gives the same document stream on every machine. Hidden entries (names
//! starting with `.`) are skipped, as are symbolic links to folders (they could loop); files
//! of other types are listed as ignored so a caller can report them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The file formats saectl reads text from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Txt,
    Jsonl,
    Parquet,
}

/// Extensions recognized, for error messages.
pub const SUPPORTED_EXTENSIONS: &str = ".txt, .jsonl (or .ndjson), .parquet";

impl Format {
    /// The format of `name` by its extension (case-insensitive), if supported.
    pub fn of(name: &str) -> Option<Self> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "txt" => Some(Self::Txt),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// Like [`Format::of`], with an error naming the supported extensions.
    pub fn of_path(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        match Self::of(&name) {
            Some(format) => Ok(format),
            None => bail!(
                "{}: unsupported file type (supported: {SUPPORTED_EXTENSIONS})",
                path.display()
            ),
        }
    }
}

/// The readable files of a folder, in reading order, and the files passed over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderListing {
    pub files: Vec<PathBuf>,
    pub ignored: Vec<PathBuf>,
}

/// Lists `dir` recursively; errors if it holds no readable file.
pub fn list_folder(dir: &Path) -> Result<FolderListing> {
    let mut listing = FolderListing::default();
    walk(dir, &mut listing)?;
    if listing.files.is_empty() {
        bail!(
            "folder {} holds no text files (supported: {SUPPORTED_EXTENSIONS}){}",
            dir.display(),
            if listing.ignored.is_empty() {
                String::new()
            } else {
                format!("; {} other file(s) ignored", listing.ignored.len())
            }
        );
    }
    Ok(listing)
}

fn walk(dir: &Path, listing: &mut FolderListing) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("failed to list folder {}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list folder {}", dir.display()))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    // Sorting per folder by name sorts the whole walk by path components.
    paths.sort();
    for path in paths {
        let link = std::fs::symlink_metadata(&path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        if link.is_dir() {
            walk(&path, listing)?;
            continue;
        }
        // Links to files are followed; links to folders and dangling links are not.
        let is_file = std::fs::metadata(&path)
            .map(|m| m.is_file())
            .unwrap_or(false);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        match name.as_deref().and_then(Format::of) {
            Some(_) if is_file => listing.files.push(path),
            _ => listing.ignored.push(path),
        }
    }
    Ok(())
}
