//! The collector: ingest batches, keep exact per-feature top samples and statistics, merge.
//!
//! The hot path is the dense scan. A real SAE's activation matrix is almost all zeros, so the
//! scan tests 16 values at a time with one branch-free comparison (it vectorises) and only
//! looks closer at blocks holding something non-zero or above the threshold. Candidates of a
//! sequence are gathered first and deduplicated per feature inside that sequence (greedy,
//! best first), then offered to the feature's store. A candidate below the store's current
//! floor is dropped before it costs anything: it cannot enter, and whatever it would suppress
//! in deduplication ranks even lower.

use std::cmp::Ordering;

use anyhow::{bail, Result};

use super::batch::{FeatureActivations, TokenBatch};
use super::config::CollectorConfig;
use super::exact_sum::FeatureMoments;
use super::format::FeatureStatistics;
use super::ranges::SequenceRanges;
use super::top_samples::{rank_cmp, StoredSample, TopSamples};

/// Values tested together for "anything interesting?" in the dense path.
const CHUNK: usize = 64;
/// Values per lane mask inside a chunk that has something (CHUNK is a multiple of it).
const BLOCK: usize = 16;

/// `v > floor`, or `v` is NaN: one compare that lets the scan see NaN without a second test
/// (NaN fails every comparison, so the negated `<=` is true for it).
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn above_or_nan(v: f32, floor: f32) -> bool {
    !(v <= floor)
}

/// A feature's hot state: what a hit in the scan reads and writes, in one cache line (the
/// statistics of 16k features do not stay in L2 while activations stream past).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub(super) struct FeatureState {
    pub(super) moments: FeatureMoments,
    /// `top[f].floor()` cached: candidates below it cannot enter the store.
    pub(super) admit_floor: f32,
}

impl Default for FeatureState {
    fn default() -> Self {
        Self {
            moments: FeatureMoments::default(),
            admit_floor: f32::NEG_INFINITY,
        }
    }
}

/// Asks the CPU to start loading `value`'s cache line (a hint: no effect on results).
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults, and the pointer comes from a reference.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// One activation of one sequence that may become a sample.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    feature: u32,
    position: u32,
    value: f32,
}

/// Exact per-feature top-k samples and streaming statistics. See the module docs.
#[derive(Clone, Debug)]
pub struct Collector {
    pub(super) config: CollectorConfig,
    pub(super) d_sae: usize,
    /// `is_special[token]` for token ids up to the largest special id.
    pub(super) is_special: Vec<bool>,
    /// Per feature: statistics and the store's admission floor, one cache line each.
    pub(super) state: Vec<FeatureState>,
    pub(super) top: Vec<TopSamples>,
    pub(super) tokens_seen: u64,
    pub(super) sequences_seen: u64,
    pub(super) special_tokens_excluded: u64,
    /// The sequence indices ingested: shards must not overlap (see `ranges.rs`).
    pub(super) sequences: SequenceRanges,
    /// Set when a batch failed half-way (NaN): the state is no longer a clean prefix.
    poisoned: Option<String>,
    candidates: Vec<Candidate>,
    /// Scratch: one token's interesting `(feature, value)` pairs.
    hits: Vec<(u32, f32)>,
}

/// A feature's statistics and samples, read out of a collector.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSummary {
    pub statistics: FeatureStatistics,
    pub samples: Vec<StoredSample>,
}

impl Collector {
    /// A collector for an SAE of width `d_sae`. `special_tokens` are the tokenizer's BOS,
    /// EOS, PAD… ids, skipped when `config.exclude_special_tokens` is on.
    pub fn new(config: CollectorConfig, d_sae: usize, special_tokens: &[u32]) -> Result<Self> {
        config.validate()?;
        if d_sae == 0 {
            bail!("the SAE has no features (d_sae = 0)");
        }
        if d_sae > u32::MAX as usize {
            bail!("d_sae {d_sae} is too large");
        }
        let mut is_special = Vec::new();
        for &token in special_tokens {
            let token = token as usize;
            if token >= is_special.len() {
                is_special.resize(token + 1, false);
            }
            is_special[token] = true;
        }
        let capacity = config.max_samples_per_feature;
        let max_context = 2 * config.context_half_width() + 1;
        Ok(Self {
            d_sae,
            is_special,
            state: vec![FeatureState::default(); d_sae],
            top: vec![TopSamples::new(capacity, max_context); d_sae],
            tokens_seen: 0,
            sequences_seen: 0,
            special_tokens_excluded: 0,
            sequences: SequenceRanges::default(),
            poisoned: None,
            candidates: Vec::new(),
            hits: Vec::new(),
            config,
        })
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

    /// Feeds one batch. On error (shape mismatch: nothing is changed; NaN/∞: the batch is
    /// partly ingested and the collector refuses further use) the message names the place.
    pub fn ingest(
        &mut self,
        tokens: &TokenBatch<'_>,
        activations: &FeatureActivations<'_>,
    ) -> Result<()> {
        if let Some(reason) = &self.poisoned {
            bail!("the collector is unusable after an earlier error: {reason}");
        }
        activations.check(tokens.num_tokens(), self.d_sae)?;
        if matches!(activations, FeatureActivations::Sparse { .. })
            && self.config.sample_activation_threshold < 0.0
        {
            bail!("a negative --sample-activation-threshold needs dense activations (sparse input leaves zeros implicit)");
        }
        let result = self.ingest_checked(tokens, activations);
        if let Err(err) = &result {
            self.poisoned = Some(format!("{err:#}"));
        }
        result
    }

    fn ingest_checked(
        &mut self,
        tokens: &TokenBatch<'_>,
        activations: &FeatureActivations<'_>,
    ) -> Result<()> {
        match *activations {
            FeatureActivations::Dense { values, d_sae } => {
                // Row-major, one token's full row at a time: the scan streams through memory.
                // (Blocking by features to keep their statistics in cache was measured 4x
                // slower: partial rows at a 64 KiB stride defeat the hardware prefetcher.)
                for row in 0..tokens.batch {
                    self.ingest_row(tokens, row, |this, token_index, position| {
                        this.scan_dense(
                            &values[token_index * d_sae..(token_index + 1) * d_sae],
                            position,
                        )
                    })?;
                }
            }
            FeatureActivations::Sparse {
                offsets,
                indices,
                values,
                ..
            } => {
                for row in 0..tokens.batch {
                    self.ingest_row(tokens, row, |this, token_index, position| {
                        let span = offsets[token_index]..offsets[token_index + 1];
                        this.scan_sparse(&indices[span.clone()], &values[span], position)
                    })?;
                }
            }
        }
        self.count_tokens(tokens);
        Ok(())
    }

    /// Token counters, once per batch.
    fn count_tokens(&mut self, tokens: &TokenBatch<'_>) {
        let special = if self.config.exclude_special_tokens {
            tokens
                .tokens
                .iter()
                .filter(|&&t| self.is_special(t))
                .count() as u64
        } else {
            0
        };
        self.special_tokens_excluded += special;
        self.tokens_seen += tokens.num_tokens() as u64 - special;
        self.sequences_seen += tokens.batch as u64;
        let first = tokens.first_sequence;
        self.sequences.insert(first..first + tokens.batch as u64);
    }

    fn is_special(&self, token: u32) -> bool {
        self.is_special.get(token as usize) == Some(&true)
    }

    /// Scans one sequence with `scan(self, token_index, position)`, then offers its candidates.
    fn ingest_row<F>(&mut self, tokens: &TokenBatch<'_>, row: usize, mut scan: F) -> Result<()>
    where
        F: FnMut(&mut Self, usize, u32) -> std::result::Result<(), u32>,
    {
        let sequence_idx = tokens.first_sequence + row as u64;
        let row_tokens = tokens.row(row);
        self.candidates.clear();
        for (position, &token) in row_tokens.iter().enumerate() {
            if self.config.exclude_special_tokens && self.is_special(token) {
                continue;
            }
            if let Err(feature) = scan(self, row * tokens.seq_len + position, position as u32) {
                bail!("activation of feature {feature} is NaN or infinite at sequence {sequence_idx}, position {position}");
            }
        }
        self.offer_candidates(row_tokens, sequence_idx);
        Ok(())
    }

    /// Scans one token's dense activations. `Err(feature)` on a non-finite value.
    #[inline]
    fn scan_dense(&mut self, acts: &[f32], position: u32) -> std::result::Result<(), u32> {
        // "Interesting": firing (> 0), above the threshold, or NaN. `!(v <= floor)` is true
        // for all three and compiles to one vector compare per block.
        let floor = self.config.sample_activation_threshold.min(0.0);
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        let mut chunks = acts.chunks_exact(CHUNK);
        for (chunk_index, chunk) in chunks.by_ref().enumerate() {
            // Most chunks hold nothing: an OR of compares over the whole chunk vectorises
            // cleanly and settles them with one branch.
            if !chunk
                .iter()
                .fold(false, |any, &v| any | above_or_nan(v, floor))
            {
                continue;
            }
            for (block_index, block) in chunk.chunks_exact(BLOCK).enumerate() {
                // One bit per interesting lane; walking the set bits avoids a
                // hard-to-predict branch per lane.
                let mut mask = block.iter().enumerate().fold(0u32, |mask, (lane, &v)| {
                    mask | (u32::from(above_or_nan(v, floor)) << lane)
                });
                let first = chunk_index * CHUNK + block_index * BLOCK;
                while mask != 0 {
                    let lane = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    hits.push(((first + lane) as u32, block[lane]));
                }
            }
        }
        let tail_start = acts.len() - chunks.remainder().len();
        for (i, &v) in chunks.remainder().iter().enumerate() {
            if above_or_nan(v, floor) {
                hits.push(((tail_start + i) as u32, v));
            }
        }
        let result = self.observe_all(&hits, position);
        self.hits = hits;
        result
    }

    #[inline]
    fn scan_sparse(
        &mut self,
        indices: &[u32],
        values: &[f32],
        position: u32,
    ) -> std::result::Result<(), u32> {
        for &feature in indices {
            prefetch(&self.state[feature as usize]);
        }
        for (&feature, &v) in indices.iter().zip(values) {
            // Zeros in sparse input (a TopK slot whose ReLU clipped it) neither fire nor pass.
            if above_or_nan(v, 0.0) {
                self.observe(feature, v, position)?;
            }
        }
        Ok(())
    }

    /// Observes one token's hits. Their features' state lines are fetched first, all at
    /// once, so the cache misses overlap instead of queueing one behind the other (the state
    /// of 16k features does not stay in cache while activations stream past).
    #[inline]
    fn observe_all(&mut self, hits: &[(u32, f32)], position: u32) -> std::result::Result<(), u32> {
        for &(feature, _) in hits {
            prefetch(&self.state[feature as usize]);
        }
        for &(feature, value) in hits {
            self.observe(feature, value, position)?;
        }
        Ok(())
    }

    #[inline]
    fn observe(&mut self, feature: u32, value: f32, position: u32) -> std::result::Result<(), u32> {
        if !value.is_finite() {
            return Err(feature);
        }
        let f = feature as usize;
        if value > 0.0 {
            self.state[f].moments.firing += 1;
        }
        if value > self.config.sample_activation_threshold {
            self.state[f].moments.record(value);
            if value >= self.state[f].admit_floor {
                self.candidates.push(Candidate {
                    feature,
                    position,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Deduplicates the sequence's candidates and offers the survivors to their stores.
    fn offer_candidates(&mut self, row_tokens: &[u32], sequence_idx: u64) {
        if self.candidates.is_empty() {
            return;
        }
        let mut candidates = std::mem::take(&mut self.candidates);
        if self.config.dedup_context_windows {
            // Per feature, best first; then a greedy pass keeps a candidate only if no kept one
            // of the same feature lies within the half-width (its token would be in the other's
            // context window).
            candidates.sort_unstable_by(|a, b| {
                a.feature.cmp(&b.feature).then_with(|| {
                    rank_cmp(
                        b.value,
                        sequence_idx,
                        b.position,
                        a.value,
                        sequence_idx,
                        a.position,
                    )
                })
            });
            let half = self.config.context_half_width() as u32;
            let mut group_start = 0;
            let mut kept: Vec<u32> = Vec::new();
            for i in 0..candidates.len() {
                if candidates[i].feature != candidates[group_start].feature {
                    group_start = i;
                    kept.clear();
                }
                let candidate = candidates[i];
                if kept.iter().any(|&p| p.abs_diff(candidate.position) <= half) {
                    continue;
                }
                kept.push(candidate.position);
                self.offer(candidate, row_tokens, sequence_idx);
            }
        } else {
            for &candidate in &candidates {
                self.offer(candidate, row_tokens, sequence_idx);
            }
        }
        candidates.clear();
        self.candidates = candidates;
    }

    fn offer(&mut self, candidate: Candidate, row_tokens: &[u32], sequence_idx: u64) {
        let f = candidate.feature as usize;
        let position = candidate.position as usize;
        let half = self.config.context_half_width();
        let start = position.saturating_sub(half);
        let end = (position + half + 1).min(row_tokens.len());
        self.top[f].push_parts(
            candidate.value,
            sequence_idx,
            candidate.position,
            position.checked_sub(1).map(|p| row_tokens[p]),
            &row_tokens[start..end],
            position - start,
        );
        self.state[f].admit_floor = self.top[f].floor();
    }

    /// Adds everything `other` saw. Exact when the two saw disjoint sequence ranges, and an
    /// error when they did not (the same sequence would count twice).
    pub fn merge(&mut self, other: &Collector) -> Result<()> {
        if other.d_sae != self.d_sae {
            bail!(
                "cannot merge collectors of d_sae {} and {}",
                self.d_sae,
                other.d_sae
            );
        }
        if other.config != self.config {
            bail!(
                "cannot merge collectors made with different settings: {:?} vs {:?}",
                self.config,
                other.config
            );
        }
        if other.is_special != self.is_special {
            bail!("cannot merge collectors that skip different special tokens");
        }
        if let Some(reason) = self.poisoned.as_ref().or(other.poisoned.as_ref()) {
            bail!("cannot merge a collector that failed: {reason}");
        }
        if let Some((mine, theirs)) = self.sequences.first_overlap(&other.sequences) {
            bail!(
                "cannot merge collectors that saw the same sequences ({}..{} and {}..{}): \
                 shards must cover disjoint parts of the corpus",
                mine.start,
                mine.end,
                theirs.start,
                theirs.end
            );
        }
        for f in 0..self.d_sae {
            self.state[f].moments.merge(&other.state[f].moments);
            self.top[f].merge(&other.top[f]);
            self.state[f].admit_floor = self.top[f].floor();
        }
        self.tokens_seen += other.tokens_seen;
        self.sequences_seen += other.sequences_seen;
        self.special_tokens_excluded += other.special_tokens_excluded;
        self.sequences.extend(&other.sequences);
        Ok(())
    }

    /// Forgets everything seen (settings stay).
    pub fn clear(&mut self) {
        self.state
            .iter_mut()
            .for_each(|s| *s = FeatureState::default());
        self.top.iter_mut().for_each(TopSamples::clear);
        self.tokens_seen = 0;
        self.sequences_seen = 0;
        self.special_tokens_excluded = 0;
        self.sequences = SequenceRanges::default();
        self.poisoned = None;
    }

    /// Number of samples kept for `feature` (0 for an unknown feature).
    pub fn num_samples(&self, feature: u32) -> usize {
        self.top.get(feature as usize).map_or(0, TopSamples::len)
    }

    /// The feature's kept samples, best first (empty for an unknown feature).
    pub fn top_samples(&self, feature: u32) -> Vec<StoredSample> {
        self.top
            .get(feature as usize)
            .map_or_else(Vec::new, TopSamples::sorted)
    }

    /// Statistics of one feature; `None` when `feature >= d_sae`.
    pub fn statistics(&self, feature: u32) -> Option<FeatureStatistics> {
        let moments = &self.state.get(feature as usize)?.moments;
        let density = if self.tokens_seen == 0 {
            0.0
        } else {
            moments.firing as f64 / self.tokens_seen as f64
        };
        let (min, max) = if moments.count == 0 {
            (0.0, 0.0)
        } else {
            (moments.min, moments.max)
        };
        Some(FeatureStatistics {
            feature_idx: feature,
            max_activation: f64::from(max),
            mean_activation: moments.mean(),
            num_samples: self.top[feature as usize].len() as u64,
            activation_count: moments.count,
            min_activation: f64::from(min),
            std_activation: moments.std(),
            firing_count: moments.firing,
            density,
            activation_sum: moments.sum,
            activation_sum_squares: moments.sum_squares,
        })
    }

    /// Statistics and samples of one feature.
    pub fn feature(&self, feature: u32) -> Option<FeatureSummary> {
        Some(FeatureSummary {
            statistics: self.statistics(feature)?,
            samples: self.top_samples(feature),
        })
    }

    /// Per feature, tokens where it fired.
    pub fn firing_counts(&self) -> Vec<u64> {
        self.state.iter().map(|s| s.moments.firing).collect()
    }

    /// Activations above the threshold over all features (the original's `total_samples_seen`).
    pub fn total_activations(&self) -> u64 {
        self.state.iter().map(|s| s.moments.count).sum()
    }

    /// Features with at least one sample, the largest max activation first (ties: lower
    /// index first) — the order in which the original chose `top_features_to_save`.
    pub fn features_by_max_activation(&self) -> Vec<u32> {
        let mut features: Vec<u32> = (0..self.d_sae as u32)
            .filter(|&f| !self.top[f as usize].is_empty())
            .collect();
        features.sort_by(|&a, &b| {
            let (ma, mb) = (
                self.state[a as usize].moments.max,
                self.state[b as usize].moments.max,
            );
            mb.partial_cmp(&ma)
                .unwrap_or(Ordering::Equal)
                .then(a.cmp(&b))
        });
        features
    }
}
