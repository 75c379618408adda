//! The bounded store of one feature's best samples.
//!
//! A binary heap whose root is the *worst* kept sample, so a better newcomer replaces it in
//! O(log n). "Better" is a total order: larger activation first (as `f32::total_cmp` orders
//! them), then the earlier token (smaller sequence index, then smaller position) — the
//! deterministic tie-break that makes the result equal to a brute-force sort, and merges of
//! shards equal to a single run. The order is one integer, [`rank_key`], so comparing two
//! samples is one compare. Entries are 32 bytes; what a sample shows lives in its block's
//! arena ([`super::records`]).

use std::cmp::Ordering;

use super::records::Record;

/// A kept sample read out of a collector: its rank key, the tokens needed to show it and the
/// feature's activation on them. Text is decoded later, and only for the samples written.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSample {
    pub activation: f32,
    pub sequence_idx: u64,
    pub position: u32,
    /// The token before the activating one (absent at position 0).
    pub previous_token: Option<u32>,
    /// The row's tokens `[position - ctx/2, position + ctx/2]`, clipped to the row.
    pub context_tokens: Vec<u32>,
    /// Index of the activating token inside `context_tokens`.
    pub context_position: u32,
    /// The feature's activation on every token of `context_tokens` where it fires (> 0), as
    /// `(index into context_tokens, value)` by index — the marked token included when it
    /// fires; special tokens (BOS…) included, whether or not they are excluded from samples.
    /// A dashboard colours the window by it; the samples folder writes it as
    /// `context_activations`.
    pub context_activations: Vec<(u32, f32)>,
}

impl StoredSample {
    pub fn token(&self) -> u32 {
        self.context_tokens[self.context_position as usize]
    }

    /// `Greater` when `self` ranks before `other` (is the better sample).
    pub fn rank_cmp(&self, other: &Self) -> Ordering {
        rank_cmp(
            self.activation,
            self.sequence_idx,
            self.position,
            other.activation,
            other.sequence_idx,
            other.position,
        )
    }
}

/// Rank order of two samples given by their keys: `Greater` when the first is better.
#[inline]
pub fn rank_cmp(
    a_act: f32,
    a_seq: u64,
    a_pos: u32,
    b_act: f32,
    b_seq: u64,
    b_pos: u32,
) -> Ordering {
    rank_key(a_act, a_seq, a_pos).cmp(&rank_key(b_act, b_seq, b_pos))
}

/// A sample's rank as one integer: larger is better. The activation's bits mapped so that
/// integer order is `f32::total_cmp`'s (NaN never gets here), then the sequence index and the
/// position, complemented so that the earlier token ranks higher.
#[inline]
pub fn rank_key(activation: f32, sequence_idx: u64, position: u32) -> u128 {
    let bits = activation.to_bits();
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    u128::from(ordered) << 96 | u128::from(!sequence_idx) << 32 | u128::from(!position)
}

/// A kept sample: its rank key ([`rank_key`]) and its record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopEntry {
    pub key: u128,
    pub record: Record,
}

impl TopEntry {
    pub fn activation(&self) -> f32 {
        let ordered = (self.key >> 96) as u32;
        f32::from_bits(if ordered >> 31 == 1 {
            ordered & 0x7FFF_FFFF
        } else {
            !ordered
        })
    }

    pub fn sequence_idx(&self) -> u64 {
        !((self.key >> 32) as u64)
    }

    pub fn position(&self) -> u32 {
        !(self.key as u32)
    }
}

/// The best `capacity` samples of one feature seen so far (the capacity is the collector's
/// `max_samples_per_feature`, passed in rather than stored 16k times).
#[derive(Clone, Debug, Default)]
pub struct TopSamples {
    /// A binary heap: every entry is worse than (or ties with) neither of its children
    /// being worse, i.e. the root is the worst.
    heap: Vec<TopEntry>,
}

/// Entries reserved at the first admission: the whole store for the usual capacities, in one
/// allocation (a hostile state file naming a huge capacity grows it sample by sample instead).
const FIRST_RESERVE: usize = 1024;

impl TopSamples {
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Activations below this can never enter (−∞ while the store is not full).
    pub fn floor(&self, capacity: usize) -> f32 {
        match self.heap.first() {
            Some(worst) if self.heap.len() >= capacity => worst.activation(),
            _ => f32::NEG_INFINITY,
        }
    }

    /// Whether a sample with this rank key would be kept.
    #[inline]
    pub fn admits(&self, capacity: usize, key: u128) -> bool {
        match self.heap.first() {
            Some(worst) if self.heap.len() >= capacity => key > worst.key,
            _ => true,
        }
    }

    /// Keeps `entry`, which [`admits`](Self::admits) accepted; returns the record of the
    /// sample it displaced.
    pub fn insert(&mut self, capacity: usize, entry: TopEntry) -> Option<Record> {
        if self.heap.len() < capacity {
            if self.heap.capacity() == 0 {
                self.heap.reserve_exact(capacity.min(FIRST_RESERVE));
            }
            self.heap.push(entry);
            self.sift_up(self.heap.len() - 1);
            None
        } else {
            let displaced = std::mem::replace(&mut self.heap[0], entry).record;
            self.sift_down(0);
            Some(displaced)
        }
    }

    /// Moves a worse entry up towards the root.
    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[i].key >= self.heap[parent].key {
                break;
            }
            self.heap.swap(i, parent);
            i = parent;
        }
    }

    /// Moves a better entry down, below its worse child.
    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            if left >= n {
                break;
            }
            let worse = if right < n && self.heap[right].key < self.heap[left].key {
                right
            } else {
                left
            };
            if self.heap[worse].key >= self.heap[i].key {
                break;
            }
            self.heap.swap(i, worse);
            i = worse;
        }
    }

    /// The kept entries, best first.
    pub fn sorted(&self) -> Vec<TopEntry> {
        let mut entries = self.heap.clone();
        entries.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.key));
        entries
    }

    /// Every entry, in heap order (for merging and compaction, where order does not matter).
    pub fn entries(&self) -> &[TopEntry] {
        &self.heap
    }

    pub fn records_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        self.heap.iter_mut().map(|entry| &mut entry.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(activation: f32, sequence_idx: u64) -> TopEntry {
        TopEntry {
            key: rank_key(activation, sequence_idx, 0),
            record: Record::default(),
        }
    }

    #[test]
    fn keeps_the_best_and_breaks_ties_towards_the_earlier_token() {
        let mut top = TopSamples::default();
        for (i, act) in [0.3f32, 0.8, 0.5, 0.9, 0.2, 0.8].into_iter().enumerate() {
            if top.admits(3, rank_key(act, i as u64, 0)) {
                top.insert(3, entry(act, i as u64));
            }
        }
        let kept: Vec<(f32, u64)> = top
            .sorted()
            .iter()
            .map(|s| (s.activation(), s.sequence_idx()))
            .collect();
        assert_eq!(kept, vec![(0.9, 3), (0.8, 1), (0.8, 5)]);
        // A later 0.8 does not displace the earlier ones; an earlier one would.
        assert!(!top.admits(3, rank_key(0.8, 6, 0)));
        assert!(top.admits(3, rank_key(0.8, 0, 0)));
        assert_eq!(top.floor(3), 0.8);
    }

    #[test]
    fn the_heap_agrees_with_a_sort_on_random_keys() {
        let mut rng = crate::util::rng::SplitMix64(3);
        let mut top = TopSamples::default();
        let mut all = Vec::new();
        for i in 0..2000u64 {
            let act = rng.below(50) as f32;
            all.push(entry(act, i % 37));
            if top.admits(25, rank_key(act, i % 37, 0)) {
                top.insert(25, entry(act, i % 37));
            }
        }
        all.sort_by(|a, b| {
            b.activation()
                .total_cmp(&a.activation())
                .then(a.sequence_idx().cmp(&b.sequence_idx()))
        });
        all.truncate(25);
        let keys = |v: &[TopEntry]| -> Vec<(f32, u64)> {
            v.iter()
                .map(|e| (e.activation(), e.sequence_idx()))
                .collect()
        };
        assert_eq!(keys(&top.sorted()), keys(&all));
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn the_rank_key_orders_like_total_cmp_then_the_earlier_token() {
        let values = [
            -3.5f32,
            -0.0,
            0.0,
            1e-30,
            0.1,
            0.5,
            2.0,
            f32::MAX,
            f32::INFINITY,
        ];
        for &a in &values {
            for &b in &values {
                let by_key = rank_key(a, 5, 2).cmp(&rank_key(b, 5, 2));
                assert_eq!(by_key, a.total_cmp(&b), "{a} vs {b}");
            }
            let entry = TopEntry {
                key: rank_key(a, 123, 45),
                record: Record::default(),
            };
            assert_eq!(entry.activation().to_bits(), a.to_bits());
            assert_eq!((entry.sequence_idx(), entry.position()), (123, 45));
        }
        assert!(rank_key(1.0, 3, 9) > rank_key(1.0, 4, 0));
        assert!(rank_key(1.0, 3, 1) > rank_key(1.0, 3, 2));
    }
}
