//! `--model`: a Hugging Face repo id or a local directory, resolved to files and loaded.
//!
//! Either way the model is a Hugging Face checkpoint folder: `config.json`, optionally
//! `tokenizer.json`, and safetensors weights — one `model.safetensors`, or shards named by
//! `model.safetensors.index.json`. When only blocks `0..n` are wanted, only the shards holding
//! them are fetched, and only their tensors are read (the files are memory-mapped).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::config::Gemma2Config;
use super::gemma2::Gemma2;
use crate::hub::{HubRepo, HubSettings, RepoKind};

const CONFIG: &str = "config.json";
const TOKENIZER: &str = "tokenizer.json";
const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

/// Where `--model` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A folder on disk holding a Hugging Face checkpoint.
    Local(PathBuf),
    /// `org/name`, optionally `org/name@revision`.
    Hub {
        repo_id: String,
        revision: Option<String>,
    },
}

impl FromStr for ModelSource {
    type Err = anyhow::Error;

    /// An existing directory wins (as in transformers); otherwise the text must be a repo id.
    fn from_str(text: &str) -> anyhow::Result<Self> {
        if Path::new(text).is_dir() {
            return Ok(Self::Local(PathBuf::from(text)));
        }
        let (repo_id, revision) = match text.split_once('@') {
            Some((id, rev)) => (id, Some(rev.to_string())),
            None => (text, None),
        };
        let valid_part = |part: &str| {
            !part.is_empty()
                && !part.starts_with(['.', '-'])
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let parts: Vec<&str> = repo_id.split('/').collect();
        let is_repo_id = parts.len() <= 2 && parts.iter().all(|p| valid_part(p));
        if !is_repo_id || revision.as_deref() == Some("") {
            bail!(
                "--model `{text}` is neither an existing directory nor a Hugging Face repo id \
                 (`org/name`, optionally `org/name@revision`)"
            );
        }
        Ok(Self::Hub {
            repo_id: repo_id.to_string(),
            revision,
        })
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Hub {
                repo_id,
                revision: Some(rev),
            } => write!(f, "{repo_id}@{rev}"),
            Self::Hub { repo_id, .. } => f.write_str(repo_id),
        }
    }
}

/// The files of one checkpoint, on local disk.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    pub config: PathBuf,
    /// `tokenizer.json`, when the checkpoint has one.
    pub tokenizer: Option<PathBuf>,
    /// The safetensors files holding the wanted tensors.
    pub weights: Vec<PathBuf>,
}

/// How to load: device and dtype already resolved (see `device.rs`), and how many blocks.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub device: Device,
    pub dtype: DType,
    /// Load blocks `0..n` only (from [`super::HookPoint::layers_needed`]); `None`: all, which
    /// `logits` and `forward_from_hook` need.
    pub layers: Option<usize>,
}

/// A loaded model and where it came from.
pub struct LoadedModel {
    pub model: Gemma2,
    pub files: ModelFiles,
}

/// Resolves `source` to files (downloading what is missing unless offline) and loads it.
pub fn load_model(
    source: &ModelSource,
    options: &LoadOptions,
    hub: &HubSettings,
) -> anyhow::Result<LoadedModel> {
    let files = locate(source, options.layers, hub)?;
    let config = read_config(&files.config)?;
    let n_layers = layer_count(&config, options.layers)?;
    // SAFETY: memory-mapping requires that the files are not modified while mapped; they are
    // a checkpoint folder or the Hugging Face cache, which saectl never writes to.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&files.weights, options.dtype, &options.device)
    }
    .with_context(|| format!("failed to read the weights of {source}"))?;
    let model = Gemma2::new(&config, n_layers, vb)
        .with_context(|| format!("failed to load the Gemma-2 weights of {source}"))?;
    Ok(LoadedModel { model, files })
}

/// Reads and validates a Gemma-2 `config.json`.
pub fn read_config(path: &Path) -> anyhow::Result<Gemma2Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    Gemma2Config::from_json(&text).with_context(|| format!("in {}", path.display()))
}

fn layer_count(config: &Gemma2Config, wanted: Option<usize>) -> anyhow::Result<usize> {
    let total = config.num_hidden_layers;
    match wanted {
        None => Ok(total),
        Some(n) if n >= 1 && n <= total => Ok(n),
        Some(n) => bail!("cannot load {n} layers: the model has {total} (valid: 1..={total})"),
    }
}

/// Which tensors of a checkpoint are wanted: those of blocks `0..n` (all when `None`) with the
/// embedding, or a list of tensors by name.
#[derive(Clone, Copy, Debug)]
enum Wanted<'a> {
    Layers(Option<usize>),
    Tensors(&'a [&'a str]),
}

/// Finds (or fetches) the checkpoint files needed for blocks `0..layers` (all when `None`).
pub fn locate(
    source: &ModelSource,
    layers: Option<usize>,
    hub: &HubSettings,
) -> anyhow::Result<ModelFiles> {
    locate_wanted(source, Wanted::Layers(layers), hub)
}

/// Finds (or fetches) the checkpoint files holding the tensors `names` (e.g. the final norm,
/// which lives with the last blocks): only their shards are fetched.
pub fn locate_tensors(
    source: &ModelSource,
    names: &[&str],
    hub: &HubSettings,
) -> anyhow::Result<ModelFiles> {
    locate_wanted(source, Wanted::Tensors(names), hub)
}

/// Reads the tensors `names` of `source`, each of the given shape, as `dtype` on `device`,
/// without loading anything else.
pub fn load_tensors(
    source: &ModelSource,
    names: &[(&str, &[usize])],
    options: &LoadOptions,
    hub: &HubSettings,
) -> anyhow::Result<Vec<candle_core::Tensor>> {
    let just_names: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
    let files = locate_tensors(source, &just_names, hub)?;
    // SAFETY: as in `load_model`, the mapped files are never written to by saectl.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&files.weights, options.dtype, &options.device)
    }
    .with_context(|| format!("failed to read the weights of {source}"))?;
    names
        .iter()
        .map(|(name, shape)| {
            vb.get(*shape, name)
                .with_context(|| format!("failed to read tensor {name} of {source}"))
        })
        .collect()
}

fn locate_wanted(
    source: &ModelSource,
    wanted: Wanted<'_>,
    hub: &HubSettings,
) -> anyhow::Result<ModelFiles> {
    match source {
        ModelSource::Local(dir) => locate_local(dir, wanted),
        ModelSource::Hub { repo_id, revision } => {
            let repo = HubRepo::new(hub.clone(), RepoKind::Model, repo_id, revision.as_deref());
            locate_hub(&repo, wanted)
        }
    }
}

fn locate_local(dir: &Path, wanted: Wanted<'_>) -> anyhow::Result<ModelFiles> {
    let config = dir.join(CONFIG);
    if !config.is_file() {
        bail!(
            "{} has no {CONFIG}: not a Hugging Face checkpoint folder",
            dir.display()
        );
    }
    let tokenizer = Some(dir.join(TOKENIZER)).filter(|p| p.is_file());
    let weights = if dir.join(INDEX).is_file() {
        let config = read_config(&config)?;
        let shards = shards_for(&dir.join(INDEX), &config, wanted)?;
        shards.into_iter().map(|shard| dir.join(shard)).collect()
    } else if dir.join(SINGLE).is_file() {
        vec![dir.join(SINGLE)]
    } else {
        bail!("{} has neither {SINGLE} nor {INDEX}", dir.display());
    };
    for shard in &weights {
        if !shard.is_file() {
            bail!("weight file {} is missing", shard.display());
        }
    }
    Ok(ModelFiles {
        config,
        tokenizer,
        weights,
    })
}

fn locate_hub(repo: &HubRepo, wanted: Wanted<'_>) -> anyhow::Result<ModelFiles> {
    let config_path = repo.get(CONFIG)?;
    let config = read_config(&config_path)?;
    let cached_layout = if repo.cached(INDEX).is_some() {
        Some(INDEX)
    } else if repo.cached(SINGLE).is_some() {
        Some(SINGLE)
    } else {
        None
    };
    // Ask the Hub for the file list only when the cache cannot answer.
    let listing = match cached_layout {
        Some(_) => None,
        None if repo.is_offline() => bail!(
            "HF_HUB_OFFLINE is set and the weights of {} (revision {}: {SINGLE} or {INDEX}) \
             are not in the local Hugging Face cache",
            repo.repo_id(),
            repo.revision()
        ),
        None => Some(repo.list()?.files),
    };
    let has = |name: &str| {
        listing
            .as_ref()
            .is_some_and(|l| l.iter().any(|f| f == name))
    };
    let layout = match cached_layout {
        Some(layout) => layout,
        None if has(INDEX) => INDEX,
        None if has(SINGLE) => SINGLE,
        None => bail!(
            "{} has no safetensors weights ({SINGLE} or {INDEX})",
            repo.describe("")
        ),
    };
    let weights = if layout == INDEX {
        let index = repo.get(INDEX)?;
        let shards = shards_for(&index, &config, wanted)?;
        shards
            .iter()
            .map(|shard| repo.get(shard))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        vec![repo.get(SINGLE)?]
    };
    let tokenizer = match (repo.cached(TOKENIZER), &listing) {
        (Some(path), _) => Some(path),
        (None, _) if repo.is_offline() => None,
        (None, Some(_)) if !has(TOKENIZER) => None,
        (None, _) => Some(repo.get(TOKENIZER)?),
    };
    Ok(ModelFiles {
        config: config_path,
        tokenizer,
        weights,
    })
}

/// The shard files (from a `model.safetensors.index.json`) holding the wanted tensors: for
/// blocks `0..layers`, those plus the embedding, and the final norm and head when all are
/// wanted; or the named tensors, each of which must be in the index.
fn shards_for(
    index_path: &Path,
    config: &Gemma2Config,
    wanted: Wanted<'_>,
) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::HashMap<String, String>,
    }
    let text = std::fs::read_to_string(index_path)
        .with_context(|| format!("failed to read {}", index_path.display()))?;
    let index: Index = serde_json::from_str(&text)
        .with_context(|| format!("failed to parse {}", index_path.display()))?;
    let keep: Box<dyn Fn(&str) -> bool> = match wanted {
        Wanted::Layers(layers) => {
            let n_layers = layer_count(config, layers)?;
            let all = n_layers == config.num_hidden_layers;
            Box::new(move |name| all || tensor_needed(name, n_layers))
        }
        Wanted::Tensors(names) => {
            if let Some(missing) = names.iter().find(|n| !index.weight_map.contains_key(**n)) {
                bail!("{} names no tensor {missing}", index_path.display());
            }
            Box::new(move |name| names.contains(&name))
        }
    };
    let shards: BTreeSet<String> = index
        .weight_map
        .into_iter()
        .filter(|(name, _)| keep(name))
        .map(|(_, shard)| shard)
        .collect();
    for shard in &shards {
        if shard.contains("..") || Path::new(shard).is_absolute() {
            bail!(
                "{} names an unsafe shard path `{shard}`",
                index_path.display()
            );
        }
    }
    Ok(shards.into_iter().collect())
}

/// Whether tensor `name` is used when only blocks `0..n_layers` are loaded.
fn tensor_needed(name: &str, n_layers: usize) -> bool {
    if name.starts_with("model.embed_tokens.") {
        return true;
    }
    let Some(rest) = name.strip_prefix("model.layers.") else {
        return false;
    };
    let layer = rest.split('.').next().and_then(|l| l.parse::<usize>().ok());
    layer.is_some_and(|layer| layer < n_layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_sources_are_directories_or_repo_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        assert_eq!(
            path.parse::<ModelSource>().unwrap(),
            ModelSource::Local(dir.path().into())
        );
        assert_eq!(
            "google/gemma-2-2b@main".parse::<ModelSource>().unwrap(),
            ModelSource::Hub {
                repo_id: "google/gemma-2-2b".into(),
                revision: Some("main".into())
            }
        );
        assert_eq!("gpt2".parse::<ModelSource>().unwrap().to_string(), "gpt2");
        for bad in [
            "/no/such/dir",
            "./missing",
            "a/b/c",
            "org/na me",
            "org/name@",
            "",
        ] {
            let err = bad.parse::<ModelSource>().unwrap_err().to_string();
            assert!(
                err.contains("neither an existing directory"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn named_tensors_fetch_only_their_shards() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma2");
        let config = read_config(&fixture.join(CONFIG)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join(INDEX);
        std::fs::write(
            &index,
            r#"{"weight_map": {"model.embed_tokens.weight": "a.safetensors",
                "model.layers.0.mlp.up_proj.weight": "a.safetensors",
                "model.layers.3.mlp.up_proj.weight": "c.safetensors",
                "model.norm.weight": "c.safetensors"}}"#,
        )
        .unwrap();
        let wanted = Wanted::Tensors(&["model.norm.weight"]);
        assert_eq!(
            shards_for(&index, &config, wanted).unwrap(),
            ["c.safetensors"]
        );
        let both = Wanted::Tensors(&["model.norm.weight", "model.embed_tokens.weight"]);
        assert_eq!(
            shards_for(&index, &config, both).unwrap(),
            ["a.safetensors", "c.safetensors"]
        );
        let err = shards_for(&index, &config, Wanted::Tensors(&["lm_head.weight"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no tensor lm_head.weight"), "{err}");
        assert_eq!(
            shards_for(&index, &config, Wanted::Layers(Some(1))).unwrap(),
            ["a.safetensors"]
        );
    }

    #[test]
    fn partial_loads_skip_shards_of_later_layers() {
        assert!(tensor_needed("model.embed_tokens.weight", 1));
        assert!(tensor_needed("model.layers.3.mlp.up_proj.weight", 4));
        assert!(!tensor_needed("model.layers.4.mlp.up_proj.weight", 4));
        assert!(!tensor_needed("model.layers.35.mlp.up_proj.weight", 4));
        assert!(!tensor_needed("model.norm.weight", 4));
    }
}
