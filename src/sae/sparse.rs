//! Feature activations as a host-side CSR, the form the collector ingests cheaply.
//!
//! Getting there without moving the dense `[n, d_sae]` matrix off a GPU:
//! - TopK: the `k` values and indices per token are selected on the device
//!   ([`super::topk_sparse::topk_rows_sparse`], exact, ties to the lower index as on the CPU);
//!   only `2·n·k·4` bytes cross to the host (plus `n·4` of counts).
//! - Threshold encoders (ReLU, JumpReLU, BatchTopK, Matryoshka): the number of active latents
//!   per token is data-dependent. [`super::extract`] counts the non-zeros per token on the
//!   device (`n·4` bytes to the host); with `m` the largest count among tokens that have at
//!   most 512 (and fewer than `d_sae / 2`), the top `m` of every row are selected on the device
//!   and copied (`2·n·m·4` bytes); the few tokens above that are copied densely, and when that
//!   would not be smaller than the dense matrix, the dense matrix is copied instead. Typical
//!   SAEs (L0 ≈ 20–100 of 16k) copy ~1% of the dense bytes.
//! - On the CPU the dense matrix is already in host memory: it is scanned once (`n·d_sae` reads).
//!
//! Within a token, pairs are ordered by increasing feature index, except for TopK (decreasing
//! value); consumers must not rely on either. Zeros are never stored.

use candle_core::{DType, Result, Tensor};

use super::extract::{as_mask, device_path, extract, scan_rows};

/// CSR activations: token `t` has `indices[offsets[t]..offsets[t+1]]` and the same `values`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseActs {
    pub offsets: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
    pub d_sae: usize,
}

impl SparseActs {
    pub fn num_tokens(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Row-major dense `[n, d_sae]` (tests, small batches).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut dense = vec![0.0; self.num_tokens() * self.d_sae];
        for (t, pair) in self.offsets.windows(2).enumerate() {
            for j in pair[0]..pair[1] {
                dense[t * self.d_sae + self.indices[j] as usize] = self.values[j];
            }
        }
        dense
    }

    /// From selected `values [n, m]` and `indices [n, m]` (any device); non-positive values are
    /// dropped.
    pub fn from_topk(values: &Tensor, indices: &Tensor, d_sae: usize) -> Result<Self> {
        let (_, m) = values.dims2()?;
        let values = values
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let indices = indices.flatten_all()?.to_vec1::<u32>()?;
        let mut out = Self::with_capacity(values.len(), d_sae);
        for (row_values, row_indices) in values.chunks_exact(m.max(1)).zip(indices.chunks(m.max(1)))
        {
            for (&v, &i) in row_values.iter().zip(row_indices) {
                if v > 0.0 {
                    out.indices.push(i);
                    out.values.push(v);
                }
            }
            out.offsets.push(out.values.len());
        }
        Ok(out)
    }

    /// From dense activations `acts [n, d_sae]` (≥ 0) on any device; see the module docs.
    pub fn from_dense(acts: &Tensor) -> Result<Self> {
        let (n, d_sae) = acts.dims2()?;
        let acts = acts.to_dtype(DType::F32)?;
        let positive = |_: usize, v: f32| v > 0.0;
        if device_path(acts.device()) {
            let mask = as_mask(&acts.gt(0f32)?)?;
            return extract(&mask, &acts, None, &positive);
        }
        let dense = acts.flatten_all()?.to_vec1::<f32>()?;
        Ok(scan_rows(&dense, n, d_sae, &positive))
    }

    /// Scans a row-major host matrix `[n, d_sae]`, keeping the positive entries.
    pub fn from_dense_host(dense: &[f32], d_sae: usize) -> Self {
        let n = dense.len() / d_sae.max(1);
        scan_rows(dense, n, d_sae, &|_, v| v > 0.0)
    }

    /// No tokens yet.
    pub(crate) fn empty(d_sae: usize) -> Self {
        Self::with_capacity(0, d_sae)
    }

    /// Appends one token with these `(feature, value)` pairs.
    pub(crate) fn push_row(&mut self, pairs: impl IntoIterator<Item = (u32, f32)>) {
        for (feature, value) in pairs {
            self.indices.push(feature);
            self.values.push(value);
        }
        self.offsets.push(self.values.len());
    }

    fn with_capacity(nnz: usize, d_sae: usize) -> Self {
        Self {
            offsets: vec![0],
            indices: Vec::with_capacity(nnz),
            values: Vec::with_capacity(nnz),
            d_sae,
        }
    }
}
