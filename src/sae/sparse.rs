//! Feature activations as a host-side CSR, the form the collector ingests cheaply.
//!
//! Getting there without moving the dense `[n, d_sae]` matrix off a GPU:
//! - TopK: the `k` values and indices per token are selected on the device
//!   ([`super::topk::topk_rows`]); only `2·n·k·4` bytes cross to the host.
//! - Threshold encoders (ReLU, JumpReLU, BatchTopK, Matryoshka): the number of active latents
//!   per token is data-dependent. One pass counts the non-zeros per token on the device (`n·4`
//!   bytes to the host); with `m` the largest count, the top `m` of every row are selected on the
//!   device and copied (`2·n·m·4` bytes). When that would not be smaller than the dense matrix
//!   (`2·m ≥ d_sae`), or `m` is too large for the device top-k (`2·m > BLOCK`), the dense
//!   matrix is copied instead. Typical SAEs (L0 ≈ 20–100 of 16k) copy ~1% of the dense bytes.
//! - On the CPU the dense matrix is already in host memory: it is scanned once (`n·d_sae` reads).
//!
//! Within a token, pairs are ordered by decreasing value (device paths) or increasing feature
//! index (dense scans); consumers must not rely on either. Zeros are never stored.

use candle_core::{DType, Result, Tensor};

use super::topk::{topk_rows, BLOCK};
use crate::collect::FeatureActivations;

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

    /// The collector's view of these activations.
    pub fn as_feature_activations(&self) -> FeatureActivations<'_> {
        FeatureActivations::Sparse {
            offsets: &self.offsets,
            indices: &self.indices,
            values: &self.values,
            d_sae: self.d_sae,
        }
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
        if !acts.device().is_cpu() {
            let counts = acts
                .gt(0.0)?
                .to_dtype(DType::U32)?
                .sum(1)?
                .to_vec1::<u32>()?; // [n]
            let m = counts.iter().copied().max().unwrap_or(0) as usize;
            if m == 0 {
                return Ok(Self {
                    offsets: vec![0; n + 1],
                    d_sae,
                    ..Self::default()
                });
            }
            if 2 * m < d_sae && 2 * m <= BLOCK {
                let (values, indices) = topk_rows(acts, m)?;
                return Self::from_topk(&values, &indices, d_sae);
            }
        }
        let dense = acts.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self::from_dense_host(&dense, d_sae))
    }

    /// Scans a row-major host matrix `[n, d_sae]`, keeping the positive entries.
    pub fn from_dense_host(dense: &[f32], d_sae: usize) -> Self {
        let mut out = Self::with_capacity(0, d_sae);
        for row in dense.chunks_exact(d_sae) {
            for (i, &v) in (0u32..).zip(row) {
                if v > 0.0 {
                    out.indices.push(i);
                    out.values.push(v);
                }
            }
            out.offsets.push(out.values.len());
        }
        out
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
