//! Shuffled training batches from an activation cache, deterministic for a seed and
//! resumable from a single number: the tokens consumed so far.
//!
//! Each epoch visits the shards in a seeded order and cuts that order into groups of about
//! `buffer_tokens` tokens (at least one shard each) — the shuffling buffer. A group's tokens
//! are permuted with a seed drawn from `(seed, epoch, group)`; the epoch's stream is the
//! groups' permuted tokens one after another, and batch `i` is tokens `[i·B, (i+1)·B)` of the
//! stream of epochs (a batch may span two groups or two epochs). Because the stream is a pure
//! function of the seed and the cache, resuming needs only the offset: the group holding it is
//! loaded and permuted again, and the groups before it are skipped without being read.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use crate::cache::ActivationCache;
use crate::util::rng::SplitMix64;

/// The batches of one run over one cache.
pub struct BatchStream {
    cache: ActivationCache,
    seed: u64,
    batch_size: usize,
    buffer_tokens: u64,
    /// Tokens of the stream consumed so far.
    offset: u64,
    layout: Option<(u64, EpochLayout)>,
    group: Option<LoadedGroup>,
}

/// How one epoch's shard order is cut into groups.
struct EpochLayout {
    groups: Vec<Vec<usize>>,
    /// First token of each group within the epoch.
    starts: Vec<u64>,
}

/// One group in memory: its tokens `[T, d_in]` (storage dtype, CPU) and their permutation.
struct LoadedGroup {
    epoch: u64,
    index: usize,
    acts: Tensor,
    order: Vec<u32>,
}

impl BatchStream {
    /// A stream positioned after `offset` tokens.
    pub fn new(
        cache: ActivationCache,
        seed: u64,
        batch_size: usize,
        buffer_tokens: u64,
        offset: u64,
    ) -> Self {
        Self {
            cache,
            seed,
            batch_size,
            buffer_tokens: buffer_tokens.max(1),
            offset,
            layout: None,
            group: None,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn cache(&self) -> &ActivationCache {
        &self.cache
    }

    /// The next `[batch_size, d_in]` f32 batch, on `device`.
    pub fn next_batch(&mut self, device: &Device) -> Result<Tensor> {
        let mut pieces = Vec::new();
        let mut needed = self.batch_size;
        while needed > 0 {
            let (epoch, index, position) = self.locate(self.offset);
            let group = self.load_group(epoch, index)?;
            let take = needed.min(group.order.len() - position);
            let ids =
                Tensor::from_slice(&group.order[position..position + take], take, &Device::Cpu)?;
            pieces.push(group.acts.index_select(&ids, 0)?);
            self.offset += take as u64;
            needed -= take;
        }
        let batch = Tensor::cat(&pieces, 0)?; // [batch_size, d_in]
        Ok(batch.to_dtype(DType::F32)?.to_device(device)?)
    }

    /// `(epoch, group, position in the group)` of stream token `offset`.
    fn locate(&mut self, offset: u64) -> (u64, usize, usize) {
        let epoch_tokens = self.cache.index().num_tokens;
        let epoch = offset / epoch_tokens;
        let within = offset % epoch_tokens;
        let layout = self.layout(epoch);
        let index = layout.starts.partition_point(|&start| start <= within) - 1;
        (epoch, index, (within - layout.starts[index]) as usize)
    }

    fn layout(&mut self, epoch: u64) -> &EpochLayout {
        if self.layout.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.layout = Some((epoch, self.make_layout(epoch)));
        }
        &self.layout.as_ref().expect("just set").1
    }

    fn make_layout(&self, epoch: u64) -> EpochLayout {
        let index = self.cache.index();
        let seq_len = index.spec.seq_len as u64;
        let order = permutation(index.shards.len(), mix(self.seed, epoch, u64::MAX));
        let (mut groups, mut starts) = (Vec::new(), Vec::new());
        let (mut current, mut current_tokens, mut start) = (Vec::new(), 0u64, 0u64);
        for shard in order {
            current.push(shard as usize);
            current_tokens += index.shards[shard as usize].num_sequences as u64 * seq_len;
            if current_tokens >= self.buffer_tokens {
                starts.push(start);
                start += current_tokens;
                groups.push(std::mem::take(&mut current));
                current_tokens = 0;
            }
        }
        if !current.is_empty() {
            starts.push(start);
            groups.push(current);
        }
        EpochLayout { groups, starts }
    }

    fn load_group(&mut self, epoch: u64, index: usize) -> Result<&LoadedGroup> {
        let loaded = self
            .group
            .as_ref()
            .is_some_and(|g| g.epoch == epoch && g.index == index);
        if !loaded {
            let shards = self.layout(epoch).groups[index].clone();
            let acts = load_rows(&self.cache, &shards)?; // [T, d_in]
            let order = permutation(acts.dim(0)?, mix(self.seed, epoch, index as u64));
            self.group = Some(LoadedGroup {
                epoch,
                index,
                acts,
                order,
            });
        }
        Ok(self.group.as_ref().expect("just loaded"))
    }
}

/// The tokens of `shards`, one shard after another, `[T, d_in]` in the storage dtype. Each
/// shard is copied into the group's buffer as it is read and then dropped, so loading holds
/// the group and one shard (`Tensor::cat` of the loaded shards held every shard and the
/// group: twice the shuffling buffer, 1.3 GB at the default 655k tokens × 256 f32).
fn load_rows(cache: &ActivationCache, shards: &[usize]) -> Result<Tensor> {
    let spec = &cache.index().spec;
    let sequences: usize = shards
        .iter()
        .map(|&shard| cache.index().shards[shard].num_sequences)
        .sum();
    let shape = (sequences * spec.seq_len, spec.d_in);
    let rows = Tensor::zeros(shape, spec.dtype.candle(), &Device::Cpu)?;
    let mut filled = 0;
    for &shard in shards {
        let part = cache.load_shard(shard)?.activations;
        let part = part.reshape(((), spec.d_in))?;
        rows.slice_set(&part, 0, filled)?;
        filled += part.dim(0)?;
    }
    Ok(rows)
}

/// A seed for one `(epoch, group)`; `group = u64::MAX` seeds the epoch's shard order.
pub(crate) fn mix(seed: u64, epoch: u64, group: u64) -> u64 {
    let mut rng = SplitMix64(seed ^ epoch.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    rng.0 ^= group.wrapping_mul(0xA076_1D64_78BD_642F);
    rng.next_u64()
}

/// A seeded uniform permutation of `0..n` (Fisher–Yates; multiply-shift for the index).
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..n).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
    order
}
