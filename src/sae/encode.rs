//! Inference encoding and decoding, on any device, for every architecture.
//!
//! `pre = (norm(x) − b_dec·[apply_b_dec_to_input]) · W_enc + b_enc`, then per architecture:
//! - relu: `relu(pre)`;
//! - topk: the `k` largest of `pre` per token, then relu (SAELens's order: `topk` then
//!   `relu` on the kept values — identical to relu-then-topk except which zeros are "kept",
//!   and zeros are never reported);
//! - jumprelu, batchtopk, matryoshka: `relu(pre) · (pre > threshold[f])`. For BatchTopK this
//!   is its inference mode with the learned θ broadcast to every feature (DESIGN §4: collection
//!   never uses the training-mode batch top-k); for θ ≥ 0 it equals the original's
//!   `relu(pre) · (relu(pre) > θ)`.
//!
//! Decoding: `x̂ = a · W_dec + b_dec`, then the normalization undone ([`Sae::reconstruct`]).
//! Inputs of any rank `[…, d_in]` are flattened to tokens `[n, d_in]` first.

use anyhow::{bail, Result as AnyResult};
use candle_core::{DType, Result, Tensor};

use super::config::{Normalization, SaeConfig, SaeKind};
use super::extract::device_path;
use super::sparse::SparseActs;
use super::topk::{topk_rows, with_cpu_slice};
use super::topk_sparse::topk_rows_sparse;
use super::weights::SaeWeights;

/// An SAE ready to run: a validated config and weights of matching shapes.
#[derive(Clone, Debug)]
pub struct Sae {
    config: SaeConfig,
    weights: SaeWeights,
}

/// What undoes the input normalization of one batch (per-token statistics).
#[derive(Clone, Debug)]
pub enum Denorm {
    None,
    /// Output divided by this `[n, 1]` factor.
    Scale(Tensor),
    /// Output times `std [n, 1]` plus `mean [n, 1]`.
    Affine {
        mean: Tensor,
        std: Tensor,
    },
}

/// SAELens's layer-norm epsilon (and the original's `input_unit_norm`).
const LN_EPS: f64 = 1e-5;

impl Denorm {
    /// Applies this batch's normalization to another `[n, d]` tensor. A transcoder's target
    /// goes through its input's normalization, so that the reconstruction, decoded in that
    /// space, is brought back to the target's by the same undo as an SAE's.
    pub fn normalize(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Denorm::None => Ok(xs.clone()),
            Denorm::Scale(coeff) => xs.broadcast_mul(coeff),
            Denorm::Affine { mean, std } => xs.broadcast_sub(mean)?.broadcast_div(&(std + LN_EPS)?),
        }
    }
}

impl Sae {
    pub fn new(config: SaeConfig, weights: SaeWeights) -> AnyResult<Self> {
        config.validate()?;
        weights.check(&config)?;
        if weights.w_enc.dtype() != config.dtype {
            bail!(
                "weights are {:?} but the config says {:?}",
                weights.w_enc.dtype(),
                config.dtype
            );
        }
        Ok(Self { config, weights })
    }

    pub fn config(&self) -> &SaeConfig {
        &self.config
    }

    pub fn weights(&self) -> &SaeWeights {
        &self.weights
    }

    pub fn into_parts(self) -> (SaeConfig, SaeWeights) {
        (self.config, self.weights)
    }

    /// `xs [..., d_in]` → tokens `[n, d_in]` in the SAE's dtype, normalized, with the undo.
    pub fn normalize_input(&self, xs: &Tensor) -> Result<(Tensor, Denorm)> {
        normalize_tokens(xs, &self.config)
    }

    /// Pre-activations `[n, d_sae]` of normalized tokens `xs [n, d_in]`.
    pub fn pre_activations(&self, xs: &Tensor) -> Result<Tensor> {
        self.encoder_product(xs)?.broadcast_add(&self.weights.b_enc) // [n, d_sae]
    }

    /// `(xs − b_dec·[apply_b_dec_to_input]) · W_enc`: the pre-activations before `b_enc`.
    fn encoder_product(&self, xs: &Tensor) -> Result<Tensor> {
        let w = &self.weights;
        if self.config.apply_b_dec_to_input {
            xs.broadcast_sub(&w.b_dec)?.matmul(&w.w_enc)
        } else {
            xs.matmul(&w.w_enc)
        }
    }

    /// Dense feature activations `[n, d_sae]` of `xs [..., d_in]` (inference mode).
    pub fn encode(&self, xs: &Tensor) -> Result<Tensor> {
        let (xs, _) = self.normalize_input(xs)?;
        self.activate(&self.pre_activations(&xs)?)
    }

    /// The architecture's activation of `pre [n, d_sae]` at inference.
    pub fn activate(&self, pre: &Tensor) -> Result<Tensor> {
        match self.config.kind {
            SaeKind::Relu => pre.relu(),
            SaeKind::TopK => {
                let (values, indices) = topk_rows(pre, self.k())?; // [n, k] each
                let values = values.relu()?.to_dtype(pre.dtype())?;
                pre.zeros_like()?.scatter_add(&indices, &values, 1)
            }
            SaeKind::JumpRelu | SaeKind::BatchTopK | SaeKind::Matryoshka => {
                let threshold = self.threshold()?;
                let gate = pre.broadcast_gt(threshold)?.to_dtype(pre.dtype())?;
                pre.relu()? * gate
            }
        }
    }

    /// `x̂ = acts · W_dec + b_dec` (`acts [n, d_sae]` → `[n, d_in]`), in the normalized space.
    pub fn decode(&self, acts: &Tensor) -> Result<Tensor> {
        let w = &self.weights;
        acts.matmul(&w.w_dec)?.broadcast_add(&w.b_dec)
    }

    /// Encode, decode and undo the normalization: `[n, d_in]` reconstructions of `xs`.
    pub fn reconstruct(&self, xs: &Tensor) -> Result<Tensor> {
        let (normed, denorm) = self.normalize_input(xs)?;
        let acts = self.activate(&self.pre_activations(&normed)?)?;
        let out = self.decode(&acts)?;
        match denorm {
            Denorm::None => Ok(out),
            Denorm::Scale(coeff) => out.broadcast_div(&coeff),
            Denorm::Affine { mean, std } => out.broadcast_mul(&std)?.broadcast_add(&mean),
        }
    }

    /// Host-side CSR of the activations of `xs [..., d_in]`, built without copying the dense
    /// `[n, d_sae]` matrix off a GPU when the activations are sparse enough (see
    /// [`SparseActs`] for the method and its cost).
    pub fn encode_sparse(&self, xs: &Tensor) -> Result<SparseActs> {
        let (xs, _) = self.normalize_input(xs)?;
        if self.gated_on_host(&xs) {
            return self.encode_gated_host(&xs);
        }
        let pre = self.pre_activations(&xs)?;
        let d_sae = self.config.d_sae;
        if self.config.kind == SaeKind::TopK {
            if device_path(pre.device()) {
                return topk_rows_sparse(&pre, self.k()); // ties as on the CPU
            }
            let (values, indices) = topk_rows(&pre, self.k())?; // [n, k] each
            return SparseActs::from_topk(&values.relu()?, &indices, d_sae);
        }
        SparseActs::from_dense(&self.activate(&pre)?)
    }

    /// Whether [`encode_gated_host`](Self::encode_gated_host) takes normalized tokens `xs`:
    /// an architecture whose activation is a gate per value, in f32 on the CPU.
    fn gated_on_host(&self, xs: &Tensor) -> bool {
        let gated = matches!(
            self.config.kind,
            SaeKind::Relu | SaeKind::JumpRelu | SaeKind::BatchTopK | SaeKind::Matryoshka
        );
        gated && !device_path(xs.device()) && xs.dtype() == DType::F32
    }

    /// [`encode_sparse`](Self::encode_sparse) of the gated architectures on the CPU: the bias,
    /// the gate and the positives taken in one pass over the encoder's product, each row as
    /// it is read. The general path made five more `[n, d_sae]` matrices on the way (bias
    /// added, gate mask, gate as floats, relu, product: 1.25 GiB for a 4096-token batch at 16k
    /// latents, written, read back and first touched by the kernel) before the same scan.
    /// Bit-identical: `v = product + b_enc` is the same f32 addition, and `relu(v) · gate` is
    /// `v` exactly where `v > θ` and `v > 0` (NaN fails both), 0 or NaN elsewhere (never kept).
    fn encode_gated_host(&self, xs: &Tensor) -> Result<SparseActs> {
        let d_sae = self.config.d_sae;
        // `[n, d_sae]`; the bias and the threshold are `[d_sae]` (checked when the SAE was
        // made).
        let product = self.encoder_product(xs)?;
        let bias = self.weights.b_enc.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        // ReLU gates at 0 only: a threshold of −∞ lets the `v > 0` test decide.
        let threshold = match self.config.kind {
            SaeKind::Relu => vec![f32::NEG_INFINITY; d_sae],
            _ => self.threshold()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
        };
        with_cpu_slice(&product, |dense| {
            let mut out = SparseActs::empty(d_sae);
            for row in dense.chunks_exact(d_sae.max(1)) {
                let pairs = (0u32..).zip(row.iter().zip(&bias).zip(&threshold));
                out.push_row(pairs.filter_map(|(feature, ((&p, &b), &theta))| {
                    let v = p + b;
                    (v > theta && v > 0.0).then_some((feature, v))
                }));
            }
            out
        })
    }

    fn k(&self) -> usize {
        self.config.k.unwrap_or(self.config.d_sae)
    }

    fn threshold(&self) -> Result<&Tensor> {
        match &self.weights.threshold {
            Some(threshold) => Ok(threshold),
            None => candle_core::bail!("{} SAE without a threshold", self.config.kind),
        }
    }
}

/// `xs [..., d_in]` → tokens `[n, d_in]` in `config.dtype`, normalized as `config` says, with
/// the undo. Shared by inference ([`Sae::normalize_input`]) and training.
pub fn normalize_tokens(xs: &Tensor, config: &SaeConfig) -> Result<(Tensor, Denorm)> {
    let d_in = config.d_in;
    let xs = xs.reshape(((), d_in))?.to_dtype(config.dtype)?; // [n, d_in]
    match config.normalization {
        Normalization::None => Ok((xs, Denorm::None)),
        Normalization::ConstantNormRescale => {
            let norm = xs.sqr()?.sum_keepdim(1)?.sqrt()?; // [n, 1]
            let coeff = norm.recip()?.affine((d_in as f64).sqrt(), 0.0)?;
            Ok((xs.broadcast_mul(&coeff)?, Denorm::Scale(coeff)))
        }
        Normalization::LayerNorm => {
            let mean = xs.mean_keepdim(1)?; // [n, 1]
            let centered = xs.broadcast_sub(&mean)?;
            // Unbiased (n − 1), as torch's `std`.
            let var = (centered.sqr()?.sum_keepdim(1)? / (d_in.max(2) - 1) as f64)?;
            let std = var.sqrt()?;
            let xs = centered.broadcast_div(&(&std + LN_EPS)?)?;
            Ok((xs, Denorm::Affine { mean, std }))
        }
    }
}
