//! A block of consecutive features and everything the collector keeps for them: statistics,
//! histograms, the stores and the arena of their samples' records.
//!
//! Features never interact, so a collector is a row of blocks that each ingest every batch
//! for their own features — on their own threads when the host has cores to spare
//! ([`super::collector`]) — and whatever the number of blocks, each feature ends up with the
//! same state: the output does not depend on the thread count. A block ingests a batch in two
//! passes: the scan ([`super::scan`]) copies out the values that matter to its features and
//! regroups them by feature; the feature pass ([`super::offers`]) then visits each feature
//! once, observing all its values and offering its candidates to its stores, so a feature's
//! state and stores are fetched once per batch, not once per value — the difference between a
//! cold fill bound by cache misses and one that streams.

use std::collections::BTreeMap;

use super::bins::{ACTIVATION_BINS, POSITION_BINS};
use super::exact_sum::FeatureMoments;
use super::interval_samples::{IntervalEntry, IntervalSamples, IntervalShape};
use super::offers::VisitScratch;
use super::records::{Record, Records};
use super::scan::Hit;
use super::token_sample::TokenSample;
use super::top_samples::{rank_key, StoredSample, TopEntry, TopSamples};
use crate::samples::CollectorConfig;

/// A feature's hot state: what observing a value reads and writes, in two cache lines (the
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

// Two cache lines exactly: the feature pass prefetches both.
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
    /// Low 32 bits of the count; `FeatureBlock::histogram_high` holds the rest.
    pub(super) count: u32,
    /// Top 32 bits of the stratum's floor: priorities above cannot enter (0: sampling off).
    pub(super) floor_hi: u32,
}

/// A feature's low interval stratum as observing a value sees it: the bins below `bin` share it,
/// and its floor is cached once, in bin 0's cell (bin 0 is in the low stratum whenever any bin
/// is), rather than in each of their cells (re-caching it in up to 160 cold cells at every
/// admission to the low stratum was 6% of a cold fill). A value below `bin` reads its floor
/// from cell 0: the choice is an index, not a branch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct LowFloor {
    pub(super) bin: u16,
}

/// The settings as the hot paths use them, derived once from the [`CollectorConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Params {
    pub(super) threshold: f32,
    /// Half-width of the context window (and of deduplication).
    pub(super) half: usize,
    /// Top samples kept per feature.
    pub(super) capacity: usize,
    pub(super) shape: IntervalShape,
    pub(super) exclude_special: bool,
    pub(super) dedup: bool,
}

impl Params {
    pub(super) fn of(config: &CollectorConfig) -> Self {
        Self {
            threshold: config.sample_activation_threshold,
            half: config.context_half_width(),
            capacity: config.max_samples_per_feature,
            shape: IntervalShape {
                intervals: config.interval_count,
                capacity: config.samples_per_interval,
            },
            exclude_special: config.exclude_special_tokens,
            dedup: config.dedup_context_windows,
        }
    }
}

/// Per-batch working memory (not state: a clone starts empty).
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// The block's values of the batch that matter, token-major: token `t`'s are
    /// `csr_entries[csr_offsets[t]..csr_offsets[t + 1]]`, as `(local feature, value)`.
    pub(super) csr_offsets: Vec<u32>,
    pub(super) csr_entries: Vec<(u32, f32)>,
    /// One dense token's extracted values before they join `csr_entries`: sized for every
    /// value of a token, so the extraction writes ahead without checking for room.
    pub(super) dense_found: Vec<(u32, f32)>,
    /// The same values grouped by feature, token order within a feature: feature `f`'s are
    /// `hits[group_start[f]..group_start[f + 1]]`.
    pub(super) hits: Vec<Hit>,
    pub(super) group_start: Vec<u32>,
    /// Per feature, where its next value goes while grouping.
    pub(super) cursor: Vec<u32>,
    /// Local features with values this batch, in order.
    pub(super) active: Vec<u32>,
    pub(super) visit: VisitScratch,
}

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Features `base..base + len()` and what the collector keeps for them.
#[derive(Clone, Debug)]
pub(super) struct FeatureBlock {
    /// Global index of the first feature.
    pub(super) base: u32,
    pub(super) state: Vec<FeatureState>,
    pub(super) top: Vec<TopSamples>,
    /// `[features, ACTIVATION_BINS]`: histogram counts and interval floors (of the bins at or
    /// above the feature's `low.bin`; those below are stale).
    pub(super) cells: Vec<BinCell>,
    pub(super) low: Vec<LowFloor>,
    /// Local cell index → count / 2^32, for the (astronomically rare) counts past `u32::MAX`.
    pub(super) histogram_high: BTreeMap<usize, u64>,
    pub(super) intervals: Vec<IntervalSamples>,
    pub(super) token_samples: Vec<TokenSample>,
    /// Activations above the threshold on special tokens.
    pub(super) special_activations: Vec<u64>,
    /// The records of every kept sample (top and interval).
    pub(super) records: Records,
    pub(super) scratch: Scratch,
}

impl FeatureBlock {
    /// A block of `len` features from `base`, empty.
    pub(super) fn new(base: u32, len: usize, params: &Params) -> Self {
        let mut block = Self::with_no_features(base);
        for _ in 0..len {
            block.push_empty_feature(params);
        }
        block
    }

    /// A block from `base` holding no feature yet (features are pushed one by one).
    pub(super) fn with_no_features(base: u32) -> Self {
        Self {
            base,
            state: Vec::new(),
            top: Vec::new(),
            cells: Vec::new(),
            low: Vec::new(),
            histogram_high: BTreeMap::new(),
            intervals: Vec::new(),
            token_samples: Vec::new(),
            special_activations: Vec::new(),
            records: Records::default(),
            scratch: Scratch::default(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.state.len()
    }

    /// Appends a feature that has seen nothing.
    fn push_empty_feature(&mut self, params: &Params) {
        self.state.push(FeatureState::default());
        self.top.push(TopSamples::default());
        self.cells
            .extend(std::iter::repeat_n(empty_cell(params), ACTIVATION_BINS));
        self.low.push(LowFloor { bin: 0 });
        self.intervals.push(IntervalSamples::default());
        self.token_samples.push(TokenSample::default());
        self.special_activations.push(0);
    }

    /// Appends feature `local` of `other`, everything it keeps (records copied over).
    pub(super) fn push_feature_from(&mut self, other: &FeatureBlock, local: usize) {
        let f = self.len();
        self.state.push(other.state[local].clone());
        let cells = local * ACTIVATION_BINS..(local + 1) * ACTIVATION_BINS;
        self.cells.extend_from_slice(&other.cells[cells.clone()]);
        self.low.push(other.low[local]);
        for (&index, &high) in other.histogram_high.range(cells) {
            self.histogram_high
                .insert(index - local * ACTIVATION_BINS + f * ACTIVATION_BINS, high);
        }
        let mut top = other.top[local].clone();
        for record in top.records_mut() {
            *record = self.records.copy_from(&other.records, *record);
        }
        self.top.push(top);
        let mut intervals = other.intervals[local].clone();
        for record in intervals.records_mut() {
            *record = self.records.copy_from(&other.records, *record);
        }
        self.intervals.push(intervals);
        self.token_samples.push(other.token_samples[local].clone());
        self.special_activations
            .push(other.special_activations[local]);
    }

    /// Forgets everything seen.
    pub(super) fn clear(&mut self, params: &Params) {
        let base = self.base;
        let len = self.len();
        *self = Self::new(base, len, params);
    }

    /// The full count of local histogram cell `index` (feature · bins + bin).
    pub(super) fn bin_count(&self, index: usize) -> u64 {
        let high = self.histogram_high.get(&index).copied().unwrap_or(0);
        (high << 32) | u64::from(self.cells[index].count)
    }

    pub(super) fn set_bin_count(&mut self, index: usize, count: u64) {
        self.cells[index].count = count as u32;
        if count >> 32 == 0 {
            self.histogram_high.remove(&index);
        } else {
            self.histogram_high.insert(index, count >> 32);
        }
    }

    /// Re-caches the interval floors of local feature `f`'s bins in `bins`.
    pub(super) fn refresh_floors(
        &mut self,
        params: &Params,
        f: usize,
        bins: std::ops::Range<usize>,
    ) {
        if bins.is_empty() {
            // Nothing moved (a change of the low stratum or of its first bin names bins).
            return;
        }
        let shape = params.shape;
        let intervals = &self.intervals[f];
        let cells = &mut self.cells[f * ACTIVATION_BINS..(f + 1) * ACTIVATION_BINS];
        let low_bin = intervals.low_bin();
        // Bin 0 is in the low stratum whenever any bin is (`low_bin > 0`).
        self.low[f] = LowFloor {
            bin: low_bin as u16,
        };
        if low_bin > 0 {
            cells[0].floor_hi = (intervals.floor_of_bin(&shape, 0) >> 32) as u32;
        }
        let first = bins.start.max(low_bin);
        for (b, cell) in cells.iter_mut().enumerate().take(bins.end).skip(first) {
            cell.floor_hi = (intervals.floor_of_bin(&shape, b) >> 32) as u32;
        }
    }

    /// Re-caches every floor of local feature `f` from its stores, once a restore or a merge
    /// has filled them (and settles what the top store's histogram floor may count on).
    pub(super) fn refresh_all_floors(&mut self, params: &Params, f: usize) {
        let counts: [u64; ACTIVATION_BINS] =
            std::array::from_fn(|b| self.bin_count(f * ACTIVATION_BINS + b));
        self.top[f].settle_unproven(|b| counts[b]);
        self.state[f].admit_floor = self.top[f].floor();
        self.state[f].token_floor_hi = (self.token_samples[f].floor() >> 32) as u32;
        self.refresh_floors(params, f, 0..ACTIVATION_BINS);
    }

    /// Keeps a top sample of local feature `f` given whole (merging, loading) if it ranks.
    pub(super) fn offer_top_sample(&mut self, params: &Params, f: usize, sample: &StoredSample) {
        let top = &mut self.top[f];
        let key = rank_key(sample.activation, sample.sequence_idx, sample.position);
        if !top.admits(key) {
            return;
        }
        let record = self.records.push(
            sample.previous_token,
            &sample.context_tokens,
            sample.context_activations.iter().copied(),
        );
        top.insert(params.capacity, TopEntry { key, record }, &mut self.records);
    }

    /// Keeps an interval sample of local feature `f` given whole, if its key ranks in its
    /// stratum (the strata must be folded for the feature's max first).
    pub(super) fn offer_interval_sample(
        &mut self,
        params: &Params,
        f: usize,
        priority: u64,
        sample: &StoredSample,
    ) {
        let entry = IntervalEntry {
            priority,
            sequence_idx: sample.sequence_idx,
            activation: sample.activation,
            position: sample.position,
            record: Record::default(),
        };
        self.intervals[f].offer(&params.shape, entry, &mut self.records, |records| {
            records.push(
                sample.previous_token,
                &sample.context_tokens,
                sample.context_activations.iter().copied(),
            )
        });
    }

    /// A kept sample as the readout shows it.
    pub(super) fn stored(
        &self,
        params: &Params,
        activation: f32,
        sequence_idx: u64,
        position: u32,
        record: Record,
    ) -> StoredSample {
        let view = self.records.view(record);
        StoredSample {
            activation,
            sequence_idx,
            position,
            previous_token: view.previous,
            context_tokens: view.context.to_vec(),
            // The window starts `half` tokens before the activating one, or at the row's start.
            context_position: position.min(params.half as u32),
            context_activations: view.acts_vec(),
        }
    }

    pub(super) fn stored_top(&self, params: &Params, entry: &TopEntry) -> StoredSample {
        self.stored(
            params,
            entry.activation(),
            entry.sequence_idx(),
            entry.position(),
            entry.record,
        )
    }

    pub(super) fn stored_interval(&self, params: &Params, entry: &IntervalEntry) -> StoredSample {
        self.stored(
            params,
            entry.activation,
            entry.sequence_idx,
            entry.position,
            entry.record,
        )
    }

    /// Compacts the arena when garbage outweighs the live records, and makes the lazy records
    /// whole when the token log outweighs them (after a batch).
    pub(super) fn tidy_records(&mut self, params: &Params) {
        if self.records.wants_compaction() {
            self.compact(params);
        }
        if self.records.wants_log_dropped() {
            self.make_records_whole();
        }
    }

    /// Makes every lazy record whole and drops the token log.
    pub(super) fn make_records_whole(&mut self) {
        let records = &mut self.records;
        for (top, intervals) in self.top.iter_mut().zip(&mut self.intervals) {
            top.records_mut()
                .for_each(|record| records.make_whole(record));
            intervals
                .records_mut()
                .for_each(|record| records.make_whole(record));
        }
        records.drop_log();
    }

    /// Copies the live records into a fresh arena, feature by feature, after letting go of
    /// the top candidates that can no longer be kept.
    pub(super) fn compact(&mut self, params: &Params) {
        for top in &mut self.top {
            top.select(params.capacity, &mut self.records);
        }
        let mut compaction = self.records.compaction();
        for (top, intervals) in self.top.iter_mut().zip(&mut self.intervals) {
            top.records_mut().for_each(|record| compaction.keep(record));
            intervals
                .records_mut()
                .for_each(|record| compaction.keep(record));
        }
        compaction.finish();
    }
}

/// A histogram cell with no count, its interval floor open (or shut when sampling is off).
fn empty_cell(params: &Params) -> BinCell {
    let floor_hi = if params.shape.enabled() { u32::MAX } else { 0 };
    BinCell { count: 0, floor_hi }
}
