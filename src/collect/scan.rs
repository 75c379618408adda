//! The hot path: scanning a batch's activations for one block of features.
//!
//! A real SAE's activation matrix is almost all zeros, so the dense scan tests 16 values at a
//! time with one branch-free comparison (it vectorises) and only looks closer at blocks holding
//! something non-zero or above the threshold. Each hit updates its feature's statistics and
//! feature view in O(1) — the histogram bin from the value's bits, a position count, one hash
//! and three compares against cached floors — and is noted as [`Pending`] only when it may
//! enter a store (or raised the max); pending hits are offered once the whole batch is scanned
//! ([`super::offers`]). The floors are those of the batch's start: within a batch they can only
//! be lower than the stores' true floors, so a pending hit may still be refused, never missed.

use super::batch::FeatureActivations;
use super::bins::{activation_bin, position_bin, priority, row_key, ACTIVATION_BINS};
use super::block::{kinds, FeatureBlock, Params, Pending};
use super::collector::BatchView;

/// Values tested together for "anything interesting?" in the dense path.
const CHUNK: usize = 64;
/// Values per lane mask inside a chunk that has something (CHUNK is a multiple of it).
const BLOCK: usize = 16;

/// A NaN or infinite activation: where it is (token index in the batch, global feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct NonFinite {
    pub(super) token: usize,
    pub(super) feature: u32,
}

/// `v > floor`, or `v` is NaN: one compare that lets the scan see NaN without a second test
/// (NaN fails every comparison, so the negated `<=` is true for it).
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn above_or_nan(v: f32, floor: f32) -> bool {
    !(v <= floor)
}

/// Asks the CPU to start loading `value`'s cache line (a hint: no effect on results).
#[inline(always)]
pub(super) fn prefetch<T>(value: &T) {
    prefetch_ptr((value as *const T).cast());
}

/// [`prefetch`] for an address that need not hold a value (the next free slot of a buffer):
/// prefetching never faults, whatever the address.
#[inline(always)]
pub(super) fn prefetch_ptr(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults and reads nothing the program sees.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Where the scan is: the row's sampling key and the token being scanned.
#[derive(Clone, Copy)]
struct At {
    row_key: u64,
    token: u32,
    position: u32,
}

impl FeatureBlock {
    /// Scans every token of the batch for this block's features.
    pub(super) fn scan(&mut self, params: &Params, batch: &BatchView<'_>) -> Result<(), NonFinite> {
        self.scratch.pending.clear();
        let dense = matches!(batch.activations, FeatureActivations::Dense { .. });
        if dense {
            self.scratch.dense_offsets.clear();
            self.scratch.dense_offsets.push(0);
            self.scratch.dense_features.clear();
            self.scratch.dense_values.clear();
        }
        let tokens = batch.tokens;
        self.prefetch_token(batch, 0);
        for row in 0..tokens.batch {
            let row_key = row_key(tokens.first_sequence + row as u64);
            for (position, &token_id) in tokens.row(row).iter().enumerate() {
                let token = row * tokens.seq_len + position;
                let at = At {
                    row_key,
                    token: token as u32,
                    position: position as u32,
                };
                self.prefetch_token(batch, token + 1);
                let special = batch.is_special(token_id);
                if special {
                    self.count_special(params, batch, token);
                }
                let scanned = if special && params.exclude_special {
                    Ok(())
                } else {
                    match *batch.activations {
                        FeatureActivations::Dense { values, d_sae } => {
                            let start = token * d_sae + self.base as usize;
                            self.scan_dense(params, &values[start..start + self.len()], at)
                        }
                        FeatureActivations::Sparse {
                            offsets,
                            indices,
                            values,
                            ..
                        } => {
                            let span = offsets[token]..offsets[token + 1];
                            self.scan_sparse(params, &indices[span.clone()], &values[span], at)
                        }
                    }
                };
                scanned.map_err(|feature| NonFinite { token, feature })?;
                if dense {
                    let scratch = &mut self.scratch;
                    scratch.dense_offsets.push(scratch.dense_features.len());
                }
            }
        }
        Ok(())
    }

    /// Sparse input: starts loading the state of `token`'s features, one token before they
    /// are observed (fetching a token's features just before observing them left its first
    /// hits waiting on memory). Dense input finds its hits only as it scans.
    #[inline]
    fn prefetch_token(&self, batch: &BatchView<'_>, token: usize) {
        if let FeatureActivations::Sparse {
            offsets,
            indices,
            values,
            ..
        } = *batch.activations
        {
            if token + 1 < offsets.len() {
                let span = offsets[token]..offsets[token + 1];
                let (base, len) = (self.base, self.len() as u32);
                for (&feature, &value) in indices[span.clone()].iter().zip(&values[span]) {
                    let local = feature.wrapping_sub(base);
                    if local < len {
                        self.prefetch_feature(local, value);
                    }
                }
            }
        }
    }

    /// Counts a special token's activations above the threshold (BOS-dominated features),
    /// whether or not the token is otherwise excluded, and keeps an excluded token's firing
    /// values for the context activations. One special token per sequence or so: a plain loop.
    fn count_special(&mut self, params: &Params, batch: &BatchView<'_>, token: usize) {
        let threshold = params.threshold;
        let (base, len) = (self.base, self.len() as u32);
        let excluded_dense = params.exclude_special;
        let scratch = &mut self.scratch;
        match *batch.activations {
            FeatureActivations::Dense { values, d_sae } => {
                let start = token * d_sae + base as usize;
                let values = &values[start..start + len as usize];
                for (f, (count, &v)) in self.special_activations.iter_mut().zip(values).enumerate()
                {
                    *count += u64::from(v > threshold && v.is_finite());
                    if excluded_dense && v > 0.0 && v.is_finite() {
                        scratch.dense_features.push(base + f as u32);
                        scratch.dense_values.push(v);
                    }
                }
            }
            FeatureActivations::Sparse {
                offsets,
                indices,
                values,
                ..
            } => {
                let span = offsets[token]..offsets[token + 1];
                for (&feature, &v) in indices[span.clone()].iter().zip(&values[span]) {
                    let local = feature.wrapping_sub(base);
                    if local < len && v > threshold && v > 0.0 && v.is_finite() {
                        self.special_activations[local as usize] += 1;
                    }
                }
            }
        }
    }

    /// Scans one token's dense activations (this block's slice). `Err(feature)` on a
    /// non-finite value.
    #[inline]
    fn scan_dense(&mut self, params: &Params, acts: &[f32], at: At) -> Result<(), u32> {
        // "Interesting": firing (> 0), above the threshold, or NaN. `!(v <= floor)` is true
        // for all three and compiles to one vector compare per block.
        let floor = params.threshold.min(0.0);
        let mut hits = std::mem::take(&mut self.scratch.hits);
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
        let result = self.observe_all(params, &hits, at);
        // The token's firing values, for the context activations of the samples around it.
        let scratch = &mut self.scratch;
        for &(f, v) in &hits {
            if v > 0.0 {
                scratch.dense_features.push(self.base + f);
                scratch.dense_values.push(v);
            }
        }
        self.scratch.hits = hits;
        result.map_err(|f| self.base + f)
    }

    #[inline]
    fn scan_sparse(
        &mut self,
        params: &Params,
        indices: &[u32],
        values: &[f32],
        at: At,
    ) -> Result<(), u32> {
        let (base, len) = (self.base, self.len() as u32);
        for (&feature, &v) in indices.iter().zip(values) {
            let local = feature.wrapping_sub(base);
            // Zeros in sparse input (a TopK slot whose ReLU clipped it) neither fire nor pass.
            if local < len && above_or_nan(v, 0.0) {
                self.observe(params, local, v, at).map_err(|f| base + f)?;
            }
        }
        Ok(())
    }

    /// Observes one token's hits. Their features' state lines and histogram cells are
    /// fetched first, all at once, so the cache misses overlap instead of queueing one behind
    /// the other (the state of 16k features does not stay in cache while activations stream
    /// past).
    #[inline]
    fn observe_all(&mut self, params: &Params, hits: &[(u32, f32)], at: At) -> Result<(), u32> {
        for &(feature, value) in hits {
            self.prefetch_feature(feature, value);
        }
        for &(feature, value) in hits {
            self.observe(params, feature, value, at)?;
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
        prefetch(&self.low[feature as usize]);
    }

    /// One hit of local feature `feature`: statistics, histogram, and a pending note when it
    /// may enter a store.
    #[inline]
    fn observe(&mut self, params: &Params, feature: u32, value: f32, at: At) -> Result<(), u32> {
        if !value.is_finite() {
            return Err(feature);
        }
        let f = feature as usize;
        let state = &mut self.state[f];
        if value > 0.0 {
            state.moments.firing += 1;
        }
        if value > params.threshold {
            let new_max = state.moments.count == 0 || value > state.moments.max;
            state.moments.record(value);
            state.positions[position_bin(at.position)] += 1;
            let priority_hi = (priority(at.row_key, at.position, self.base + feature) >> 32) as u32;
            let mut pending = (kinds::TOP * u8::from(value >= state.admit_floor))
                | (kinds::TOKEN * u8::from(priority_hi <= state.token_floor_hi))
                | (kinds::MAX * u8::from(new_max));
            let bin = activation_bin(value);
            let index = f * ACTIVATION_BINS + bin;
            let cell = &mut self.cells[index];
            cell.count = cell.count.wrapping_add(1);
            let low = self.low[f];
            let floor_hi = if bin < usize::from(low.bin) {
                low.floor_hi
            } else {
                cell.floor_hi
            };
            pending |= kinds::INTERVAL * u8::from(priority_hi <= floor_hi);
            if cell.count == 0 {
                *self.histogram_high.entry(index).or_insert(0) += 1;
            }
            if pending != 0 {
                self.scratch.pending.push(Pending {
                    feature,
                    token: at.token,
                    value,
                    kinds: pending,
                });
            }
        }
        Ok(())
    }
}
