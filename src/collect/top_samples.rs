//! The bounded store of one feature's best samples.
//!
//! An unordered buffer of candidates above a floor, cut back to the best `capacity` when it
//! fills ([`TopSamples`] says why not a heap). "Better" is a total order: larger activation
//! first (as `f32::total_cmp` orders them), then the earlier token (smaller sequence index,
//! then smaller position) — the deterministic tie-break that makes the result equal to a
//! brute-force sort, and merges of shards equal to a single run. The order is one integer, [`rank_key`], so comparing two
//! samples is one compare. Entries are 32 bytes; what a sample shows lives in its block's
//! arena ([`super::records`]).

use std::cmp::Ordering;

use super::bins::{activation_bin, ACTIVATION_BINS};
use super::records::{Record, Records};

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
        key_activation(self.key)
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
///
/// Candidates are appended unordered, and when half as many again as the capacity have piled
/// up the best `capacity` are selected (a partial sort, O(capacity)) and the rest let go; the
/// floor — the worst key kept at that moment — only rises. An admission is thus an append to one cache
/// line, where a binary heap walked seven levels of a store that is cold by the time the
/// feature's next hit comes (the heap's sifts were the cold fill's largest cost). The floor
/// lags the true one by at most a store's worth of admissions, which admits somewhat more
/// candidates; what is kept is the same: the best `capacity` of every sample offered.
///
/// The feature's histogram gives a second floor ([`unproven`](Self::unproven) says how).
#[derive(Clone, Debug, Default)]
pub struct TopSamples {
    /// Candidates in no order: the best `capacity` of them are the store.
    entries: Vec<TopEntry>,
    /// Keys at or below this cannot enter: the worst key kept at the last selection.
    floor: Option<u128>,
    /// Values the feature's histogram counts that may never have been offered here.
    unproven: u32,
}

/// Entries reserved at the first admission; the buffer grows from there. Memory is what a
/// cold fill pays most for (the kernel zeroes every page on first touch), and most features
/// of a short collection never fill their store.
const FIRST_RESERVE: usize = 16;

/// Candidates held before a selection: half as many again as the capacity (selecting costs
/// O(capacity) per half-capacity admissions; a longer buffer lets the floor lag further
/// behind and admits more candidates, each of which writes a record: at a quarter, 2% more
/// instructions for a cold fill, at a whole capacity 1% more).
fn buffer_len(capacity: usize) -> usize {
    capacity.saturating_add((capacity / 2).max(8))
}

impl TopSamples {
    /// Samples kept (at most `capacity`).
    pub fn len(&self, capacity: usize) -> usize {
        self.entries.len().min(capacity)
    }

    /// Activations below this can never enter (−∞ until the store first fills).
    pub fn floor(&self) -> f32 {
        self.floor.map_or(f32::NEG_INFINITY, key_activation)
    }

    /// Whether a sample with this rank key may be among the best (it may still lose to later
    /// ones).
    #[inline]
    pub fn admits(&self, key: u128) -> bool {
        self.floor.is_none_or(|floor| key > floor)
    }

    /// Keeps `entry`, which [`admits`](Self::admits) accepted; the records of the samples it
    /// pushes out go back to `records`.
    #[inline]
    pub fn insert(&mut self, capacity: usize, entry: TopEntry, records: &mut Records) {
        let limit = buffer_len(capacity);
        if self.entries.len() == self.entries.capacity() {
            // Doubling, but never past the buffer: the last step reserves exactly.
            let want = (2 * self.entries.capacity()).max(FIRST_RESERVE).min(limit);
            self.entries
                .reserve_exact(want.saturating_sub(self.entries.len()).max(1));
        }
        self.entries.push(entry);
        if self.entries.len() >= limit {
            self.select(capacity, records);
        }
    }

    /// Keeps only the best `capacity` candidates and raises the floor to the worst of them.
    pub fn select(&mut self, capacity: usize, records: &mut Records) {
        if self.entries.len() <= capacity {
            return;
        }
        if self.select_by_high_bits(capacity, records) {
            return;
        }
        // Best first: the worst kept lands at `capacity - 1`.
        self.entries
            .select_nth_unstable_by_key(capacity - 1, |entry| std::cmp::Reverse(entry.key));
        for lost in self.entries.drain(capacity..) {
            records.release(lost.record);
        }
        self.floor = self.entries.iter().map(|entry| entry.key).min();
    }

    /// [`select`](Self::select) on the keys' high 64 bits (the activation, then the
    /// sequence index's high half): a quarter of the bytes to move and one compare per step,
    /// where selecting whole entries was the largest cost of a cold fill's admissions.
    /// `false`, having changed nothing, when several candidates tie at the cut in those bits
    /// (the full keys must decide).
    fn select_by_high_bits(&mut self, capacity: usize, records: &mut Records) -> bool {
        const STACK: usize = 256;
        let high = |entry: &TopEntry| (entry.key >> 64) as u64;
        let mut on_stack = [0u64; STACK];
        let mut on_heap = Vec::new();
        let keys: &mut [u64] = if self.entries.len() <= STACK {
            &mut on_stack[..self.entries.len()]
        } else {
            on_heap.resize(self.entries.len(), 0);
            &mut on_heap
        };
        for (key, entry) in keys.iter_mut().zip(&self.entries) {
            *key = high(entry);
        }
        let cut = *keys.select_nth_unstable_by(capacity - 1, |a, b| b.cmp(a)).1;
        let at_or_above = keys.iter().filter(|&&key| key >= cut).count();
        if at_or_above != capacity {
            return false;
        }
        // Let go of the entries below the cut (order does not matter: the store is a set);
        // the floor is the least full key at the cut.
        let mut floor = u128::MAX;
        let mut i = 0;
        while i < self.entries.len() {
            let entry = self.entries[i];
            let key = high(&entry);
            if key < cut {
                records.release(entry.record);
                self.entries.swap_remove(i);
                continue;
            }
            if key == cut {
                floor = floor.min(entry.key);
            }
            i += 1;
        }
        self.floor = Some(floor);
        true
    }

    /// The kept entries, best first.
    pub fn sorted(&self, capacity: usize) -> Vec<TopEntry> {
        let mut entries = self.entries.clone();
        entries.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.key));
        entries.truncate(capacity);
        entries
    }

    /// How many of the values the feature's histogram counts (above the threshold, not on
    /// an excluded token) may not be samples offered to this store: deduplication dropped
    /// them, or, after a restore or a merge, the state cannot tell.
    ///
    /// Every other value was offered, or turned away by a floor, which only ever stands where
    /// `capacity` offered samples lie at or above it. So when the histogram counts
    /// `capacity + unproven` values at or above an activation, at least `capacity` samples
    /// offered are at or above it, and nothing below it can be kept: a floor that counts a
    /// batch's values before they are offered, where the store's own learns of them one by
    /// one (and lags a buffer behind).
    pub fn unproven(&self) -> u64 {
        u64::from(self.unproven)
    }

    /// `n` more values (deduplication dropped them) were not offered.
    pub fn add_unproven(&mut self, n: u32) {
        self.unproven = self.unproven.saturating_add(n);
    }

    /// Sets [`unproven`](Self::unproven) after a restore or merge, from the feature's
    /// histogram (`bin_count` of each activation bin): the values in the bins above the
    /// floor's that are not kept here. No sample above the floor was let go, so those are
    /// what may not have been offered; at or below the floor's bin, the floor stands. With no
    /// floor yet, nothing was let go: every value not kept.
    pub fn settle_unproven(&mut self, bin_count: impl Fn(usize) -> u64) {
        let first = self
            .floor
            .map_or(0, |floor| activation_bin(key_activation(floor)) + 1);
        // Saturating: a restored histogram may hold any counts.
        let counted = (first..ACTIVATION_BINS)
            .map(bin_count)
            .fold(0u64, u64::saturating_add);
        let kept = self
            .entries
            .iter()
            .filter(|entry| activation_bin(entry.activation()) >= first)
            .count();
        self.unproven = counted.saturating_sub(kept as u64).min(u64::from(u32::MAX)) as u32;
    }

    /// Where the next candidate goes (for a prefetch; may be past the allocation).
    pub fn next_slot(&self) -> *const u8 {
        self.entries
            .as_ptr()
            .wrapping_add(self.entries.len())
            .cast()
    }

    /// Every candidate, kept or not yet let go, in no order (for merging, where only the set
    /// matters).
    pub fn entries(&self) -> &[TopEntry] {
        &self.entries
    }

    pub fn records_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        self.entries.iter_mut().map(|entry| &mut entry.record)
    }
}

/// The activation of a rank key (see [`rank_key`]).
fn key_activation(key: u128) -> f32 {
    let ordered = (key >> 96) as u32;
    f32::from_bits(if ordered >> 31 == 1 {
        ordered & 0x7FFF_FFFF
    } else {
        !ordered
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(records: &mut Records, activation: f32, sequence_idx: u64) -> TopEntry {
        TopEntry {
            key: rank_key(activation, sequence_idx, 0),
            record: records.push(None, &[1, 2], std::iter::empty()),
        }
    }

    #[test]
    fn keeps_the_best_and_breaks_ties_towards_the_earlier_token() {
        let (mut top, mut records) = (TopSamples::default(), Records::default());
        for (i, act) in [0.3f32, 0.8, 0.5, 0.9, 0.2, 0.8].into_iter().enumerate() {
            if top.admits(rank_key(act, i as u64, 0)) {
                let entry = entry(&mut records, act, i as u64);
                top.insert(3, entry, &mut records);
            }
        }
        let kept: Vec<(f32, u64)> = top
            .sorted(3)
            .iter()
            .map(|s| (s.activation(), s.sequence_idx()))
            .collect();
        assert_eq!(kept, vec![(0.9, 3), (0.8, 1), (0.8, 5)]);
        assert!(
            top.admits(rank_key(0.1, 9, 0)),
            "no floor before a selection"
        );
        top.select(3, &mut records);
        assert_eq!(top.entries().len(), 3);
        assert_eq!(records.live_words(), 3 * 3);
        // A later 0.8 does not displace the earlier ones; an earlier one would.
        assert!(!top.admits(rank_key(0.8, 6, 0)));
        assert!(top.admits(rank_key(0.8, 0, 0)));
        assert_eq!(top.floor(), 0.8);
    }

    #[test]
    fn ties_at_the_cut_are_decided_by_the_full_keys() {
        // Equal activations within one span of 2^32 sequences: equal high key bits, so the
        // selection falls back to whole keys; the earlier sequences win.
        let (mut top, mut records) = (TopSamples::default(), Records::default());
        for i in (0..40u64).rev() {
            let act = if i % 2 == 0 { 1.0 } else { 0.5 };
            let entry = entry(&mut records, act, i);
            top.insert(10, entry, &mut records);
        }
        top.select(10, &mut records);
        let kept: Vec<u64> = top.sorted(10).iter().map(|e| e.sequence_idx()).collect();
        assert_eq!(kept, vec![0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
        assert_eq!(records.live_words(), 10 * 3);
    }

    #[test]
    fn the_store_agrees_with_a_sort_on_random_keys() {
        let mut rng = crate::util::rng::SplitMix64(3);
        let (mut top, mut records) = (TopSamples::default(), Records::default());
        let mut all = Vec::new();
        for i in 0..2000u64 {
            let act = rng.below(50) as f32;
            all.push((act, i % 37));
            if top.admits(rank_key(act, i % 37, 0)) {
                let entry = entry(&mut records, act, i % 37);
                top.insert(25, entry, &mut records);
            }
            // The floor never passes the true 25th best.
            let mut best = all.clone();
            best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            if best.len() >= 25 {
                assert!(top.floor() <= best[24].0);
            }
        }
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        all.truncate(25);
        let kept: Vec<(f32, u64)> = top
            .sorted(25)
            .iter()
            .map(|e| (e.activation(), e.sequence_idx()))
            .collect();
        assert_eq!(kept, all);
        assert_eq!(top.len(25), 25);
        assert!(top.entries().len() < buffer_len(25));
        assert_eq!(records.live_words(), top.entries().len() * 3);
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
