//! The Gemma-2 forward pass, stoppable and spliceable at any hook point.
//!
//! The forward pass is a walk over *positions*: block `L` has hook sites at positions
//! `4L + 0..=4` (`resid_pre`, `resid_mid`, `ln2.hook_normalized`, `hook_mlp_out`,
//! `resid_post`), and `resid_post` of block `L` is `resid_pre` of block `L + 1`. One step moves
//! the stream from a position to the next, so a pass can stop after the hooked site (layers
//! after it never run), start from a given residual activation, or replace the activation at
//! a site and carry on. These calls are full-sequence forwards; `gemma2/cached.rs` runs the
//! same walk over a [`KvCache`](super::KvCache) for generation.
//!
//! Written after reading candle-transformers' `models/gemma2.rs` (Apache-2.0/MIT) and Hugging
//! Face's `modeling_gemma2.py`, following Hugging Face where they differ (see `block.rs`).
//! Parity with Hugging Face is tested in `tests/cli/model/parity.rs`.

use candle_core::{bail, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use super::block::{attention_mask, soft_cap, DecoderLayer, Kernels, PassContext, RmsNorm, Rotary};
use super::config::Gemma2Config;
use super::hook_point::HookPoint;

/// The forward pass over a KV cache (incremental decoding), kept beside the full pass.
mod cached;
pub use cached::HookEdit;

/// Final norm and unembedding; loaded only with every layer (nothing else needs them).
#[derive(Debug, Clone)]
struct Head {
    norm: RmsNorm,
    /// `[vocab, d_model]`; the embedding matrix when the weights are tied (Gemma-2 ties them).
    lm_head: Linear,
}

/// The residual stream between two hook sites. Inside the MLP half of a block the stream is
/// the residual (`resid_mid`) plus the MLP branch computed so far.
struct Stream {
    resid: Tensor,          // [batch, seq, d_model]
    branch: Option<Tensor>, // [batch, seq, d_model] at ln2.hook_normalized and hook_mlp_out
}

impl Stream {
    /// The activation a hook at the current position reads.
    fn activation(&self) -> &Tensor {
        self.branch.as_ref().unwrap_or(&self.resid)
    }

    fn replace(&mut self, xs: Tensor) {
        match &mut self.branch {
            Some(branch) => *branch = xs,
            None => self.resid = xs,
        }
    }
}

/// A Gemma-2 language model with blocks `0..loaded_layers()` in memory.
#[derive(Debug, Clone)]
pub struct Gemma2 {
    config: Gemma2Config,
    embed_tokens: Embedding, // [vocab, d_model]
    /// `√d_model` rounded to the model dtype, as HF multiplies it.
    embed_scale: Tensor,
    layers: Vec<DecoderLayer>,
    head: Option<Head>,
    rotary: Rotary,
    device: Device,
    dtype: DType,
}

impl Gemma2 {
    /// Builds the model from HF-named weights (`model.embed_tokens.weight`, ...), loading only
    /// blocks `0..n_layers`; the final norm and head are loaded only when `n_layers` is all of
    /// them. Missing tensors and wrong shapes are errors.
    pub fn new(config: &Gemma2Config, n_layers: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_kernels(config, n_layers, vb, Kernels::Fused)
    }

    /// [`Gemma2::new`] with a choice of kernels: [`Kernels::Autograd`] makes every op
    /// differentiable, so a `VarBuilder` over a `VarMap` gives a trainable model.
    pub fn with_kernels(
        config: &Gemma2Config,
        n_layers: usize,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        // The fields are public: a hand-built config must not reach an index out of range.
        config
            .validate()
            .map_err(|e| candle_core::Error::Msg(format!("invalid Gemma-2 config: {e}")))?;
        let total = config.num_hidden_layers;
        if n_layers == 0 || n_layers > total {
            bail!("cannot load {n_layers} layers of a model with {total}");
        }
        let vb_model = vb.pp("model");
        let embed_tokens = candle_nn::embedding(
            config.vocab_size,
            config.hidden_size,
            vb_model.pp("embed_tokens"),
        )?;
        let layers = (0..n_layers)
            .map(|layer| DecoderLayer::new(config, layer, vb_model.pp("layers").pp(layer), kernels))
            .collect::<Result<Vec<_>>>()?;
        let head = if n_layers == total {
            let lm_head = if config.tie_word_embeddings {
                Linear::new(embed_tokens.embeddings().clone(), None)
            } else {
                candle_nn::linear_no_bias(config.hidden_size, config.vocab_size, vb.pp("lm_head"))?
            };
            let norm = RmsNorm::new(
                config.hidden_size,
                config.rms_norm_eps,
                vb_model.pp("norm"),
                kernels,
            )?;
            Some(Head { norm, lm_head })
        } else {
            None
        };
        let embed_scale =
            Tensor::new((config.hidden_size as f32).sqrt(), vb.device())?.to_dtype(vb.dtype())?;
        Ok(Self {
            config: config.clone(),
            embed_tokens,
            embed_scale,
            layers,
            head,
            rotary: Rotary::new(config),
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    pub fn config(&self) -> &Gemma2Config {
        &self.config
    }

    /// Number of blocks in the model (whether loaded or not).
    pub fn n_layers(&self) -> usize {
        self.config.num_hidden_layers
    }

    /// Number of blocks in memory (`0..loaded_layers()`).
    pub fn loaded_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn d_model(&self) -> usize {
        self.config.hidden_size
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The token embedding matrix `[vocab, d_model]` (unscaled): Gemma-2's unembedding too,
    /// since it ties the two.
    pub fn embedding_matrix(&self) -> &Tensor {
        self.embed_tokens.embeddings()
    }

    /// Activation at `hook` for `input_ids [batch, seq]`: `[batch, seq, d_model]`. Runs blocks
    /// `0..=hook.layer` only, and inside the hooked block only up to the hooked site.
    pub fn forward_to_hook(&self, input_ids: &Tensor, hook: &HookPoint) -> Result<Tensor> {
        let mut acts = self.forward_to_hooks(input_ids, std::slice::from_ref(hook))?;
        Ok(acts.remove(0))
    }

    /// Activations at several hooks from one pass (e.g. a transcoder's input and target),
    /// in the order given; the pass stops after the last of them.
    pub fn forward_to_hooks(&self, input_ids: &Tensor, hooks: &[HookPoint]) -> Result<Vec<Tensor>> {
        for hook in hooks {
            self.check_hook(hook)?;
        }
        let Some(end) = hooks.iter().map(HookPoint::position).max() else {
            bail!("no hook points requested");
        };
        let mut acts: Vec<Option<Tensor>> = vec![None; hooks.len()];
        let (stream, ctx) = self.embed(input_ids)?;
        self.walk(stream, 0, end, &ctx, |position, stream| {
            for (hook, slot) in hooks.iter().zip(acts.iter_mut()) {
                if hook.position() == position {
                    *slot = Some(stream.activation().clone());
                }
            }
            Ok(())
        })?;
        // Every position in 0..=end is visited, so every slot is filled.
        acts.into_iter()
            .map(|act| act.ok_or_else(|| candle_core::Error::Msg("hook not reached".into())))
            .collect()
    }

    /// Logits `[batch, seq, vocab]` (soft-capped) for `input_ids [batch, seq]`.
    pub fn logits(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.check_full("logits")?;
        let (stream, ctx) = self.embed(input_ids)?;
        let stream = self.walk(stream, 0, self.end(), &ctx, |_, _| Ok(()))?;
        self.unembed(&stream.resid)
    }

    /// Continues the forward pass from `activation [batch, seq, d_model]` taken as the
    /// residual stream at `hook`, and returns the logits `[batch, seq, vocab]`.
    ///
    /// Only residual hooks (`resid_pre`, `resid_mid`, `resid_post`) carry the whole stream; the
    /// MLP-branch hooks need the residual they are added to, so use
    /// [`Gemma2::logits_with_replacement`] for them.
    pub fn forward_from_hook(&self, activation: &Tensor, hook: &HookPoint) -> Result<Tensor> {
        self.check_hook(hook)?;
        self.check_full("forward_from_hook")?;
        if !hook.site.is_residual() {
            bail!(
                "forward_from_hook needs a residual-stream hook, not `{hook}` (its activation is \
                 an MLP branch without the residual); use logits_with_replacement"
            );
        }
        let (batch, seq, d_model) = activation.dims3()?;
        if d_model != self.d_model() || seq == 0 || batch == 0 {
            bail!(
                "activation shape {:?} does not fit the model (expected [batch>0, seq>0, {}])",
                activation.dims(),
                self.d_model()
            );
        }
        let ctx = self.pass_context(seq)?;
        let resid = activation.to_device(&self.device)?.to_dtype(self.dtype)?;
        let stream = Stream {
            resid,
            branch: None,
        };
        let stream = self.walk(stream, hook.position(), self.end(), &ctx, |_, _| Ok(()))?;
        self.unembed(&stream.resid)
    }

    /// Logits `[batch, seq, vocab]` with the activation at `hook` replaced by
    /// `replace(original)` (same shape): the loss-recovered evaluation splices an SAE's
    /// reconstruction in here. Works for every hook site.
    pub fn logits_with_replacement<F>(
        &self,
        input_ids: &Tensor,
        hook: &HookPoint,
        replace: F,
    ) -> Result<Tensor>
    where
        F: FnOnce(&Tensor) -> Result<Tensor>,
    {
        self.check_hook(hook)?;
        self.check_full("logits_with_replacement")?;
        let mut replace = Some(replace);
        let (stream, ctx) = self.embed(input_ids)?;
        let stream = self.walk(stream, 0, self.end(), &ctx, |position, stream| {
            if position == hook.position() {
                if let Some(replace) = replace.take() {
                    let original = stream.activation();
                    let new = replace(original)?;
                    if new.dims() != original.dims() {
                        bail!(
                            "replacement at `{hook}` has shape {:?}, expected {:?}",
                            new.dims(),
                            original.dims()
                        );
                    }
                    stream.replace(new.to_dtype(self.dtype)?);
                }
            }
            Ok(())
        })?;
        self.unembed(&stream.resid)
    }

    /// Position of the last block's `resid_post`.
    fn end(&self) -> usize {
        4 * self.n_layers()
    }

    fn check_hook(&self, hook: &HookPoint) -> Result<()> {
        hook.validate(self.n_layers())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        if hook.layers_needed() > self.loaded_layers() {
            bail!(
                "hook `{hook}` needs {} layers, but only {} of {} were loaded",
                hook.layers_needed(),
                self.loaded_layers(),
                self.n_layers()
            );
        }
        Ok(())
    }

    fn check_full(&self, what: &str) -> Result<()> {
        if self.head.is_none() {
            bail!(
                "{what} needs all {} layers, but only {} were loaded",
                self.n_layers(),
                self.loaded_layers()
            );
        }
        Ok(())
    }

    /// Token embedding times √d_model, and the per-pass tables.
    fn embed(&self, input_ids: &Tensor) -> Result<(Stream, PassContext)> {
        let stream = self.embed_stream(input_ids)?;
        let seq = stream.resid.dim(1)?;
        Ok((stream, self.pass_context(seq)?))
    }

    /// Token embedding times √d_model: the stream at `blocks.0.hook_resid_pre`.
    fn embed_stream(&self, input_ids: &Tensor) -> Result<Stream> {
        let (batch, seq) = input_ids.dims2()?;
        if batch == 0 || seq == 0 {
            bail!("input_ids [batch, seq] is empty: {:?}", input_ids.dims());
        }
        let ids = input_ids.to_dtype(DType::U32)?;
        let max_id = ids.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max_id as usize >= self.config.vocab_size {
            bail!(
                "token id {max_id} is outside the vocabulary (size {})",
                self.config.vocab_size
            );
        }
        let xs = self.embed_tokens.forward(&ids)?; // [batch, seq, d_model]
        let resid = xs.broadcast_mul(&self.embed_scale)?;
        Ok(Stream {
            resid,
            branch: None,
        })
    }

    fn pass_context(&self, seq: usize) -> Result<PassContext> {
        let (cos, sin) = self.rotary.tables(seq, self.dtype, &self.device)?;
        let causal_mask = attention_mask(seq, None, self.dtype, &self.device)?;
        let window = (0..self.n_layers()).find_map(|l| self.config.sliding_window_of(l));
        let sliding_mask = match window {
            Some(window) if window < seq => {
                Some(attention_mask(seq, Some(window), self.dtype, &self.device)?)
            }
            _ => None, // a window at least as long as the sequence is plain causal attention
        };
        Ok(PassContext {
            cos,
            sin,
            causal_mask,
            sliding_mask,
        })
    }

    /// Moves `stream` from position `from` to `to`, calling `visit` at every position on the
    /// way (both ends included) before stepping on.
    fn walk<V>(
        &self,
        mut stream: Stream,
        from: usize,
        to: usize,
        ctx: &PassContext,
        mut visit: V,
    ) -> Result<Stream>
    where
        V: FnMut(usize, &mut Stream) -> Result<()>,
    {
        for position in from..to {
            visit(position, &mut stream)?;
            stream = self.step(position, stream, ctx)?;
        }
        visit(to, &mut stream)?;
        Ok(stream)
    }

    /// One step: from the site at `position` to the next one.
    fn step(&self, position: usize, stream: Stream, ctx: &PassContext) -> Result<Stream> {
        let Some(layer) = self.layers.get(position / 4) else {
            bail!("layer {} is not loaded", position / 4);
        };
        let Stream { resid, branch } = stream;
        let stream = match (position % 4, branch) {
            (0, None) => Stream {
                resid: layer.attention_step(&resid, ctx)?,
                branch: None,
            },
            (1, None) => Stream {
                branch: Some(layer.mlp_input(&resid)?),
                resid,
            },
            (2, Some(normalized)) => Stream {
                branch: Some(layer.mlp_output(&normalized)?),
                resid,
            },
            (3, Some(mlp_out)) => Stream {
                resid: (resid + mlp_out)?,
                branch: None,
            },
            _ => bail!("internal error: inconsistent stream at position {position}"),
        };
        Ok(stream)
    }

    /// Final norm, unembedding and soft-capping: `[b, s, d_model]` → `[b, s, vocab]`.
    fn unembed(&self, resid: &Tensor) -> Result<Tensor> {
        let Some(head) = &self.head else {
            bail!("the model head was not loaded");
        };
        let normed = head.norm.forward(resid)?;
        let logits = head.lm_head.forward(&normed)?;
        soft_cap(&logits, self.config.final_logit_softcapping)
    }
}
