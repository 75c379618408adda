//! Sparse selections out of a dense device matrix without copying the matrix to the host.
//!
//! Training's selection and the collector need the few active `(token, latent)` pairs of a
//! `[n, d_sae]` matrix that lives on a GPU. Copying it is `4·n·d_sae` bytes and a sync every
//! step: 268 MB at 4096 × 16384, tens of milliseconds over PCIe. Here a **mask** (`[n, d]` f32,
//! 1 where a pair is selected, 0 elsewhere) is turned into a host CSR with candle ops only:
//!
//! 1. one pass sums the mask per row; the `n` counts (4 bytes each) go to the host;
//! 2. rows with at most [`light_cap`] selected pairs are **light**. With `m` the largest light
//!    count, the exact blocked row top-`m` of the mask (`topk::topk_rows_blocked`, which never
//!    sorts more than 1024 columns) puts each row's selected columns first — a row has at most
//!    `m` ones, so all of them are in its top `m` whatever the order among ties — and
//!    `gather` fetches their values: `2·n·m·4` bytes go to the host;
//! 3. **heavy** rows (more than the cap selected: the device top-k needs `2m ≤ 1024`, and
//!    beyond `2m ≥ d` pairs cost more than the row) are copied densely, `4·d` bytes each;
//! 4. when steps 2–3 would move at least as many bytes as the dense matrix, the matrix is
//!    copied instead (a young ReLU SAE, where half of the latents fire).
//!
//! On the host every candidate is checked again with the caller's `keep(column, value)`, the
//! same predicate as the mask (heavy and dense rows are scanned with it), and each row comes out
//! in increasing column order. On the CPU the dense matrix is already in host memory and the
//! callers scan it directly; the switch [`device_path`] decides. Tests force the device method
//! on the CPU ([`ForceDevicePath`]) — it is made of generic candle ops — and compare it with the
//! host method, also with the device sort's ties broken the other way (a GPU's sort does not
//! promise the CPU's stable order).

use candle_core::{DType, Device, Result, Tensor};

use super::sparse::SparseActs;
use super::topk::{topk_rows_blocked, BLOCK};

#[cfg(test)]
thread_local! {
    static FORCED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static REVERSED_TIES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether selections on `device` take the device method (no dense copy): every non-CPU
/// device, and the CPU inside a test that holds a [`ForceDevicePath`].
pub(crate) fn device_path(device: &Device) -> bool {
    #[cfg(test)]
    if FORCED.with(|forced| forced.get()) {
        return true;
    }
    !device.is_cpu()
}

/// Whether the blocked top-k should break ties towards the higher index (tests; see
/// [`ForceDevicePath::with_reversed_ties`]).
#[cfg(test)]
pub(crate) fn reversed_ties() -> bool {
    REVERSED_TIES.with(|reversed| reversed.get())
}

/// Runs `f` with [`reversed_ties`] off (the reversed method calls the plain one).
#[cfg(test)]
pub(crate) fn without_reversed_ties<T>(f: impl FnOnce() -> T) -> T {
    let before = REVERSED_TIES.with(|reversed| reversed.replace(false));
    let out = f();
    REVERSED_TIES.with(|reversed| reversed.set(before));
    out
}

/// While alive, this thread's selections take the device method on the CPU too (tests).
#[cfg(test)]
pub(crate) struct ForceDevicePath;

#[cfg(test)]
impl ForceDevicePath {
    pub(crate) fn new() -> Self {
        FORCED.with(|forced| forced.set(true));
        Self
    }

    /// As [`Self::new`], and the blocked top-k breaks ties towards the *higher* index. candle's
    /// CPU sort is stable, so on the CPU ties would otherwise always fall the host method's
    /// way; a GPU's sort gives no such promise, and this is its adversarial case.
    pub(crate) fn with_reversed_ties() -> Self {
        REVERSED_TIES.with(|reversed| reversed.set(true));
        Self::new()
    }
}

#[cfg(test)]
impl Drop for ForceDevicePath {
    fn drop(&mut self) {
        FORCED.with(|forced| forced.set(false));
        REVERSED_TIES.with(|reversed| reversed.set(false));
    }
}

/// The most selected pairs a light row may have at width `d`: the device top-k's limit
/// (`2m ≤ BLOCK`) and the point where `m` pairs (8 bytes each) stop being smaller than the row
/// (4 bytes per column).
pub(crate) fn light_cap(d: usize) -> usize {
    (BLOCK / 2).min(d.saturating_sub(1) / 2)
}

/// Per-row sums of a 0/1 f32 mask `[n, d]`, on the host. Exact: f32 counts integers exactly up
/// to 2^24 columns.
pub(crate) fn row_counts(mask: &Tensor) -> Result<Vec<u32>> {
    let sums = mask.sum(1)?.to_vec1::<f32>()?; // [n]
    Ok(sums.into_iter().map(|c| c as u32).collect())
}

/// A 0/1 f32 mask from a comparison's u8 output.
pub(crate) fn as_mask(cmp: &Tensor) -> Result<Tensor> {
    cmp.to_dtype(DType::F32)
}

/// The pairs of `mask [n, d]` (0/1 f32) with their `values [n, d]` (f32), as a host CSR in
/// increasing column order per row; `keep(column, value)` must hold exactly where the mask is
/// set (it is re-checked on every candidate). `counts` are the mask's row sums when the caller
/// already has them. See the module docs for the method and its cost.
pub(crate) fn extract(
    mask: &Tensor,
    values: &Tensor,
    counts: Option<Vec<u32>>,
    keep: &dyn Fn(usize, f32) -> bool,
) -> Result<SparseActs> {
    let (n, d) = mask.dims2()?;
    let counts = match counts {
        Some(counts) => counts,
        None => row_counts(mask)?,
    };
    let cap = light_cap(d);
    let heavy: Vec<u32> = (0..n as u32)
        .filter(|&r| counts[r as usize] as usize > cap)
        .collect();
    let m = (0..n)
        .filter(|&r| counts[r] as usize <= cap)
        .map(|r| counts[r] as usize)
        .max()
        .unwrap_or(0);
    if 2 * n * m + heavy.len() * d >= n * d {
        let dense = values.flatten_all()?.to_vec1::<f32>()?;
        return Ok(scan_rows(&dense, n, d, keep));
    }
    let light = light_pairs(mask, values, m)?;
    let heavy_rows = match heavy.is_empty() {
        true => Vec::new(),
        false => {
            let rows = Tensor::from_slice(&heavy, heavy.len(), values.device())?;
            values
                .index_select(&rows, 0)?
                .flatten_all()?
                .to_vec1::<f32>()?
        }
    };
    let mut out = SparseActs::empty(d);
    let mut heavy_rows = heavy_rows.chunks_exact(d.max(1));
    let mut pairs: Vec<(u32, f32)> = Vec::new();
    for (r, &count) in counts.iter().enumerate() {
        pairs.clear();
        if count as usize > cap {
            let row = heavy_rows.next().expect("one copied row per heavy row");
            pairs.extend((0u32..).zip(row.iter().copied()));
        } else {
            let (cols, vals) = &light;
            let start = r * m;
            let take = start..start + count as usize;
            pairs.extend(
                cols[take.clone()]
                    .iter()
                    .copied()
                    .zip(vals[take].iter().copied()),
            );
            pairs.sort_unstable_by_key(|&(c, _)| c);
        }
        out.push_row(pairs.iter().copied().filter(|&(c, v)| keep(c as usize, v)));
    }
    Ok(out)
}

/// Each row's top `m` of the mask (its selected columns first) and their values, on the host:
/// `(columns [n·m], values [n·m])`.
fn light_pairs(mask: &Tensor, values: &Tensor, m: usize) -> Result<(Vec<u32>, Vec<f32>)> {
    if m == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let (_, columns) = topk_rows_blocked(mask, m)?; // [n, m]
    let picked = values.contiguous()?.gather(&columns, 1)?; // [n, m]
    Ok((
        columns.flatten_all()?.to_vec1::<u32>()?,
        picked.flatten_all()?.to_vec1::<f32>()?,
    ))
}

/// The host method: a scan of a row-major `[n, d]` matrix with `keep`.
pub(crate) fn scan_rows(
    dense: &[f32],
    n: usize,
    d: usize,
    keep: &dyn Fn(usize, f32) -> bool,
) -> SparseActs {
    let mut out = SparseActs::empty(d);
    for row in dense.chunks_exact(d.max(1)).take(n) {
        let pairs = (0u32..).zip(row.iter().copied());
        out.push_row(pairs.filter(|&(c, v)| keep(c as usize, v)));
    }
    out
}

#[cfg(test)]
mod tests;
