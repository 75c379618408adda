//! The device methods of the training selections, returning host CSRs of the selected
//! positive pairs with exactly the host methods' results — ties included — without copying the
//! dense `[n, d]` matrix ([`super::extract`] moves only the selected pairs).
//!
//! - **Batch top-k** ([`batch_topk_sparse`], BatchTopK and Matryoshka training): the `K`
//!   largest positive values of the batch, ties at the cut to the lower row-major index (as
//!   `topk::batch_topk_host`). One pass counts the positives per row; if at most `K` are
//!   positive they are all kept. Otherwise the cut `t`, the exact K-th largest value, comes
//!   from the bisection over f32 keys (`topk::kth_largest`: ≤ 32 count passes, 4 bytes back
//!   each), the pairs `x ≥ t` are extracted — every value tied with `t` among them — and on the
//!   host the surplus ties are dropped from the end in row-major order: exactly `K` remain,
//!   the same `K` as on the CPU.
//! - **Row top-k** ([`topk_rows_sparse`], TopK training and inference, aux-K): the positives
//!   among each row's `k` largest, in the CPU's order (value descending, then index
//!   ascending). One pass counts the positives per row, `m = min(k, largest count)`, and the
//!   blocked device top-`m` (`topk::topk_rows_blocked`) selects the set, exact up to ties at
//!   the cut. When `m = k` one more pass counts, per row, the values `≥` its `k`-th value: a
//!   row with more than `k` such values has a tie straddling the cut, which the device sort
//!   may have broken either way; only those rows are copied to the host and redone with
//!   `topk::topk_rows_host` (none with continuous values; all of them in a degenerate batch
//!   of equal values, which then costs their dense copy). Winners are re-sorted on the host
//!   by (value, index), so that the order equals the CPU's too. `k > 512` at `d > 1024` is
//!   beyond the blocked method: the matrix is copied and the host method runs.

use candle_core::{DType, Result, Tensor};

use super::extract::{as_mask, extract, row_counts};
use super::sparse::SparseActs;
use super::topk::{kth_largest, topk_rows_blocked, topk_rows_host, BLOCK};

/// The `k_total` largest positive entries of `xs [n, d]` (f32) over the whole batch, ties at
/// the cut to the lower row-major index; columns ascending within a row. See the module docs.
pub fn batch_topk_sparse(xs: &Tensor, k_total: usize) -> Result<SparseActs> {
    let xs = &xs.to_dtype(DType::F32)?;
    let positive = as_mask(&xs.gt(0f32)?)?;
    let counts = row_counts(&positive)?;
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    if total <= k_total {
        return extract(&positive, xs, Some(counts), &|_, v| v > 0.0);
    }
    // More than k_total positives: the cut is positive, and the smallest positive f32 is a
    // valid floor for the bisection.
    let cut = kth_largest(&xs.flatten_all()?, k_total, f32::from_bits(1))?;
    let mask = as_mask(&xs.ge(cut)?)?;
    let above_or_tied = extract(&mask, xs, None, &|_, v| v >= cut)?;
    Ok(drop_surplus_ties(above_or_tied, cut, k_total))
}

/// Keeps every value above `cut` and the first `k_total − above` values equal to it, in
/// row-major order (the host method's tie rule).
fn drop_surplus_ties(set: SparseActs, cut: f32, k_total: usize) -> SparseActs {
    let above = set.values.iter().filter(|&&v| v > cut).count();
    let mut ties_left = k_total.saturating_sub(above);
    let mut out = SparseActs::empty(set.d_sae);
    for row in set.offsets.windows(2) {
        let pairs = (row[0]..row[1]).map(|j| (set.indices[j], set.values[j]));
        out.push_row(pairs.filter(|&(_, v)| {
            let keep = v > cut || (v == cut && ties_left > 0);
            if v == cut && keep {
                ties_left -= 1;
            }
            keep
        }));
    }
    out
}

/// The positive entries among each row's `k` largest of `xs [n, d]` (f32), ordered by value
/// descending then index ascending — what `topk::topk_rows_host` keeps. See the module docs.
pub fn topk_rows_sparse(xs: &Tensor, k: usize) -> Result<SparseActs> {
    let (n, d) = xs.dims2()?;
    let xs = &xs.to_dtype(DType::F32)?;
    let positive = as_mask(&xs.gt(0f32)?)?;
    let most = row_counts(&positive)?.into_iter().max().unwrap_or(0) as usize;
    let k = k.min(d);
    let m = k.min(most);
    if m == 0 {
        return Ok(SparseActs {
            offsets: vec![0; n + 1],
            ..SparseActs::empty(d)
        });
    }
    if d > BLOCK && 2 * m > BLOCK {
        let dense = xs.flatten_all()?.to_vec1::<f32>()?;
        let (values, columns) = topk_rows_host(&dense, d, m);
        return Ok(positive_rows(&values, &columns, m, d));
    }
    let (values, columns) = topk_rows_blocked(xs, m)?; // [n, m] each
    let straddling = match m == k {
        true => straddling_rows(xs, &values)?,
        false => Vec::new(), // every row has at most m positives: all of them are selected
    };
    let mut values = values.flatten_all()?.to_vec1::<f32>()?;
    let mut columns = columns.flatten_all()?.to_vec1::<u32>()?;
    if !straddling.is_empty() {
        let rows = Tensor::from_slice(&straddling, straddling.len(), xs.device())?;
        let dense = xs.index_select(&rows, 0)?.flatten_all()?.to_vec1::<f32>()?;
        let (fixed_values, fixed_columns) = topk_rows_host(&dense, d, m);
        for (i, &r) in straddling.iter().enumerate() {
            let (to, from) = (r as usize * m..(r as usize + 1) * m, i * m..(i + 1) * m);
            values[to.clone()].copy_from_slice(&fixed_values[from.clone()]);
            columns[to].copy_from_slice(&fixed_columns[from]);
        }
    }
    Ok(positive_rows(&values, &columns, m, d))
}

/// Rows whose `m`-th value (the last column of `values [n, m]`) is positive and is reached or
/// passed by more than `m` entries of the row: a tie straddles the cut.
fn straddling_rows(xs: &Tensor, values: &Tensor) -> Result<Vec<u32>> {
    let m = values.dim(1)?;
    let cut = values.narrow(1, m - 1, 1)?.contiguous()?; // [n, 1]
    let reached = row_counts(&as_mask(&xs.broadcast_ge(&cut)?)?)?;
    let cut = cut.flatten_all()?.to_vec1::<f32>()?;
    Ok((0..reached.len() as u32)
        .filter(|&r| cut[r as usize] > 0.0 && reached[r as usize] as usize > m)
        .collect())
}

/// Row top-`m` output (`[n·m]` each) → CSR of the positive values, ordered by value
/// descending then index ascending.
fn positive_rows(values: &[f32], columns: &[u32], m: usize, d: usize) -> SparseActs {
    let mut out = SparseActs::empty(d);
    let mut pairs: Vec<(u32, f32)> = Vec::with_capacity(m);
    for (row_values, row_columns) in values.chunks_exact(m).zip(columns.chunks_exact(m)) {
        pairs.clear();
        let all = row_columns.iter().copied().zip(row_values.iter().copied());
        pairs.extend(all.filter(|&(_, v)| v > 0.0));
        pairs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.push_row(pairs.iter().copied());
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
