//! A uniform sample of each feature's activating tokens, behind the single-token flag.
//!
//! Exact per-token counts would need a map as large as the vocabulary per feature, and the
//! bounded heavy-hitter sketches (Misra-Gries, space-saving) depend on arrival order, so shards
//! would not merge into what one run gives. This keeps instead the activating token of the
//! [`TOKEN_SAMPLE_SIZE`] activations with the lowest priority (see [`super::bins::priority`]):
//! a uniform sample without replacement of the feature's activations, a function of the set
//! of activations only, that merges exactly. The share of the most frequent token in it
//! estimates that token's share of all activations (standard error ≤ 1/(2·√64) = 6 points).
//!
//! An entry is one `u64`: the priority's top 32 bits, then the token id. Ranking by that key
//! (ties between equal keys are indistinguishable) keeps the result a function of the set of
//! activations. The keys form a binary max-heap, so an admission replaces the worst key and
//! sifts it down in six steps; the collector offers a feature's tokens together once per batch,
//! so the heap's 512 bytes are fetched once for all of them.

/// Activations sampled per feature.
pub const TOKEN_SAMPLE_SIZE: usize = 64;

/// The sampled keys (`priority >> 32`, token) of one feature, as a max-heap: the worst first.
#[derive(Clone, Debug, Default)]
pub struct TokenSample {
    keys: Vec<u64>,
}

/// The sampling key of an activation: its priority's top 32 bits, then its token.
fn key(priority: u64, token: u32) -> u64 {
    (priority >> 32) << 32 | u64::from(token)
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
    /// Priorities whose top 32 bits are above this key's cannot enter (`u64::MAX` while the
    /// sample is not full).
    pub fn floor(&self) -> u64 {
        if self.keys.len() < TOKEN_SAMPLE_SIZE {
            u64::MAX
        } else {
            self.keys[0]
        }
    }

    /// Keeps the activation if its key is among the lowest [`TOKEN_SAMPLE_SIZE`].
    pub fn offer(&mut self, priority: u64, token: u32) {
        let key = key(priority, token);
        if self.keys.len() < TOKEN_SAMPLE_SIZE {
            if self.keys.is_empty() {
                self.keys.reserve_exact(TOKEN_SAMPLE_SIZE);
            }
            self.keys.push(key);
            self.sift_up(self.keys.len() - 1);
        } else if key < self.keys[0] {
            self.keys[0] = key;
            self.sift_down();
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.keys[i] <= self.keys[parent] {
                break;
            }
            self.keys.swap(i, parent);
            i = parent;
        }
    }

    /// Moves a smaller root down below its larger children.
    fn sift_down(&mut self) {
        let (keys, mut i) = (&mut self.keys, 0);
        loop {
            let left = 2 * i + 1;
            if left >= keys.len() {
                break;
            }
            let right = left + 1;
            let larger = if right < keys.len() && keys[right] > keys[left] {
                right
            } else {
                left
            };
            if keys[larger] <= keys[i] {
                break;
            }
            keys.swap(i, larger);
            i = larger;
        }
    }

    /// The heap's first cache line: its root and the two levels below (for a prefetch).
    pub fn first_line(&self) -> *const u8 {
        self.keys.as_ptr().cast()
    }

    pub fn merge(&mut self, other: &TokenSample) {
        for &key in &other.keys {
            self.offer(key, key as u32);
        }
    }

    /// The sampled `(priority with its low 32 bits cleared, token)` pairs, lowest first.
    pub fn sorted(&self) -> Vec<(u64, u32)> {
        let mut keys = self.keys.clone();
        keys.sort_unstable();
        keys.iter().map(|&k| (k >> 32 << 32, k as u32)).collect()
    }

    /// The most frequent sampled token (ties: the lower id), if any was sampled.
    pub fn top_token(&self) -> Option<TopToken> {
        let mut tokens: Vec<u32> = self.keys.iter().map(|&key| key as u32).collect();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_lowest_priorities_whatever_the_order() {
        // Priorities differ in their top 32 bits (what the sample ranks by).
        let pairs: Vec<(u64, u32)> = (0..200u64)
            .map(|i| (((i * 7919) % 1000) << 32, (i % 3) as u32))
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
