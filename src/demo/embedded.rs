//! The demo language model shipped inside the binary, and where it is unpacked to.
//!
//! The weights (`assets/demo-model/`, made by `examples/train_demo_model.rs`) are compiled in
//! with `include_bytes!`, so a fresh machine needs no download and no token. The rest of
//! saectl reads models from folders (config, tokenizer, safetensors — the same code path as a
//! Hugging Face checkpoint), so on first use the files are written to a folder keyed by their
//! content hash: `$SAECTL_HOME/demo-model-<hash>` (default `~/.cache/saectl/…`, or the
//! system temp folder without a home). The folder is assembled under a temporary name and
//! renamed into place, so a half-written copy is never used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What `--model` reports when it is the embedded model.
pub const DEMO_MODEL_NAME: &str = "saectl-demo-lm (embedded)";

/// The hook the demo trains on: the residual stream after block 2 of 4.
pub const DEMO_HOOK: &str = "blocks.2.hook_resid_post";

const FILES: [(&str, &[u8]); 4] = [
    (
        "config.json",
        include_bytes!("../../assets/demo-model/config.json"),
    ),
    (
        "tokenizer.json",
        include_bytes!("../../assets/demo-model/tokenizer.json"),
    ),
    (
        "model.safetensors",
        include_bytes!("../../assets/demo-model/model.safetensors"),
    ),
    (
        "training.json",
        include_bytes!("../../assets/demo-model/training.json"),
    ),
];

/// The embedded model's files in a folder on disk, written there on first use.
pub fn demo_model_dir() -> Result<PathBuf> {
    let dir = cache_root().join(format!("demo-model-{:016x}", content_hash()));
    if is_complete(&dir) {
        return Ok(dir);
    }
    let parent = dir.parent().expect("the folder has a parent");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {} for the demo model", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".demo-model-")
        .permissions(crate::util::atomic::umask_mode(true)) // not tempfile's private 0700
        .tempdir_in(parent)
        .with_context(|| format!("cannot write the demo model into {}", parent.display()))?;
    for (name, bytes) in FILES {
        std::fs::write(staging.path().join(name), bytes)
            .with_context(|| format!("cannot write the demo model's {name}"))?;
    }
    let staged = staging.keep();
    if let Err(err) = std::fs::rename(&staged, &dir) {
        // Another process may have won the race; its copy is as good as ours.
        let _ = std::fs::remove_dir_all(&staged);
        if !is_complete(&dir) {
            return Err(err).with_context(|| format!("cannot create {}", dir.display()));
        }
    }
    Ok(dir)
}

fn is_complete(dir: &Path) -> bool {
    FILES.iter().all(|(name, bytes)| {
        std::fs::metadata(dir.join(name)).is_ok_and(|m| m.len() == bytes.len() as u64)
    })
}

/// `$SAECTL_HOME`, else `$XDG_CACHE_HOME/saectl`, else `~/.cache/saectl`, else the temp folder.
fn cache_root() -> PathBuf {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("SAECTL_HOME")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("saectl")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("saectl")))
        .unwrap_or_else(|| std::env::temp_dir().join("saectl"))
}

/// FNV-1a over every embedded file, so a new model never reuses an old folder.
fn content_hash() -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for (name, bytes) in FILES {
        for &b in name.as_bytes().iter().chain(bytes) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_unpacked_once_and_reused() {
        let home = tempfile::tempdir().unwrap();
        // SAFETY of the env mutation: only this test reads SAECTL_HOME in the lib tests.
        std::env::set_var("SAECTL_HOME", home.path());
        let dir = demo_model_dir().unwrap();
        std::env::remove_var("SAECTL_HOME");
        assert!(dir.starts_with(home.path()));
        for (name, bytes) in FILES {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), bytes);
        }
        let config = crate::model::read_config(&dir.join("config.json")).unwrap();
        assert_eq!(config.num_hidden_layers, 4);
    }
}
