//! The feature pass: each feature with values in the batch is visited once, all its values at
//! hand ([`super::scan`] regrouped them), to update its statistics and offer its candidates to
//! its stores.
//!
//! A visit first observes the feature's values in token order — statistics, histogram and
//! position counts in O(1) each, and against the floors cached in the feature's state line
//! which stores each value may enter — then, only if some value may, fetches the stores: the
//! interval strata fold for the batch's max, the token sample takes its offers, top candidates
//! are deduplicated per context window and offered best first, interval candidates offered as
//! they are. A kept sample's context activations are the feature's own values on the tokens of
//! its window, next to it in the group. Features are visited in address order, and the state,
//! histogram cells and stores of the features a few visits ahead are fetched while this one
//! works, so the pass streams instead of waiting on a cache miss per value.
//!
//! The result is what offering every value in stream order gives: each store keeps a function
//! of the set of samples offered to it (top-k, bottom-k), and deduplication is decided within
//! one sequence, best first, among candidates above a floor that can only be too low.

use super::bins::{activation_bin, bin_lower, position_bin, priority, row_key, ACTIVATION_BINS};
use super::block::{BinCell, FeatureBlock, Params};
use super::collector::BatchView;
use super::exact_sum::RunMoments;
use super::interval_samples::{IntervalEntry, IntervalSamples};
use super::records::{Record, Records};
use super::scan::{prefetch, prefetch_ptr, Hit, NonFinite, Rows};
use super::top_samples::{rank_cmp, rank_key, TopEntry, TopSamples};

/// How many features ahead of the one observed its state, cells and store headers are
/// fetched...
const PREFETCH_STATE: usize = 8;
/// ...how many features a feature is observed before its offers (its candidates known, the
/// stores they go to are fetched meanwhile)...
const OFFER_LAG: usize = 4;
/// ...and when, in between, what the fetched store headers point to is fetched.
const PREFETCH_LINES: usize = 2;
/// Values of a feature whose lines (histogram cell, stratum, token) are fetched ahead: the
/// first ones, which is all of them for most features of most batches.
const PREFETCH_VALUES: usize = 16;
/// Features observed and not yet offered: the slots of the candidate and priority rings.
const IN_FLIGHT: usize = OFFER_LAG + 1;
// A feature's lines are fetched while its slot still holds its candidates.
const _: () = assert!(PREFETCH_LINES < IN_FLIGHT);

/// Working memory of the feature pass, reused.
#[derive(Debug, Default)]
pub(super) struct VisitScratch {
    /// Per value of a feature in flight, the candidates of each store ([`Candidates`])...
    candidates: Candidates<Vec<u32>>,
    /// ...and its sampling priority (valid where it was observed above the threshold). Both
    /// are rings of [`IN_FLIGHT`] slots, one per feature between its observation and its
    /// offers, each as long as the batch's longest group: a few kB that stay in the cache,
    /// where batch-wide buffers (20 bytes per value, 40 MB for a gathered 16k-feature batch)
    /// were written and read back through memory, and first touched by the kernel.
    priorities: Vec<u64>,
    /// Per active feature: what observing it found.
    found: Vec<Found>,
    /// Per value of the feature offered, its record once written, valid where its stamp is
    /// this visit's `epoch`: a hit kept by both the top store and its interval stratum (most
    /// hits, while the stores fill) shares one. Stamped rather than cleared per visit
    /// (clearing cost more than the lookups).
    written: Vec<(u64, Record)>,
    epoch: u64,
    /// One row's top candidates (indices into the feature's group), for deduplication.
    run: Vec<u32>,
    kept_positions: Vec<u32>,
    /// One sample's context activations.
    acts: Vec<(u32, f32)>,
    /// Where this batch's tokens start in the token log, once a record logged them (inner
    /// `None`: the log is full, records are written whole).
    log_base: Option<Option<u32>>,
}

/// The values that may enter each store: indices into their feature's group, in token order.
/// In the rings, a feature's lists start at its slot.
///
/// Observing writes every value's index to each list and advances a list's length only when
/// the value may enter that store: branch-free, where testing each value's flags again in
/// every offer loop mispredicted a branch per value and store (whether a value passes a
/// floor is a coin toss while the stores fill).
#[derive(Debug, Default)]
struct Candidates<T> {
    top: T,
    token: T,
    interval: T,
}

/// What observing a feature found: its candidates per store, and whether its max rose.
#[derive(Clone, Copy, Debug, Default)]
struct Found {
    top: u32,
    token: u32,
    interval: u32,
    new_max: bool,
}

impl Found {
    fn any(&self) -> bool {
        self.new_max || (self.top | self.token | self.interval) != 0
    }
}

impl Candidates<Vec<u32>> {
    /// Feature lists over the group span `at`: whole, for observing to write...
    fn spans(&mut self, at: std::ops::Range<usize>) -> Candidates<&mut [u32]> {
        Candidates {
            top: &mut self.top[at.clone()],
            token: &mut self.token[at.clone()],
            interval: &mut self.interval[at],
        }
    }

    /// ...and cut to what it found, for offering.
    fn found(&self, start: usize, found: Found) -> Candidates<&[u32]> {
        let end = |len: u32| start + len as usize;
        Candidates {
            top: &self.top[start..end(found.top)],
            token: &self.token[start..end(found.token)],
            interval: &self.interval[start..end(found.interval)],
        }
    }
}

/// The batch as a feature's offers read it.
struct Visit<'a, 'b> {
    batch: &'a BatchView<'b>,
    rows: Rows,
    /// The feature's values, in token order, and what observing them found.
    group: &'a [Hit],
    candidates: Candidates<&'a [u32]>,
    priorities: &'a [u64],
}

impl FeatureBlock {
    /// Ingests a batch for this block's features: regroup, visit each feature, then tidy the
    /// records (compaction, lazy records made whole). `Err`: a non-finite value (nothing of
    /// the batch was observed).
    pub(super) fn ingest(
        &mut self,
        params: &Params,
        batch: &BatchView<'_>,
    ) -> Result<(), NonFinite> {
        self.gather(params, batch)?;
        self.visit_features(params, batch);
        self.tidy_records(params);
        Ok(())
    }

    fn visit_features(&mut self, params: &Params, batch: &BatchView<'_>) {
        let hits = std::mem::take(&mut self.scratch.hits);
        let starts = std::mem::take(&mut self.scratch.group_start);
        let mut active = std::mem::take(&mut self.scratch.active);
        let mut scratch = std::mem::take(&mut self.scratch.visit);
        active.clear();
        active.extend(
            (0..self.len())
                .filter(|&f| starts[f] < starts[f + 1])
                .map(|f| f as u32),
        );
        let span = |f: u32| starts[f as usize] as usize..starts[f as usize + 1] as usize;
        let rows = Rows::new(batch.tokens.seq_len);
        let mut candidates = std::mem::take(&mut scratch.candidates);
        let mut priorities = std::mem::take(&mut scratch.priorities);
        let mut found = std::mem::take(&mut scratch.found);
        // Observing writes the candidate lists and the priority of every value it offers: the
        // rings only grow, never cleared (zeroing them cost more than filling them).
        let stride = active.iter().map(|&f| span(f).len()).max().unwrap_or(0);
        if priorities.len() < IN_FLIGHT * stride {
            for list in [
                &mut candidates.top,
                &mut candidates.token,
                &mut candidates.interval,
            ] {
                list.resize(IN_FLIGHT * stride, 0);
            }
            priorities.resize(IN_FLIGHT * stride, 0);
        }
        // The slot of the `i`th active feature, for `len` values.
        let slot = |i: usize, len: usize| {
            let start = i % IN_FLIGHT * stride;
            start..start + len
        };
        found.clear();
        found.resize(active.len(), Found::default());
        scratch.log_base = None;
        // A software pipeline over the features: fetch the state of one, observe another, fetch
        // the stores of a third, offer a fourth.
        for i in 0..active.len() + OFFER_LAG {
            if let Some(&f) = active.get(i + PREFETCH_STATE) {
                self.prefetch_state(f as usize, &hits[span(f)]);
            }
            if let Some(&f) = active.get(i) {
                let at = span(f);
                let ring = slot(i, at.len());
                found[i] = self.observe_feature(
                    params,
                    batch,
                    rows,
                    f as usize,
                    &hits[at.clone()],
                    candidates.spans(ring.clone()),
                    &mut priorities[ring.clone()],
                );
                self.prefetch_headers(
                    batch.tokens.tokens,
                    f as usize,
                    found[i].new_max,
                    &hits[at],
                    candidates.found(ring.start, found[i]),
                );
            }
            if let Some(i) = i.checked_sub(PREFETCH_LINES).filter(|&i| i < active.len()) {
                let at = span(active[i]);
                let ring = slot(i, at.len());
                let intervals = candidates.found(ring.start, found[i]).interval;
                self.prefetch_lines(active[i] as usize, &hits[at], intervals);
            }
            let Some(offered) = i.checked_sub(OFFER_LAG) else {
                continue;
            };
            if found[offered].any() {
                let f = active[offered];
                let at = span(f);
                let ring = slot(offered, at.len());
                let visit = Visit {
                    batch,
                    rows,
                    group: &hits[at],
                    candidates: candidates.found(ring.start, found[offered]),
                    priorities: &priorities[ring],
                };
                self.offer_feature(
                    params,
                    &visit,
                    f as usize,
                    found[offered].new_max,
                    &mut scratch,
                );
            }
        }
        scratch.candidates = candidates;
        scratch.priorities = priorities;
        scratch.found = found;
        self.scratch.hits = hits;
        self.scratch.group_start = starts;
        self.scratch.active = active;
        self.scratch.visit = scratch;
    }

    fn prefetch_state(&self, f: usize, group: &[Hit]) {
        let state = &self.state[f];
        prefetch(state);
        prefetch(&state.positions);
        prefetch(&self.low[f]);
        prefetch(&self.cells[f * ACTIVATION_BINS]);
        for hit in group.iter().take(PREFETCH_VALUES) {
            prefetch(&self.cells[f * ACTIVATION_BINS + activation_bin(hit.value)]);
        }
        prefetch(&self.top[f]);
        prefetch(&self.intervals[f]);
        prefetch(&self.token_samples[f]);
    }

    /// Once feature `f` is observed: the stores its candidates go to.
    fn prefetch_headers(
        &self,
        tokens: &[u32],
        f: usize,
        new_max: bool,
        group: &[Hit],
        candidates: Candidates<&[u32]>,
    ) {
        if !candidates.top.is_empty() {
            prefetch_ptr(self.top[f].next_slot());
            // The histogram cells the top store's floor counts, from the max's bin down
            // (rarely far: the floor rises fast); cold, the max's lines being rarely hit.
            let moments = &self.state[f].moments;
            let top_bin = activation_bin(moments.max);
            let floor_bin =
                activation_bin(self.state[f].admit_floor).max(top_bin.saturating_sub(24));
            let cells = &self.cells[f * ACTIVATION_BINS..(f + 1) * ACTIVATION_BINS];
            for b in (floor_bin..=top_bin).rev().step_by(8) {
                prefetch(&cells[b]);
            }
            prefetch(&cells[floor_bin]);
        }
        if !candidates.token.is_empty() {
            prefetch_ptr(self.token_samples[f].next_slot());
            for &j in candidates.token.iter().take(PREFETCH_VALUES) {
                // The sample keeps the token's id.
                prefetch(&tokens[group[j as usize].token() as usize]);
            }
        }
        if new_max || !candidates.interval.is_empty() {
            let intervals = &self.intervals[f];
            prefetch_ptr(intervals.first_lines()[0]);
            for &j in candidates.interval.iter().take(PREFETCH_VALUES) {
                let bin = activation_bin(group[j as usize].value);
                prefetch_ptr(intervals.stratum_header(bin));
            }
        }
    }

    /// What the headers [`prefetch_headers`](Self::prefetch_headers) fetched point to.
    fn prefetch_lines(&self, f: usize, group: &[Hit], interval_candidates: &[u32]) {
        let intervals = &self.intervals[f];
        for &j in interval_candidates.iter().take(PREFETCH_VALUES) {
            let (start, len) = intervals.stratum_bytes(activation_bin(group[j as usize].value));
            // Every line the entries touch (one more when they start mid-line).
            for offset in (0..len + 63).step_by(64) {
                prefetch_ptr(start.wrapping_add(offset));
            }
        }
    }

    /// Observes local feature `f`'s values (`group`), listing the candidates of each store
    /// and noting their priorities; returns what it found.
    ///
    /// Counts, bounds and sums first, in a packed pass over the run; then per value its
    /// histogram and position counts, its priority, and against the floors cached for the
    /// feature (held in locals for the run) which stores it may enter.
    #[allow(clippy::too_many_arguments)]
    fn observe_feature(
        &mut self,
        params: &Params,
        batch: &BatchView<'_>,
        rows: Rows,
        f: usize,
        group: &[Hit],
        lists: Candidates<&mut [u32]>,
        priorities: &mut [u64],
    ) -> Found {
        let state = &mut self.state[f];
        // As an array, so that indexing it by a (clamped) bin needs no bounds check.
        let cells: &mut [BinCell; ACTIVATION_BINS] = (&mut self.cells
            [f * ACTIVATION_BINS..(f + 1) * ACTIVATION_BINS])
            .try_into()
            .expect("ACTIVATION_BINS cells per feature");
        let low = self.low[f];
        let feature_key = self.base + f as u32;
        let (threshold, first_sequence) = (params.threshold, batch.tokens.first_sequence);
        let (admit_floor, token_floor_hi) = (state.admit_floor, state.token_floor_hi);
        // Counts, bounds and sums in a pass of their own (see `RunMoments`).
        let run = RunMoments::of(group, threshold, Hit::observed_value);
        let moments = &mut state.moments;
        // A new max folds the interval strata.
        let new_max = run.count > 0 && (moments.count == 0 || run.max() > moments.max);
        run.fold_into(moments);
        // A cell's count can have wrapped only once the feature has seen 2^32 values.
        let may_wrap = moments.count >= u64::from(u32::MAX);
        let positions = &mut state.positions;
        let mut found = Found {
            new_max,
            ..Found::default()
        };
        // Every list is as long as the group, so that an index clamped to the value's own
        // (which a list's length never passes) needs no bounds check.
        let n = group.len();
        let (tops, tokens, intervals) = (
            &mut lists.top[..n],
            &mut lists.token[..n],
            &mut lists.interval[..n],
        );
        let priorities = &mut priorities[..n];
        // By index, not enumerated: the compiler then knows every index below is in bounds.
        for j in 0..n {
            let hit = &group[j];
            let value = hit.value;
            // Not observed: on an excluded special token (kept for the context of samples
            // around it), or at or below the threshold.
            if hit.context_only() || value <= threshold {
                continue;
            }
            let (row, position) = rows.split(hit.token());
            let sequence_idx = first_sequence + u64::from(row);
            positions[position_bin(position)] += 1;
            let priority = priority(row_key(sequence_idx), position, feature_key);
            let priority_hi = (priority >> 32) as u32;
            let bin = activation_bin(value);
            let cell = &mut cells[bin];
            cell.count = cell.count.wrapping_add(1);
            // Below the low stratum's first bin, its floor is in cell 0 (see `LowFloor`): an
            // index, where a select compiled to a branch that values took at random.
            let floor_cell = bin * usize::from(bin >= usize::from(low.bin));
            let floor_hi = cells[floor_cell].floor_hi;
            // Each list takes the index; its length grows if the value is a candidate (a
            // list is never longer than the values before it: the clamp changes nothing).
            let slot = |len: u32| (len as usize).min(j);
            tops[slot(found.top)] = j as u32;
            found.top += u32::from(value >= admit_floor);
            tokens[slot(found.token)] = j as u32;
            found.token += u32::from(priority_hi <= token_floor_hi);
            intervals[slot(found.interval)] = j as u32;
            found.interval += u32::from(priority_hi <= floor_hi);
            priorities[j] = priority;
        }
        if may_wrap {
            // A cell's count may have passed `u32::MAX` (astronomically rare): carry into the
            // high part.
            self.carry_wrapped_counts(params, f, group);
        }
        found
    }

    /// After observing `group`, the cells of feature `f` whose low count wrapped to 0 this
    /// batch carry into [`FeatureBlock::histogram_high`]: a cell's count wraps once per
    /// 2^32 values, so a cell at 0 that took a value this batch wrapped.
    #[cold]
    fn carry_wrapped_counts(&mut self, params: &Params, f: usize, group: &[Hit]) {
        let mut bins: Vec<usize> = group
            .iter()
            .filter(|hit| !hit.context_only() && hit.value > params.threshold)
            .map(|hit| activation_bin(hit.value))
            .collect();
        bins.sort_unstable();
        bins.dedup();
        for bin in bins {
            let index = f * ACTIVATION_BINS + bin;
            if self.cells[index].count == 0 {
                *self.histogram_high.entry(index).or_insert(0) += 1;
            }
        }
    }

    /// Offers local feature `f`'s candidates (`new_max`: observing raised its max).
    fn offer_feature(
        &mut self,
        params: &Params,
        visit: &Visit<'_, '_>,
        f: usize,
        new_max: bool,
        scratch: &mut VisitScratch,
    ) {
        let candidates = &visit.candidates;
        scratch.epoch += 1;
        if scratch.written.len() < visit.group.len() {
            scratch
                .written
                .resize(visit.group.len(), (0, Record::default()));
        }
        // Bins whose interval floor changed, re-cached once at the end.
        let mut dirty = 0..0;
        if new_max {
            let max = self.state[f].moments.max;
            dirty = self.intervals[f].set_max(&params.shape, max, &mut self.records);
        }
        if !candidates.token.is_empty() {
            let (tokens, sample) = (visit.batch.tokens.tokens, &mut self.token_samples[f]);
            for &j in candidates.token {
                let j = j as usize;
                sample.offer(visit.priorities[j], tokens[visit.group[j].token() as usize]);
            }
            self.state[f].token_floor_hi = (sample.floor() >> 32) as u32;
        }
        if !candidates.top.is_empty() {
            let histogram_floor = self.offer_top(params, visit, f, scratch);
            self.state[f].admit_floor = self.top[f].floor().max(histogram_floor);
        }
        let (intervals, records) = (&mut self.intervals[f], &mut self.records);
        for &j in candidates.interval {
            let changed = offer_interval(intervals, records, params, visit, j as usize, scratch);
            dirty = union(dirty, changed);
        }
        self.refresh_floors(params, f, dirty);
    }

    /// The top candidates of feature `f` at or above the floor its histogram gives (see
    /// [`TopSamples::unproven`]), deduplicated per sequence ([`offer_top_band`]); returns
    /// that floor.
    ///
    /// The histogram counts this batch's values before they are offered, so the floor turns
    /// away most of a cold fill's candidates, which the store's own floor would take and let
    /// go again. Values deduplication drops are not samples: the floor is first taken as if
    /// none were, and when some are, lowered for them and the band below offered in another
    /// pass — the store keeps a function of the set of samples offered, not of their order.
    /// (Listing the candidates left below, rather than passing over all again, cost more.)
    fn offer_top(
        &mut self,
        params: &Params,
        visit: &Visit<'_, '_>,
        f: usize,
        scratch: &mut VisitScratch,
    ) -> f32 {
        let need = (params.capacity as u64).saturating_add(self.top[f].unproven());
        let mut floor = self.histogram_floor(f, need);
        let mut band = floor..f32::INFINITY;
        let mut dropped = 0;
        loop {
            let (top, records) = (&mut self.top[f], &mut self.records);
            dropped += offer_top_band(top, records, params, visit, band, scratch);
            if dropped == 0 {
                break;
            }
            let lower = self.histogram_floor(f, need.saturating_add(u64::from(dropped)));
            if lower >= floor {
                break;
            }
            (band, floor) = (lower..floor, lower);
        }
        self.top[f].add_unproven(dropped);
        floor
    }

    /// The floor local feature `f`'s histogram gives its top store (see
    /// [`TopSamples::unproven`]): the lower edge of the highest activation bin with `need`
    /// values at or above it (−∞ when there is none, or when a cell's count may have wrapped).
    fn histogram_floor(&self, f: usize, need: u64) -> f32 {
        let moments = &self.state[f].moments;
        if moments.count < need || moments.count >= u64::from(u32::MAX) {
            return f32::NEG_INFINITY;
        }
        let cells = &self.cells[f * ACTIVATION_BINS..(f + 1) * ACTIVATION_BINS];
        let mut counted = 0;
        // Bin 0 holds everything below bin 1: no floor.
        for b in (1..=activation_bin(moments.max)).rev() {
            counted += u64::from(cells[b].count);
            if counted >= need {
                return bin_lower(b) as f32;
            }
        }
        f32::NEG_INFINITY
    }
}

/// Offers a feature's top candidates whose values lie in `band` to its store, `top`,
/// deduplicated per sequence: a row holding several is taken best first and a candidate
/// dropped when a kept one lies within the half-width (its token would show in the other's
/// context); candidates above the band are taken the same way, but were offered already. Most
/// rows hold one (a feature fires a few times per row at most), offered as it comes. Returns
/// how many in the band were dropped.
fn offer_top_band(
    top: &mut TopSamples,
    records: &mut Records,
    params: &Params,
    visit: &Visit<'_, '_>,
    band: std::ops::Range<f32>,
    scratch: &mut VisitScratch,
) -> u32 {
    let mut run = std::mem::take(&mut scratch.run);
    let mut kept = std::mem::take(&mut scratch.kept_positions);
    let (group, candidates) = (visit.group, visit.candidates.top);
    let seq_len = visit.batch.tokens.seq_len as u32;
    let mut dropped = 0;
    let mut k = 0;
    while let Some(&j) = candidates.get(k) {
        let j = j as usize;
        let token = group[j].token();
        let (row, position) = visit.rows.split(token);
        // The candidates are in token order: the row's others follow.
        let row_end = token - position + seq_len;
        let in_row = |&n: &u32| group[n as usize].token() < row_end;
        let alone = !candidates.get(k + 1).is_some_and(in_row);
        if alone || !params.dedup {
            if band.contains(&group[j].value) {
                offer_top_candidate(top, records, params, visit, j, row, position, scratch);
            }
            k += 1;
            continue;
        }
        let row_len = candidates[k..].iter().take_while(|&n| in_row(n)).count();
        run.clear();
        run.extend_from_slice(&candidates[k..k + row_len]);
        k += row_len;
        run.sort_unstable_by(|&a, &b| {
            let (a, b) = (group[a as usize], group[b as usize]);
            rank_cmp(b.value, 0, b.token(), a.value, 0, a.token())
        });
        kept.clear();
        for &candidate in &run {
            let hit = group[candidate as usize];
            if hit.value < band.start {
                // Best first: the rest are below it too.
                break;
            }
            let position = hit.token() - row * seq_len;
            let new = hit.value < band.end;
            if kept
                .iter()
                .any(|&p| p.abs_diff(position) <= params.half as u32)
            {
                dropped += u32::from(new);
                continue;
            }
            kept.push(position);
            if new {
                let j = candidate as usize;
                offer_top_candidate(top, records, params, visit, j, row, position, scratch);
            }
        }
    }
    scratch.run = run;
    scratch.kept_positions = kept;
    dropped
}

/// Offers value `j` to its stratum of a feature's interval samples, `intervals`; returns the
/// bins whose floor changed.
#[inline(always)]
fn offer_interval(
    intervals: &mut IntervalSamples,
    records: &mut Records,
    params: &Params,
    visit: &Visit<'_, '_>,
    j: usize,
    scratch: &mut VisitScratch,
) -> std::ops::Range<usize> {
    let (row, position) = visit.rows.split(visit.group[j].token());
    let entry = IntervalEntry {
        priority: visit.priorities[j],
        sequence_idx: visit.batch.tokens.first_sequence + u64::from(row),
        activation: visit.group[j].value,
        position,
        record: Record::default(),
    };
    intervals.offer(&params.shape, entry, records, |records| {
        write_record(records, params, visit, j, row, position, scratch)
    })
}

/// Offers value `j` (on `row`, at `position`) to a feature's top store, `top`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn offer_top_candidate(
    top: &mut TopSamples,
    records: &mut Records,
    params: &Params,
    visit: &Visit<'_, '_>,
    j: usize,
    row: u32,
    position: u32,
    scratch: &mut VisitScratch,
) {
    let sequence_idx = visit.batch.tokens.first_sequence + u64::from(row);
    let key = rank_key(visit.group[j].value, sequence_idx, position);
    if !top.admits(key) {
        return;
    }
    let record = write_record(records, params, visit, j, row, position, scratch);
    top.insert(params.capacity, TopEntry { key, record }, records);
}

/// Appends the record of value `j` (on `row`, at `position`): previous token, context
/// window, the feature's activations on it (or shares the one written for it already).
///
/// Inlined into its two callers for the common case, a value alone in its window while the
/// batch's tokens are in the log: its record is then a handle computed from the value's
/// token and position (see [`Records::push_inline`]); the rest is [`write_record_out`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn write_record(
    records: &mut Records,
    params: &Params,
    visit: &Visit<'_, '_>,
    j: usize,
    row: u32,
    position: u32,
    scratch: &mut VisitScratch,
) -> Record {
    let (epoch, record) = scratch.written[j];
    if epoch == scratch.epoch {
        records.share(record);
        return record;
    }
    let group = visit.group;
    let hit = group[j];
    let token = hit.token();
    // The window around the value, clipped to its row: `back` tokens before it, `ahead`
    // from it on.
    let half = params.half as u32;
    let back = position.min(half);
    let ahead = (half + 1).min(visit.batch.tokens.seq_len as u32 - position);
    let (first, last) = (token - back, token + ahead);
    let record = match scratch.log_base {
        // No other value of the feature in the window (the group is in token order, so those
        // would be its neighbours), the sample's own firing.
        Some(Some(base))
            if hit.value > 0.0
                && (j == 0 || group[j - 1].token() < first)
                && group.get(j + 1).is_none_or(|next| next.token() >= last) =>
        {
            records.push_inline(base + token, back, back + ahead, position > 0, hit.value)
        }
        _ => write_record_out(records, visit, j, row, position, first..last, scratch),
    };
    scratch.written[j] = (scratch.epoch, record);
    record
}

/// [`write_record`] for the rest: the batch's tokens not logged yet (its first record), or
/// other activations of the feature in the window, or a log that is full.
#[inline(never)]
fn write_record_out(
    records: &mut Records,
    visit: &Visit<'_, '_>,
    j: usize,
    row: u32,
    position: u32,
    window: std::ops::Range<u32>,
    scratch: &mut VisitScratch,
) -> Record {
    let tokens = visit.batch.tokens.tokens;
    let log_base = *scratch
        .log_base
        .get_or_insert_with(|| records.log_batch(tokens));
    let row_start = row as usize * visit.batch.tokens.seq_len;
    let (start, end) = (
        window.start as usize - row_start,
        window.end as usize - row_start,
    );
    let context_position = position - (start as u32);
    let context_len = (end - start) as u32;
    context_acts(visit.group, j, window, &mut scratch.acts);
    match log_base {
        // The context stays in the log until the sample has lasted (most are pushed out
        // again while the stores fill); alone in its window, the sample's activation
        // stays in the record's handle too.
        Some(base) if matches!(scratch.acts[..], [(at, _)] if at == context_position) => records
            .push_inline(
                base + visit.group[j].token(),
                context_position,
                context_len,
                position > 0,
                scratch.acts[0].1,
            ),
        Some(base) => records.push_lazy(
            base + visit.group[j].token(),
            context_position,
            context_len,
            position > 0,
            scratch.acts.iter().copied(),
        ),
        None => {
            let row_tokens = visit.batch.tokens.row(row as usize);
            records.push(
                (position as usize).checked_sub(1).map(|p| row_tokens[p]),
                &row_tokens[start..end],
                scratch.acts.iter().copied(),
            )
        }
    }
}

/// The firing values (> 0) of `group` on tokens `window` — value `j` lies inside it and the
/// group is in token order, so they are its neighbours — as `(index into the window, value)`.
fn context_acts(group: &[Hit], j: usize, window: std::ops::Range<u32>, out: &mut Vec<(u32, f32)>) {
    let mut first = j;
    while first > 0 && group[first - 1].token() >= window.start {
        first -= 1;
    }
    let mut end = j + 1;
    while end < group.len() && group[end].token() < window.end {
        end += 1;
    }
    out.clear();
    out.extend(
        group[first..end]
            .iter()
            .filter(|hit| hit.value > 0.0)
            .map(|hit| (hit.token() - window.start, hit.value)),
    );
}

/// The smallest range holding both (an empty one holds nothing).
fn union(a: std::ops::Range<usize>, b: std::ops::Range<usize>) -> std::ops::Range<usize> {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b,
        (_, true) => a,
        _ => a.start.min(b.start)..a.end.max(b.end),
    }
}
