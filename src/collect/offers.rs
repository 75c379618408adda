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

use super::bins::{activation_bin, position_bin, priority, row_key, ACTIVATION_BINS};
use super::block::{kinds, BinCell, FeatureBlock, Params};
use super::collector::BatchView;
use super::exact_sum::RunMoments;
use super::interval_samples::IntervalEntry;
use super::records::{Record, Records};
use super::scan::{prefetch, prefetch_ptr, Hit, NonFinite, Rows};
use super::top_samples::{rank_cmp, rank_key, TopEntry};

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

/// Working memory of the feature pass, reused.
#[derive(Debug, Default)]
pub(super) struct VisitScratch {
    /// Per value of the batch (as grouped): which stores it may enter ([`kinds`])...
    kinds: Vec<u8>,
    /// ...and its sampling priority (valid where it was observed above the threshold).
    priorities: Vec<u64>,
    /// Per active feature: the union of its values' kinds.
    all_kinds: Vec<u8>,
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

/// The batch as a feature's offers read it.
struct Visit<'a, 'b> {
    batch: &'a BatchView<'b>,
    rows: Rows,
    /// The feature's values, in token order, and what observing them found.
    group: &'a [Hit],
    kinds: &'a [u8],
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
        let mut kinds = std::mem::take(&mut scratch.kinds);
        let mut priorities = std::mem::take(&mut scratch.priorities);
        let mut all_kinds = std::mem::take(&mut scratch.all_kinds);
        // Observing writes every value's kinds and the priority of every value it offers:
        // the buffers only grow, never cleared (zeroing them cost more than filling them).
        if kinds.len() < hits.len() {
            kinds.resize(hits.len(), 0);
            priorities.resize(hits.len(), 0);
        }
        all_kinds.clear();
        all_kinds.resize(active.len(), 0);
        scratch.log_base = None;
        // A software pipeline over the features: fetch the state of one, observe another, fetch
        // the stores of a third, offer a fourth.
        for i in 0..active.len() + OFFER_LAG {
            if let Some(&f) = active.get(i + PREFETCH_STATE) {
                self.prefetch_state(f as usize, &hits[span(f)]);
            }
            if let Some(&f) = active.get(i) {
                let at = span(f);
                let found = self.observe_feature(
                    params,
                    batch,
                    rows,
                    f as usize,
                    &hits[at.clone()],
                    &mut kinds[at.clone()],
                    &mut priorities[at.clone()],
                );
                all_kinds[i] = found;
                self.prefetch_headers(
                    batch.tokens.tokens,
                    f as usize,
                    found,
                    &hits[at.clone()],
                    &kinds[at],
                );
            }
            if let Some(&f) = i.checked_sub(PREFETCH_LINES).and_then(|i| active.get(i)) {
                let at = span(f);
                self.prefetch_lines(f as usize, &hits[at.clone()], &kinds[at]);
            }
            let Some(offered) = i.checked_sub(OFFER_LAG) else {
                continue;
            };
            if all_kinds[offered] != 0 {
                let f = active[offered];
                let at = span(f);
                let visit = Visit {
                    batch,
                    rows,
                    group: &hits[at.clone()],
                    kinds: &kinds[at.clone()],
                    priorities: &priorities[at],
                };
                self.offer_feature(params, &visit, f as usize, all_kinds[offered], &mut scratch);
            }
        }
        scratch.kinds = kinds;
        scratch.priorities = priorities;
        scratch.all_kinds = all_kinds;
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
        found: u8,
        group: &[Hit],
        kinds_of: &[u8],
    ) {
        if found & kinds::TOP != 0 {
            prefetch_ptr(self.top[f].next_slot());
        }
        if found & kinds::TOKEN != 0 {
            prefetch_ptr(self.token_samples[f].first_line());
            for (hit, &kind) in group.iter().zip(kinds_of).take(PREFETCH_VALUES) {
                if kind & kinds::TOKEN != 0 {
                    // The sample keeps the token's id.
                    prefetch(&tokens[hit.token() as usize]);
                }
            }
        }
        if found & kinds::INTERVAL != 0 {
            let intervals = &self.intervals[f];
            prefetch_ptr(intervals.first_lines()[0]);
            for (hit, &kind) in group.iter().zip(kinds_of).take(PREFETCH_VALUES) {
                if kind & kinds::INTERVAL != 0 {
                    prefetch_ptr(intervals.stratum_header(activation_bin(hit.value)));
                }
            }
        }
    }

    /// What the headers [`prefetch_headers`](Self::prefetch_headers) fetched point to.
    fn prefetch_lines(&self, f: usize, group: &[Hit], kinds_of: &[u8]) {
        let intervals = &self.intervals[f];
        for (hit, &kind) in group.iter().zip(kinds_of).take(PREFETCH_VALUES) {
            if kind & kinds::INTERVAL != 0 {
                for line in intervals.stratum_lines(activation_bin(hit.value)) {
                    prefetch_ptr(line);
                }
            }
        }
    }

    /// Observes local feature `f`'s values (`group`), noting each one's kinds and priority;
    /// returns the union of the kinds.
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
        kinds_of: &mut [u8],
        priorities: &mut [u64],
    ) -> u8 {
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
        let positions = &mut state.positions;
        let mut all_kinds = kinds::MAX * u8::from(new_max);
        let mut wrapped = false;
        let outputs = kinds_of.iter_mut().zip(priorities.iter_mut());
        for (hit, (kind_of, priority_of)) in group.iter().zip(outputs) {
            let value = hit.value;
            // Not observed: on an excluded special token (kept for the context of samples
            // around it), or at or below the threshold.
            if hit.context_only() || value <= threshold {
                *kind_of = 0;
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
            wrapped |= cell.count == 0;
            let floor_hi = if bin < usize::from(low.bin) {
                low.floor_hi
            } else {
                cell.floor_hi
            };
            let kind = (kinds::TOP * u8::from(value >= admit_floor))
                | (kinds::TOKEN * u8::from(priority_hi <= token_floor_hi))
                | (kinds::INTERVAL * u8::from(priority_hi <= floor_hi));
            all_kinds |= kind;
            *kind_of = kind;
            *priority_of = priority;
        }
        if wrapped {
            // A cell's count passed `u32::MAX` (astronomically rare): carry into the high part.
            self.carry_wrapped_counts(params, f, group);
        }
        all_kinds
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

    /// Offers local feature `f`'s candidates (`all_kinds`: the union of their kinds).
    fn offer_feature(
        &mut self,
        params: &Params,
        visit: &Visit<'_, '_>,
        f: usize,
        all_kinds: u8,
        scratch: &mut VisitScratch,
    ) {
        let any = |kind: u8| all_kinds & kind != 0;
        scratch.epoch += 1;
        if scratch.written.len() < visit.group.len() {
            scratch
                .written
                .resize(visit.group.len(), (0, Record::default()));
        }
        // Bins whose interval floor changed, re-cached once at the end.
        let mut dirty = 0..0;
        if any(kinds::MAX) {
            let max = self.state[f].moments.max;
            dirty = self.intervals[f].set_max(&params.shape, max, &mut self.records);
        }
        if any(kinds::TOKEN) {
            let tokens = visit.batch.tokens.tokens;
            for (j, hit) in visit.group.iter().enumerate() {
                if visit.kinds[j] & kinds::TOKEN != 0 {
                    self.token_samples[f].offer(visit.priorities[j], tokens[hit.token() as usize]);
                }
            }
            self.state[f].token_floor_hi = (self.token_samples[f].floor() >> 32) as u32;
        }
        if any(kinds::TOP) {
            self.offer_top(params, visit, f, scratch);
            self.state[f].admit_floor = self.top[f].floor();
        }
        if any(kinds::INTERVAL) {
            for j in 0..visit.group.len() {
                if visit.kinds[j] & kinds::INTERVAL != 0 {
                    let changed = self.offer_interval(params, visit, f, j, scratch);
                    dirty = union(dirty, changed);
                }
            }
        }
        self.refresh_floors(params, f, dirty);
    }

    /// The top candidates of feature `f`, deduplicated per sequence: a row holding several is
    /// taken best first and a candidate dropped when a kept one lies within the half-width
    /// (its token would show in the other's context). Most rows hold one (a feature fires a
    /// few times per row at most), offered as it comes.
    fn offer_top(
        &mut self,
        params: &Params,
        visit: &Visit<'_, '_>,
        f: usize,
        scratch: &mut VisitScratch,
    ) {
        let mut run = std::mem::take(&mut scratch.run);
        let mut kept = std::mem::take(&mut scratch.kept_positions);
        let (group, kinds_of) = (visit.group, visit.kinds);
        let seq_len = visit.batch.tokens.seq_len as u32;
        let is_candidate = |j: usize| kinds_of[j] & kinds::TOP != 0;
        let next_candidate = |from: usize| (from..group.len()).find(|&j| is_candidate(j));
        let mut next = next_candidate(0);
        while let Some(j) = next {
            let (row, position) = visit.rows.split(group[j].token());
            next = next_candidate(j + 1);
            // The group is in token order: the row's other candidates follow.
            let row_end = (row + 1).saturating_mul(seq_len);
            let alone = next.is_none_or(|n| group[n].token() >= row_end);
            if alone || !params.dedup {
                self.offer_top_candidate(params, visit, f, j, row, position, scratch);
                continue;
            }
            run.clear();
            run.push(j as u32);
            while let Some(n) = next.filter(|&n| group[n].token() < row_end) {
                run.push(n as u32);
                next = next_candidate(n + 1);
            }
            run.sort_unstable_by(|&a, &b| {
                let (a, b) = (group[a as usize], group[b as usize]);
                rank_cmp(b.value, 0, b.token(), a.value, 0, a.token())
            });
            kept.clear();
            for &candidate in &run {
                let position = group[candidate as usize].token() - row * seq_len;
                if kept
                    .iter()
                    .any(|&p| p.abs_diff(position) <= params.half as u32)
                {
                    continue;
                }
                kept.push(position);
                let j = candidate as usize;
                self.offer_top_candidate(params, visit, f, j, row, position, scratch);
            }
        }
        scratch.run = run;
        scratch.kept_positions = kept;
    }

    /// Offers value `j` (on `row`, at `position`) to the top store.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn offer_top_candidate(
        &mut self,
        params: &Params,
        visit: &Visit<'_, '_>,
        f: usize,
        j: usize,
        row: u32,
        position: u32,
        scratch: &mut VisitScratch,
    ) {
        let sequence_idx = visit.batch.tokens.first_sequence + u64::from(row);
        let key = rank_key(visit.group[j].value, sequence_idx, position);
        if !self.top[f].admits(key) {
            return;
        }
        let record = write_record(&mut self.records, params, visit, j, row, position, scratch);
        self.top[f].insert(params.capacity, TopEntry { key, record }, &mut self.records);
    }

    /// Offers value `j` to its interval stratum; returns the bins whose floor changed.
    fn offer_interval(
        &mut self,
        params: &Params,
        visit: &Visit<'_, '_>,
        f: usize,
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
        self.intervals[f].offer(&params.shape, entry, &mut self.records, |records| {
            write_record(records, params, visit, j, row, position, scratch)
        })
    }
}

/// Appends the record of value `j` (on `row`, at `position`): previous token, context
/// window, the feature's activations on it (or shares the one written for it already).
#[allow(clippy::too_many_arguments)]
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
    let (row, position) = (row as usize, position as usize);
    let seq_len = visit.batch.tokens.seq_len;
    let row_tokens = visit.batch.tokens.row(row);
    let start = position.saturating_sub(params.half);
    let end = (position + params.half + 1).min(seq_len);
    let first = (row * seq_len + start) as u32;
    let last = (row * seq_len + end) as u32;
    let tokens = visit.batch.tokens.tokens;
    let log_base = *scratch
        .log_base
        .get_or_insert_with(|| records.log_batch(tokens));
    let context_position = (position - start) as u32;
    let group = visit.group;
    let hit = group[j];
    if let Some(base) = log_base {
        // The common case, settled without gathering the window's activations: no other
        // value of the feature in the window (the group is in token order, so those
        // would be its neighbours), the sample's own firing.
        let alone = (j == 0 || group[j - 1].token() < first)
            && group.get(j + 1).is_none_or(|next| next.token() >= last);
        if alone && hit.value > 0.0 {
            let record = records.push_inline(
                base + hit.token(),
                context_position,
                (end - start) as u32,
                position > 0,
                hit.value,
            );
            scratch.written[j] = (scratch.epoch, record);
            return record;
        }
    }
    context_acts(group, j, first..last, &mut scratch.acts);
    let record = match log_base {
        // The context stays in the log until the sample has lasted (most are pushed out
        // again while the stores fill); alone in its window, the sample's activation
        // stays in the record's handle too.
        Some(base) if matches!(scratch.acts[..], [(at, _)] if at == context_position) => records
            .push_inline(
                base + visit.group[j].token(),
                context_position,
                (end - start) as u32,
                position > 0,
                scratch.acts[0].1,
            ),
        Some(base) => records.push_lazy(
            base + visit.group[j].token(),
            context_position,
            (end - start) as u32,
            position > 0,
            scratch.acts.iter().copied(),
        ),
        None => records.push(
            position.checked_sub(1).map(|p| row_tokens[p]),
            &row_tokens[start..end],
            scratch.acts.iter().copied(),
        ),
    };
    scratch.written[j] = (scratch.epoch, record);
    record
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
