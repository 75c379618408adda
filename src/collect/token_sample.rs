//! A uniform sample of each feature's activating tokens, behind the single-token flag.
//!
//! Exact per-token counts would need a map as large as the vocabulary per feature, and the
//! bounded heavy-hitter sketches (Misra-Gries, space-saving) depend on arrival order, so shards
//! would not merge into what one run gives. This keeps instead the activating token of the
//! [`TOKEN_SAMPLE_SIZE`] activations with the lowest priority (see [`super::bins::priority`]):
//! a uniform sample without replacement of the feature's activations, a function of the set
//! of activations only, that merges exactly. The share of the most frequent token in it
//! estimates that token's share of all activations (standard error ≤ 1/(2·√64) = 6 points).

use std::collections::BinaryHeap;

/// Activations sampled per feature.
pub const TOKEN_SAMPLE_SIZE: usize = 64;

/// The sampled `(priority, token)` pairs of one feature: a max-heap, so the worst is on top.
#[derive(Clone, Debug, Default)]
pub struct TokenSample {
    heap: BinaryHeap<(u64, u32)>,
}

/// The most frequent token of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopToken {
    pub token: u32,
    /// Sampled activations on this token.
    pub count: usize,
    /// Activations in the sample.
    pub sample_size: usize,
}

impl TokenSample {
    /// Priorities above this cannot enter (`u64::MAX` while the sample is not full).
    pub fn floor(&self) -> u64 {
        match self.heap.peek() {
            Some(&(priority, _)) if self.heap.len() >= TOKEN_SAMPLE_SIZE => priority,
            _ => u64::MAX,
        }
    }

    /// Keeps `(priority, token)` if it is among the lowest [`TOKEN_SAMPLE_SIZE`]. Pairs are
    /// compared whole, so even equal priorities give a result independent of arrival order.
    pub fn offer(&mut self, priority: u64, token: u32) {
        if self.heap.len() < TOKEN_SAMPLE_SIZE {
            self.heap.push((priority, token));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if (priority, token) < *worst {
                *worst = (priority, token);
            }
        }
    }

    pub fn merge(&mut self, other: &TokenSample) {
        for &(priority, token) in other.heap.iter() {
            self.offer(priority, token);
        }
    }

    /// The sampled pairs, lowest priority first.
    pub fn sorted(&self) -> Vec<(u64, u32)> {
        let mut pairs: Vec<(u64, u32)> = self.heap.iter().copied().collect();
        pairs.sort_unstable();
        pairs
    }

    /// The most frequent sampled token (ties: the lower id), if any was sampled.
    pub fn top_token(&self) -> Option<TopToken> {
        let mut tokens: Vec<u32> = self.heap.iter().map(|&(_, token)| token).collect();
        tokens.sort_unstable();
        let mut best: Option<(u32, usize)> = None;
        for run in tokens.chunk_by(|a, b| a == b) {
            if best.is_none_or(|(_, count)| run.len() > count) {
                best = Some((run[0], run.len()));
            }
        }
        best.map(|(token, count)| TopToken {
            token,
            count,
            sample_size: tokens.len(),
        })
    }

    pub fn clear(&mut self) {
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_lowest_priorities_whatever_the_order() {
        let pairs: Vec<(u64, u32)> = (0..200u64)
            .map(|i| ((i * 7919) % 1000, (i % 3) as u32))
            .collect();
        let mut forward = TokenSample::default();
        pairs.iter().for_each(|&(p, t)| forward.offer(p, t));
        let mut halves = (TokenSample::default(), TokenSample::default());
        pairs[..77].iter().for_each(|&(p, t)| halves.0.offer(p, t));
        pairs[77..]
            .iter()
            .rev()
            .for_each(|&(p, t)| halves.1.offer(p, t));
        halves.1.merge(&halves.0);
        let mut expected = pairs.clone();
        expected.sort_unstable();
        expected.truncate(TOKEN_SAMPLE_SIZE);
        assert_eq!(forward.sorted(), expected);
        assert_eq!(halves.1.sorted(), expected);
        assert_eq!(forward.floor(), expected.last().unwrap().0);
    }

    #[test]
    fn top_token_is_the_most_frequent_then_the_lowest_id() {
        let mut sample = TokenSample::default();
        for (p, t) in [(1, 9), (2, 4), (3, 9), (4, 4), (5, 2)] {
            sample.offer(p, t);
        }
        assert_eq!(
            sample.top_token(),
            Some(TopToken {
                token: 4,
                count: 2,
                sample_size: 5
            })
        );
        assert_eq!(TokenSample::default().top_token(), None);
    }
}
