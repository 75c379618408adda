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
use super::records::{Record, Records};

/// What an interval store is sized by (the collector's settings).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntervalShape {
    /// `n`: intervals of `[0, max]` (0 turns interval sampling off).
    pub intervals: usize,
    /// Samples kept per stratum, and shown per interval (0 turns it off).
    pub capacity: usize,
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

/// A kept activation: its sampling key `(priority, sequence_idx, position)`, its value and its
/// record in the block's arena.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntervalEntry {
    pub priority: u64,
    pub sequence_idx: u64,
    pub activation: f32,
    pub position: u32,
    pub record: Record,
}

impl IntervalEntry {
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
/// worst after a replacement), with the worst one's index kept.
#[derive(Clone, Debug, Default)]
struct Stratum {
    entries: Vec<IntervalEntry>,
    worst: u32,
}

/// Entries reserved per stratum at its first admission (a hostile state file naming a huge
/// capacity grows it sample by sample instead).
const FIRST_RESERVE: usize = 64;

impl Stratum {
    /// Priorities above this cannot enter (`u64::MAX` while not full).
    fn floor(&self, shape: &IntervalShape) -> u64 {
        if self.entries.len() < shape.capacity {
            return u64::MAX;
        }
        self.entries
            .get(self.worst as usize)
            .map_or(0, |e| e.priority)
    }

    /// Keeps `entry` if it is among the `capacity` lowest keys, with the record `record`
    /// writes (called only then); the record of the entry it displaces goes back to
    /// `records`. Returns whether it was kept.
    #[inline]
    fn offer(
        &mut self,
        shape: &IntervalShape,
        mut entry: IntervalEntry,
        records: &mut Records,
        record: impl FnOnce(&mut Records) -> Record,
    ) -> bool {
        let worst = self.entries.get(self.worst as usize);
        if self.entries.len() < shape.capacity {
            let worse = worst.is_none_or(|worst| entry.key_cmp(worst) == Ordering::Greater);
            if self.entries.capacity() == 0 {
                self.entries
                    .reserve_exact(shape.capacity.min(FIRST_RESERVE));
            }
            entry.record = record(records);
            self.entries.push(entry);
            if worse {
                self.worst = (self.entries.len() - 1) as u32;
            }
            return true;
        }
        if worst.is_none_or(|worst| entry.key_cmp(worst) != Ordering::Less) {
            return false;
        }
        entry.record = record(records);
        let displaced = std::mem::replace(&mut self.entries[self.worst as usize], entry).record;
        records.release(displaced);
        self.worst = (0..self.entries.len())
            .max_by(|&a, &b| self.entries[a].key_cmp(&self.entries[b]))
            .unwrap_or(0) as u32;
        true
    }

    /// Offers every entry of `other` to `self`; the records of the entries that lost go to
    /// `released`.
    fn absorb(&mut self, shape: &IntervalShape, other: Stratum, released: &mut Records) {
        for entry in other.entries {
            if !self.offer(shape, entry, released, |_| entry.record) {
                released.release(entry.record);
            }
        }
    }
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
    /// stratum (the records of samples that lose go back to `records`). Returns the bins whose
    /// floor changed.
    pub fn set_max(
        &mut self,
        shape: &IntervalShape,
        max: f32,
        records: &mut Records,
    ) -> Range<usize> {
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
        let strata: Vec<Stratum> = self.bins.drain(..folded).collect();
        for stratum in strata {
            self.low.absorb(shape, stratum, records);
        }
        self.low_bin = new_low as u16;
        if self.low.floor(shape) == old_floor {
            old_low..new_low
        } else {
            0..new_low
        }
    }

    /// The stratum that holds bin `bin`, if it exists yet.
    fn stratum(&self, bin: usize) -> Option<&Stratum> {
        let low_bin = self.low_bin as usize;
        if bin < low_bin {
            Some(&self.low)
        } else {
            self.bins.get(bin - low_bin)
        }
    }

    /// Keeps `entry` in its bin's stratum if its key is among the stratum's lowest, with the
    /// record `record` writes (called only then: most offers of a long collection lose); the
    /// record it displaces goes back to `records`. Returns the bins whose floor changed.
    #[inline]
    pub fn offer(
        &mut self,
        shape: &IntervalShape,
        entry: IntervalEntry,
        records: &mut Records,
        record: impl FnOnce(&mut Records) -> Record,
    ) -> Range<usize> {
        if !shape.enabled() {
            return 0..0;
        }
        let bin = activation_bin(entry.activation);
        let low_bin = self.low_bin as usize;
        let (stratum, changed) = if bin < low_bin {
            (&mut self.low, 0..low_bin)
        } else {
            let index = bin - low_bin;
            if index >= self.bins.len() {
                if self.bins.is_empty() {
                    // Strata from max/n up to the max: ~8·log2(n) + 2 of them.
                    self.bins.reserve(8 * shape.intervals.ilog2() as usize + 4);
                }
                self.bins.resize_with(index + 1, Stratum::default);
            }
            (&mut self.bins[index], bin..bin + 1)
        };
        let old_floor = stratum.floor(shape);
        if stratum.offer(shape, entry, records, record) && stratum.floor(shape) != old_floor {
            changed
        } else {
            0..0
        }
    }

    /// Where an offer starts reading: the low stratum's entries and the first strata (for a
    /// prefetch).
    pub fn first_lines(&self) -> [*const u8; 2] {
        [self.low.entries.as_ptr().cast(), self.bins.as_ptr().cast()]
    }

    /// The header of the stratum that holds bin `bin` (for a prefetch: it may not exist).
    pub fn stratum_header(&self, bin: usize) -> *const u8 {
        let low_bin = self.low_bin as usize;
        if bin < low_bin {
            (&self.low as *const Stratum).cast()
        } else {
            self.bins.as_ptr().wrapping_add(bin - low_bin).cast()
        }
    }

    /// Where an offer to bin `bin`'s stratum reads: its entries, all of them (after a
    /// replacement it scans them for the new worst), as a start and a length in bytes (for a
    /// prefetch, once its header is in; empty when the stratum does not exist).
    pub fn stratum_bytes(&self, bin: usize) -> (*const u8, usize) {
        self.stratum(bin).map_or((std::ptr::null(), 0), |stratum| {
            (
                stratum.entries.as_ptr().cast(),
                std::mem::size_of_val(stratum.entries.as_slice()),
            )
        })
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
        self.stratum(b)
            .map_or(u64::MAX, |stratum| stratum.floor(shape))
    }

    /// Every kept entry, in key order (priority, then sequence, then position): the canonical
    /// listing the state file stores.
    pub fn all(&self) -> Vec<IntervalEntry> {
        let mut out: Vec<IntervalEntry> = std::iter::once(&self.low)
            .chain(&self.bins)
            .flat_map(|stratum| stratum.entries.iter().copied())
            .collect();
        out.sort_by(IntervalEntry::key_cmp);
        out
    }

    /// The entries of interval `interval` (bottom-k of its bins' strata), strongest first.
    pub fn interval(&self, shape: &IntervalShape, interval: usize, max: f32) -> Vec<IntervalEntry> {
        let low_bin = self.low_bin as usize;
        let mut out: Vec<IntervalEntry> = Vec::new();
        if interval == 0 {
            out.extend(&self.low.entries);
        }
        for (index, stratum) in self.bins.iter().enumerate() {
            if shape.interval_of_bin(low_bin + index, max) == interval {
                out.extend(&stratum.entries);
            }
        }
        out.sort_by(IntervalEntry::key_cmp);
        out.truncate(shape.capacity);
        out.sort_by(|a, b| {
            super::top_samples::rank_cmp(
                b.activation,
                b.sequence_idx,
                b.position,
                a.activation,
                a.sequence_idx,
                a.position,
            )
        });
        out
    }

    pub fn records_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        std::iter::once(&mut self.low)
            .chain(&mut self.bins)
            .flat_map(|stratum| stratum.entries.iter_mut().map(|e| &mut e.record))
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

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: IntervalShape = IntervalShape {
        intervals: 5,
        capacity: 2,
    };

    fn offer(
        store: &mut IntervalSamples,
        records: &mut Records,
        priority: u64,
        activation: f32,
        sequence: u64,
    ) {
        let entry = IntervalEntry {
            priority,
            sequence_idx: sequence,
            activation,
            position: 0,
            record: Record::default(),
        };
        store.offer(&SHAPE, entry, records, |records| {
            records.push(None, &[7], std::iter::empty())
        });
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
        let (mut store, mut records) = (IntervalSamples::default(), Records::default());
        store.set_max(&SHAPE, 1.0, &mut records);
        // Two bins above max/5, two samples each, then the max grows so both fold into low.
        offer(&mut store, &mut records, 40, 0.5, 0);
        offer(&mut store, &mut records, 10, 0.5, 1);
        offer(&mut store, &mut records, 30, 0.3, 2);
        offer(&mut store, &mut records, 20, 0.3, 3);
        assert_eq!(store.all().len(), 4);
        let changed = store.set_max(&SHAPE, 100.0, &mut records);
        assert!(changed.end > activation_bin(0.5));
        let kept: Vec<u64> = store.all().iter().map(|s| s.priority).collect();
        assert_eq!(kept, vec![10, 20]);
        assert_eq!(store.floor_of_bin(&SHAPE, activation_bin(0.5)), 20);
        // A later activation in the folded range competes with the low stratum.
        offer(&mut store, &mut records, 15, 0.4, 4);
        let kept: Vec<u64> = store.all().iter().map(|s| s.priority).collect();
        assert_eq!(kept, vec![10, 15]);
        let first = store.interval(&SHAPE, 0, 100.0);
        assert_eq!(first.len(), 2);
        assert!(store.interval(&SHAPE, 1, 100.0).is_empty());
    }

    #[test]
    fn intervals_take_the_bottom_k_of_their_bins() {
        let (mut store, mut records) = (IntervalSamples::default(), Records::default());
        store.set_max(&SHAPE, 1.0, &mut records);
        for (priority, activation) in [(5, 0.95), (3, 0.85), (9, 0.9), (1, 0.45), (2, 1.0)] {
            offer(&mut store, &mut records, priority, activation, priority);
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
