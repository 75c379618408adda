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

/// Heap entry ordered so that the heap's maximum is the worst sample.
#[derive(Clone, Debug, PartialEq)]
struct WorstFirst(StoredSample);

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
#[derive(Clone, Debug)]
pub struct TopSamples {
    capacity: usize,
    heap: BinaryHeap<WorstFirst>,
}

impl TopSamples {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            heap: BinaryHeap::new(),
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
    pub fn push(&mut self, sample: StoredSample) {
        if self.heap.len() < self.capacity {
            self.heap.push(WorstFirst(sample));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if sample.rank_cmp(&worst.0) == Ordering::Greater {
                *worst = WorstFirst(sample);
            }
        }
    }

    pub fn merge(&mut self, other: &TopSamples) {
        for entry in &other.heap {
            self.push(entry.0.clone());
        }
    }

    /// The kept samples, best first.
    pub fn sorted(&self) -> Vec<StoredSample> {
        let mut samples: Vec<StoredSample> =
            self.heap.iter().map(|entry| entry.0.clone()).collect();
        samples.sort_by(|a, b| b.rank_cmp(a));
        samples
    }

    pub fn clear(&mut self) {
        self.heap.clear();
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
        let mut top = TopSamples::new(3);
        for (i, act) in [0.3f32, 0.8, 0.5, 0.9, 0.2, 0.8].into_iter().enumerate() {
            top.push(sample(act, i as u64, 0));
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
