//! `cache_index.json`: what a cache holds and how it was made.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use serde::{Deserialize, Serialize};

use crate::util::atomic::write_json_atomic;

pub const CACHE_INDEX_FILE: &str = "cache_index.json";
pub const CACHE_TOKENIZER_FILE: &str = "tokenizer.json";
const CACHE_FORMAT_VERSION: u32 = 1;

/// Storage dtype of the activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheDtype {
    F32,
    Bf16,
    F16,
}

impl CacheDtype {
    pub fn candle(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" => Ok(Self::F16),
            other => bail!("unknown cache dtype {other:?} (expected f32, bf16 or f16)"),
        }
    }
}

/// Everything that must match for a cache to be resumed or reused: the model, the hook, the
/// shapes, the storage dtype, and the text source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheSpec {
    pub model: String,
    pub hook_point: String,
    pub d_in: usize,
    pub seq_len: usize,
    pub dtype: CacheDtype,
    /// Token ids the collector should treat as special (BOS, EOS, PAD…).
    pub special_token_ids: Vec<u32>,
    /// Free-form description of the text source (dataset, split, text field, …).
    pub source: serde_json::Map<String, serde_json::Value>,
}

/// One shard file and the sequences it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub file: String,
    pub num_sequences: usize,
}

/// The index of a cache folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheIndex {
    pub format_version: u32,
    #[serde(flatten)]
    pub spec: CacheSpec,
    pub tokenizer_file: Option<String>,
    pub num_sequences: usize,
    pub num_tokens: u64,
    /// False while a run is writing (or was interrupted); true once it reached its budget.
    pub complete: bool,
    pub shards: Vec<ShardEntry>,
}

impl CacheIndex {
    pub fn new(spec: CacheSpec) -> Self {
        Self {
            format_version: CACHE_FORMAT_VERSION,
            spec,
            tokenizer_file: None,
            num_sequences: 0,
            num_tokens: 0,
            complete: false,
            shards: Vec::new(),
        }
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CACHE_INDEX_FILE);
        if !dir.is_dir() {
            bail!(
                "activation cache {} does not exist or is not a folder",
                dir.display()
            );
        }
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "{} is not an activation cache: failed to read {}",
                dir.display(),
                path.display()
            )
        })?;
        let index: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a valid cache index", path.display()))?;
        if index.format_version != CACHE_FORMAT_VERSION {
            bail!(
                "{}: cache format version {} is not supported (this build reads {CACHE_FORMAT_VERSION})",
                path.display(),
                index.format_version
            );
        }
        let counted = index
            .shards
            .iter()
            .try_fold(0usize, |total, s| total.checked_add(s.num_sequences));
        if counted != Some(index.num_sequences) {
            bail!(
                "{}: the shards' sequences do not add up to the index's {}",
                path.display(),
                index.num_sequences
            );
        }
        let names = index.shards.iter().map(|s| s.file.as_str());
        if let Some(name) = names
            .chain(index.tokenizer_file.as_deref())
            .find(|name| !is_plain_file_name(name))
        {
            // A path would make the cache read files outside its folder (`/dev/zero`, say).
            bail!(
                "{}: {name:?} is not a file name inside the cache folder",
                path.display()
            );
        }
        Ok(index)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json_atomic(&dir.join(CACHE_INDEX_FILE), self)
    }
}

/// One ordinary name: no folder separator, not `.` or `..`, not empty.
fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.contains('/')
}
