//! The bounded store of one feature's best samples.
//!
//! A binary heap whose top is the *worst* kept sample, so a better newcomer replaces it in
//! O(log n). "Better" is a total order: larger activation first, then the earlier token
//! (smaller sequence index, then smaller position) — the deterministic tie-break that makes
//! the result equal to a brute-force sort, and merges of shards equal to a single run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A kept sample: its rank key and the tokens needed to show it. Text is decoded later, and
/// only for the samples that are written.
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
/// Activations are never NaN here (the collector rejects NaN before ranking).
#[inline]
pub fn rank_cmp(
    a_act: f32,
    a_seq: u64,
    a_pos: u32,
    b_act: f32,
    b_seq: u64,
    b_pos: u32,
) -> Ordering {
    a_act
        .partial_cmp(&b_act)
        .unwrap_or(Ordering::Equal)
        .then_with(|| (b_seq, b_pos).cmp(&(a_seq, a_pos)))
}

/// A kept sample's rank key and where its context lives in the feature's slab.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    activation: f32,
    sequence_idx: u64,
    position: u32,
    /// `u32::MAX` at position 0 (no previous token).
    previous_token: u32,
    context_len: u32,
    context_position: u32,
    /// Index of this sample's context in `TopSamples::contexts` (stride `max_context`).
    slot: u32,
}

impl Entry {
    fn rank_cmp(&self, other: &Self) -> Ordering {
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

/// Heap entry ordered so that the heap's maximum is the worst sample.
#[derive(Clone, Copy, Debug, PartialEq)]
struct WorstFirst(Entry);

impl Eq for WorstFirst {}

impl PartialOrd for WorstFirst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WorstFirst {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.rank_cmp(&self.0)
    }
}

/// The best `capacity` samples of one feature seen so far.
///
/// Contexts live in one slab per feature (`capacity` slots of `max_context` tokens) and a
/// replaced sample's slot is reused: after warm-up, keeping a sample allocates nothing.
#[derive(Clone, Debug)]
pub struct TopSamples {
    capacity: usize,
    max_context: usize,
    heap: BinaryHeap<WorstFirst>,
    contexts: Vec<u32>,
}

impl TopSamples {
    /// A store of `capacity` samples whose contexts hold at most `max_context` tokens.
    pub fn new(capacity: usize, max_context: usize) -> Self {
        Self {
            capacity,
            max_context,
            heap: BinaryHeap::new(),
            contexts: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Activations below this can never enter (−∞ while the store is not full).
    pub fn floor(&self) -> f32 {
        match self.heap.peek() {
            Some(worst) if self.heap.len() >= self.capacity => worst.0.activation,
            _ => f32::NEG_INFINITY,
        }
    }

    /// Whether a sample with this key would be kept.
    pub fn admits(&self, activation: f32, sequence_idx: u64, position: u32) -> bool {
        match self.heap.peek() {
            Some(worst) if self.heap.len() >= self.capacity => {
                let w = &worst.0;
                rank_cmp(
                    activation,
                    sequence_idx,
                    position,
                    w.activation,
                    w.sequence_idx,
                    w.position,
                ) == Ordering::Greater
            }
            _ => true,
        }
    }

    /// Keeps `sample` if it is among the best `capacity`.
    pub fn push(&mut self, sample: &StoredSample) {
        let context_position = sample.context_position as usize;
        self.push_parts(
            sample.activation,
            sample.sequence_idx,
            sample.position,
            sample.previous_token,
            &sample.context_tokens,
            context_position,
        );
    }

    /// [`push`](Self::push) from borrowed parts, so a rejected sample costs no copy.
    pub fn push_parts(
        &mut self,
        activation: f32,
        sequence_idx: u64,
        position: u32,
        previous_token: Option<u32>,
        context: &[u32],
        context_position: usize,
    ) {
        debug_assert!(context.len() <= self.max_context && context_position < context.len());
        if !self.admits(activation, sequence_idx, position) {
            return;
        }
        let mut entry = Entry {
            activation,
            sequence_idx,
            position,
            previous_token: previous_token.unwrap_or(u32::MAX),
            context_len: context.len() as u32,
            context_position: context_position as u32,
            slot: self.heap.len() as u32,
        };
        if self.heap.len() < self.capacity {
            self.contexts
                .resize((self.heap.len() + 1) * self.max_context, 0);
            self.write_context(entry.slot, context);
            self.heap.push(WorstFirst(entry));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            entry.slot = worst.0.slot;
            let start = entry.slot as usize * self.max_context;
            self.contexts[start..start + context.len()].copy_from_slice(context);
            *worst = WorstFirst(entry);
        }
    }

    fn write_context(&mut self, slot: u32, context: &[u32]) {
        let start = slot as usize * self.max_context;
        self.contexts[start..start + context.len()].copy_from_slice(context);
    }

    pub fn merge(&mut self, other: &TopSamples) {
        for sample in other.sorted() {
            self.push(&sample);
        }
    }

    /// The kept samples, best first.
    pub fn sorted(&self) -> Vec<StoredSample> {
        let mut entries: Vec<Entry> = self.heap.iter().map(|e| e.0).collect();
        entries.sort_by(|a, b| b.rank_cmp(a));
        entries.iter().map(|e| self.stored(e)).collect()
    }

    fn stored(&self, entry: &Entry) -> StoredSample {
        let start = entry.slot as usize * self.max_context;
        StoredSample {
            activation: entry.activation,
            sequence_idx: entry.sequence_idx,
            position: entry.position,
            previous_token: (entry.previous_token != u32::MAX).then_some(entry.previous_token),
            context_tokens: self.contexts[start..start + entry.context_len as usize].to_vec(),
            context_position: entry.context_position,
        }
    }

    pub fn clear(&mut self) {
        self.heap.clear();
        self.contexts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(activation: f32, sequence_idx: u64, position: u32) -> StoredSample {
        StoredSample {
            activation,
            sequence_idx,
            position,
            previous_token: None,
            context_tokens: vec![7],
            context_position: 0,
        }
    }

    #[test]
    fn keeps_the_best_and_breaks_ties_towards_the_earlier_token() {
        let mut top = TopSamples::new(3, 1);
        for (i, act) in [0.3f32, 0.8, 0.5, 0.9, 0.2, 0.8].into_iter().enumerate() {
            top.push(&sample(act, i as u64, 0));
        }
        let kept: Vec<(f32, u64)> = top
            .sorted()
            .iter()
            .map(|s| (s.activation, s.sequence_idx))
            .collect();
        assert_eq!(kept, vec![(0.9, 3), (0.8, 1), (0.8, 5)]);
        // A later 0.8 does not displace the earlier ones; an earlier one would.
        assert!(!top.admits(0.8, 6, 0));
        assert!(top.admits(0.8, 0, 0));
        assert_eq!(top.floor(), 0.8);
    }
}
