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
//! activations. Admitted keys are appended to a buffer twice the sample's size; when it is
//! full, a selection cuts it back to the lowest [`TOKEN_SAMPLE_SIZE`] and lowers the bar to
//! the highest of them. A heap kept exactly the lowest at every step but paid a sift of six
//! unpredictable branches per admission; appending and cutting back in bulk costs fewer
//! instructions and far fewer mispredictions, for a bar that lags by at most one buffer (a
//! buffer of 1.5× the sample measured 0.5% more instructions in a cold fill).

/// Activations sampled per feature.
pub const TOKEN_SAMPLE_SIZE: usize = 64;

/// Keys a sample holds before it is cut back to [`TOKEN_SAMPLE_SIZE`].
const BUFFER: usize = 2 * TOKEN_SAMPLE_SIZE;

/// The sampled keys (`priority >> 32`, token) of one feature: the lowest
/// [`TOKEN_SAMPLE_SIZE`] of `keys` (which may hold up to [`BUFFER`]).
#[derive(Clone, Debug)]
pub struct TokenSample {
    keys: Vec<u64>,
    /// Keys at or above this cannot enter once [`TOKEN_SAMPLE_SIZE`] are held: the highest
    /// kept at the last cut (`u64::MAX` before the first).
    bar: u64,
}

impl Default for TokenSample {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            bar: u64::MAX,
        }
    }
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
    /// Priorities whose top 32 bits are above this key's cannot enter (`u64::MAX` until the
    /// sample is first cut back).
    pub fn floor(&self) -> u64 {
        self.bar
    }

    /// Keeps the activation if its key may be among the lowest [`TOKEN_SAMPLE_SIZE`].
    #[inline]
    pub fn offer(&mut self, priority: u64, token: u32) {
        let key = key(priority, token);
        // A key equal to the bar changes nothing: equal keys are indistinguishable.
        if self.keys.len() >= TOKEN_SAMPLE_SIZE && key >= self.bar {
            return;
        }
        if self.keys.capacity() == 0 {
            self.keys.reserve_exact(BUFFER);
        }
        self.keys.push(key);
        if self.keys.len() == BUFFER {
            self.cut_back();
        }
    }

    /// Keeps the lowest [`TOKEN_SAMPLE_SIZE`] keys and lowers the bar to the highest of them.
    #[inline(never)]
    fn cut_back(&mut self) {
        let (_, &mut highest, _) = self.keys.select_nth_unstable(TOKEN_SAMPLE_SIZE - 1);
        self.keys.truncate(TOKEN_SAMPLE_SIZE);
        self.bar = highest;
    }

    /// The sample: its lowest [`TOKEN_SAMPLE_SIZE`] keys, in ascending order.
    fn kept(&self) -> Vec<u64> {
        let mut keys = self.keys.clone();
        keys.sort_unstable();
        keys.truncate(TOKEN_SAMPLE_SIZE);
        keys
    }

    /// Where the next admitted key goes (for a prefetch).
    pub fn next_slot(&self) -> *const u8 {
        self.keys.as_ptr().wrapping_add(self.keys.len()).cast()
    }

    pub fn merge(&mut self, other: &TokenSample) {
        for key in other.kept() {
            self.offer(key, key as u32);
        }
    }

    /// The sampled `(priority with its low 32 bits cleared, token)` pairs, lowest first.
    pub fn sorted(&self) -> Vec<(u64, u32)> {
        self.kept()
            .iter()
            .map(|&k| (k >> 32 << 32, k as u32))
            .collect()
    }

    /// The most frequent sampled token (ties: the lower id), if any was sampled.
    pub fn top_token(&self) -> Option<TopToken> {
        let mut tokens: Vec<u32> = self.kept().iter().map(|&key| key as u32).collect();
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
        // The bar lags the sample by at most a buffer: never below its highest key.
        let (p, t) = *expected.last().unwrap();
        assert!(forward.floor() >= p | u64::from(t));
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

    #[test]
    fn keys_past_the_sample_size_are_not_in_it_before_a_cut() {
        // 64 low keys on distinct tokens, then 16 higher ones on token 7: held in the buffer
        // (no cut yet), but not part of the sample.
        let mut sample = TokenSample::default();
        for i in 0..TOKEN_SAMPLE_SIZE as u64 {
            sample.offer(i << 32, 100 + i as u32);
        }
        for i in 0..16u64 {
            sample.offer((1000 + i) << 32, 7);
        }
        let top = sample.top_token().unwrap();
        assert_eq!((top.count, top.sample_size), (1, TOKEN_SAMPLE_SIZE));
        assert_eq!(sample.sorted().len(), TOKEN_SAMPLE_SIZE);
        assert!(sample.sorted().iter().all(|&(_, token)| token != 7));
    }
}
