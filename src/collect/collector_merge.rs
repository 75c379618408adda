//! Merging collectors, and forgetting: everything a collector keeps adds up exactly.
//!
//! Statistics and histograms add, top-k stores keep the best of both, bottom-k samples (the
//! interval strata and the token sample) keep the lowest priorities of both, and the interval
//! strata are re-folded for the merged max. Each of these is what one collector fed the union
//! of the two streams holds, so a merge of shards equals the single run (property-tested).

use anyhow::{bail, Result};

use super::bins::ACTIVATION_BINS;
use super::collector::{Collector, FeatureState};
use super::interval_samples::IntervalSamples;
use super::ranges::SequenceRanges;
use super::token_sample::TokenSample;
use super::top_samples::TopSamples;

impl Collector {
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
        let shape = self.interval_shape();
        for f in 0..self.d_sae {
            let (mine, theirs) = (&mut self.state[f], &other.state[f]);
            mine.moments.merge(&theirs.moments);
            for (a, b) in mine.positions.iter_mut().zip(&theirs.positions) {
                *a += b;
            }
            self.top[f].merge(&other.top[f]);
            mine.admit_floor = self.top[f].floor();
            self.token_samples[f].merge(&other.token_samples[f]);
            mine.token_floor_hi = (self.token_samples[f].floor() >> 32) as u32;
            let max = mine.moments.max;
            self.intervals[f].merge(&shape, &other.intervals[f], max);
            self.refresh_floors(f, 0..ACTIVATION_BINS);
            self.special_activations[f] += other.special_activations[f];
        }
        for index in 0..self.cells.len() {
            let theirs = other.bin_count(index);
            if theirs > 0 {
                self.set_bin_count(index, self.bin_count(index) + theirs);
            }
        }
        for (a, b) in self.position_tokens.iter_mut().zip(&other.position_tokens) {
            *a += b;
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
        self.intervals.iter_mut().for_each(IntervalSamples::clear);
        self.token_samples.iter_mut().for_each(TokenSample::clear);
        self.special_activations.iter_mut().for_each(|c| *c = 0);
        self.position_tokens = Default::default();
        self.reset_cells();
        self.tokens_seen = 0;
        self.sequences_seen = 0;
        self.special_tokens_excluded = 0;
        self.sequences = SequenceRanges::default();
        self.poisoned = None;
    }

    /// The full count of histogram cell `index` (feature · bins + bin).
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
}
