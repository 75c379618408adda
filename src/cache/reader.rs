//! Reading an activation cache back, one shard at a time (a shard fits in memory; the cache
//! need not).

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use super::index::CacheIndex;

/// An opened cache: its index, checked against the shard files present.
#[derive(Clone, Debug)]
pub struct ActivationCache {
    dir: PathBuf,
    index: CacheIndex,
}

/// One shard's contents, on the CPU.
#[derive(Clone, Debug)]
pub struct CacheShard {
    /// Row-major `[num_sequences, seq_len]`.
    pub tokens: Vec<u32>,
    /// `[num_sequences, seq_len, d_in]` in the cache's storage dtype.
    pub activations: Tensor,
    pub num_sequences: usize,
}

/// Consecutive sequences of one shard file (an item of [`ActivationCache::rows`]).
#[derive(Clone, Debug)]
pub struct CacheRows {
    /// The shard file they come from (for messages).
    pub shard: usize,
    /// Global index of the first sequence.
    pub first_sequence: u64,
    /// Row-major `[n, seq_len]`.
    pub tokens: Vec<u32>,
    /// `[n, seq_len, d_in]` in the cache's storage dtype.
    pub activations: Tensor,
}

impl ActivationCache {
    pub fn open(dir: &Path) -> Result<Self> {
        let index = CacheIndex::load(dir)?;
        if let Some(missing) = index
            .shards
            .iter()
            .find(|shard| !dir.join(&shard.file).is_file())
        {
            bail!(
                "activation cache {} is missing its shard {}",
                dir.display(),
                missing.file
            );
        }
        if index.num_sequences == 0 {
            bail!("activation cache {} holds no sequences", dir.display());
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index(&self) -> &CacheIndex {
        &self.index
    }

    /// The tokenizer copied into the cache, if it has one.
    pub fn tokenizer_path(&self) -> Option<PathBuf> {
        self.index
            .tokenizer_file
            .as_ref()
            .map(|file| self.dir.join(file))
    }

    pub fn num_shards(&self) -> usize {
        self.index.shards.len()
    }

    /// Loads shard `i`, checking names, shapes and dtypes against the index.
    pub fn load_shard(&self, i: usize) -> Result<CacheShard> {
        let entry = &self.index.shards[i];
        let path = self.dir.join(&entry.file);
        let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .with_context(|| format!("failed to read cache shard {}", path.display()))?;
        let (Some(activations), Some(tokens)) =
            (tensors.remove("activations"), tensors.remove("tokens"))
        else {
            bail!(
                "cache shard {} lacks its `activations` or `tokens` tensor",
                path.display()
            );
        };
        let spec = &self.index.spec;
        let expected = [entry.num_sequences, spec.seq_len, spec.d_in];
        if activations.dims() != expected || activations.dtype() != spec.dtype.candle() {
            bail!(
                "cache shard {}: activations are {:?} {:?}, the index says {expected:?} {:?}",
                path.display(),
                activations.dims(),
                activations.dtype(),
                spec.dtype
            );
        }
        if tokens.dims() != &expected[..2] || tokens.dtype() != DType::U32 {
            bail!(
                "cache shard {}: tokens are {:?} {:?}, expected {:?} u32",
                path.display(),
                tokens.dims(),
                tokens.dtype(),
                &expected[..2]
            );
        }
        let tokens = tokens.flatten_all()?.to_vec1::<u32>()?;
        Ok(CacheShard {
            tokens,
            activations,
            num_sequences: entry.num_sequences,
        })
    }

    /// The sequences `range` (global indices, clipped to the cache), shard by shard: each
    /// item holds the part of one shard file inside the range, read when the iterator reaches
    /// it.
    pub fn rows(&self, range: Range<u64>) -> impl Iterator<Item = Result<CacheRows>> + '_ {
        let mut shard_start = 0u64;
        let seq_len = self.index.spec.seq_len;
        self.index
            .shards
            .iter()
            .enumerate()
            .filter_map(move |(shard, entry)| {
                let in_shard = shard_start..shard_start + entry.num_sequences as u64;
                shard_start = in_shard.end;
                let (first, end) = (range.start.max(in_shard.start), range.end.min(in_shard.end));
                (first < end).then(|| {
                    let rows = (first - in_shard.start) as usize..(end - in_shard.start) as usize;
                    let data = self.load_shard(shard)?;
                    Ok(CacheRows {
                        shard,
                        first_sequence: first,
                        tokens: data.tokens[rows.start * seq_len..rows.end * seq_len].to_vec(),
                        activations: data.activations.narrow(0, rows.start, rows.len())?,
                    })
                })
            })
    }

    /// Every shard in order.
    pub fn shards(&self) -> impl Iterator<Item = Result<CacheShard>> + '_ {
        (0..self.num_shards()).map(|i| self.load_shard(i))
    }
}
