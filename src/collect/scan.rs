//! The first pass over a batch: every value a block's features must see, regrouped by feature.
//!
//! A batch arrives token by token, but everything the collector keeps is per feature, and the
//! state of 16k features does not stay in cache while activations stream past: observing each
//! value where it arrives cost a cache miss or two per value. So the block first copies the
//! values that matter to it — firing, above the threshold, or NaN — out of the batch (a real
//! SAE's activation matrix is almost all zeros: the dense scan tests 64 values with one
//! branch-free comparison and looks closer only at blocks holding something), then regroups
//! them by feature with a counting sort, in token order within each feature (sparse input is
//! already compact: its values are counted and scattered straight from the batch's CSR arrays,
//! with no token-major copy in between). The feature pass
//! ([`super::offers`]) then visits each feature once per batch with all of its values at hand,
//! walking the per-feature arrays in address order.
//!
//! This pass also settles what does not depend on a feature's state: NaN and ±∞ stop the batch
//! (the first in token order, then feature), special tokens' activations are counted, and the
//! values on an excluded special token are kept only to show in the context of samples around
//! it.

use super::batch::FeatureActivations;
use super::block::{FeatureBlock, Params, Scratch};
use super::collector::BatchView;

/// Values tested together for "anything interesting?" in the dense path (one bit each of a
/// `u64` mask).
const CHUNK: usize = 64;
/// Values ahead whose place in the grouped array is fetched while regrouping.
const SCATTER_AHEAD: usize = 16;

/// A NaN or infinite activation: where it is (token index in the batch, global feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct NonFinite {
    pub(super) token: usize,
    pub(super) feature: u32,
}

/// One value of a feature, regrouped: the token it is on (index in the batch, with
/// [`CONTEXT_ONLY`] when that is an excluded special token) and the value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Hit {
    token_and_flag: u32,
    pub(super) value: f32,
}

/// A value on an excluded special token: shown in the context of samples around it, never
/// observed. (Batches have fewer than 2^31 tokens.)
const CONTEXT_ONLY: u32 = 1 << 31;

impl Hit {
    /// Index of its token in the batch.
    #[inline(always)]
    pub(super) fn token(&self) -> u32 {
        self.token_and_flag & !CONTEXT_ONLY
    }

    /// Its value where it is observed, NaN on an excluded special token (branch-free: the
    /// flag's bit spread over a NaN's exponent and quiet bit).
    #[inline(always)]
    pub(super) fn observed_value(&self) -> f32 {
        let flag = ((self.token_and_flag as i32) >> 31) as u32;
        f32::from_bits(self.value.to_bits() | (flag & 0x7FC0_0000))
    }

    /// Whether it is on an excluded special token.
    #[inline(always)]
    pub(super) fn context_only(&self) -> bool {
        self.token_and_flag & CONTEXT_ONLY != 0
    }
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

/// Splits a token index into (row, position) with a multiply instead of a division (Lemire's
/// fast division: exact for every 32-bit numerator and divisor above 1; rows of one token
/// have no 64-bit magic number and take the plain path).
#[derive(Clone, Copy, Debug)]
pub(super) struct Rows {
    seq_len: u32,
    magic: u64,
}

impl Rows {
    pub(super) fn new(seq_len: usize) -> Self {
        let seq_len = seq_len.max(1) as u32;
        Self {
            seq_len,
            magic: (u64::MAX / u64::from(seq_len)).wrapping_add(1),
        }
    }

    #[inline(always)]
    pub(super) fn split(&self, token: u32) -> (u32, u32) {
        if self.seq_len == 1 {
            return (token, 0);
        }
        let row = ((u128::from(self.magic) * u128::from(token)) >> 64) as u32;
        (row, token - row * self.seq_len)
    }
}

impl FeatureBlock {
    /// Copies this block's values of the batch that the feature pass needs into
    /// `scratch.hits`, grouped by feature (`scratch.group_start`), token order within a
    /// feature; counts special tokens' activations. `Err` names the first non-finite value.
    pub(super) fn gather(
        &mut self,
        params: &Params,
        batch: &BatchView<'_>,
    ) -> Result<(), NonFinite> {
        let all_sparse = batch
            .parts
            .iter()
            .all(|part| matches!(part, FeatureActivations::Sparse { .. }));
        if all_sparse && self.count_sparse(params, batch) {
            self.scatter_sparse(params, batch);
            return Ok(());
        }
        self.extract(params, batch)?;
        self.group_by_feature(params, batch);
        Ok(())
    }

    /// Sparse input, first pass: counts this block's kept values per feature into
    /// `scratch.group_start[f + 1]`, reading the batch's CSR arrays in place (a token-major
    /// copy of them cost more than the regrouping itself). `false` when a kept value is not
    /// finite: the caller takes the general path, which names the first.
    fn count_sparse(&mut self, params: &Params, batch: &BatchView<'_>) -> bool {
        let (base, len) = (self.base, self.len() as u32);
        let scratch = &mut self.scratch;
        scratch.group_start.clear();
        scratch.group_start.resize(len as usize + 1, 0);
        let counts = &mut scratch.group_start[1..];
        let mut all_finite = true;
        for part in sparse_parts(batch) {
            for (token, &token_id) in part.token_ids.iter().enumerate() {
                let taker = SparseTaker::new(base, len, params, batch, token_id);
                let span = part.span(token);
                for (&feature, &v) in part.indices[span.clone()].iter().zip(&part.values[span]) {
                    if let Some(local) = taker.kept(feature, v) {
                        counts[local as usize] += 1;
                        all_finite &= v.is_finite();
                    }
                }
            }
        }
        all_finite
    }

    /// Sparse input, second pass: the kept values straight from the batch into
    /// `scratch.hits`, grouped by feature in token order (a counting sort on
    /// [`count_sparse`](Self::count_sparse)'s counts), and special tokens' activations
    /// counted.
    fn scatter_sparse(&mut self, params: &Params, batch: &BatchView<'_>) {
        let (base, len) = (self.base, self.len() as u32);
        let scratch = &mut self.scratch;
        start_grouping(scratch);
        // As slices in locals: the writes through `hits` would otherwise make the compiler
        // reload both vectors' pointers for every value.
        let (cursor, hits) = (&mut scratch.cursor[..], &mut scratch.hits[..]);
        let special_activations = &mut self.special_activations[..];
        for part in sparse_parts(batch) {
            for (token, &token_id) in part.token_ids.iter().enumerate() {
                let taker = SparseTaker::new(base, len, params, batch, token_id);
                let flag = if taker.excluded { CONTEXT_ONLY } else { 0 };
                let token_and_flag = (part.first_token + token) as u32 | flag;
                let mut scatter = Scatter {
                    indices: part.indices,
                    values: part.values,
                    cursor: &mut *cursor,
                    hits: &mut *hits,
                    base,
                    len,
                    token_and_flag,
                };
                // Special tokens count their activations; the others (nearly all) only take.
                if taker.special {
                    scatter.span(part.span(token), |feature, v| {
                        taker.take(special_activations, feature, v)
                    });
                } else {
                    scatter.span(part.span(token), |feature, v| taker.kept(feature, v));
                }
            }
        }
    }

    /// Token-major pass: the values that matter into `scratch.csr_*` (local feature ids),
    /// with `scratch.group_start[f + 1]` counting feature `f`'s.
    fn extract(&mut self, params: &Params, batch: &BatchView<'_>) -> Result<(), NonFinite> {
        let len = self.len();
        let scratch = &mut self.scratch;
        scratch.csr_offsets.clear();
        scratch.csr_offsets.push(0);
        scratch.csr_entries.clear();
        scratch.group_start.clear();
        scratch.group_start.resize(len + 1, 0);
        let mut first_token = 0;
        for part in batch.parts {
            let part_tokens = part.num_tokens();
            self.extract_part(params, batch, part, first_token)?;
            first_token += part_tokens;
        }
        Ok(())
    }

    /// [`extract`](Self::extract) of one part of the batch, whose first token is
    /// `first_token` of the batch.
    fn extract_part(
        &mut self,
        params: &Params,
        batch: &BatchView<'_>,
        part: &FeatureActivations<'_>,
        first_token: usize,
    ) -> Result<(), NonFinite> {
        let (base, len) = (self.base, self.len() as u32);
        let scratch = &mut self.scratch;
        let counts = &mut scratch.group_start[1..];
        let threshold = params.threshold;
        let mut bad: Option<NonFinite> = None;
        let token_ids = &batch.tokens.tokens[first_token..first_token + part.num_tokens()];
        for (token, &token_id) in token_ids.iter().enumerate() {
            let taker = SparseTaker::new(base, len, params, batch, token_id);
            let (special, excluded) = (taker.special, taker.excluded);
            let before = scratch.csr_entries.len();
            match *part {
                FeatureActivations::Dense { values, d_sae } => {
                    let start = token * d_sae + base as usize;
                    let values = &values[start..start + len as usize];
                    if special {
                        for (count, &v) in self.special_activations.iter_mut().zip(values) {
                            *count += u64::from(v > threshold && v.is_finite());
                        }
                    }
                    if excluded {
                        // Shown in the context of samples around it, never observed.
                        for (f, &v) in values.iter().enumerate() {
                            if v > 0.0 && v.is_finite() {
                                scratch.csr_entries.push((f as u32, v));
                            }
                        }
                    } else {
                        // "Interesting": firing (> 0), above the threshold, or NaN.
                        extract_dense(
                            values,
                            threshold.min(0.0),
                            &mut scratch.dense_found,
                            &mut scratch.csr_entries,
                        );
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
                        if let Some(local) = taker.take(&mut self.special_activations, feature, v) {
                            scratch.csr_entries.push((local, v));
                        }
                    }
                }
            }
            let entries = &scratch.csr_entries[before..];
            for &(f, v) in entries {
                counts[f as usize] += 1;
                if !v.is_finite() {
                    let at = NonFinite {
                        token: first_token + token,
                        feature: base + f,
                    };
                    bad = Some(bad.map_or(at, |bad| bad.min(at)));
                }
            }
            if let Some(bad) = bad {
                // The first in token order: no later token can come before it.
                return Err(bad);
            }
            scratch.csr_offsets.push(scratch.csr_entries.len() as u32);
        }
        Ok(())
    }

    /// Counting sort of the extracted values by feature into `scratch.hits` (stable: token
    /// order within a feature); `group_start` becomes the groups' starts.
    fn group_by_feature(&mut self, params: &Params, batch: &BatchView<'_>) {
        let scratch = &mut self.scratch;
        start_grouping(scratch);
        let tokens = batch.tokens.tokens;
        let entries = &scratch.csr_entries;
        for (token, span) in scratch.csr_offsets.windows(2).enumerate() {
            let excluded = params.exclude_special && batch.is_special(tokens[token]);
            let token_and_flag = token as u32 | if excluded { CONTEXT_ONLY } else { 0 };
            for i in span[0] as usize..span[1] as usize {
                // The writes land all over `hits` (megabytes): fetch the slot of the value a
                // few ahead while this one is written.
                if let Some(&(ahead, _)) = entries.get(i + SCATTER_AHEAD) {
                    let slot = scratch.cursor[ahead as usize] as usize;
                    prefetch_ptr(scratch.hits.as_ptr().wrapping_add(slot).cast());
                }
                let (f, value) = entries[i];
                let slot = &mut scratch.cursor[f as usize];
                scratch.hits[*slot as usize] = Hit {
                    token_and_flag,
                    value,
                };
                *slot += 1;
            }
        }
    }
}

/// Turns the per-feature counts in `scratch.group_start[f + 1]` into the groups' starts, sets
/// each feature's cursor to its start and sizes `scratch.hits` for every value counted.
fn start_grouping(scratch: &mut Scratch) {
    let n = scratch.group_start.len() - 1;
    for f in 0..n {
        scratch.group_start[f + 1] += scratch.group_start[f];
    }
    scratch.cursor.clear();
    scratch.cursor.extend_from_slice(&scratch.group_start[..n]);
    // Every slot is written by the scatter that follows: only slots never held before are
    // initialised (clearing and refilling cost a 16 MB memset per gathered batch).
    let len = scratch.group_start[n] as usize;
    if scratch.hits.len() < len {
        scratch.hits.resize(len, Hit::default());
    }
    scratch.hits.truncate(len);
}

/// One token's values on their way into the grouped array (the sparse second pass).
struct Scatter<'a> {
    indices: &'a [u32],
    values: &'a [f32],
    cursor: &'a mut [u32],
    hits: &'a mut [Hit],
    /// The block's features.
    base: u32,
    len: u32,
    token_and_flag: u32,
}

impl Scatter<'_> {
    /// Writes the values at `span` (of `indices` and `values`) that `take` keeps (as its
    /// local feature) to their features' next slots.
    #[inline(always)]
    fn span(
        &mut self,
        span: std::ops::Range<usize>,
        mut take: impl FnMut(u32, f32) -> Option<u32>,
    ) {
        for i in span {
            // The writes land all over `hits` (megabytes): fetch the slot of the value a few
            // ahead while this one is written.
            if let Some(&ahead) = self.indices.get(i + SCATTER_AHEAD) {
                let ahead = ahead.wrapping_sub(self.base);
                if ahead < self.len {
                    let slot = self.cursor[ahead as usize] as usize;
                    prefetch_ptr(self.hits.as_ptr().wrapping_add(slot).cast());
                }
            }
            if let Some(local) = take(self.indices[i], self.values[i]) {
                let slot = &mut self.cursor[local as usize];
                self.hits[*slot as usize] = Hit {
                    token_and_flag: self.token_and_flag,
                    value: self.values[i],
                };
                *slot += 1;
            }
        }
    }
}

/// One part of an all-sparse batch as the sparse passes read it.
struct SparsePart<'a> {
    /// Index in the batch of its first token.
    first_token: usize,
    /// Its tokens' ids.
    token_ids: &'a [u32],
    offsets: &'a [usize],
    indices: &'a [u32],
    values: &'a [f32],
}

impl SparsePart<'_> {
    /// Where token `token` (of the part)'s values lie in `indices` and `values`.
    #[inline(always)]
    fn span(&self, token: usize) -> std::ops::Range<usize> {
        self.offsets[token]..self.offsets[token + 1]
    }
}

/// The parts of a batch whose parts are all sparse, each with the index of its first token.
fn sparse_parts<'a>(batch: &BatchView<'a>) -> impl Iterator<Item = SparsePart<'a>> {
    let tokens = batch.tokens.tokens;
    let mut first_token = 0;
    batch.parts.iter().map(move |part| {
        let FeatureActivations::Sparse {
            offsets,
            indices,
            values,
            ..
        } = *part
        else {
            unreachable!("the sparse passes take sparse parts only");
        };
        let part_tokens = part.num_tokens();
        let sparse = SparsePart {
            first_token,
            token_ids: &tokens[first_token..first_token + part_tokens],
            offsets,
            indices,
            values,
        };
        first_token += part_tokens;
        sparse
    })
}

/// What taking a sparse value of one token depends on: the block's features and the token.
struct SparseTaker {
    /// The block's first feature and its number of features.
    base: u32,
    len: u32,
    threshold: f32,
    special: bool,
    /// Special and excluded from samples (its values are shown in context only).
    excluded: bool,
}

impl SparseTaker {
    /// For the values of token `token_id` to block `base..base + len`.
    #[inline(always)]
    fn new(base: u32, len: u32, params: &Params, batch: &BatchView<'_>, token_id: u32) -> Self {
        let special = batch.is_special(token_id);
        Self {
            base,
            len,
            threshold: params.threshold,
            special,
            excluded: special && params.exclude_special,
        }
    }

    /// Value `v` of global feature `feature`: `None` when the feature is not the block's or
    /// the value is not kept ([`keep_sparse`]), else its local feature; on a special token
    /// it is counted among the special tokens' activations.
    #[inline(always)]
    fn take(&self, special_activations: &mut [u64], feature: u32, v: f32) -> Option<u32> {
        let local = self.local(feature)?;
        if self.special && v > self.threshold && v > 0.0 && v.is_finite() {
            special_activations[local as usize] += 1;
        }
        keep_sparse(v, self.excluded).then_some(local)
    }

    /// [`take`](Self::take) without counting anything: the local feature of a kept value.
    #[inline(always)]
    fn kept(&self, feature: u32, v: f32) -> Option<u32> {
        self.local(feature)
            .filter(|_| keep_sparse(v, self.excluded))
    }

    /// The local index of global feature `feature`, if it is the block's.
    #[inline(always)]
    fn local(&self, feature: u32) -> Option<u32> {
        let local = feature.wrapping_sub(self.base);
        (local < self.len).then_some(local)
    }
}

/// Whether a sparse value is kept: firing or NaN, and on an excluded special token (shown in
/// context only) firing and finite. Zeros in sparse input (a TopK slot whose ReLU clipped it)
/// neither fire nor pass.
#[inline(always)]
fn keep_sparse(v: f32, excluded: bool) -> bool {
    if excluded {
        v > 0.0 && v.is_finite()
    } else {
        above_or_nan(v, 0.0)
    }
}

/// Appends the `(index, value)` of every value of `acts` above `floor` or NaN to `out`
/// (`found`: working memory).
#[inline]
fn extract_dense(acts: &[f32], floor: f32, found: &mut Vec<(u32, f32)>, out: &mut Vec<(u32, f32)>) {
    // Room for every value, and two more: no test for room per value.
    if found.len() < acts.len() + 2 {
        found.resize(acts.len() + 2, (0, 0.0));
    }
    let mut n = 0;
    let mut chunks = acts.chunks_exact(CHUNK);
    for (chunk_index, chunk) in chunks.by_ref().enumerate() {
        // One mask says where a chunk's values are. Whether a chunk holds anything, and how
        // much, is a coin toss (a fifth of them hold one at L0 64 of 16k features), so the
        // first two values are written without a branch, to slots the next chunk overwrites
        // when they are not values (an empty mask reads lane 0), and only a third (rare) takes
        // the loop. A branch per chunk and a loop exit per value, mispredicted, cost ~10% of
        // the warm dense ingest on a host whose memory streams fast (docs/benchmarks.md).
        let mask = chunk_mask(chunk.try_into().expect("chunks of CHUNK values"), floor);
        let first = (chunk_index * CHUNK) as u32;
        let lane0 = (mask.trailing_zeros() & 63) as usize;
        let rest = mask & mask.wrapping_sub(1);
        let lane1 = (rest.trailing_zeros() & 63) as usize;
        found[n] = (first + lane0 as u32, chunk[lane0]);
        found[n + 1] = (first + lane1 as u32, chunk[lane1]);
        n += usize::from(mask != 0) + usize::from(rest != 0);
        let mut more = rest & rest.wrapping_sub(1);
        while more != 0 {
            let lane = more.trailing_zeros() as usize;
            more &= more - 1;
            found[n] = (first + lane as u32, chunk[lane]);
            n += 1;
        }
    }
    out.extend_from_slice(&found[..n]);
    let tail_start = acts.len() - chunks.remainder().len();
    for (i, &v) in chunks.remainder().iter().enumerate() {
        if above_or_nan(v, floor) {
            out.push(((tail_start + i) as u32, v));
        }
    }
}

/// Bit `i` set where `chunk[i]` is above `floor` or NaN ([`above_or_nan`]).
///
/// On x86-64 four compares are packed into one byte mask per 16 values (SSE2, baseline on
/// every x86-64 CPU): as many instructions as the "anything here?" test alone took, where
/// building the lane masks of a chunk that holds something took a second pass four times as
/// long (left to the compiler, each lane's bit was a masked AND and a horizontal OR). The
/// portable mask is the reference, and the build for other targets.
#[inline(always)]
fn chunk_mask(chunk: &[f32; CHUNK], floor: f32) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        chunk_mask_sse2(chunk, floor)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        chunk_mask_portable(chunk, floor)
    }
}

#[cfg(any(test, not(target_arch = "x86_64")))]
fn chunk_mask_portable(chunk: &[f32; CHUNK], floor: f32) -> u64 {
    chunk.iter().enumerate().fold(0, |mask, (lane, &v)| {
        mask | u64::from(above_or_nan(v, floor)) << lane
    })
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unused_unsafe)]
fn chunk_mask_sse2(chunk: &[f32; CHUNK], floor: f32) -> u64 {
    use std::arch::x86_64::{
        _mm_castps_si128, _mm_cmpnle_ps, _mm_loadu_ps, _mm_movemask_epi8, _mm_packs_epi16,
        _mm_packs_epi32, _mm_set1_ps,
    };
    // SAFETY: SSE2 is part of x86-64; every load reads four floats inside `chunk` (16 values
    // per step, 4 steps of a 64-value array), unaligned loads.
    unsafe {
        let floor = _mm_set1_ps(floor);
        let mut mask = 0u64;
        for sixteen in 0..CHUNK / 16 {
            let at = chunk.as_ptr().add(16 * sixteen);
            // All ones where `!(v <= floor)`, per lane of four.
            let lanes =
                |i: usize| _mm_castps_si128(_mm_cmpnle_ps(_mm_loadu_ps(at.add(4 * i)), floor));
            // Saturating packs keep each lane's all-ones / zero and its order: 4+4 lanes
            // to 8 words, 8+8 words to 16 bytes, one bit per byte.
            let words = (
                _mm_packs_epi32(lanes(0), lanes(1)),
                _mm_packs_epi32(lanes(2), lanes(3)),
            );
            let bytes = _mm_packs_epi16(words.0, words.1);
            mask |= u64::from(_mm_movemask_epi8(bytes) as u16) << (16 * sixteen);
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_like_a_division() {
        for seq_len in [1usize, 2, 3, 7, 128, 1000, 1 << 20, u32::MAX as usize] {
            let rows = Rows::new(seq_len);
            for token in [0u32, 1, 2, 127, 128, 129, 1 << 20, u32::MAX - 1, u32::MAX] {
                let s = seq_len as u32;
                assert_eq!(
                    rows.split(token),
                    (token / s, token % s),
                    "{token} / {seq_len}"
                );
            }
        }
    }

    /// The packed mask is the portable one, lane for lane: NaN, infinities, signed zeros,
    /// values at the floor and just around it.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn packed_and_portable_chunk_masks_agree() {
        let mut rng = crate::util::rng::SplitMix64(11);
        for floor in [0.0f32, -0.0, 0.1, -1.0, 1e-30] {
            let special = [
                f32::NAN,
                -f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                0.0,
                -0.0,
                floor,
                f32::from_bits(floor.to_bits().wrapping_add(1)),
                f32::from_bits(floor.to_bits().wrapping_sub(1)),
                f32::MIN_POSITIVE / 2.0,
            ];
            for round in 0..200 {
                let chunk: [f32; CHUNK] = std::array::from_fn(|lane| {
                    let pick = rng.next_u64();
                    match (round % 3, pick % 4) {
                        (0, _) => 0.0,
                        (1, 0) | (2, _) => special[(pick >> 8) as usize % special.len()],
                        _ => rng.uniform_sym() * (lane as f32 + 1.0),
                    }
                });
                let mut chunk = chunk;
                if round % 3 == 0 {
                    chunk[round % CHUNK] = special[round % special.len()];
                }
                assert_eq!(
                    chunk_mask_sse2(&chunk, floor),
                    chunk_mask_portable(&chunk, floor),
                    "{chunk:?} above {floor}"
                );
            }
        }
    }

    #[test]
    fn dense_extraction_takes_what_is_above_the_floor_or_nan() {
        let mut acts = vec![0.0f32; 3 * CHUNK + 5];
        for (i, v) in [
            (0, 0.5),
            (63, f32::NAN),
            (64, -1.0),
            (130, 2.0),
            (191, 0.2),
            (193, 3.0),
        ] {
            acts[i] = v;
        }
        let (mut found, mut out) = (Vec::new(), vec![(7, 7.0)]);
        extract_dense(&acts, 0.1, &mut found, &mut out);
        assert_eq!(out.remove(0), (7, 7.0));
        let got: Vec<(u32, String)> = out.iter().map(|&(i, v)| (i, format!("{v}"))).collect();
        let want: Vec<(u32, String)> =
            [(0, 0.5), (63, f32::NAN), (130, 2.0), (191, 0.2), (193, 3.0)]
                .iter()
                .map(|&(i, v)| (i, format!("{v}")))
                .collect();
        assert_eq!(got, want);
        // Against a plain filter, from empty rows to full ones.
        let mut rng = crate::util::rng::SplitMix64(3);
        for density in [0.0, 0.01, 0.05, 0.3, 1.0] {
            let acts: Vec<f32> = (0..1000)
                .map(|_| {
                    if rng.next_f32() < density {
                        rng.uniform_sym()
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut out = Vec::new();
            extract_dense(&acts, 0.0, &mut found, &mut out);
            let want: Vec<(u32, f32)> = (0..acts.len() as u32)
                .map(|i| (i, acts[i as usize]))
                .filter(|&(_, v)| v > 0.0)
                .collect();
            assert_eq!(out, want, "density {density}");
        }
    }
}
