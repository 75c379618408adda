//! The training forward pass: selection of the active latents, sparse decoding, and the losses.
//!
//! Selection runs on detached values (it is a discrete choice) and yields an [`ActiveSet`]:
//! the `(token, latent)` pairs that fire, row-major. The differentiable part then touches only
//! those pairs: their pre-activations are gathered from `pre`, and the decoder rows they name
//! are gathered from `W_dec` (`index_select`) and summed into their tokens (`index_add`), so
//! decoding and its backward cost `O(active · d_in)` instead of the dense
//! `[n, d_sae] × [d_sae, d_in]` product. On the CPU a hand-written kernel does this
//! ([`super::sparse_decode`]); elsewhere candle's ops do. When the active set is dense (a young ReLU SAE, a
//! large aux-K set) the gathered `[active, d_in]` tensor would be bigger than the product's
//! inputs, and [`decode_active`] falls back to the dense product.
//!
//! Selection itself runs on the host on the CPU, where `pre` already is. On a GPU
//! ([`crate::sae::extract::device_path`]) copying `pre` would cost `4·n·d_sae` bytes per step
//! (268 MB at 4096 × 16384); the device methods of `sae::topk_sparse` and `sae::extract` move
//! only the selected pairs and give the same pairs in the same order, ties included.

use candle_core::{DType, Device, Result, Tensor};

use super::sparse_decode::decode_cpu;
use super::sparse_encode::{active_pre_cpu, pre_activations_cpu};
use crate::sae::extract::device_path;
use crate::sae::topk::{topk_rows, with_cpu_slice};
use crate::sae::topk_sparse::{batch_topk_sparse, topk_rows_sparse};
use crate::sae::{SaeKind, SparseActs};

/// The latents that fire in a batch of `n` tokens: parallel lists, row-major order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActiveSet {
    pub rows: Vec<u32>,
    pub feats: Vec<u32>,
    /// Their (detached) activations, for θ and the metrics.
    pub values: Vec<f32>,
    pub n: usize,
    pub d_sae: usize,
}

impl ActiveSet {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Flat indices `row · d_sae + feat` into a row-major `[n, d_sae]` tensor.
    fn positions(&self) -> Vec<u32> {
        let d_sae = self.d_sae as u32;
        self.rows
            .iter()
            .zip(&self.feats)
            .map(|(r, f)| r * d_sae + f)
            .collect()
    }

    /// The pairs whose latent lies in `range` (a Matryoshka group).
    pub fn restrict(&self, range: std::ops::Range<usize>) -> ActiveSet {
        let mut out = ActiveSet {
            n: self.n,
            d_sae: self.d_sae,
            ..Default::default()
        };
        for i in 0..self.len() {
            if range.contains(&(self.feats[i] as usize)) {
                out.rows.push(self.rows[i]);
                out.feats.push(self.feats[i]);
                out.values.push(self.values[i]);
            }
        }
        out
    }

    /// The positive entries of a row-major host matrix `[n, d_sae]`.
    fn from_dense_host(data: &[f32], n: usize, d_sae: usize) -> Self {
        let mut set = ActiveSet {
            n,
            d_sae,
            ..Default::default()
        };
        for (i, &x) in data.iter().enumerate() {
            if x > 0.0 {
                set.rows.push((i / d_sae) as u32);
                set.feats.push((i % d_sae) as u32);
                set.values.push(x);
            }
        }
        set
    }

    /// The pairs of a host CSR over `d_sae` latents, mapping column `c` to latent `columns[c]`
    /// (identity when `columns` is `None`); the CSR's order is kept.
    pub(crate) fn from_csr(csr: &SparseActs, columns: Option<&[u32]>, d_sae: usize) -> Self {
        let mut set = ActiveSet {
            n: csr.num_tokens(),
            d_sae,
            feats: csr.indices.clone(),
            values: csr.values.clone(),
            ..Default::default()
        };
        if let Some(columns) = columns {
            set.feats.iter_mut().for_each(|c| *c = columns[*c as usize]);
        }
        for (row, pair) in (0u32..).zip(csr.offsets.windows(2)) {
            set.rows.extend(std::iter::repeat_n(row, pair[1] - pair[0]));
        }
        set
    }

    /// The positive entries of row-wise top-k output (`values`, `indices` `[n, k]`), mapping
    /// column `c` to latent `columns[c]` (identity when `columns` is `None`).
    fn from_topk(
        values: &Tensor,
        indices: &Tensor,
        columns: Option<&[u32]>,
        d_sae: usize,
    ) -> Result<Self> {
        let (n, k) = values.dims2()?;
        let values = values.flatten_all()?.to_vec1::<f32>()?;
        let indices = indices.flatten_all()?.to_vec1::<u32>()?;
        let mut set = ActiveSet {
            n,
            d_sae,
            ..Default::default()
        };
        for (i, (&v, &c)) in values.iter().zip(&indices).enumerate() {
            if v > 0.0 {
                set.rows.push((i / k) as u32);
                set.feats.push(columns.map_or(c, |cols| cols[c as usize]));
                set.values.push(v);
            }
        }
        Ok(set)
    }
}

/// The encoder's output for a batch: the centred input and the pre-activations, with what
/// [`Encoded::values`] needs to differentiate the active ones.
pub struct Encoded {
    /// `xs − b_dec` `[n, d_in]` (b_dec subtracted first, as SAELens and the original do).
    pub xc: Tensor,
    /// `xc · W_enc + b_enc` `[n, d_sae]`.
    pub pre: Tensor,
    w_enc: Tensor,
    b_enc: Tensor,
}

impl Encoded {
    pub fn new(xs: &Tensor, w_enc: &Tensor, b_enc: &Tensor, b_dec: &Tensor) -> Result<Self> {
        let xc = xs.broadcast_sub(b_dec)?;
        // On the CPU the active values are differentiated by the kernel, never through `pre`.
        let pre = match cpu_kernels(&xc) {
            true => pre_activations_cpu(&xc, w_enc, b_enc)?,
            false => xc.matmul(w_enc)?.broadcast_add(b_enc)?,
        };
        Ok(Self {
            xc,
            pre,
            w_enc: w_enc.clone(),
            b_enc: b_enc.clone(),
        })
    }

    /// The pre-activations of `set` `[len]`, differentiable: through the CPU kernel
    /// ([`super::sparse_encode`]) or, elsewhere, gathered from `pre`.
    pub fn values(&self, set: &ActiveSet) -> Result<Tensor> {
        if cpu_kernels(&self.pre) {
            let (w_enc, b_enc) = (&self.w_enc, &self.b_enc);
            return active_pre_cpu(&self.xc, w_enc, b_enc, &set.rows, &set.feats, &set.values);
        }
        gather_values(&self.pre, set)
    }
}

/// Whether the CPU kernels (`sparse_encode`, `sparse_decode`) do the differentiable part.
fn cpu_kernels(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The training-mode selection of `kind` on `pre [n, d_sae]` (detached inside).
pub fn select(kind: SaeKind, pre: &Tensor, k: usize) -> Result<ActiveSet> {
    let (n, d_sae) = pre.dims2()?;
    if n * d_sae > u32::MAX as usize {
        candle_core::bail!("a batch of {n} tokens × {d_sae} latents is too large to index with u32; lower batch_size");
    }
    if device_path(pre.device()) {
        return select_on_device(kind, pre, k);
    }
    let relu = || pre.detach().relu()?.to_dtype(DType::F32);
    match kind {
        SaeKind::BatchTopK | SaeKind::Matryoshka => {
            // Keep the k·B largest of relu(pre) over the whole batch; zeros never count. Read
            // in place: a host copy of `pre` would be 4·B·d_sae bytes more at the peak.
            let pre = pre.detach().to_dtype(DType::F32)?;
            with_cpu_slice(&pre, |data| batch_topk_active(data, n, d_sae, k * n))
        }
        SaeKind::TopK => {
            let (values, indices) = topk_rows(&relu()?, k)?; // [n, k] each
            ActiveSet::from_topk(&values, &indices, None, d_sae)
        }
        SaeKind::Relu => {
            let data = relu()?.flatten_all()?.to_vec1::<f32>()?;
            Ok(ActiveSet::from_dense_host(&data, n, d_sae))
        }
        // Its selection needs the thresholds and returns more than an active set.
        SaeKind::JumpRelu => candle_core::bail!("jumprelu selects with train::jumprelu::select"),
    }
}

/// [`select`] without copying `pre` to the host (`sae::topk_sparse`, `sae::extract`): the same
/// pairs in the same order as the host selections, ties included.
fn select_on_device(kind: SaeKind, pre: &Tensor, k: usize) -> Result<ActiveSet> {
    let (n, d_sae) = pre.dims2()?;
    let xs = pre.detach().to_dtype(DType::F32)?;
    let csr = match kind {
        SaeKind::BatchTopK | SaeKind::Matryoshka => batch_topk_sparse(&xs, k * n)?,
        SaeKind::TopK => topk_rows_sparse(&xs, k)?,
        SaeKind::Relu => SparseActs::from_dense(&xs)?, // keeps the positive entries
        SaeKind::JumpRelu => candle_core::bail!("jumprelu selects with train::jumprelu::select"),
    };
    Ok(ActiveSet::from_csr(&csr, None, d_sae))
}

/// BatchTopK on the host: the `k_total` largest positive values of a row-major `[n, d_sae]`
/// matrix, ties at the cut going to the lower flat index — exactly the positive entries that
/// `sae::topk::batch_topk_host` keeps. The cut is found by a radix select on the values' bits
/// ([`kth_largest_positive`]: two histogram passes, no copy of the matrix), then one pass in
/// flat order keeps what is above it and the first ties — already row-major. (Collecting and
/// partially sorting the ~n·d_sae/2 positive entries instead cost 67–134 MB and ~0.1 s a step
/// at 4096 × 4096.)
pub(crate) fn batch_topk_active(data: &[f32], n: usize, d_sae: usize, k_total: usize) -> ActiveSet {
    let capacity = k_total.min(data.len());
    let mut set = ActiveSet {
        rows: Vec::with_capacity(capacity),
        feats: Vec::with_capacity(capacity),
        values: Vec::with_capacity(capacity),
        n,
        d_sae,
    };
    if k_total == 0 {
        return set;
    }
    let mut keep = |i: u32, x: f32| {
        set.rows.push(i / d_sae as u32);
        set.feats.push(i % d_sae as u32);
        set.values.push(x);
    };
    match kth_largest_positive(data, k_total) {
        // No more than k_total positive values: all of them (zeros never count as active).
        None => (0u32..)
            .zip(data)
            .filter(|(_, &x)| x > 0.0)
            .for_each(|(i, &x)| keep(i, x)),
        Some((cut, mut ties)) => {
            for (i, &x) in (0u32..).zip(data) {
                if x > cut || (x == cut && ties > 0) {
                    ties -= usize::from(x == cut);
                    keep(i, x);
                }
            }
        }
    }
    set
}

/// The `k`-th largest positive value of `data` and how many of the values equal to it rank
/// within the top `k` (the rest of the top lies above it); `None` when `data` has fewer than
/// `k` positive values. Positive floats order as their bit patterns, so a radix select on the bits finds
/// the value exactly: a histogram of the high 16 bits locates its bucket, a second one of the
/// low 16 bits within that bucket the value itself.
fn kth_largest_positive(data: &[f32], k: usize) -> Option<(f32, usize)> {
    let mut high = vec![0usize; 1 << 16];
    for x in data.iter().filter(|&&x| x > 0.0) {
        high[(x.to_bits() >> 16) as usize] += 1;
    }
    let (bucket, above_bucket) = bucket_holding(&high, k)?;
    let mut low = vec![0usize; 1 << 16];
    for x in data.iter().filter(|&&x| x > 0.0) {
        let bits = x.to_bits();
        if (bits >> 16) as usize == bucket {
            low[(bits & 0xffff) as usize] += 1;
        }
    }
    let (value, above) = bucket_holding(&low, k - above_bucket)?;
    let cut = f32::from_bits(((bucket as u32) << 16) | value as u32);
    Some((cut, k - above_bucket - above))
}

/// Scanning `counts` from the top: the bucket where the running count reaches `k`, and the
/// count strictly above it; `None` when the total is below `k`.
fn bucket_holding(counts: &[usize], k: usize) -> Option<(usize, usize)> {
    let mut above = 0;
    for (bucket, &count) in counts.iter().enumerate().rev() {
        if above + count >= k {
            return Some((bucket, above));
        }
        above += count;
    }
    None
}

/// Aux-K selection: per token, the `k_aux` largest positive pre-activations among the `dead`
/// latents (indices into `d_sae`).
pub fn select_dead(pre: &Tensor, dead: &[u32], k_aux: usize) -> Result<ActiveSet> {
    let (_, d_sae) = pre.dims2()?;
    let dead_idx = Tensor::from_slice(dead, dead.len(), pre.device())?;
    let pre_dead = pre
        .detach()
        .index_select(&dead_idx, 1)?
        .to_dtype(DType::F32)?; // [n, n_dead]
    if device_path(pre.device()) {
        let csr = topk_rows_sparse(&pre_dead, k_aux.min(dead.len()))?;
        return Ok(ActiveSet::from_csr(&csr, Some(dead), d_sae));
    }
    let (values, indices) = topk_rows(&pre_dead, k_aux.min(dead.len()))?;
    ActiveSet::from_topk(&values, &indices, Some(dead), d_sae)
}

/// The activations of `set`, gathered from `pre [n, d_sae]` with their gradient path: `[len]`.
pub fn gather_values(pre: &Tensor, set: &ActiveSet) -> Result<Tensor> {
    let positions = Tensor::from_vec(set.positions(), set.len(), pre.device())?;
    pre.flatten_all()?.index_select(&positions, 0)
}

/// `Σ values[i] · W_dec[feats[i]]` summed into row `rows[i]`: `[n, d_in]` (no `b_dec`).
pub fn decode_active(w_dec: &Tensor, set: &ActiveSet, values: &Tensor) -> Result<Tensor> {
    let (_, d_in) = w_dec.dims2()?;
    let device = w_dec.device();
    let zeros = Tensor::zeros((set.n, d_in), w_dec.dtype(), device)?;
    if set.is_empty() {
        return Ok(zeros);
    }
    if device.is_cpu() && w_dec.dtype() == DType::F32 {
        let w_dec = w_dec.contiguous()?;
        return decode_cpu(&w_dec, &values.contiguous()?, &set.rows, &set.feats, set.n);
    }
    decode_with_candle_ops(w_dec, set, values)
}

/// The device path of [`decode_active`]: gather + `index_add`, or the dense product when the
/// set is dense. Public to the crate so that tests compare it with the CPU kernel.
pub(crate) fn decode_with_candle_ops(
    w_dec: &Tensor,
    set: &ActiveSet,
    values: &Tensor,
) -> Result<Tensor> {
    let (d_sae, d_in) = w_dec.dims2()?;
    let device = w_dec.device();
    let zeros = Tensor::zeros((set.n, d_in), w_dec.dtype(), device)?;
    if gather_is_cheaper(set.len(), set.n, d_sae, d_in) {
        let feats = Tensor::from_slice(&set.feats, set.len(), device)?;
        let rows = Tensor::from_slice(&set.rows, set.len(), device)?;
        let contributions = w_dec
            .index_select(&feats, 0)? // [len, d_in]
            .broadcast_mul(&values.unsqueeze(1)?)?;
        return zeros.index_add(&rows, &contributions, 0);
    }
    let positions = Tensor::from_vec(set.positions(), set.len(), device)?;
    let acts = Tensor::zeros(set.n * d_sae, w_dec.dtype(), device)?
        .index_add(&positions, values, 0)?
        .reshape((set.n, d_sae))?; // [n, d_sae]
    acts.matmul(w_dec)
}

/// Gathering moves `active · d_in` values; the dense product reads `n · d_sae` activations and
/// does `n · d_sae · d_in` work. Gather while the set is sparse (≤ 1/16 dense) and the gathered
/// tensor stays under 2^28 values (1 GiB of f32).
fn gather_is_cheaper(active: usize, n: usize, d_sae: usize, d_in: usize) -> bool {
    active * 16 <= n * d_sae && active.saturating_mul(d_in) <= 1 << 28
}

/// Mean squared error over every element (the original's `l2_loss`).
pub fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.sqr()?.mean_all()
}

/// Matryoshka: the mean of the MSEs of the nested prefixes' reconstructions. `prefix_ends`
/// are the end latents of the prefixes; returns `(loss, full reconstruction)`.
pub fn matryoshka_loss(
    xs: &Tensor,
    encoded: &Encoded,
    w_dec: &Tensor,
    b_dec: &Tensor,
    active: &ActiveSet,
    prefix_ends: &[usize],
) -> Result<(Tensor, Tensor)> {
    let mut x_hat = Tensor::zeros(xs.dims(), xs.dtype(), xs.device())?.broadcast_add(b_dec)?;
    let mut losses = Vec::with_capacity(prefix_ends.len());
    let mut start = 0;
    for &end in prefix_ends {
        let group = active.restrict(start..end);
        let values = encoded.values(&group)?;
        x_hat = (x_hat + decode_active(w_dec, &group, &values)?)?;
        losses.push(mse(&x_hat, xs)?);
        start = end;
    }
    let loss = (Tensor::stack(&losses, 0)?.sum_all()? / prefix_ends.len() as f64)?;
    Ok((loss, x_hat))
}

/// A device-side zero scalar in `dtype` (a loss term that is switched off).
pub fn zero(dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::zeros((), dtype, device)
}
