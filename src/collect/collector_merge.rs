//! Merging collectors, and forgetting: everything a collector keeps adds up exactly.
//!
//! Statistics and histograms add, top-k stores keep the best of both, bottom-k samples (the
//! interval strata and the token sample) keep the lowest priorities of both, and the interval
//! strata are re-folded for the merged max. Each of these is what one collector fed the union
//! of the two streams holds, so a merge of shards equals the single run (property-tested). A
//! sample moves with its record (context and context activations); the two collectors may
//! split their features into different blocks.

use anyhow::{bail, Result};

use super::bins::ACTIVATION_BINS;
use super::block::FeatureBlock;
use super::collector::Collector;
use super::ranges::SequenceRanges;

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
        for feature in 0..self.d_sae {
            let (theirs, g) = other.block(feature);
            let params = self.params;
            let (mine, f) = self.block_mut(feature);
            mine.merge_feature(&params, f, theirs, g);
        }
        let params = self.params;
        for block in &mut self.blocks {
            block.tidy_records(&params);
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

    /// Forgets everything seen (settings and threads stay).
    pub fn clear(&mut self) {
        let params = self.params;
        self.blocks
            .iter_mut()
            .for_each(|block| block.clear(&params));
        self.position_tokens = Default::default();
        self.tokens_seen = 0;
        self.sequences_seen = 0;
        self.special_tokens_excluded = 0;
        self.sequences = SequenceRanges::default();
        self.poisoned = None;
    }
}

impl FeatureBlock {
    /// Adds feature `g` of `other` into local feature `f`.
    fn merge_feature(
        &mut self,
        params: &super::block::Params,
        f: usize,
        other: &FeatureBlock,
        g: usize,
    ) {
        let (mine, theirs) = (&mut self.state[f], &other.state[g]);
        mine.moments.merge(&theirs.moments);
        for (a, b) in mine.positions.iter_mut().zip(&theirs.positions) {
            *a += b;
        }
        for entry in other.top[g].entries() {
            if self.top[f].admits(entry.key) {
                let mut entry = *entry;
                entry.record = self.records.copy_from(&other.records, entry.record);
                self.top[f].insert(params.capacity, entry, &mut self.records);
            }
        }
        self.token_samples[f].merge(&other.token_samples[g]);
        let max = self.state[f].moments.max;
        if self.state[f].moments.count > 0 {
            self.intervals[f].set_max(&params.shape, max, &mut self.records);
        }
        for entry in other.intervals[g].all() {
            self.intervals[f].offer(&params.shape, entry, &mut self.records, |records| {
                records.copy_from(&other.records, entry.record)
            });
        }
        self.special_activations[f] += other.special_activations[g];
        for bin in 0..ACTIVATION_BINS {
            let theirs = other.bin_count(g * ACTIVATION_BINS + bin);
            if theirs > 0 {
                let index = f * ACTIVATION_BINS + bin;
                self.set_bin_count(index, self.bin_count(index) + theirs);
            }
        }
        self.refresh_all_floors(params, f);
    }
}
