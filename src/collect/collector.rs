//! The collector: ingest batches, keep exact per-feature top samples, statistics and the
//! feature view (activation and position histograms, interval samples, a token sample).
//!
//! This file holds the state and walks a batch sequence by sequence: each token is scanned
//! ([`super::scan`], the hot path: O(1) work per activation above the threshold), then the
//! sequence's candidates are deduplicated and offered to the stores ([`super::offers`]). A
//! candidate below a store's cached floor is dropped in the scan before it costs anything.
//! Merging lives in [`super::collector_merge`], read-out in [`super::readout`].

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use super::batch::{FeatureActivations, TokenBatch};
use super::bins::{position_bin, row_key, ACTIVATION_BINS, POSITION_BINS};
use super::exact_sum::FeatureMoments;
use super::interval_samples::{IntervalSamples, IntervalShape};
use super::ranges::SequenceRanges;
use super::scan::{Candidate, IntervalCandidate};
use super::token_sample::TokenSample;
use super::top_samples::TopSamples;
use crate::samples::CollectorConfig;

/// Token ids are below this: 16.7 M, sixty times the largest vocabularies (Gemma's 256 k).
pub const MAX_TOKEN_ID: u32 = 1 << 24;

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
    /// The sequence indices ingested: shards must not overlap (see `ranges.rs`).
    pub(super) sequences: SequenceRanges,
    /// Set when a batch failed half-way (NaN): the state is no longer a clean prefix.
    pub(super) poisoned: Option<String>,
    pub(super) candidates: Vec<Candidate>,
    pub(super) interval_candidates: Vec<IntervalCandidate>,
    /// Scratch: one token's interesting `(feature, value)` pairs.
    pub(super) hits: Vec<(u32, f32)>,
    /// The sequence being scanned ([`row_key`]) and the token being scanned.
    pub(super) row_key: u64,
    pub(super) current_token: u32,
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
            sequences: SequenceRanges::default(),
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
        let first = tokens.first_sequence;
        self.sequences.insert(first..first + tokens.batch as u64);
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
}
