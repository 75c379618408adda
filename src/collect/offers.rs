//! Offering a sequence's candidates to the stores, once the sequence is scanned: top-k
//! candidates deduplicated per context window, interval candidates as they are.

use super::collector::Collector;
use super::interval_samples::SampleParts;
use super::top_samples::rank_cmp;

impl Collector {
    /// Deduplicates the sequence's candidates and offers the survivors to their stores.
    pub(super) fn offer_candidates(&mut self, row_tokens: &[u32], sequence_idx: u64) {
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

    fn offer(&mut self, candidate: super::scan::Candidate, row_tokens: &[u32], sequence_idx: u64) {
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
    pub(super) fn offer_interval_candidates(&mut self, row_tokens: &[u32], sequence_idx: u64) {
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
