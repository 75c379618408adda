//! `--checkpoint` on the Hugging Face Hub: `org/name/path/in/repo`, e.g.
//! `google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz` (Gemma Scope) or
//! `org/name/some/folder` holding a SAELens `cfg.json` + `sae_weights.safetensors`.
//!
//! A path that exists on disk always wins. Next, `RELEASE/SAE_ID` names an SAE by its SAELens
//! release (`gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical`), which the table
//! of [`super::releases`] turns into a Hub path. Otherwise the first two parts name the repo
//! and the rest the file or folder in it; files come from the local Hugging Face cache first
//! and are downloaded only when missing (never with `HF_HUB_OFFLINE=1`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::checkpoint::CFG_FILE;
use crate::hub::{HubRepo, HubSettings, RepoKind};

const SAE_LENS_WEIGHTS: &str = "sae_weights.safetensors";

/// The local path of the checkpoint `spec` names, fetching it from the Hub when needed.
pub fn resolve_checkpoint(spec: &str, hub: &HubSettings) -> Result<PathBuf> {
    let local = Path::new(spec);
    if local.exists() {
        return latest_of_run(local);
    }
    if let Some(sae) = super::releases::lookup(spec)? {
        return resolve_hub_path(&sae.hub_path, hub)
            .with_context(|| format!("{spec} is {} in release {}", sae.hub_path, sae.release));
    }
    resolve_hub_path(spec, hub)
}

/// `org/name/path/in/repo`: a `.npz` file, or a SAELens folder.
fn resolve_hub_path(spec: &str, hub: &HubSettings) -> Result<PathBuf> {
    let parts: Vec<&str> = spec.trim_matches('/').splitn(3, '/').collect();
    let [org, name, inner] = parts[..] else {
        bail!("SAE checkpoint {spec} does not exist (nor is it a Hub path org/name/path/in/repo)");
    };
    let repo = HubRepo::new(hub.clone(), RepoKind::Model, &format!("{org}/{name}"), None);
    let fetched = if inner.ends_with(".npz") {
        repo.get(inner)
    } else {
        let folder = inner.trim_end_matches('/');
        repo.get(&format!("{folder}/{SAE_LENS_WEIGHTS}"))
            .and_then(|_| repo.get(&format!("{folder}/{CFG_FILE}")))
            .map(|cfg| cfg.parent().map(Path::to_path_buf).unwrap_or(cfg))
    };
    fetched.with_context(|| {
        format!("SAE checkpoint {spec} is neither a local path nor available from the Hub")
    })
}

/// A training run folder stands for its newest checkpoint (the one `latest_checkpoint` names);
/// anything else is returned as it is.
fn latest_of_run(path: &Path) -> Result<PathBuf> {
    let pointer = path.join(LATEST_CHECKPOINT_FILE);
    if !pointer.is_file() {
        return Ok(path.to_path_buf());
    }
    let relative = std::fs::read_to_string(&pointer)
        .with_context(|| format!("failed to read {}", pointer.display()))?;
    Ok(path.join(relative.trim()))
}

/// The file a training run keeps its newest checkpoint's path in (`train::RunDir`).
pub const LATEST_CHECKPOINT_FILE: &str = "latest_checkpoint";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::fixtures::add_to_cache;
    use crate::sae::import::load_any;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sae")
                .join(path),
        )
        .unwrap()
    }

    fn offline(cache: &Path) -> HubSettings {
        let cache = cache.to_string_lossy().into_owned();
        HubSettings::from_vars(|name| match name {
            "HF_HUB_CACHE" => Some(cache.clone()),
            "HF_HUB_OFFLINE" => Some("1".into()),
            _ => None,
        })
    }

    #[test]
    fn gemma_scope_and_sae_lens_paths_resolve_from_the_cache() {
        let cache = tempfile::tempdir().unwrap();
        let npz = fixture("gemma_scope/params.npz");
        let (cfg, weights) = (
            fixture("saelens_topk/cfg.json"),
            fixture("saelens_topk/sae_weights.safetensors"),
        );
        add_to_cache(
            cache.path(),
            RepoKind::Model,
            "google/gemma-scope-2b-pt-res",
            "abc123",
            &[("layer_3/width_16k/average_l0_8/params.npz", &npz)],
        )
        .unwrap();
        add_to_cache(
            cache.path(),
            RepoKind::Model,
            "someone/saes",
            "def456",
            &[
                ("l1/cfg.json", &cfg),
                ("l1/sae_weights.safetensors", &weights),
            ],
        )
        .unwrap();
        let hub = offline(cache.path());
        let scope = resolve_checkpoint(
            "google/gemma-scope-2b-pt-res/layer_3/width_16k/average_l0_8/params.npz",
            &hub,
        )
        .unwrap();
        let sae = load_any(&scope, &candle_core::Device::Cpu).unwrap();
        // The hook comes from the Hub path: residual stream after block 3.
        assert_eq!(
            sae.config().hook_name.as_deref(),
            Some("blocks.3.hook_resid_post")
        );
        let folder = resolve_checkpoint("someone/saes/l1", &hub).unwrap();
        assert!(load_any(&folder, &candle_core::Device::Cpu).is_ok());
    }

    #[test]
    fn a_path_neither_local_nor_cached_is_one_clear_error() {
        let cache = tempfile::tempdir().unwrap();
        let hub = offline(cache.path());
        let err = format!(
            "{:#}",
            resolve_checkpoint("google/gemma-scope-2b-pt-res/layer_9/params.npz", &hub)
                .unwrap_err()
        );
        assert!(
            err.contains("neither a local path nor available from the Hub") && !err.contains('\n'),
            "{err}"
        );
        let err = format!(
            "{:#}",
            resolve_checkpoint("runs/missing", &hub).unwrap_err()
        );
        assert!(err.contains("does not exist"), "{err}");
    }

    /// `RELEASE/SAE_ID` through the table, fetched from a stand-in Hub on loopback: the
    /// request names the folder the table maps the canonical id to.
    #[test]
    fn a_release_name_resolves_through_the_table_and_downloads() {
        use crate::hub::tests::{online_settings, response_bytes, serve_bytes};
        let spec = "gemma-scope-2b-pt-res-canonical/layer_3/width_16k/canonical";
        let sae = super::super::releases::lookup(spec).unwrap().unwrap();
        let inner = sae
            .hub_path
            .strip_prefix("google/gemma-scope-2b-pt-res/")
            .unwrap()
            .to_string();
        assert!(
            inner.starts_with("layer_3/width_16k/average_l0_"),
            "{inner}"
        );
        let npz = fixture("gemma_scope/params.npz");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let headers = format!(
            "ETag: \"abc\"\r\nX-Repo-Commit: {commit}\r\nContent-Range: bytes 0-0/{}\r\n",
            npz.len()
        );
        let (endpoint, server) = serve_bytes(vec![
            response_bytes("206 Partial Content", &npz[..1], &headers),
            response_bytes("200 OK", &npz, ""),
        ]);
        let cache = tempfile::tempdir().unwrap();
        let path = resolve_checkpoint(spec, &online_settings(cache.path(), endpoint)).unwrap();
        for head in server.join().unwrap() {
            let request = format!("GET /google/gemma-scope-2b-pt-res/resolve/main/{inner} ");
            assert!(head[0].starts_with(&request), "{head:?}");
        }
        let loaded = load_any(&path, &candle_core::Device::Cpu).unwrap();
        assert_eq!(
            loaded.config().hook_name.as_deref(),
            Some(sae.hook.as_str())
        );
        assert_eq!(
            loaded.config().model_name.as_deref(),
            Some("google/gemma-2-2b")
        );
        // Offline now: the cache answers, and an id the release lacks fails before any request.
        assert_eq!(
            resolve_checkpoint(spec, &offline(cache.path())).unwrap(),
            path
        );
        let err = format!(
            "{:#}",
            resolve_checkpoint(
                "gemma-scope-2b-pt-res-canonical/layer_3/width_1m/canonical",
                &offline(cache.path())
            )
            .unwrap_err()
        );
        assert!(err.contains("has no SAE") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn a_run_folder_means_its_latest_checkpoint() {
        let run = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(run.path().join("checkpoints/step_000000042")).unwrap();
        std::fs::write(
            run.path().join(LATEST_CHECKPOINT_FILE),
            "checkpoints/step_000000042\n",
        )
        .unwrap();
        let hub = offline(run.path());
        let resolved = resolve_checkpoint(run.path().to_str().unwrap(), &hub).unwrap();
        assert_eq!(resolved, run.path().join("checkpoints/step_000000042"));
    }
}
