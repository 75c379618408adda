//! Plumbing shared by the fuzz targets: how one fuzz input becomes the files of a folder, and
//! the real files that fill the rest of that folder.
//!
//! Most loaders read a folder of several files (a checkpoint is `saectl.json`, `cfg.json` and
//! `sae_weights.safetensors`). An input's first byte picks which file the fuzzer controls
//! (modulo the number of files); the rest of the input is that file's bytes, and the other
//! files are the real ones of `fuzz/fixtures/` (written by `scripts/fuzz-fixtures.sh`). The
//! seed corpora (`scripts/fuzz.sh`) are those same real files, each behind its selector byte,
//! so mutation starts from valid files and reaches past the first checks.
//!
//! The targets call the library's own loaders by path (`SamplesFolder::load`, `load_any`, …):
//! the folder lives in `/dev/shm` when there is one, and is rewritten for every input.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One file of a folder: its name and, unless the fuzzer controls it, its real contents.
pub struct FileSlot {
    pub name: &'static str,
    pub real: &'static [u8],
}

/// Splits `data` into the index of the fuzzed slot and that file's bytes.
pub fn pick(data: &[u8], slots: usize) -> Option<(usize, &[u8])> {
    let (&first, rest) = data.split_first()?;
    Some((first as usize % slots, rest))
}

/// Writes the folder for one input: every slot's real file, except slot `fuzzed`, which gets
/// `bytes`. Returns the folder (the same one every call; emptied first).
pub fn folder(slots: &[FileSlot], fuzzed: usize, bytes: &[u8]) -> &'static Path {
    let dir = scratch();
    reset(dir);
    for (i, slot) in slots.iter().enumerate() {
        let contents = if i == fuzzed { bytes } else { slot.real };
        std::fs::write(dir.join(slot.name), contents).expect("scratch folder is writable");
    }
    dir
}

/// An empty scratch folder of this process (same path every call).
pub fn empty_folder() -> &'static Path {
    let dir = scratch();
    reset(dir);
    dir
}

fn reset(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("scratch folder can be made");
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("saectl-fuzz-{}", std::process::id()))
    })
}

/// Files of `fuzz/fixtures/`, compiled in.
#[macro_export]
macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/", $path))
    };
}

/// Files of the main crate's `tests/fixtures/`, compiled in.
#[macro_export]
macro_rules! test_fixture {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/",
            $path
        ))
    };
}
