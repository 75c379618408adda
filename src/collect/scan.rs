//! The hot path: scanning one token's activations and observing each hit.
//!
//! A real SAE's activation matrix is almost all zeros, so the dense scan tests 16 values at a
//! time with one branch-free comparison (it vectorises) and only looks closer at blocks holding
//! something non-zero or above the threshold. Each hit updates its feature's statistics and
//! feature view in O(1) — the histogram bin from the value's bits, a position count, one hash
//! and two compares against cached floors — and becomes a candidate only when it may enter a
//! store; candidates are offered once the whole sequence is scanned ([`super::offers`]).

use super::bins::{activation_bin, position_bin, priority, ACTIVATION_BINS};
use super::collector::Collector;

/// Values tested together for "anything interesting?" in the dense path.
const CHUNK: usize = 64;
/// Values per lane mask inside a chunk that has something (CHUNK is a multiple of it).
const BLOCK: usize = 16;

/// `v > floor`, or `v` is NaN: one compare that lets the scan see NaN without a second test
/// (NaN fails every comparison, so the negated `<=` is true for it).
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn above_or_nan(v: f32, floor: f32) -> bool {
    !(v <= floor)
}

/// Asks the CPU to start loading `value`'s cache line (a hint: no effect on results).
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults, and the pointer comes from a reference.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// One activation of one sequence that may become a sample.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    pub(super) feature: u32,
    pub(super) position: u32,
    pub(super) value: f32,
}

/// One activation of one sequence that passed its interval stratum's floor.
#[derive(Clone, Copy, Debug)]
pub(super) struct IntervalCandidate {
    pub(super) priority: u64,
    pub(super) feature: u32,
    pub(super) position: u32,
    pub(super) value: f32,
}

impl Collector {
    /// Scans one token's dense activations. `Err(feature)` on a non-finite value.
    #[inline]
    pub(super) fn scan_dense(
        &mut self,
        acts: &[f32],
        position: u32,
    ) -> std::result::Result<(), u32> {
        // "Interesting": firing (> 0), above the threshold, or NaN. `!(v <= floor)` is true
        // for all three and compiles to one vector compare per block.
        let floor = self.config.sample_activation_threshold.min(0.0);
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        let mut chunks = acts.chunks_exact(CHUNK);
        for (chunk_index, chunk) in chunks.by_ref().enumerate() {
            // Most chunks hold nothing: an OR of compares over the whole chunk vectorises
            // cleanly and settles them with one branch.
            if !chunk
                .iter()
                .fold(false, |any, &v| any | above_or_nan(v, floor))
            {
                continue;
            }
            for (block_index, block) in chunk.chunks_exact(BLOCK).enumerate() {
                // One bit per interesting lane; walking the set bits avoids a
                // hard-to-predict branch per lane.
                let mut mask = block.iter().enumerate().fold(0u32, |mask, (lane, &v)| {
                    mask | (u32::from(above_or_nan(v, floor)) << lane)
                });
                let first = chunk_index * CHUNK + block_index * BLOCK;
                while mask != 0 {
                    let lane = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    hits.push(((first + lane) as u32, block[lane]));
                }
            }
        }
        let tail_start = acts.len() - chunks.remainder().len();
        for (i, &v) in chunks.remainder().iter().enumerate() {
            if above_or_nan(v, floor) {
                hits.push(((tail_start + i) as u32, v));
            }
        }
        let result = self.observe_all(&hits, position);
        self.hits = hits;
        result
    }

    #[inline]
    pub(super) fn scan_sparse(
        &mut self,
        indices: &[u32],
        values: &[f32],
        position: u32,
    ) -> std::result::Result<(), u32> {
        for (&feature, &value) in indices.iter().zip(values) {
            self.prefetch_feature(feature, value);
        }
        for (&feature, &v) in indices.iter().zip(values) {
            // Zeros in sparse input (a TopK slot whose ReLU clipped it) neither fire nor pass.
            if above_or_nan(v, 0.0) {
                self.observe(feature, v, position)?;
            }
        }
        Ok(())
    }

    /// Observes one token's hits. Their features' state lines and histogram cells are
    /// fetched first, all at once, so the cache misses overlap instead of queueing one behind
    /// the other (the state of 16k features does not stay in cache while activations stream
    /// past).
    #[inline]
    fn observe_all(&mut self, hits: &[(u32, f32)], position: u32) -> std::result::Result<(), u32> {
        for &(feature, value) in hits {
            self.prefetch_feature(feature, value);
        }
        for &(feature, value) in hits {
            self.observe(feature, value, position)?;
        }
        Ok(())
    }

    #[inline(always)]
    fn prefetch_feature(&self, feature: u32, value: f32) {
        let state = &self.state[feature as usize];
        prefetch(state);
        prefetch(&state.positions);
        let cell = feature as usize * ACTIVATION_BINS + activation_bin(value);
        if let Some(cell) = self.cells.get(cell) {
            prefetch(cell);
        }
    }

    #[inline]
    fn observe(&mut self, feature: u32, value: f32, position: u32) -> std::result::Result<(), u32> {
        if !value.is_finite() {
            return Err(feature);
        }
        let f = feature as usize;
        let state = &mut self.state[f];
        if value > 0.0 {
            state.moments.firing += 1;
        }
        if value > self.config.sample_activation_threshold {
            let new_max = state.moments.count == 0 || value > state.moments.max;
            state.moments.record(value);
            state.positions[position_bin(position)] += 1;
            let priority = priority(self.row_key, position, feature);
            let priority_hi = (priority >> 32) as u32;
            let token_candidate = priority_hi <= state.token_floor_hi;
            if value >= state.admit_floor {
                self.candidates.push(Candidate {
                    feature,
                    position,
                    value,
                });
            }
            let index = f * ACTIVATION_BINS + activation_bin(value);
            let cell = &mut self.cells[index];
            cell.count = cell.count.wrapping_add(1);
            let (wrapped, interval_candidate) = (cell.count == 0, priority_hi <= cell.floor_hi);
            if interval_candidate {
                self.interval_candidates.push(IntervalCandidate {
                    priority,
                    feature,
                    position,
                    value,
                });
            }
            if wrapped {
                *self.histogram_high.entry(index).or_insert(0) += 1;
            }
            if token_candidate {
                self.offer_token(f, priority);
            }
            if new_max {
                self.on_new_max(f);
            }
        }
        Ok(())
    }

    /// Offers the current token to the feature's token sample (rare after warm-up).
    #[cold]
    fn offer_token(&mut self, f: usize, priority: u64) {
        let sample = &mut self.token_samples[f];
        sample.offer(priority, self.current_token);
        self.state[f].token_floor_hi = (sample.floor() >> 32) as u32;
    }

    /// A new max may move bins into the first interval: fold their strata.
    #[cold]
    fn on_new_max(&mut self, f: usize) {
        let shape = self.interval_shape();
        let changed = self.intervals[f].set_max(&shape, self.state[f].moments.max);
        self.refresh_floors(f, changed);
    }

    /// Re-caches the interval floors of feature `f`'s bins in `bins`.
    pub(super) fn refresh_floors(&mut self, f: usize, bins: std::ops::Range<usize>) {
        let shape = self.interval_shape();
        let intervals = &self.intervals[f];
        let cells = &mut self.cells[f * ACTIVATION_BINS..(f + 1) * ACTIVATION_BINS];
        // The low stratum's bins share one floor: look it up once.
        let low_bin = intervals.low_bin();
        let low_floor = (intervals.floor_of_bin(&shape, 0) >> 32) as u32;
        for b in bins {
            cells[b].floor_hi = if b < low_bin {
                low_floor
            } else {
                (intervals.floor_of_bin(&shape, b) >> 32) as u32
            };
        }
    }
}
