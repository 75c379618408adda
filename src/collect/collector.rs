//! The collector: ingest batches, keep exact per-feature top samples, statistics and the
//! feature view (activation and position histograms, interval samples, a token sample).
//!
//! The hot path is the dense scan. A real SAE's activation matrix is almost all zeros, so the
//! scan tests 16 values at a time with one branch-free comparison (it vectorises) and only
//! looks closer at blocks holding something non-zero or above the threshold. Candidates of a
//! sequence are gathered first and deduplicated per feature inside that sequence (greedy,
//! best first), then offered to the feature's store. A candidate below the store's current
//! floor is dropped before it costs anything: it cannot enter, and whatever it would suppress
//! in deduplication ranks even lower.
//!
//! Per activation above the threshold the feature view adds O(1) work: a histogram bin from
//! the value's bits, a position-bin count, one hash (the activation's sampling priority) and
//! two compares of its top 32 bits against cached floors (the interval stratum's and the
//! token sample's). Only the rare activation that passes a floor goes further. Merging and
//! read-out live in [`super::readout`].

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use super::batch::{FeatureActivations, TokenBatch};
use super::bins::{
    activation_bin, position_bin, priority, row_key, ACTIVATION_BINS, POSITION_BINS,
};
use super::config::CollectorConfig;
use super::exact_sum::FeatureMoments;
use super::interval_samples::{IntervalSamples, IntervalShape, SampleParts};
use super::token_sample::TokenSample;
use super::top_samples::{rank_cmp, TopSamples};

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

/// A feature's hot state: what a hit in the scan reads and writes, in two cache lines (the
/// statistics of 16k features do not stay in L2 while activations stream past).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub(super) struct FeatureState {
    pub(super) moments: FeatureMoments,
    /// `top[f].floor()` cached: candidates below it cannot enter the store.
    pub(super) admit_floor: f32,
    /// Top 32 bits of `token_samples[f].floor()`: priorities above cannot enter.
    pub(super) token_floor_hi: u32,
    /// Activations above the threshold per position bin (second cache line).
    pub(super) positions: [u64; POSITION_BINS],
}

// Two cache lines exactly: the scan prefetches both.
const _: () = assert!(std::mem::size_of::<FeatureState>() == 128);

impl Default for FeatureState {
    fn default() -> Self {
        Self {
            moments: FeatureMoments::default(),
            admit_floor: f32::NEG_INFINITY,
            token_floor_hi: u32::MAX,
            positions: [0; POSITION_BINS],
        }
    }
}

/// One (feature, activation bin): its count and the cached floor of its interval stratum.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct BinCell {
    /// Low 32 bits of the count; `Collector::histogram_high` holds the rest.
    pub(super) count: u32,
    /// Top 32 bits of the stratum's floor: priorities above cannot enter (0: sampling off).
    pub(super) floor_hi: u32,
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

/// One activation of one sequence that passed its interval stratum's floor.
#[derive(Clone, Copy, Debug)]
struct IntervalCandidate {
    priority: u64,
    feature: u32,
    position: u32,
    value: f32,
}

/// One token's activations, dense or sparse.
#[derive(Clone, Copy)]
enum TokenActivations<'a> {
    Dense(&'a [f32]),
    Sparse(&'a [u32], &'a [f32]),
}

/// Exact per-feature top-k samples and streaming statistics. See the module docs.
#[derive(Clone, Debug)]
pub struct Collector {
    pub(super) config: CollectorConfig,
    pub(super) d_sae: usize,
    /// `is_special[token]` for token ids up to the largest special id.
    pub(super) is_special: Vec<bool>,
    /// Per feature: statistics, admission floors and position counts, two cache lines each.
    pub(super) state: Vec<FeatureState>,
    pub(super) top: Vec<TopSamples>,
    /// `[d_sae, ACTIVATION_BINS]`: histogram counts and interval floors.
    pub(super) cells: Vec<BinCell>,
    /// Cell index → count / 2^32, for the (astronomically rare) counts past `u32::MAX`.
    pub(super) histogram_high: BTreeMap<usize, u64>,
    pub(super) intervals: Vec<IntervalSamples>,
    pub(super) token_samples: Vec<TokenSample>,
    /// Per feature, activations above the threshold on special tokens.
    pub(super) special_activations: Vec<u64>,
    /// Counted tokens per position bin.
    pub(super) position_tokens: [u64; POSITION_BINS],
    pub(super) tokens_seen: u64,
    pub(super) sequences_seen: u64,
    pub(super) special_tokens_excluded: u64,
    /// Set when a batch failed half-way (NaN): the state is no longer a clean prefix.
    pub(super) poisoned: Option<String>,
    candidates: Vec<Candidate>,
    interval_candidates: Vec<IntervalCandidate>,
    /// Scratch: one token's interesting `(feature, value)` pairs.
    hits: Vec<(u32, f32)>,
    /// The sequence being scanned ([`row_key`]) and the token being scanned.
    row_key: u64,
    current_token: u32,
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
        let mut collector = Self {
            d_sae,
            is_special,
            state: vec![FeatureState::default(); d_sae],
            top: vec![TopSamples::new(capacity, max_context); d_sae],
            cells: Vec::new(),
            histogram_high: BTreeMap::new(),
            intervals: vec![IntervalSamples::default(); d_sae],
            token_samples: vec![TokenSample::default(); d_sae],
            special_activations: vec![0; d_sae],
            position_tokens: [0; POSITION_BINS],
            tokens_seen: 0,
            sequences_seen: 0,
            special_tokens_excluded: 0,
            poisoned: None,
            candidates: Vec::new(),
            interval_candidates: Vec::new(),
            hits: Vec::new(),
            row_key: 0,
            current_token: 0,
            config,
        };
        collector.reset_cells();
        Ok(collector)
    }

    /// Empty histograms, and every interval floor open (or shut when sampling is off).
    pub(super) fn reset_cells(&mut self) {
        let floor_hi = if self.interval_shape().enabled() {
            u32::MAX
        } else {
            0
        };
        let cell = BinCell { count: 0, floor_hi };
        self.cells = vec![cell; self.d_sae * ACTIVATION_BINS];
        self.histogram_high.clear();
    }

    /// The interval stores' dimensions, from the settings.
    pub(super) fn interval_shape(&self) -> IntervalShape {
        IntervalShape {
            intervals: self.config.interval_count,
            capacity: self.config.samples_per_interval,
            max_context: 2 * self.config.context_half_width() + 1,
        }
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
                    self.ingest_row(tokens, row, |token_index| {
                        TokenActivations::Dense(
                            &values[token_index * d_sae..(token_index + 1) * d_sae],
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
                    self.ingest_row(tokens, row, |token_index| {
                        let span = offsets[token_index]..offsets[token_index + 1];
                        TokenActivations::Sparse(&indices[span.clone()], &values[span])
                    })?;
                }
            }
        }
        self.count_tokens(tokens);
        Ok(())
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
    }

    fn is_special(&self, token: u32) -> bool {
        self.is_special.get(token as usize) == Some(&true)
    }

    /// Scans one sequence, `acts(token_index)` giving each token's activations, then offers
    /// its candidates.
    fn ingest_row<'a, F>(&mut self, tokens: &TokenBatch<'_>, row: usize, acts: F) -> Result<()>
    where
        F: Fn(usize) -> TokenActivations<'a>,
    {
        let sequence_idx = tokens.first_sequence + row as u64;
        let row_tokens = tokens.row(row);
        self.candidates.clear();
        self.interval_candidates.clear();
        self.row_key = row_key(sequence_idx);
        for (position, &token) in row_tokens.iter().enumerate() {
            let token_acts = acts(row * tokens.seq_len + position);
            if self.is_special(token) {
                self.count_special(token_acts);
                if self.config.exclude_special_tokens {
                    continue;
                }
            }
            self.current_token = token;
            let scanned = match token_acts {
                TokenActivations::Dense(values) => self.scan_dense(values, position as u32),
                TokenActivations::Sparse(indices, values) => {
                    self.scan_sparse(indices, values, position as u32)
                }
            };
            if let Err(feature) = scanned {
                bail!("activation of feature {feature} is NaN or infinite at sequence {sequence_idx}, position {position}");
            }
        }
        self.offer_candidates(row_tokens, sequence_idx);
        self.offer_interval_candidates(row_tokens, sequence_idx);
        Ok(())
    }

    /// Counts a special token's activations above the threshold (BOS-dominated features),
    /// whether or not the token is otherwise excluded. One special token per sequence or so:
    /// a plain loop is enough.
    fn count_special(&mut self, acts: TokenActivations<'_>) {
        let threshold = self.config.sample_activation_threshold;
        let counts = &mut self.special_activations;
        match acts {
            TokenActivations::Dense(values) => {
                for (count, &v) in counts.iter_mut().zip(values) {
                    *count += u64::from(v > threshold && v.is_finite());
                }
            }
            TokenActivations::Sparse(indices, values) => {
                for (&feature, &v) in indices.iter().zip(values) {
                    if v > threshold && v > 0.0 && v.is_finite() {
                        counts[feature as usize] += 1;
                    }
                }
            }
        }
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
        for (&feature, &value) in indices.iter().zip(values) {
            self.prefetch_feature(feature, value);
        }
        for (&feature, &v) in indices.iter().zip(values) {
            // Zeros in sparse input (a TopK slot whose ReLU clipped it) neither fire nor pass.
            if above_or_nan(v, 0.0) {
                self.observe(feature, v, position)?;
            }
        }
        Ok(())
    }

    /// Observes one token's hits. Their features' state lines and histogram cells are
    /// fetched first, all at once, so the cache misses overlap instead of queueing one behind
    /// the other (the state of 16k features does not stay in cache while activations stream
    /// past).
    #[inline]
    fn observe_all(&mut self, hits: &[(u32, f32)], position: u32) -> std::result::Result<(), u32> {
        for &(feature, value) in hits {
            self.prefetch_feature(feature, value);
        }
        for &(feature, value) in hits {
            self.observe(feature, value, position)?;
        }
        Ok(())
    }

    #[inline(always)]
    fn prefetch_feature(&self, feature: u32, value: f32) {
        let state = &self.state[feature as usize];
        prefetch(state);
        prefetch(&state.positions);
        let cell = feature as usize * ACTIVATION_BINS + activation_bin(value);
        if let Some(cell) = self.cells.get(cell) {
            prefetch(cell);
        }
    }

    #[inline]
    fn observe(&mut self, feature: u32, value: f32, position: u32) -> std::result::Result<(), u32> {
        if !value.is_finite() {
            return Err(feature);
        }
        let f = feature as usize;
        let state = &mut self.state[f];
        if value > 0.0 {
            state.moments.firing += 1;
        }
        if value > self.config.sample_activation_threshold {
            let new_max = state.moments.count == 0 || value > state.moments.max;
            state.moments.record(value);
            state.positions[position_bin(position)] += 1;
            let priority = priority(self.row_key, position, feature);
            let priority_hi = (priority >> 32) as u32;
            let token_candidate = priority_hi <= state.token_floor_hi;
            if value >= state.admit_floor {
                self.candidates.push(Candidate {
                    feature,
                    position,
                    value,
                });
            }
            let index = f * ACTIVATION_BINS + activation_bin(value);
            let cell = &mut self.cells[index];
            cell.count = cell.count.wrapping_add(1);
            let (wrapped, interval_candidate) = (cell.count == 0, priority_hi <= cell.floor_hi);
            if interval_candidate {
                self.interval_candidates.push(IntervalCandidate {
                    priority,
                    feature,
                    position,
                    value,
                });
            }
            if wrapped {
                *self.histogram_high.entry(index).or_insert(0) += 1;
            }
            if token_candidate {
                self.offer_token(f, priority);
            }
            if new_max {
                self.on_new_max(f);
            }
        }
        Ok(())
    }

    /// Offers the current token to the feature's token sample (rare after warm-up).
    #[cold]
    fn offer_token(&mut self, f: usize, priority: u64) {
        let sample = &mut self.token_samples[f];
        sample.offer(priority, self.current_token);
        self.state[f].token_floor_hi = (sample.floor() >> 32) as u32;
    }

    /// A new max may move bins into the first interval: fold their strata.
    #[cold]
    fn on_new_max(&mut self, f: usize) {
        let shape = self.interval_shape();
        let changed = self.intervals[f].set_max(&shape, self.state[f].moments.max);
        self.refresh_floors(f, changed);
    }

    /// Re-caches the interval floors of feature `f`'s bins in `bins`.
    pub(super) fn refresh_floors(&mut self, f: usize, bins: std::ops::Range<usize>) {
        let shape = self.interval_shape();
        let intervals = &self.intervals[f];
        let cells = &mut self.cells[f * ACTIVATION_BINS..(f + 1) * ACTIVATION_BINS];
        for b in bins {
            cells[b].floor_hi = (intervals.floor_of_bin(&shape, b) >> 32) as u32;
        }
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

    /// Offers the sequence's interval candidates to their strata (no deduplication: interval
    /// samples are a uniform draw over every activation).
    fn offer_interval_candidates(&mut self, row_tokens: &[u32], sequence_idx: u64) {
        if self.interval_candidates.is_empty() {
            return;
        }
        let candidates = std::mem::take(&mut self.interval_candidates);
        let shape = self.interval_shape();
        let half = self.config.context_half_width();
        for candidate in &candidates {
            let f = candidate.feature as usize;
            let position = candidate.position as usize;
            let start = position.saturating_sub(half);
            let end = (position + half + 1).min(row_tokens.len());
            let parts = SampleParts {
                activation: candidate.value,
                sequence_idx,
                position: candidate.position,
                previous_token: position.checked_sub(1).map(|p| row_tokens[p]),
                context: &row_tokens[start..end],
                context_position: position - start,
            };
            let changed = self.intervals[f].offer(&shape, candidate.priority, &parts);
            self.refresh_floors(f, changed);
        }
        self.interval_candidates = candidates;
        self.interval_candidates.clear();
    }
}
