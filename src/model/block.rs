//! One Gemma-2 transformer block and its parts: RMSNorm with `1 + w`, rotary embedding,
//! grouped-query attention with logit soft-capping, and the gated GELU MLP.
//!
//! Written for saectl after reading candle-transformers' `models/gemma2.rs` (which keeps these
//! private and always keeps a KV cache) and Hugging Face's `modeling_gemma2.py`; where the two
//! differ this follows Hugging Face (DESIGN.md §6.2): the score scale is
//! `query_pre_attn_scalar^-0.5`, and the sliding window applies to the layers the config says
//! (even layers by default) and lets a query see itself and the `window - 1` positions before
//! it. RMSNorm, rotary tables and softmax run in f32 whatever the model dtype, as in HF.
//! The block is split into the steps between hook sites so the caller can stop or splice
//! anywhere (see `gemma2.rs`); its attention can also continue a KV cache (`kv_cache.rs`),
//! with the same mask rule at absolute positions. Field names mirror the checkpoint's tensor
//! names.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Activation, Linear, VarBuilder};

use super::config::Gemma2Config;
use super::kv_cache::LayerKv;

/// Which implementation of RMSNorm, softmax and rotary embedding the pass uses.
///
/// candle's fused kernels are the fast path but have no backward pass, so a model that is
/// being trained (the demo's language model, see `crate::demo`) composes the same maths from
/// differentiable primitives instead. Both compute the same function (tested to 1e-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// candle's fused CPU/CUDA/Metal kernels: inference only.
    #[default]
    Fused,
    /// Plain tensor ops that autograd can differentiate: for training.
    Autograd,
}

/// Gemma's RMSNorm: `x / rms(x) * (1 + weight)`, computed in f32 and cast back.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    /// `weight` as stored, `[d_model]`: under [`Kernels::Autograd`] it is a trained variable,
    /// so `1 + weight` is recomputed on every pass rather than frozen at load time.
    weight: Tensor,
    /// `1 + weight` in f32, `[d_model]`, for the fused kernel.
    alpha: Tensor,
    eps: f32,
    kernels: Kernels,
}

impl RmsNorm {
    pub(crate) fn new(dim: usize, eps: f64, vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        let weight = vb.get(dim, "weight")?;
        let alpha = (weight.to_dtype(DType::F32)? + 1.0)?;
        Ok(Self {
            weight,
            alpha,
            eps: eps as f32,
            kernels,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs_f32 = xs.to_dtype(DType::F32)?.contiguous()?;
        let normed = match self.kernels {
            Kernels::Fused => candle_nn::ops::rms_norm(&xs_f32, &self.alpha, self.eps)?,
            Kernels::Autograd => {
                let alpha = (self.weight.to_dtype(DType::F32)? + 1.0)?;
                candle_nn::ops::rms_norm_slow(&xs_f32, &alpha, self.eps)?
            }
        };
        normed.to_dtype(xs.dtype())
    }
}

/// Rotary position embedding (the non-interleaved "rotate half" form HF uses).
#[derive(Debug, Clone)]
pub(crate) struct Rotary {
    /// `theta^(-2i / head_dim)` for `i < head_dim / 2`, in f32 as HF computes it.
    inv_freq: Vec<f32>,
}

impl Rotary {
    pub(crate) fn new(config: &Gemma2Config) -> Self {
        let dim = config.head_dim;
        let theta = config.rope_theta() as f32;
        let inv_freq = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / theta.powf(i as f32 / dim as f32))
            .collect();
        Self { inv_freq }
    }

    /// Cosine and sine tables for positions `0..seq_len`, each `[seq, head_dim / 2]`,
    /// computed in f32 and cast to `dtype` (HF casts the same way).
    pub(crate) fn tables(
        &self,
        seq_len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        self.tables_at(0, seq_len, dtype, device)
    }

    /// The tables for positions `start..start + seq_len` (a pass continuing a KV cache).
    pub(crate) fn tables_at(
        &self,
        start: usize,
        seq_len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let angles: Vec<f32> = (start..start + seq_len)
            .flat_map(|pos| self.inv_freq.iter().map(move |f| pos as f32 * f))
            .collect();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let cos = Tensor::from_vec(cos, (seq_len, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (seq_len, half), device)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }
}

/// What every block of one forward pass shares: rotary tables and the additive masks.
pub(crate) struct PassContext {
    /// `[seq, head_dim / 2]` each.
    pub(crate) cos: Tensor,
    pub(crate) sin: Tensor,
    /// `[1, 1, seq, keys]`, 0 where a query may attend and −∞ elsewhere (`keys = seq`
    /// without a KV cache).
    pub(crate) causal_mask: Tensor,
    /// The same restricted to the sliding window; `None` when no layer slides.
    pub(crate) sliding_mask: Option<Tensor>,
}

/// Additive attention mask `[1, 1, seq, seq]`: query `i` sees key `j` when `j <= i` and, with
/// a window, `i - j < window` (HF's `kv_idx > q_idx - sliding_window`).
pub(crate) fn attention_mask(
    seq_len: usize,
    window: Option<usize>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    attention_mask_at(0..seq_len, 0..seq_len, window, dtype, device)
}

/// The same rule for queries and keys at absolute positions (`[1, 1, queries, keys]`): a pass
/// continuing a KV cache has its queries after the cached keys, and a sliding layer's cache
/// starts where its window does.
pub(crate) fn attention_mask_at(
    queries: std::ops::Range<usize>,
    keys: std::ops::Range<usize>,
    window: Option<usize>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let window = window.unwrap_or(usize::MAX);
    let shape = (1, 1, queries.len(), keys.len());
    let mask: Vec<f32> = queries
        .flat_map(|i| {
            keys.clone().map(move |j| {
                if j <= i && i - j < window {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, shape, device)?.to_dtype(dtype)
}

/// Tanh soft-capping `cap · tanh(x / cap)` (attention scores and final logits).
pub(crate) fn soft_cap(xs: &Tensor, cap: Option<f64>) -> Result<Tensor> {
    match cap {
        Some(cap) => (xs / cap)?.tanh()? * cap,
        None => Ok(xs.clone()),
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    scale: f64,
    softcap: Option<f64>,
    kernels: Kernels,
}

impl Attention {
    fn new(config: &Gemma2Config, vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        let (d_model, head_dim) = (config.hidden_size, config.head_dim);
        let (n_heads, n_kv_heads) = (config.num_attention_heads, config.num_key_value_heads);
        let bias = config.attention_bias;
        let linear = |d_in, d_out, name| candle_nn::linear_b(d_in, d_out, bias, vb.pp(name));
        Ok(Self {
            q_proj: linear(d_model, n_heads * head_dim, "q_proj")?,
            k_proj: linear(d_model, n_kv_heads * head_dim, "k_proj")?,
            v_proj: linear(d_model, n_kv_heads * head_dim, "v_proj")?,
            o_proj: linear(n_heads * head_dim, d_model, "o_proj")?,
            n_heads,
            n_kv_heads,
            head_dim,
            scale: config.attention_scale(),
            softcap: config.attn_logit_softcapping,
            kernels,
        })
    }

    /// `[batch, seq, heads · head_dim]` → `[batch, heads, seq, head_dim]`, contiguous for rope.
    fn split_heads(&self, xs: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        xs.reshape((b, s, heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor, ctx: &PassContext) -> Result<Tensor> {
        let (q, k, v) = self.project(xs, ctx)?;
        self.attend(&q, k, v, mask)
    }

    /// [`Attention::forward`] after the keys and values in `cache` (which gains this pass's).
    fn forward_cached(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        ctx: &PassContext,
        cache: &mut LayerKv,
    ) -> Result<Tensor> {
        let (q, k, v) = self.project(xs, ctx)?;
        let (k, v) = cache.extend(k, v)?; // [b, kv, keys, hd] each
        self.attend(&q, k, v, mask)
    }

    /// Queries `[b, h, s, hd]`, keys and values `[b, kv, s, hd]`, rotated (not v).
    fn project(&self, xs: &Tensor, ctx: &PassContext) -> Result<(Tensor, Tensor, Tensor)> {
        let q = self.split_heads(&self.q_proj.forward(xs)?, self.n_heads)?; // [b, h, s, hd]
        let k = self.split_heads(&self.k_proj.forward(xs)?, self.n_kv_heads)?; // [b, kv, s, hd]
        let v = self.split_heads(&self.v_proj.forward(xs)?, self.n_kv_heads)?; // [b, kv, s, hd]
        let rope = match self.kernels {
            Kernels::Fused => candle_nn::rotary_emb::rope,
            Kernels::Autograd => candle_nn::rotary_emb::rope_slow,
        };
        let q = rope(&q, &ctx.cos, &ctx.sin)?;
        let k = rope(&k, &ctx.cos, &ctx.sin)?;
        Ok((q, k, v))
    }

    /// Soft-capped, masked attention of `q [b, h, s, hd]` over `k, v [b, kv, keys, hd]`, then
    /// the output projection: `[b, s, d_model]`.
    fn attend(&self, q: &Tensor, k: Tensor, v: Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, _, s, _) = q.dims4()?;
        let groups = self.n_heads / self.n_kv_heads;
        let k = candle_transformers::utils::repeat_kv(k, groups)?; // [b, h, keys, hd]
        let v = candle_transformers::utils::repeat_kv(v, groups)?.contiguous()?; // [b, h, keys, hd]

        let scores = (q.matmul(&k.t()?)? * self.scale)?; // [b, h, s, keys]
        let scores = soft_cap(&scores, self.softcap)?.broadcast_add(mask)?;
        // Softmax in f32, as HF upcasts it.
        let scores = scores.to_dtype(DType::F32)?;
        let probs = match self.kernels {
            Kernels::Fused => candle_nn::ops::softmax_last_dim(&scores)?,
            Kernels::Autograd => candle_nn::ops::softmax(&scores, D::Minus1)?,
        }
        .to_dtype(v.dtype())?;
        let out = probs.matmul(&v)?; // [b, h, s, hd]
        let out = out
            .transpose(1, 2)?
            .reshape((b, s, self.n_heads * self.head_dim))?;
        self.o_proj.forward(&out) // [b, s, d_model]
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl Mlp {
    fn new(config: &Gemma2Config, vb: VarBuilder) -> Result<Self> {
        let (d_model, d_mlp) = (config.hidden_size, config.intermediate_size);
        Ok(Self {
            gate_proj: candle_nn::linear_no_bias(d_model, d_mlp, vb.pp("gate_proj"))?,
            up_proj: candle_nn::linear_no_bias(d_model, d_mlp, vb.pp("up_proj"))?,
            down_proj: candle_nn::linear_no_bias(d_mlp, d_model, vb.pp("down_proj"))?,
            act: config.hidden_activation,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(xs)?.apply(&self.act)?; // [b, s, d_mlp]
        let up = self.up_proj.forward(xs)?; // [b, s, d_mlp]
        self.down_proj.forward(&(gate * up)?) // [b, s, d_model]
    }
}

/// One decoder block (`model.layers.{i}`), exposed as the steps between hook sites.
#[derive(Debug, Clone)]
pub(crate) struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    pre_feedforward_layernorm: RmsNorm,
    mlp: Mlp,
    post_feedforward_layernorm: RmsNorm,
    sliding: bool,
}

impl DecoderLayer {
    pub(crate) fn new(
        config: &Gemma2Config,
        layer: usize,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        let norm = |name| {
            RmsNorm::new(
                config.hidden_size,
                config.rms_norm_eps,
                vb.pp(name),
                kernels,
            )
        };
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Attention::new(config, vb.pp("self_attn"), kernels)?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm")?,
            mlp: Mlp::new(config, vb.pp("mlp"))?,
            post_feedforward_layernorm: norm("post_feedforward_layernorm")?,
            sliding: config.sliding_window_of(layer).is_some(),
        })
    }

    /// `resid_pre → resid_mid`: adds the normed attention branch. `[b, s, d] → [b, s, d]`.
    pub(crate) fn attention_step(&self, resid_pre: &Tensor, ctx: &PassContext) -> Result<Tensor> {
        let normed = self.input_layernorm.forward(resid_pre)?;
        let attn = self.self_attn.forward(&normed, self.mask(ctx), ctx)?;
        resid_pre + self.post_attention_layernorm.forward(&attn)?
    }

    /// [`DecoderLayer::attention_step`] for tokens that follow those in `cache`; `ctx` holds
    /// the tables and masks of their positions (see `gemma2/cached.rs`).
    pub(crate) fn attention_step_cached(
        &self,
        resid_pre: &Tensor,
        ctx: &PassContext,
        cache: &mut LayerKv,
    ) -> Result<Tensor> {
        let normed = self.input_layernorm.forward(resid_pre)?;
        let attn = self
            .self_attn
            .forward_cached(&normed, self.mask(ctx), ctx, cache)?;
        resid_pre + self.post_attention_layernorm.forward(&attn)?
    }

    fn mask<'a>(&self, ctx: &'a PassContext) -> &'a Tensor {
        match (&ctx.sliding_mask, self.sliding) {
            (Some(sliding), true) => sliding,
            _ => &ctx.causal_mask,
        }
    }

    /// `resid_mid → ln2.hook_normalized` (the MLP input).
    pub(crate) fn mlp_input(&self, resid_mid: &Tensor) -> Result<Tensor> {
        self.pre_feedforward_layernorm.forward(resid_mid)
    }

    /// `ln2.hook_normalized → hook_mlp_out` (MLP then its post-norm; added by the caller).
    pub(crate) fn mlp_output(&self, normalized: &Tensor) -> Result<Tensor> {
        let hidden = self.mlp.forward(normalized)?;
        self.post_feedforward_layernorm.forward(&hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_mask_keeps_the_window_including_self() {
        let mask = attention_mask(5, Some(2), DType::F32, &Device::Cpu).unwrap();
        let rows: Vec<Vec<f32>> = mask
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        let visible: Vec<Vec<usize>> = rows
            .iter()
            .map(|row| (0..5).filter(|&j| row[j] == 0.0).collect())
            .collect();
        assert_eq!(
            visible,
            [vec![0], vec![0, 1], vec![1, 2], vec![2, 3], vec![3, 4]]
        );
    }
}
