//! Offering a scanned batch's pending hits to the stores, feature by feature.
//!
//! The pending hits are grouped by feature with a counting sort (O(hits + features), where the
//! per-sequence sort it replaces was O(n log n) per sequence), their context activations are
//! gathered ([`super::window_acts`]), and each feature with pending hits is then visited once:
//! its interval strata fold for the batch's max, the token sample takes its offers, top
//! candidates are deduplicated per context window and offered best first, interval candidates
//! offered as they are. A feature's stores are fetched once per batch rather than once per hit.
//! The result is what offering every hit in stream order gives: each store keeps a function of
//! the set of samples offered to it (top-k, bottom-k), and deduplication is decided within one
//! sequence, best first, among candidates above a floor that can only be too low.

use super::batch::TokenBatch;
use super::bins::{priority, row_key};
use super::block::{kinds, FeatureBlock, Params, Pending};
use super::collector::BatchView;
use super::interval_samples::IntervalEntry;
use super::records::Record;
use super::scan::{prefetch, prefetch_ptr};
use super::top_samples::{rank_cmp, rank_key, TopEntry};

/// How many features ahead of the one being offered its stores' headers are prefetched...
const PREFETCH_HEADERS: usize = 8;
/// ...and what the headers point to.
const PREFETCH_STORES: usize = 4;

impl FeatureBlock {
    /// Offers the pending hits of the batch just scanned, then compacts the arena if garbage
    /// outweighs the live records.
    pub(super) fn offer_pending(&mut self, params: &Params, batch: &BatchView<'_>) {
        if !self.scratch.pending.is_empty() {
            self.group_pending();
            self.gather_context_acts(params, batch);
            let mut active = std::mem::take(&mut self.scratch.active);
            active.clear();
            let starts = &self.scratch.group_start;
            active.extend((0..self.len() as u32).filter(|&f| {
                let f = f as usize;
                starts[f] < starts[f + 1]
            }));
            // A feature's stores are cold when its turn comes (16k features' stores do not
            // stay in cache between batches): load them a few features ahead, the headers
            // first and what they point to once the headers are in.
            for (i, &f) in active.iter().enumerate() {
                if let Some(&far) = active.get(i + PREFETCH_HEADERS) {
                    self.prefetch_headers(far as usize);
                }
                if let Some(&near) = active.get(i + PREFETCH_STORES) {
                    self.prefetch_stores(near as usize);
                }
                let f = f as usize;
                let group =
                    self.scratch.group_start[f] as usize..self.scratch.group_start[f + 1] as usize;
                self.offer_feature(params, batch.tokens, f, group);
            }
            self.scratch.active = active;
        }
        if self.records.wants_compaction() {
            self.compact(params);
        }
    }

    fn prefetch_headers(&self, f: usize) {
        prefetch(&self.top[f]);
        prefetch(&self.intervals[f]);
        prefetch(&self.token_samples[f]);
        prefetch(&self.state[f]);
    }

    fn prefetch_stores(&self, f: usize) {
        prefetch_ptr(self.top[f].next_slot());
        prefetch_ptr(self.token_samples[f].first_line());
        for line in self.intervals[f].first_lines() {
            prefetch_ptr(line);
        }
    }

    /// Counting sort of `pending` by feature into `grouped` (stable: token order within a
    /// feature), with `group_start`.
    fn group_pending(&mut self) {
        let n = self.len();
        let scratch = &mut self.scratch;
        scratch.group_start.clear();
        scratch.group_start.resize(n + 1, 0);
        for p in &scratch.pending {
            scratch.group_start[p.feature as usize + 1] += 1;
        }
        for f in 0..n {
            scratch.group_start[f + 1] += scratch.group_start[f];
        }
        scratch.cursor.clear();
        scratch.cursor.extend_from_slice(&scratch.group_start[..n]);
        scratch.grouped.clear();
        scratch.grouped.resize(
            scratch.pending.len(),
            Pending {
                feature: 0,
                token: 0,
                value: 0.0,
                kinds: 0,
            },
        );
        scratch.written.clear();
        scratch.written.resize(scratch.pending.len(), None);
        for p in &scratch.pending {
            let slot = &mut scratch.cursor[p.feature as usize];
            scratch.grouped[*slot as usize] = *p;
            *slot += 1;
        }
    }

    /// Offers local feature `f`'s pending hits (`grouped[group]`).
    fn offer_feature(
        &mut self,
        params: &Params,
        tokens: &TokenBatch<'_>,
        f: usize,
        group: std::ops::Range<usize>,
    ) {
        let all_kinds = self.scratch.grouped[group.clone()]
            .iter()
            .fold(0, |all, p| all | p.kinds);
        let any = |kind: u8| all_kinds & kind != 0;
        // Bins whose interval floor changed, re-cached once at the end.
        let mut dirty = 0..0;
        if any(kinds::MAX) {
            let max = self.state[f].moments.max;
            dirty = self.intervals[f].set_max(&params.shape, max, &mut self.records);
        }
        if any(kinds::TOKEN) {
            for j in group.clone() {
                let p = self.scratch.grouped[j];
                if p.kinds & kinds::TOKEN != 0 {
                    let (sequence, position) = place(tokens, p.token);
                    let key = priority(row_key(sequence), position, self.base + p.feature);
                    self.token_samples[f].offer(key, tokens.tokens[p.token as usize]);
                }
            }
            self.state[f].token_floor_hi = (self.token_samples[f].floor() >> 32) as u32;
        }
        if any(kinds::TOP) {
            self.offer_top(params, tokens, f, group.clone());
            self.state[f].admit_floor = self.top[f].floor();
        }
        if any(kinds::INTERVAL) {
            for j in group {
                if self.scratch.grouped[j].kinds & kinds::INTERVAL != 0 {
                    let changed = self.offer_interval(params, tokens, f, j);
                    dirty = union(dirty, changed);
                }
            }
        }
        self.refresh_floors(params, f, dirty);
    }

    /// The top candidates of feature `f`, deduplicated per sequence: runs of one row are taken
    /// best first and a candidate is dropped when a kept one lies within the half-width (its
    /// token would show in the other's context).
    fn offer_top(
        &mut self,
        params: &Params,
        tokens: &TokenBatch<'_>,
        f: usize,
        group: std::ops::Range<usize>,
    ) {
        let mut run = std::mem::take(&mut self.scratch.run);
        let mut kept = std::mem::take(&mut self.scratch.kept_positions);
        let seq_len = tokens.seq_len as u32;
        let mut j = group.start;
        while j < group.end {
            // One row's candidates (the group is in token order).
            let row = self.scratch.grouped[j].token / seq_len;
            run.clear();
            while j < group.end && self.scratch.grouped[j].token / seq_len == row {
                if self.scratch.grouped[j].kinds & kinds::TOP != 0 {
                    run.push(j as u32);
                }
                j += 1;
            }
            if run.len() > 1 && params.dedup {
                let grouped = &self.scratch.grouped;
                run.sort_unstable_by(|&a, &b| {
                    let (a, b) = (grouped[a as usize], grouped[b as usize]);
                    rank_cmp(b.value, 0, b.token, a.value, 0, a.token)
                });
                kept.clear();
                for &candidate in &run {
                    let position = self.scratch.grouped[candidate as usize].token % seq_len;
                    if kept
                        .iter()
                        .any(|&p| p.abs_diff(position) <= params.half as u32)
                    {
                        continue;
                    }
                    kept.push(position);
                    self.offer_top_candidate(params, tokens, f, candidate as usize);
                }
            } else {
                for &candidate in &run {
                    self.offer_top_candidate(params, tokens, f, candidate as usize);
                }
            }
        }
        self.scratch.run = run;
        self.scratch.kept_positions = kept;
    }

    fn offer_top_candidate(
        &mut self,
        params: &Params,
        tokens: &TokenBatch<'_>,
        f: usize,
        j: usize,
    ) {
        let p = self.scratch.grouped[j];
        let (sequence_idx, position) = place(tokens, p.token);
        let key = rank_key(p.value, sequence_idx, position);
        if !self.top[f].admits(key) {
            return;
        }
        let record = self.write_record(params, tokens, j);
        self.top[f].insert(params.capacity, TopEntry { key, record }, &mut self.records);
    }

    /// Offers group entry `j` to its interval stratum; returns the bins whose floor changed.
    fn offer_interval(
        &mut self,
        params: &Params,
        tokens: &TokenBatch<'_>,
        f: usize,
        j: usize,
    ) -> std::ops::Range<usize> {
        let p = self.scratch.grouped[j];
        let (sequence_idx, position) = place(tokens, p.token);
        let mut entry = IntervalEntry {
            priority: priority(row_key(sequence_idx), position, self.base + p.feature),
            sequence_idx,
            activation: p.value,
            position,
            record: Record::default(),
        };
        if !self.intervals[f].admits(&params.shape, &entry) {
            return 0..0;
        }
        entry.record = self.write_record(params, tokens, j);
        self.intervals[f].insert(&params.shape, entry, &mut self.records)
    }

    /// Appends the record of group entry `j`: previous token, context window, activations
    /// (or shares the one written for it already).
    fn write_record(&mut self, params: &Params, tokens: &TokenBatch<'_>, j: usize) -> Record {
        if let Some(record) = self.scratch.written[j] {
            self.records.share(record);
            return record;
        }
        let p = self.scratch.grouped[j];
        let seq_len = tokens.seq_len;
        let (row, position) = (p.token as usize / seq_len, p.token as usize % seq_len);
        let row_tokens = tokens.row(row);
        let start = position.saturating_sub(params.half);
        let end = (position + params.half + 1).min(seq_len);
        let acts = &self.scratch.acts
            [self.scratch.acts_start[j] as usize..self.scratch.acts_start[j + 1] as usize];
        let record = self.records.push(
            position.checked_sub(1).map(|p| row_tokens[p]),
            &row_tokens[start..end],
            acts.iter().copied(),
        );
        self.scratch.written[j] = Some(record);
        record
    }
}

/// The `(sequence_idx, position)` of a token of the batch.
#[inline]
pub(super) fn place(tokens: &TokenBatch<'_>, token: u32) -> (u64, u32) {
    let seq_len = tokens.seq_len as u32;
    (
        tokens.first_sequence + u64::from(token / seq_len),
        token % seq_len,
    )
}

/// The smallest range holding both (an empty one holds nothing).
fn union(a: std::ops::Range<usize>, b: std::ops::Range<usize>) -> std::ops::Range<usize> {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b,
        (_, true) => a,
        _ => a.start.min(b.start)..a.end.max(b.end),
    }
}
