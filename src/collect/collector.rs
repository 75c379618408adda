//! The collector: ingest batches, keep exact per-feature top samples, statistics and the
//! feature view (activation and position histograms, interval samples, a token sample), with
//! each kept sample's context and the feature's activations on it.
//!
//! The features are split into blocks ([`super::block`]) that ingest each batch independently —
//! one after the other, or each on its own thread ([`Collector::set_threads`]); a feature's
//! state depends only on its own activations, so the result is the same for any number of
//! blocks. This file holds the settings, the token counters shared by all features and the
//! dispatch; the scan is [`super::scan`], the feature pass [`super::offers`], merging
//! [`super::collector_merge`], read-out [`super::readout`].

use anyhow::{bail, Result};

use super::batch::{FeatureActivations, TokenBatch};
use super::bins::{position_bin, POSITION_BINS};
use super::block::{FeatureBlock, Params};
use super::ranges::SequenceRanges;
use super::scan::NonFinite;
use crate::samples::CollectorConfig;

/// Token ids are below this: 16.7 M, sixty times the largest vocabularies (Gemma's 256 k).
pub const MAX_TOKEN_ID: u32 = 1 << 24;

/// Tokens of one batch: their index in it has 31 bits (the working memory keeps a flag in
/// the 32nd).
const MAX_BATCH_TOKENS: usize = (1 << 31) - 1;

/// Blocks of at least this many features hold a multiple of it (the dense scan reads 64
/// values at a time).
const BLOCK_ALIGN: usize = 64;
/// A thread is worth its start-up only with this many features to scan.
const MIN_FEATURES_PER_THREAD: usize = 2048;
/// More threads than this add little (the scan is bound by memory).
const MAX_THREADS: usize = 16;

/// One batch as every block reads it: its tokens, and their activations in parts that follow
/// one another (`Collector::ingest_parts`).
pub(super) struct BatchView<'a> {
    pub(super) tokens: &'a TokenBatch<'a>,
    pub(super) parts: &'a [FeatureActivations<'a>],
    is_special: &'a [bool],
}

impl BatchView<'_> {
    #[inline]
    pub(super) fn is_special(&self, token: u32) -> bool {
        self.is_special.get(token as usize) == Some(&true)
    }
}

/// Exact per-feature top-k samples and streaming statistics. See the module docs.
#[derive(Clone, Debug)]
pub struct Collector {
    pub(super) config: CollectorConfig,
    pub(super) params: Params,
    pub(super) d_sae: usize,
    /// `is_special[token]` for token ids up to the largest special id.
    pub(super) is_special: Vec<bool>,
    /// The features, in blocks of `block_size` (the last may be shorter).
    pub(super) blocks: Vec<FeatureBlock>,
    pub(super) block_size: usize,
    /// Counted tokens per position bin.
    pub(super) position_tokens: [u64; POSITION_BINS],
    pub(super) tokens_seen: u64,
    pub(super) sequences_seen: u64,
    pub(super) special_tokens_excluded: u64,
    /// The sequence indices ingested: shards must not overlap (see `ranges.rs`).
    pub(super) sequences: SequenceRanges,
    /// Set when a batch failed (NaN): blocks may have counted part of it, so the state is no
    /// longer a clean prefix.
    pub(super) poisoned: Option<String>,
}

/// The number of threads [`Collector::set_threads`] should get on this host for an SAE of
/// width `d_sae`: one per core, at most one per 2048 features, at most 16.
pub fn default_threads(d_sae: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores
        .min(d_sae / MIN_FEATURES_PER_THREAD)
        .clamp(1, MAX_THREADS)
}

impl Collector {
    /// A collector for an SAE of width `d_sae`. `special_tokens` are the tokenizer's BOS,
    /// EOS, PAD… ids, skipped when `config.exclude_special_tokens` is on. It ingests on the
    /// calling thread until [`set_threads`](Self::set_threads) says otherwise.
    pub fn new(config: CollectorConfig, d_sae: usize, special_tokens: &[u32]) -> Result<Self> {
        config.validate()?;
        if d_sae == 0 {
            bail!("the SAE has no features (d_sae = 0)");
        }
        if d_sae > u32::MAX as usize {
            bail!("d_sae {d_sae} is too large");
        }
        let mut is_special = Vec::new();
        if let Some(&token) = special_tokens.iter().find(|&&t| t >= MAX_TOKEN_ID) {
            // The lookup table below is dense: an id from a damaged file must not size it.
            bail!(
                "special token id {token} is beyond any vocabulary (ids are below {MAX_TOKEN_ID})"
            );
        }
        for &token in special_tokens {
            let token = token as usize;
            if token >= is_special.len() {
                is_special.resize(token + 1, false);
            }
            is_special[token] = true;
        }
        let params = Params::of(&config);
        Ok(Self {
            d_sae,
            is_special,
            blocks: vec![FeatureBlock::new(0, d_sae, &params)],
            block_size: d_sae,
            position_tokens: [0; POSITION_BINS],
            tokens_seen: 0,
            sequences_seen: 0,
            special_tokens_excluded: 0,
            sequences: SequenceRanges::default(),
            poisoned: None,
            params,
            config,
        })
    }

    /// Ingests every batch on `threads` threads (1: the calling thread), each scanning a
    /// block of the features. Results do not depend on it.
    pub fn set_threads(&mut self, threads: usize) {
        let threads = threads.clamp(1, self.d_sae);
        let mut size = self.d_sae.div_ceil(threads);
        if size >= BLOCK_ALIGN {
            size = size.next_multiple_of(BLOCK_ALIGN).min(self.d_sae);
        }
        if size == self.block_size {
            return;
        }
        let old = std::mem::take(&mut self.blocks);
        let old_size = self.block_size;
        for start in (0..self.d_sae).step_by(size) {
            let mut block = FeatureBlock::with_no_features(start as u32);
            for f in start..(start + size).min(self.d_sae) {
                block.push_feature_from(&old[f / old_size], f % old_size);
            }
            self.blocks.push(block);
        }
        self.block_size = size;
    }

    /// Threads (blocks of features) each batch is ingested on.
    pub fn threads(&self) -> usize {
        self.blocks.len()
    }

    /// The block holding feature `f` and `f`'s index in it.
    pub(super) fn block(&self, f: usize) -> (&FeatureBlock, usize) {
        (&self.blocks[f / self.block_size], f % self.block_size)
    }

    pub(super) fn block_mut(&mut self, f: usize) -> (&mut FeatureBlock, usize) {
        (&mut self.blocks[f / self.block_size], f % self.block_size)
    }

    pub fn config(&self) -> &CollectorConfig {
        &self.config
    }

    pub fn d_sae(&self) -> usize {
        self.d_sae
    }

    /// Tokens that entered the statistics (special tokens excluded when that is on).
    pub fn tokens_seen(&self) -> u64 {
        self.tokens_seen
    }

    pub fn sequences_seen(&self) -> u64 {
        self.sequences_seen
    }

    pub fn special_tokens_excluded(&self) -> u64 {
        self.special_tokens_excluded
    }

    /// The sequence indices ingested so far (or merged in).
    pub fn sequence_ranges(&self) -> &SequenceRanges {
        &self.sequences
    }

    /// Special token ids this collector skips.
    pub fn special_tokens(&self) -> Vec<u32> {
        (0..self.is_special.len() as u32)
            .filter(|&t| self.is_special[t as usize])
            .collect()
    }

    /// Feeds one batch. On error (shape mismatch: nothing is changed; NaN/∞: nothing of the
    /// batch is kept and the collector refuses further use) the message names the place.
    pub fn ingest(
        &mut self,
        tokens: &TokenBatch<'_>,
        activations: &FeatureActivations<'_>,
    ) -> Result<()> {
        self.ingest_parts(tokens, std::slice::from_ref(activations))
    }

    /// Feeds one batch whose activations come in parts: the first part's tokens, then the
    /// next's… (consecutive batches of a sweep fed at once, without copying their
    /// activations into one). The result is that of feeding the parts as separate batches;
    /// it comes faster, the more values each feature has in it (see
    /// [`ingest_hits_hint`](Self::ingest_hits_hint)).
    pub fn ingest_parts(
        &mut self,
        tokens: &TokenBatch<'_>,
        parts: &[FeatureActivations<'_>],
    ) -> Result<()> {
        if let Some(reason) = &self.poisoned {
            bail!("the collector is unusable after an earlier error: {reason}");
        }
        if tokens.num_tokens() > MAX_BATCH_TOKENS {
            bail!(
                "a batch of {} tokens is too large (at most {MAX_BATCH_TOKENS})",
                tokens.num_tokens(),
            );
        }
        // Each part covers what its layout says; the last, the rest of the batch.
        let mut covered = 0;
        for (i, part) in parts.iter().enumerate() {
            let rest = tokens.num_tokens().saturating_sub(covered);
            let part_tokens = if i + 1 == parts.len() {
                rest
            } else {
                part.num_tokens().min(rest)
            };
            part.check(part_tokens, self.d_sae)?;
            covered += part_tokens;
            if matches!(part, FeatureActivations::Sparse { .. })
                && self.config.sample_activation_threshold < 0.0
            {
                bail!("a negative --sample-activation-threshold needs dense activations (sparse input leaves zeros implicit)");
            }
        }
        if covered != tokens.num_tokens() {
            bail!(
                "activations cover {covered} tokens but the batch has {}",
                tokens.num_tokens()
            );
        }
        let stored: usize = parts.iter().map(FeatureActivations::stored_values).sum();
        if stored > u32::MAX as usize {
            // The working memory indexes values with 32 bits.
            bail!("a batch of {stored} activation values is too large (at most {}): feed it in smaller batches", u32::MAX);
        }
        let batch = BatchView {
            tokens,
            parts,
            is_special: &self.is_special,
        };
        if let Some(at) = ingest_blocks(&mut self.blocks, &self.params, &batch) {
            let (row, position) = (at.token / tokens.seq_len, at.token % tokens.seq_len);
            let reason = format!(
                "activation of feature {} is NaN or infinite at sequence {}, position {position}",
                at.feature,
                tokens.first_sequence + row as u64
            );
            self.poisoned = Some(reason.clone());
            bail!(reason);
        }
        self.count_tokens(tokens);
        Ok(())
    }

    /// Non-zero activations worth gathering into one [`ingest_parts`](Self::ingest_parts):
    /// ~256 per feature, at most 8 M (64 MiB of working memory). Each feature's stores,
    /// fetched once per call, serve many of them, and a store admits fewer samples the more
    /// values it sees at once: a visit's values are counted before any is offered, so only
    /// those among the best so far are written, and over a collection a feature's top store
    /// admits ~`capacity · H(visits)` samples (harmonic number). The cold fill of 16k features
    /// takes 0.9× the CPU time of ~128 per feature, about half that of 4096-token batches fed
    /// one by one; ~384 and ~512 gained little more (docs/benchmarks.md).
    pub fn ingest_hits_hint(&self) -> usize {
        (256 * self.d_sae).min(1 << 23)
    }

    /// Token counters, once per batch.
    fn count_tokens(&mut self, tokens: &TokenBatch<'_>) {
        let mut special = 0;
        for row in 0..tokens.batch {
            for (position, &token) in tokens.row(row).iter().enumerate() {
                if self.config.exclude_special_tokens && self.is_special(token) {
                    special += 1;
                } else {
                    self.position_tokens[position_bin(position as u32)] += 1;
                }
            }
        }
        self.special_tokens_excluded += special;
        self.tokens_seen += tokens.num_tokens() as u64 - special;
        self.sequences_seen += tokens.batch as u64;
        let first = tokens.first_sequence;
        self.sequences.insert(first..first + tokens.batch as u64);
    }

    fn is_special(&self, token: u32) -> bool {
        self.is_special.get(token as usize) == Some(&true)
    }
}

/// Every block ingests the batch (scan, then offers), the first on this thread and each other
/// on its own. Returns the first non-finite activation in token order, if any.
fn ingest_blocks(
    blocks: &mut [FeatureBlock],
    params: &Params,
    batch: &BatchView<'_>,
) -> Option<NonFinite> {
    let ingest = |block: &mut FeatureBlock| block.ingest(params, batch);
    let (first, rest) = blocks.split_first_mut()?;
    if rest.is_empty() {
        return ingest(first).err();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .iter_mut()
            .map(|block| scope.spawn(move || ingest(block)))
            .collect();
        let mut failures: Vec<NonFinite> = ingest(first).err().into_iter().collect();
        for handle in handles {
            match handle.join() {
                Ok(result) => failures.extend(result.err()),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        failures.into_iter().min()
    })
}
