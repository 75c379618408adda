//! Writing an activation cache shard by shard, resumable after an interruption.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Metadata, TensorInfo, View};

use super::index::{CacheIndex, CacheSpec, ShardEntry, CACHE_INDEX_FILE, CACHE_TOKENIZER_FILE};
use crate::util::atomic::{
    is_temporary, remove_stale_temporaries, sync_dir, write_atomic, write_atomic_with,
};
use crate::util::lock::{RunLock, LOCK_FILE_NAME};

/// Appends `[n_seq, seq_len, d_in]` activation batches and writes a shard every
/// `sequences_per_shard` sequences. Only whole shards count: after a crash the cache resumes
/// after the last shard the index names.
pub struct CacheWriter {
    /// The folder's run lock, held while the writer lives.
    _lock: RunLock,
    dir: PathBuf,
    index: CacheIndex,
    sequences_per_shard: usize,
    pending_tokens: Vec<u32>,
    /// Batches in the storage dtype, on the CPU.
    pending_activations: Vec<Tensor>,
    pending_sequences: usize,
}

impl CacheWriter {
    /// Starts a cache in `dir` (created; it must not hold other files), or resumes the one
    /// there if it was made with the same `spec`. `tokenizer` is copied in on creation.
    pub fn create_or_resume(
        dir: &Path,
        spec: CacheSpec,
        sequences_per_shard: usize,
        tokenizer: Option<&Path>,
    ) -> Result<Self> {
        if sequences_per_shard == 0 {
            bail!("sequences per shard must be at least 1");
        }
        if !dir.join(CACHE_INDEX_FILE).exists() {
            refuse_foreign_folder(dir)?;
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        let lock = RunLock::acquire(dir)?;
        // Decided under the lock: another run may have created the index meanwhile.
        let index = if dir.join(CACHE_INDEX_FILE).exists() {
            resume_index(dir, spec)?
        } else {
            create_index(dir, spec, tokenizer)?
        };
        remove_partial_files(dir)?;
        remove_stale_temporaries(&lock)?;
        Ok(Self {
            _lock: lock,
            dir: dir.to_path_buf(),
            index,
            sequences_per_shard,
            pending_tokens: Vec::new(),
            pending_activations: Vec::new(),
            pending_sequences: 0,
        })
    }

    /// Sequences already stored: the producer skips this many before pushing.
    pub fn sequences_done(&self) -> usize {
        self.index.num_sequences + self.pending_sequences
    }

    /// Whether an earlier run already finished this cache.
    pub fn is_complete(&self) -> bool {
        self.index.complete
    }

    pub fn index(&self) -> &CacheIndex {
        &self.index
    }

    /// Appends a batch: `tokens` row-major `[n_seq, seq_len]`, `activations [n_seq, seq_len, d_in]`
    /// on any device. NaN or infinite activations are refused (nothing is written).
    pub fn push(&mut self, tokens: &[u32], activations: &Tensor) -> Result<()> {
        let spec = &self.index.spec;
        let (n_seq, seq_len, d_in) = activations
            .dims3()
            .context("activations must be [n_seq, seq_len, d_in]")?;
        if seq_len != spec.seq_len || d_in != spec.d_in {
            bail!(
                "activations are [{n_seq}, {seq_len}, {d_in}] but the cache holds [_, {}, {}]",
                spec.seq_len,
                spec.d_in
            );
        }
        if tokens.len() != n_seq * seq_len {
            bail!(
                "{} tokens for activations of {n_seq} sequences of {seq_len}",
                tokens.len()
            );
        }
        let stored = activations
            .to_dtype(spec.dtype.candle())?
            .to_device(&Device::Cpu)?;
        let non_finite = count_non_finite(&stored)?;
        if non_finite > 0 {
            bail!(
                "{non_finite} activations are NaN or infinite in sequences {}..{} of the cache: refusing to store them",
                self.sequences_done(),
                self.sequences_done() + n_seq
            );
        }
        self.pending_tokens.extend_from_slice(tokens);
        self.pending_activations.push(stored);
        self.pending_sequences += n_seq;
        if self.pending_sequences >= self.sequences_per_shard {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is pending as a shard and records it in the index.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending_sequences == 0 {
            return Ok(());
        }
        let file = format!("shard_{:05}.safetensors", self.index.shards.len());
        let activations = Tensor::cat(&self.pending_activations, 0)?;
        let n_seq = self.pending_sequences;
        let tokens = Tensor::from_vec(
            std::mem::take(&mut self.pending_tokens),
            (n_seq, self.index.spec.seq_len),
            &Device::Cpu,
        )?;
        let path = self.dir.join(&file);
        write_atomic_with(&path, |file| {
            write_safetensors(file, &[("activations", &activations), ("tokens", &tokens)])
        })?;
        self.index.shards.push(ShardEntry {
            file,
            num_sequences: n_seq,
        });
        self.index.num_sequences += n_seq;
        self.index.num_tokens += (n_seq * self.index.spec.seq_len) as u64;
        self.index.save(&self.dir)?;
        // The shard and the index that names it must survive a power loss together.
        sync_dir(&self.dir)?;
        self.pending_activations.clear();
        self.pending_sequences = 0;
        Ok(())
    }

    /// Writes the last shard; `complete` marks the cache as finished (its token budget met or
    /// its corpus exhausted).
    pub fn finish(mut self, complete: bool) -> Result<CacheIndex> {
        self.flush()?;
        self.index.complete = complete;
        self.index.save(&self.dir)?;
        sync_dir(&self.dir)?;
        Ok(self.index)
    }
}

/// Streams `tensors` in the safetensors format into `out`, the same bytes as
/// `safetensors::serialize` (tensors by descending dtype, then name; header padded with spaces
/// to 8 bytes), without holding the shard twice in memory. candle's `save` cannot be used: it
/// writes its own temporary file, private (0600) and not named as ours.
fn write_safetensors(out: &mut std::fs::File, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let mut sorted = tensors.to_vec();
    sorted.sort_by(|(a_name, a), (b_name, b)| {
        View::dtype(*b)
            .cmp(&View::dtype(*a))
            .then(a_name.cmp(b_name))
    });
    let mut offset = 0;
    let mut infos = Vec::with_capacity(sorted.len());
    for (name, tensor) in &sorted {
        let info = TensorInfo {
            dtype: View::dtype(*tensor),
            shape: tensor.dims().to_vec(),
            data_offsets: (offset, offset + View::data_len(*tensor)),
        };
        offset = info.data_offsets.1;
        infos.push((name.to_string(), info));
    }
    let mut header = serde_json::to_vec(&Metadata::new(None, infos)?)?;
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, out);
    writer.write_all(&(header.len() as u64).to_le_bytes())?;
    writer.write_all(&header)?;
    for (_, tensor) in &sorted {
        writer.write_all(&View::data(*tensor))?;
    }
    writer.flush()?;
    Ok(())
}

fn count_non_finite(activations: &Tensor) -> Result<u64> {
    let values = activations.to_dtype(DType::F32)?;
    // x·0 is 0 for finite x and NaN for NaN and ±∞; NaN ≠ 0.
    let zeroed = (values * 0.0)?;
    Ok(zeroed
        .ne(0f32)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()? as u64)
}

/// A folder without an index must be new or empty: the cache never writes among a user's files.
/// A lock file or temporaries left by a run killed before its first index count as empty.
fn refuse_foreign_folder(dir: &Path) -> Result<()> {
    if dir.exists() {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?;
        let mut names = entries.filter_map(|entry| entry.ok().map(|e| e.file_name()));
        if names.any(|name| !is_temporary(&name) && name != LOCK_FILE_NAME) {
            bail!("{} exists and is not an activation cache (no {CACHE_INDEX_FILE}); choose an empty or new folder", dir.display());
        }
    }
    Ok(())
}

fn create_index(dir: &Path, spec: CacheSpec, tokenizer: Option<&Path>) -> Result<CacheIndex> {
    let mut index = CacheIndex::new(spec);
    if let Some(tokenizer) = tokenizer {
        // Read and written, not `fs::copy`d: a copy keeps the source's mode, not the umask.
        let bytes = std::fs::read(tokenizer)
            .with_context(|| format!("failed to read the tokenizer {}", tokenizer.display()))?;
        write_atomic(&dir.join(CACHE_TOKENIZER_FILE), &bytes)?;
        index.tokenizer_file = Some(CACHE_TOKENIZER_FILE.to_string());
    }
    index.save(dir)?;
    Ok(index)
}

fn resume_index(dir: &Path, spec: CacheSpec) -> Result<CacheIndex> {
    let mut index = CacheIndex::load(dir)?;
    if index.num_sequences == 0 {
        // An earlier run failed before writing anything (wrong corpus, say): nothing to lose,
        // so the corrected settings start it afresh.
        index.spec = spec;
        index.complete = false;
        index.save(dir)?;
        return Ok(index);
    }
    let differences = spec_differences(&index.spec, &spec);
    if !differences.is_empty() {
        bail!(
            "{} holds a cache made with other settings ({}); use another --out or the same settings",
            dir.display(),
            differences.join("; ")
        );
    }
    Ok(index)
}

/// "field: cache X, asked Y" for each field of the spec that differs.
fn spec_differences(cache: &CacheSpec, asked: &CacheSpec) -> Vec<String> {
    let show = |value: serde_json::Value| value.to_string();
    let cache_fields = serde_json::to_value(cache).unwrap_or_default();
    let asked_fields = serde_json::to_value(asked).unwrap_or_default();
    let (Some(cache_fields), Some(asked_fields)) =
        (cache_fields.as_object(), asked_fields.as_object())
    else {
        return vec!["unreadable settings".to_string()];
    };
    cache_fields
        .iter()
        .filter(|(name, value)| asked_fields.get(*name) != Some(value))
        .map(|(name, value)| {
            format!(
                "{name}: cache {}, asked {}",
                show(value.clone()),
                show(asked_fields.get(name).cloned().unwrap_or_default())
            )
        })
        .collect()
}

/// Removes shards a crash left half-written by earlier builds of saectl (they never reached
/// their final name); newer temporaries are `.saectl-tmp-…`, removed under the lock.
fn remove_partial_files(dir: &Path) -> Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "partial") {
            std::fs::remove_file(&path)
                .with_context(|| format!("failed to remove {}", path.display()))?;
        }
    }
    Ok(())
}
