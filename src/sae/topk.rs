//! Top-k selection over `d_sae` without candle's `arg_sort` on a full row (DESIGN §6.6).
//!
//! candle's `arg_sort` fails on CUDA above 8192 columns and on Metal above 1024, and a full sort
//! is wasted work anyway. Two selections are needed:
//!
//! - **Row top-k** (TopK encoders, and extracting the non-zeros of a threshold encoder on a
//!   GPU): the `k` largest of each row, with their indices.
//!   - CPU: exact, on the host data (a CPU tensor is read in place). For `k ≤ d/8` one scan
//!     per row in index order against the `k`-th best key so far (the order-preserving integer
//!     key of f32), a vectorised compare per 16 columns and a small buffer of candidates cut
//!     back to `k` when full; above `d/8`, `select_nth_unstable_by` on `(value, index)` pairs.
//!     Then the `k` winners are sorted. Order: larger value first, ties broken by the lower
//!     index, NaN above +inf (`f32::total_cmp`) — exactly a stable descending sort cut at `k`.
//!   - GPU: a block reduction. Each row is cut into blocks of [`BLOCK`] = 1024 columns (the
//!     widest `arg_sort` that works on Metal), each block is sorted and keeps its top `k`, and the
//!     survivors (`blocks·k` per row) are reduced again until one block remains. Exact: a row's
//!     top `k` is always among its blocks' top `k`s. Ties within the cut are broken by the
//!     device sort's order, which is not specified. Needs `k ≤ BLOCK / 2`; above that the row is
//!     copied to the host instead (documented cost: one dense copy).
//! - **Batch top-k** (BatchTopK training): keep the `K = k·B` largest values of the whole
//!   `[B, d_sae]` batch, zero the rest.
//!   - CPU: exact, `select_nth_unstable_by` on a host copy; exactly `K` kept, ties at the cut
//!     broken by the lower flat index (row-major).
//!   - GPU: the K-th largest value found by bisection over the order-preserving u32 key of f32
//!     (at most 32 passes of `count(x ≥ t)` plus a host sync each) — the exact value, not an
//!     approximation; then `x · (x ≥ t)`. Every value tied with the K-th is kept, so slightly more
//!     than `K` values survive when there are ties at the cut. (Training does not use this dense
//!     form: [`super::topk_sparse`] extracts the selected pairs and settles ties exactly.)
//!
//! Measured CPU cost (`cargo bench --bench topk`) is in `docs/sae.md`.

use std::cmp::Ordering;

use candle_core::{DType, Device, Result, Storage, Tensor};

/// Widest row that candle's `arg_sort` handles on every back end (Metal's limit).
pub const BLOCK: usize = 1024;

/// Row-wise top-k of `xs [n, d]`: `(values [n, k] f32, indices [n, k] u32)`, each row sorted
/// descending, on `xs`'s device. See the module docs for ties and method per device.
pub fn topk_rows(xs: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    let (n, d) = xs.dims2()?;
    if k == 0 || k > d {
        candle_core::bail!("top-k: k = {k} must be in 1..={d}");
    }
    if xs.device().is_cpu() || 2 * k > BLOCK {
        let xs = xs.to_dtype(DType::F32)?;
        let (values, indices) = if xs.device().is_cpu() {
            with_cpu_slice(&xs, |data| topk_rows_host(data, d, k))?
        } else {
            topk_rows_host(&xs.flatten_all()?.to_vec1::<f32>()?, d, k)
        };
        let device = xs.device();
        return Ok((
            Tensor::from_vec(values, (n, k), device)?,
            Tensor::from_vec(indices, (n, k), device)?,
        ));
    }
    topk_rows_blocked(xs, k)
}

/// Runs `f` on the row-major f32 data of a CPU tensor in place: no copy of the (large) matrix
/// when it is contiguous, as the encoder's output is.
pub(crate) fn with_cpu_slice<T>(xs: &Tensor, f: impl FnOnce(&[f32]) -> T) -> Result<T> {
    let xs = xs.contiguous()?;
    let (storage, layout) = xs.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("top-k: expected a CPU tensor");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("top-k: expected a contiguous tensor");
    };
    Ok(f(&cpu.as_slice::<f32>()?[start..end]))
}

/// Exact row top-k on a row-major host slice `[n, d]`: `(values [n·k], indices [n·k])`.
///
/// For `k ≪ d` one scan per row against a threshold ([`RowTopK`]); when `k` is a large share of
/// `d` the threshold rejects little and [`topk_rows_host_select`] is used instead. Both give
/// exactly the same pairs in the same order (a stable descending sort cut at `k`).
pub fn topk_rows_host(data: &[f32], d: usize, k: usize) -> (Vec<f32>, Vec<u32>) {
    assert!(k >= 1 && k <= d && data.len() % d == 0, "top-k: bad shape");
    if k * SCAN_MAX_FRACTION > d {
        return topk_rows_host_select(data, d, k);
    }
    let n = data.len() / d;
    let mut values = Vec::with_capacity(n * k);
    let mut indices = Vec::with_capacity(n * k);
    let mut scan = RowTopK::new(k);
    for row in data.chunks_exact(d) {
        for &packed in scan.run(row) {
            let i = packed_index(packed);
            values.push(row[i as usize]);
            indices.push(i);
        }
    }
    (values, indices)
}

/// The threshold scan is used while `k · SCAN_MAX_FRACTION ≤ d`. Above that a large share of
/// each row passes the threshold and the buffer is cut often; the select is then as fast.
const SCAN_MAX_FRACTION: usize = 8;

/// Columns compared against the threshold together before any of them is looked at alone:
/// wide enough to vectorise, small enough that redoing a chunk with a hit is cheap.
const CHUNK: usize = 16;

/// A candidate as one `u64`, larger = ranked higher: the order-preserving key of the value
/// ([`f32_key`], i.e. `total_cmp` order) in the high half, the complemented index in the low
/// half (ties go to the lower index). Distinct indices give distinct words: a total order.
fn pack(key: u32, index: u32) -> u64 {
    (u64::from(key) << 32) | u64::from(!index)
}

fn packed_index(packed: u64) -> u32 {
    !(packed as u32)
}

/// The scan's key: `f32::total_cmp` order as an `i32` (the standard library's own map), with
/// no branch and a signed compare, so that a chunk of them vectorises even on baseline x86-64
/// (SSE2 has no unsigned 32-bit compare). Equals [`f32_key`] with the top bit flipped.
#[inline(always)]
fn scan_key(x: f32) -> i32 {
    let bits = x.to_bits() as i32;
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// The [`pack`] key of a [`scan_key`].
#[inline(always)]
fn unsigned_key(key: i32) -> u32 {
    key as u32 ^ 0x8000_0000
}

/// Row top-k by one scan in index order. A buffer holds candidates; `threshold` is the key of
/// the `k`-th best kept so far. An element becomes a candidate only if its key is **strictly**
/// greater: one with an equal key comes later in the row than that `k`-th (scan order), so it
/// ranks below it and can never enter the top `k`. When the buffer fills it is cut back to its
/// best `k` and the threshold rises. On continuous data about `k·ln(d/k)` elements pass, so
/// almost every element costs one vectorised compare.
struct RowTopK {
    k: usize,
    buf: Vec<u64>,
}

impl RowTopK {
    fn new(k: usize) -> Self {
        // Room for the k kept plus at least as many new candidates between two cuts.
        RowTopK {
            k,
            buf: Vec::with_capacity(2 * k + 64),
        }
    }

    /// The top `k` of `row` (`k ≤ row.len()`), packed, best first.
    fn run(&mut self, row: &[f32]) -> &[u64] {
        let k = self.k;
        let buf = &mut self.buf;
        buf.clear();
        buf.extend((0u32..).zip(&row[..k]).map(|(i, &x)| pack(f32_key(x), i)));
        // The k-th best of exactly k candidates has the smallest key.
        let mut threshold = buf.iter().map(|&p| signed_key(p)).min().unwrap_or(i32::MIN);
        // The columns after the first k: whole chunks, then the tail one by one.
        let chunks = row[k..].chunks_exact(CHUNK);
        let tail = chunks.remainder();
        for (c, chunk) in chunks.enumerate() {
            let t = threshold;
            // Lanes above the threshold as a bit mask (vectorised); usually zero.
            let mut hits = chunk
                .iter()
                .enumerate()
                .fold(0u32, |m, (j, &x)| m | (u32::from(scan_key(x) > t) << j));
            let base = k + c * CHUNK;
            while hits != 0 {
                let j = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                // Re-tested: a cut inside the chunk may have raised the threshold.
                consider(buf, &mut threshold, k, base + j, chunk[j]);
            }
        }
        let base = row.len() - tail.len();
        for (j, &x) in tail.iter().enumerate() {
            consider(buf, &mut threshold, k, base + j, x);
        }
        if buf.len() > k {
            cut(buf, k);
        }
        buf.sort_unstable_by(|a, b| b.cmp(a));
        buf
    }
}

/// One column of the scan: a candidate if its key beats the threshold strictly; a full buffer
/// is cut back to the best `k`, which raises the threshold.
#[inline(always)]
fn consider(buf: &mut Vec<u64>, threshold: &mut i32, k: usize, i: usize, x: f32) {
    let key = scan_key(x);
    if key > *threshold {
        buf.push(pack(unsigned_key(key), i as u32));
        if buf.len() == buf.capacity() {
            *threshold = cut(buf, k);
        }
    }
}

/// Keeps the best `k` of `buf` (`buf.len() > k`), in no order; returns the `k`-th best's key.
fn cut(buf: &mut Vec<u64>, k: usize) -> i32 {
    let (_, &mut kth, _) = buf.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
    buf.truncate(k);
    signed_key(kth)
}

/// The [`scan_key`] of a packed candidate.
fn signed_key(packed: u64) -> i32 {
    ((packed >> 32) as u32 ^ 0x8000_0000) as i32
}

/// Descending by value (`total_cmp`), then ascending by index: a total order, so the selection
/// is unique and equals a stable descending sort.
fn rank(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Row top-k by `select_nth_unstable_by` on `(value, index)` pairs, then the `k` winners
/// sorted: O(d) per row with a large constant. Used for `k` near `d`, and the reference the
/// scan is tested against.
fn topk_rows_host_select(data: &[f32], d: usize, k: usize) -> (Vec<f32>, Vec<u32>) {
    let n = data.len() / d;
    let mut values = Vec::with_capacity(n * k);
    let mut indices = Vec::with_capacity(n * k);
    let mut pairs: Vec<(f32, u32)> = Vec::with_capacity(d);
    for row in data.chunks_exact(d) {
        pairs.clear();
        pairs.extend(row.iter().zip(0u32..).map(|(&x, i)| (x, i)));
        if k < d {
            pairs.select_nth_unstable_by(k - 1, rank);
        }
        let top = &mut pairs[..k];
        top.sort_unstable_by(rank);
        values.extend(top.iter().map(|p| p.0));
        indices.extend(top.iter().map(|p| p.1));
    }
    (values, indices)
}

/// The device method: repeated per-block top-k until one block remains (module docs).
/// Public to the crate so that tests run it on the CPU too.
pub(crate) fn topk_rows_blocked(xs: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    #[cfg(test)]
    if super::extract::reversed_ties() {
        return topk_rows_blocked_reversed(xs, k);
    }
    let (n, d) = xs.dims2()?;
    let mut vals = xs.to_dtype(DType::F32)?.contiguous()?; // [n, cols]
    let mut idx: Option<Tensor> = None; // [n, cols] global indices; None: column = index
    let mut cols = d;
    while cols > BLOCK {
        let (v, i) = reduce_blocks(&vals, idx.as_ref(), k)?;
        cols = v.dim(1)?;
        (vals, idx) = (v, Some(i));
    }
    let order = vals
        .arg_sort_last_dim(false)?
        .narrow(1, 0, k)?
        .contiguous()?; // [n, k]
    let values = vals.gather(&order, 1)?;
    let indices = match idx {
        Some(idx) => idx.gather(&order, 1)?,
        None => order,
    };
    debug_assert_eq!(values.dims(), &[n, k]);
    Ok((values, indices))
}

/// [`topk_rows_blocked`] on the columns in reverse order, indices mapped back: candle's stable
/// CPU sort then breaks ties towards the higher index, as a GPU's sort may (tests).
#[cfg(test)]
fn topk_rows_blocked_reversed(xs: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    let (n, d) = xs.dims2()?;
    let reverse = Tensor::from_vec((0..d as u32).rev().collect::<Vec<_>>(), d, xs.device())?;
    let flipped = xs.index_select(&reverse, 1)?;
    let (values, indices) =
        super::extract::without_reversed_ties(|| topk_rows_blocked(&flipped, k))?;
    let indices = reverse
        .index_select(&indices.flatten_all()?, 0)?
        .reshape((n, k))?;
    Ok((values, indices))
}

/// One reduction stage: `[n, cols]` → `[n, blocks·k]` survivors and their global indices.
fn reduce_blocks(vals: &Tensor, idx: Option<&Tensor>, k: usize) -> Result<(Tensor, Tensor)> {
    let (n, cols) = vals.dims2()?;
    let blocks = cols.div_ceil(BLOCK);
    let pad = blocks * BLOCK - cols;
    let device = vals.device();
    // Padding is -inf: it loses to every finite value, and a row has at least k of those, so a
    // padded column can survive a block but never the final cut.
    let vals = pad_cols(
        vals,
        pad,
        Tensor::full(f32::NEG_INFINITY, (n, pad), device)?,
    )?;
    let vals = vals.reshape((n * blocks, BLOCK))?;
    let order = vals
        .arg_sort_last_dim(false)?
        .narrow(1, 0, k)?
        .contiguous()?; // [n·blocks, k]
    let top = vals.gather(&order, 1)?.reshape((n, blocks * k))?;
    let global = match idx {
        Some(idx) => {
            let idx = pad_cols(idx, pad, Tensor::zeros((n, pad), DType::U32, device)?)?;
            idx.reshape((n * blocks, BLOCK))?.gather(&order, 1)?
        }
        None => order.broadcast_add(&block_offsets(n, blocks, device)?)?,
    };
    Ok((top, global.reshape((n, blocks * k))?))
}

fn pad_cols(xs: &Tensor, pad: usize, fill: Tensor) -> Result<Tensor> {
    if pad == 0 {
        return Ok(xs.clone());
    }
    Tensor::cat(&[xs, &fill], 1)
}

/// `[n·blocks, 1]` u32: the first column of each block, repeated for every row.
fn block_offsets(n: usize, blocks: usize, device: &Device) -> Result<Tensor> {
    let offsets: Vec<u32> = (0..n)
        .flat_map(|_| (0..blocks).map(|b| (b * BLOCK) as u32))
        .collect();
    Tensor::from_vec(offsets, (n * blocks, 1), device)
}

/// Batch top-k: `xs [n, d]` with all but its `k_total` largest values (over the whole batch)
/// set to zero. Same device and dtype as `xs`. Ties: see the module docs.
pub fn batch_topk(xs: &Tensor, k_total: usize) -> Result<Tensor> {
    let numel = xs.elem_count();
    if k_total == 0 || k_total > numel {
        candle_core::bail!("batch top-k: k·B = {k_total} must be in 1..={numel}");
    }
    if xs.device().is_cpu() {
        let data = xs.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let kept = batch_topk_host(data, k_total);
        return Tensor::from_vec(kept, xs.shape(), xs.device())?.to_dtype(xs.dtype());
    }
    batch_topk_bisection(xs, k_total)
}

/// Exact batch top-k on a host vector (row-major): exactly `k_total` values kept.
pub fn batch_topk_host(mut data: Vec<f32>, k_total: usize) -> Vec<f32> {
    let mut scratch = data.clone();
    let desc = |a: &f32, b: &f32| b.total_cmp(a);
    let (_, &mut cut, _) = scratch.select_nth_unstable_by(k_total - 1, desc);
    // Everything strictly above the cut is kept; ties at the cut go to the lowest flat index.
    let above = data.iter().filter(|x| x.total_cmp(&cut).is_gt()).count();
    let mut ties_left = k_total - above;
    for x in data.iter_mut() {
        match x.total_cmp(&cut) {
            Ordering::Greater => {}
            Ordering::Equal if ties_left > 0 => ties_left -= 1,
            _ => *x = 0.0,
        }
    }
    data
}

/// The device method: the exact `k_total`-th largest value by bisection on its f32 key, then a
/// mask. Public to the crate so that tests run it on the CPU too.
pub(crate) fn batch_topk_bisection(xs: &Tensor, k_total: usize) -> Result<Tensor> {
    // Compare in f32: a cut rounded to bf16/f16 would no longer be one of the values.
    let flat = xs.flatten_all()?.to_dtype(DType::F32)?;
    let min = flat.min(0)?.to_scalar::<f32>()?;
    let cut = kth_largest(&flat, k_total, min)?;
    let keep = flat.ge(cut)?.to_dtype(xs.dtype())?.reshape(xs.shape())?;
    xs * keep
}

/// The exact `k_total`-th largest value of the f32 vector `flat`, by bisection over the
/// order-preserving u32 key: at most 32 passes of `count(x ≥ t)`, each a 4-byte host sync.
/// `floor` must have `count(x ≥ floor) ≥ k_total` (the minimum, or the smallest positive f32
/// when more than `k_total` values are positive).
pub(crate) fn kth_largest(flat: &Tensor, k_total: usize, floor: f32) -> Result<f32> {
    let max = flat.max(0)?.to_scalar::<f32>()?;
    let count_ge = |t: f32| -> Result<usize> {
        let count = flat.ge(t)?.to_dtype(DType::U32)?.sum_all()?;
        Ok(count.to_scalar::<u32>()? as usize)
    };
    // Invariant: count(x ≥ from_key(lo)) ≥ k_total; the answer is the largest such key.
    let (mut lo, mut hi) = (f32_key(floor), f32_key(max).max(f32_key(floor)));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if count_ge(key_f32(mid))? >= k_total {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(key_f32(lo))
}

/// Order-preserving map from f32 to u32: `a < b` ⇔ `key(a) < key(b)` for non-NaN values.
fn f32_key(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

fn key_f32(key: u32) -> f32 {
    if key & 0x8000_0000 != 0 {
        f32::from_bits(key & 0x7FFF_FFFF)
    } else {
        f32::from_bits(!key)
    }
}

#[cfg(test)]
mod tests;
