//! Interval samples: per feature, uniform samples of its activations within ranges of
//! activation value — the "subsample intervals" of Anthropic's and Neuronpedia's feature pages.
//!
//! Those pages cut `[0, max]` into `n` equal intervals and show a few activations drawn
//! uniformly from each. The max is known only at the end, and shards must merge exactly, so
//! samples are kept per **stratum** of the fixed activation bins ([`super::bins`]): every bin
//! whose middle lies at or above `max / n` (it may end up in any interval) keeps its own
//! bottom-k by priority, and all lower bins — certainly in the first interval, since the max
//! only grows — share one "low" stratum. When the max grows, bins that fall below `max / n`
//! are folded into the low stratum (bottom-k of a union = bottom-k of the parts' bottom-k).
//! The state is thus a function of the set of activations seen, whatever their order or
//! sharding: for the final max, the low stratum is the bottom-k of every activation in bins
//! below `max / n`, and each higher bin the bottom-k of its own activations.
//!
//! At read-out interval `i` is the union of the bins whose middle lies in
//! `[i·max/n, (i+1)·max/n)` (the last also takes the bins above), and its samples are the
//! bottom-k of that union: a uniform sample without replacement of every activation in those
//! bins. Interval edges are thus snapped to bin edges (at most half a bin, ≤ 6%, from the
//! nominal `i·max/n`); within the snapped interval the draw is exactly uniform.

use std::cmp::Ordering;
use std::ops::Range;

use super::bins::{activation_bin, bin_lower, bin_mid, ACTIVATION_BINS};
use super::top_samples::StoredSample;

/// What an interval store is sized by (the collector's settings).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntervalShape {
    /// `n`: intervals of `[0, max]` (0 turns interval sampling off).
    pub intervals: usize,
    /// Samples kept per stratum, and shown per interval (0 turns it off).
    pub capacity: usize,
    /// Tokens a context holds at most.
    pub max_context: usize,
}

impl IntervalShape {
    pub fn enabled(&self) -> bool {
        self.intervals > 0 && self.capacity > 0
    }

    /// Interval of bin `b` for the final `max`: `⌊n · mid(b) / max⌋`, clamped to `0..n`.
    pub fn interval_of_bin(&self, b: usize, max: f32) -> usize {
        let n = self.intervals as f64;
        let scaled = n * bin_mid(b);
        if scaled < f64::from(max) {
            return 0;
        }
        ((scaled / f64::from(max)).floor().min(n - 1.0)) as usize
    }

    /// The first bin that may still leave the first interval: the smallest `b` with
    /// `n · mid(b) ≥ max` (the overflow bin, whose middle is +∞, always qualifies).
    pub fn low_bin(&self, max: f32) -> usize {
        let n = self.intervals as f64;
        let (mut lo, mut hi) = (0, ACTIVATION_BINS - 1);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if n * bin_mid(mid) >= f64::from(max) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }
}

/// A kept activation: its sampling key `(priority, sequence_idx, position)` and what a
/// [`StoredSample`] shows. Its context lives in the stratum's slab at its index.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    priority: u64,
    sequence_idx: u64,
    activation: f32,
    position: u32,
    /// `u32::MAX` at position 0.
    previous_token: u32,
    context_len: u32,
    context_position: u32,
}

impl Entry {
    /// `Less` when `self` has the lower (better) sampling key.
    fn key_cmp(&self, other: &Self) -> Ordering {
        (self.priority, self.sequence_idx, self.position).cmp(&(
            other.priority,
            other.sequence_idx,
            other.position,
        ))
    }
}

/// One stratum's bottom-k: at most `capacity` entries (a handful, so a linear scan finds the
/// worst), contexts in a slab of `capacity × max_context` tokens indexed like the entries.
#[derive(Clone, Debug, Default)]
struct Stratum {
    entries: Vec<Entry>,
    contexts: Vec<u32>,
}

impl Stratum {
    /// Priorities above this cannot enter (`u64::MAX` while not full).
    fn floor(&self, shape: &IntervalShape) -> u64 {
        if self.entries.len() < shape.capacity {
            return u64::MAX;
        }
        self.entries.iter().map(|e| e.priority).max().unwrap_or(0)
    }

    fn worst(&self) -> Option<usize> {
        (0..self.entries.len()).max_by(|&a, &b| self.entries[a].key_cmp(&self.entries[b]))
    }

    /// Keeps `entry` if it is among the `capacity` lowest keys. True when it was kept.
    fn offer(&mut self, shape: &IntervalShape, entry: Entry, context: &[u32]) -> bool {
        let slot = if self.entries.len() < shape.capacity {
            if self.entries.is_empty() {
                // One allocation each for the stratum's life.
                self.entries.reserve_exact(shape.capacity);
                self.contexts
                    .reserve_exact(shape.capacity * shape.max_context);
            }
            self.entries.push(entry);
            self.contexts
                .resize(self.entries.len() * shape.max_context, 0);
            self.entries.len() - 1
        } else {
            match self.worst() {
                Some(worst) if entry.key_cmp(&self.entries[worst]) == Ordering::Less => {
                    self.entries[worst] = entry;
                    worst
                }
                _ => return false,
            }
        };
        let start = slot * shape.max_context;
        self.contexts[start..start + context.len()].copy_from_slice(context);
        true
    }

    fn context(&self, shape: &IntervalShape, slot: usize) -> &[u32] {
        let start = slot * shape.max_context;
        &self.contexts[start..start + self.entries[slot].context_len as usize]
    }

    /// Offers every entry of `other` (with its context) to `self`.
    fn absorb(&mut self, shape: &IntervalShape, other: &Stratum) {
        for slot in 0..other.entries.len() {
            self.offer(shape, other.entries[slot], other.context(shape, slot));
        }
    }
}

/// An interval sample read out of a store, with its sampling priority.
#[derive(Clone, Debug, PartialEq)]
pub struct PrioritizedSample {
    pub priority: u64,
    pub sample: StoredSample,
}

/// One feature's interval strata. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct IntervalSamples {
    /// Bins below this share the low stratum.
    low_bin: u16,
    low: Stratum,
    /// Strata of bins `low_bin..low_bin + bins.len()`.
    bins: Vec<Stratum>,
}

impl IntervalSamples {
    /// Folds the strata of bins that can no longer leave the first interval into the low
    /// stratum. Returns the bins whose floor changed.
    pub fn set_max(&mut self, shape: &IntervalShape, max: f32) -> Range<usize> {
        if !shape.enabled() {
            return 0..0;
        }
        let new_low = shape.low_bin(max);
        let old_low = self.low_bin as usize;
        if new_low <= old_low {
            return 0..0;
        }
        let old_floor = self.low.floor(shape);
        let folded = (new_low - old_low).min(self.bins.len());
        for stratum in self.bins.drain(..folded) {
            self.low.absorb(shape, &stratum);
        }
        self.low_bin = new_low as u16;
        if self.low.floor(shape) == old_floor {
            old_low..new_low
        } else {
            0..new_low
        }
    }

    /// Offers one activation of bin `activation_bin(sample.activation)`. Returns the bins
    /// whose floor changed.
    pub fn offer(
        &mut self,
        shape: &IntervalShape,
        priority: u64,
        sample: &SampleParts<'_>,
    ) -> Range<usize> {
        if !shape.enabled() {
            return 0..0;
        }
        let entry = Entry {
            priority,
            sequence_idx: sample.sequence_idx,
            activation: sample.activation,
            position: sample.position,
            previous_token: sample.previous_token.unwrap_or(u32::MAX),
            context_len: sample.context.len() as u32,
            context_position: sample.context_position as u32,
        };
        let bin = activation_bin(sample.activation);
        let low_bin = self.low_bin as usize;
        if bin < low_bin {
            let old_floor = self.low.floor(shape);
            let kept = self.low.offer(shape, entry, sample.context);
            return if kept && self.low.floor(shape) != old_floor {
                0..low_bin
            } else {
                0..0
            };
        }
        let index = bin - low_bin;
        if index >= self.bins.len() {
            if self.bins.is_empty() {
                // Strata from max/n up to the max: ~8·log2(n) + 2 of them.
                self.bins.reserve(8 * shape.intervals.ilog2() as usize + 4);
            }
            self.bins.resize_with(index + 1, Stratum::default);
        }
        let old_floor = self.bins[index].floor(shape);
        let kept = self.bins[index].offer(shape, entry, sample.context);
        if kept && self.bins[index].floor(shape) != old_floor {
            bin..bin + 1
        } else {
            0..0
        }
    }

    /// Bins below this share the low stratum.
    pub fn low_bin(&self) -> usize {
        self.low_bin as usize
    }

    /// Priorities above this cannot enter bin `b`'s stratum (0 when sampling is off).
    pub fn floor_of_bin(&self, shape: &IntervalShape, b: usize) -> u64 {
        if !shape.enabled() {
            return 0;
        }
        let low_bin = self.low_bin as usize;
        if b < low_bin {
            return self.low.floor(shape);
        }
        self.bins
            .get(b - low_bin)
            .map_or(u64::MAX, |stratum| stratum.floor(shape))
    }

    /// Adds everything `other` kept; `max` is the merged feature's max.
    pub fn merge(&mut self, shape: &IntervalShape, other: &IntervalSamples, max: f32) {
        self.set_max(shape, max);
        for sample in other.all(shape) {
            self.offer(shape, sample.priority, &SampleParts::of(&sample.sample));
        }
    }

    /// Every kept sample, in key order (priority, then sequence, then position): the
    /// canonical listing the state file stores.
    pub fn all(&self, shape: &IntervalShape) -> Vec<PrioritizedSample> {
        let mut out = Vec::new();
        for stratum in std::iter::once(&self.low).chain(&self.bins) {
            collect_stratum(shape, stratum, &mut out);
        }
        sort_by_key(&mut out);
        out
    }

    /// The samples of interval `interval` (bottom-k of its bins' strata), strongest first.
    pub fn interval(&self, shape: &IntervalShape, interval: usize, max: f32) -> Vec<StoredSample> {
        let mut out = Vec::new();
        let low_bin = self.low_bin as usize;
        if interval == 0 {
            collect_stratum(shape, &self.low, &mut out);
        }
        for (index, stratum) in self.bins.iter().enumerate() {
            if shape.interval_of_bin(low_bin + index, max) == interval {
                collect_stratum(shape, stratum, &mut out);
            }
        }
        sort_by_key(&mut out);
        out.truncate(shape.capacity);
        let mut samples: Vec<StoredSample> = out.into_iter().map(|p| p.sample).collect();
        samples.sort_by(|a, b| b.rank_cmp(a));
        samples
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Interval `i`'s bins as a range `[first, end)` for the final `max`.
pub fn interval_bins(shape: &IntervalShape, interval: usize, max: f32) -> Range<usize> {
    let first = (0..ACTIVATION_BINS)
        .find(|&b| shape.interval_of_bin(b, max) >= interval)
        .unwrap_or(ACTIVATION_BINS);
    let end = (first..ACTIVATION_BINS)
        .find(|&b| shape.interval_of_bin(b, max) > interval)
        .unwrap_or(ACTIVATION_BINS);
    first..end
}

/// The lower edge of interval `i`'s first bin, the collection threshold for the first one.
pub fn interval_lower(bins: &Range<usize>, threshold: f32) -> f64 {
    bin_lower(bins.start).max(f64::from(threshold))
}

/// Borrowed parts of a sample being offered (a rejected one costs no copy).
#[derive(Clone, Copy, Debug)]
pub struct SampleParts<'a> {
    pub activation: f32,
    pub sequence_idx: u64,
    pub position: u32,
    pub previous_token: Option<u32>,
    pub context: &'a [u32],
    pub context_position: usize,
}

impl<'a> SampleParts<'a> {
    pub fn of(sample: &'a StoredSample) -> Self {
        Self {
            activation: sample.activation,
            sequence_idx: sample.sequence_idx,
            position: sample.position,
            previous_token: sample.previous_token,
            context: &sample.context_tokens,
            context_position: sample.context_position as usize,
        }
    }
}

fn collect_stratum(shape: &IntervalShape, stratum: &Stratum, out: &mut Vec<PrioritizedSample>) {
    for (slot, entry) in stratum.entries.iter().enumerate() {
        out.push(PrioritizedSample {
            priority: entry.priority,
            sample: StoredSample {
                activation: entry.activation,
                sequence_idx: entry.sequence_idx,
                position: entry.position,
                previous_token: (entry.previous_token != u32::MAX).then_some(entry.previous_token),
                context_tokens: stratum.context(shape, slot).to_vec(),
                context_position: entry.context_position,
            },
        });
    }
}

fn sort_by_key(samples: &mut [PrioritizedSample]) {
    samples.sort_by(|a, b| {
        (a.priority, a.sample.sequence_idx, a.sample.position).cmp(&(
            b.priority,
            b.sample.sequence_idx,
            b.sample.position,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: IntervalShape = IntervalShape {
        intervals: 5,
        capacity: 2,
        max_context: 1,
    };

    fn offer(store: &mut IntervalSamples, priority: u64, activation: f32, sequence: u64) {
        store.offer(
            &SHAPE,
            priority,
            &SampleParts {
                activation,
                sequence_idx: sequence,
                position: 0,
                previous_token: None,
                context: &[7],
                context_position: 0,
            },
        );
    }

    #[test]
    fn bins_move_to_lower_intervals_as_the_max_grows() {
        // With max 1: the bin of 0.5 has its middle in [0.4, 0.6) → interval 2.
        let b = activation_bin(0.5);
        assert_eq!(SHAPE.interval_of_bin(b, 1.0), 2);
        assert_eq!(SHAPE.interval_of_bin(b, 10.0), 0);
        // 0.2 lies in [0.1875, 0.203125), whose middle is below max/5; the next bin's is not.
        assert_eq!(SHAPE.low_bin(1.0), activation_bin(0.2) + 1);
        assert_eq!(SHAPE.low_bin(1.0), activation_bin(0.21));
        assert_eq!(SHAPE.interval_of_bin(ACTIVATION_BINS - 1, 1.0), 4);
        assert_eq!(SHAPE.interval_of_bin(0, 1.0), 0);
    }

    #[test]
    fn folding_into_the_low_stratum_keeps_the_lowest_priorities() {
        let mut store = IntervalSamples::default();
        store.set_max(&SHAPE, 1.0);
        // Two bins above max/5, two samples each, then the max grows so both fold into low.
        offer(&mut store, 40, 0.5, 0);
        offer(&mut store, 10, 0.5, 1);
        offer(&mut store, 30, 0.3, 2);
        offer(&mut store, 20, 0.3, 3);
        assert_eq!(store.all(&SHAPE).len(), 4);
        let changed = store.set_max(&SHAPE, 100.0);
        assert!(changed.end > activation_bin(0.5));
        let kept: Vec<u64> = store.all(&SHAPE).iter().map(|s| s.priority).collect();
        assert_eq!(kept, vec![10, 20]);
        assert_eq!(store.floor_of_bin(&SHAPE, activation_bin(0.5)), 20);
        // A later activation in the folded range competes with the low stratum.
        offer(&mut store, 15, 0.4, 4);
        let kept: Vec<u64> = store.all(&SHAPE).iter().map(|s| s.priority).collect();
        assert_eq!(kept, vec![10, 15]);
        let first = store.interval(&SHAPE, 0, 100.0);
        assert_eq!(first.len(), 2);
        assert!(store.interval(&SHAPE, 1, 100.0).is_empty());
    }

    #[test]
    fn intervals_take_the_bottom_k_of_their_bins() {
        let mut store = IntervalSamples::default();
        store.set_max(&SHAPE, 1.0);
        for (priority, activation) in [(5, 0.95), (3, 0.85), (9, 0.9), (1, 0.45), (2, 1.0)] {
            offer(&mut store, priority, activation, priority);
        }
        let top: Vec<f32> = store
            .interval(&SHAPE, 4, 1.0)
            .iter()
            .map(|s| s.activation)
            .collect();
        // Priorities 2 (1.0) and 3 (0.85) are the two lowest of the top interval.
        assert_eq!(top, vec![1.0, 0.85]);
        assert_eq!(store.interval(&SHAPE, 2, 1.0).len(), 1);
        let bins = interval_bins(&SHAPE, 4, 1.0);
        assert_eq!(bins.end, ACTIVATION_BINS);
        assert!(bin_lower(bins.start) <= 0.8 * 1.07 && bin_lower(bins.start) >= 0.8 / 1.07);
    }
}
