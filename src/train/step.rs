//! One training step, read top to bottom, and the trainer state it updates.
//!
//! ```text
//! xs ─ normalize ─ pre = (xs − b_dec)·W_enc + b_enc                      [B, d_sae]
//!      select (detached): BatchTopK k·B of the batch │ TopK k per token │ ReLU > 0
//!                         │ JumpReLU z > θ − ε/2 (fires above θ; the rest feeds θ's gradient)
//!      x̂ = b_dec + Σ_active a·W_dec[f]   (gathered rows, no dense product)  [B, d_in]
//!      loss = MSE(x̂, xs) (Matryoshka: mean over nested prefixes) + l1·Σa/B + aux-K
//!             (JumpReLU: + λ/d_in · L0, see `train::jumprelu`)
//!      backward → clip global norm → remove each W_dec row's parallel gradient
//!      → Adam → rows back to unit norm; θ ← 0.99·θ + 0.01·min kept value
//! ```
//! A transcoder (`apply_b_dec_to_input` off) subtracts nothing from its input, and its loss,
//! FVU and aux-K residual are taken against the target (the output hook's activations, put
//! through the input's normalization) instead of the input.
//!
//! Dead-latent counts are updated from the batch's active set before the aux-K loss (the
//! original's order), but committed only once the loss is known to be finite, so that a step
//! refused for NaN leaves the state exactly as the last good step left it.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};

use super::config::TrainConfig;
use super::jumprelu;
use super::loss::{self, ActiveSet};
use super::optimizer::{clip_grad_norm, Adam};
use super::schedule::lr_at;
use crate::sae::{normalize_tokens, Sae, SaeConfig, SaeKind, SaeWeights};

/// The original's EMA rate for BatchTopK's inference threshold.
const THRESHOLD_RATE: f32 = 0.01;

/// What one step measured (all on the normalized inputs the loss sees).
#[derive(Clone, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f64,
    pub mse: f64,
    /// Fraction of variance unexplained: `Σ‖x − x̂‖² / Σ‖x − x̄‖²` (x̄: the batch mean).
    pub fvu: f64,
    pub aux_loss: f64,
    pub l1_loss: f64,
    /// JumpReLU's L0 penalty `λ/d_in · L0` (0 for the other kinds).
    pub l0_loss: f64,
    /// Mean active latents per token.
    pub l0: f64,
    /// Latents inactive for at least `n_batches_to_dead` batches.
    pub dead: usize,
    pub lr: f64,
    /// BatchTopK's θ; for JumpReLU the mean of the latents' thresholds.
    pub threshold: f32,
}

/// A step refused because its loss or its gradient was not finite; nothing was updated.
#[derive(Debug, thiserror::Error)]
#[error("the {what} became {value} (not finite)")]
pub struct NonFiniteLoss {
    /// `loss` or `gradient norm`.
    pub what: &'static str,
    pub value: f64,
}

/// The SAE being trained and everything a resumed run needs to continue exactly.
pub struct Trainer {
    pub cfg: TrainConfig,
    pub sae_cfg: SaeConfig,
    pub w_enc: Var,
    pub b_enc: Var,
    pub w_dec: Var,
    pub b_dec: Var,
    /// BatchTopK's inference threshold θ (0 for the other kinds).
    pub threshold: f32,
    /// JumpReLU's learnt `log θ [d_sae]` (`None` for the other kinds).
    pub log_threshold: Option<Var>,
    /// Consecutive batches in which each latent did not fire.
    pub batches_inactive: Vec<u32>,
    pub adam: Adam,
    /// Steps completed.
    pub step: u64,
}

impl Trainer {
    /// A fresh trainer with the seeded initialisation (`SaeWeights::init`).
    pub fn new(cfg: TrainConfig, d_in: usize, device: &Device) -> Result<Self> {
        cfg.validate(d_in)?;
        let sae_cfg = cfg.sae_config(d_in)?;
        let mut weights = SaeWeights::init(&sae_cfg, cfg.seed, device)?;
        if sae_cfg.kind == SaeKind::JumpRelu {
            let theta = cfg.jumprelu_init_threshold;
            weights.threshold = Some(Tensor::full(theta as f32, sae_cfg.d_sae, device)?);
        }
        Self::from_weights(cfg, sae_cfg, &weights)
    }

    /// A trainer around existing weights (θ, counts and optimizer state fresh). A JumpReLU
    /// SAE's `log θ` starts as the log of its `threshold`.
    pub fn from_weights(cfg: TrainConfig, sae_cfg: SaeConfig, w: &SaeWeights) -> Result<Self> {
        let var = |t: &Tensor| Var::from_tensor(&t.to_dtype(DType::F32)?);
        let (w_enc, b_enc, w_dec, b_dec) = (
            var(&w.w_enc)?,
            var(&w.b_enc)?,
            var(&w.w_dec)?,
            var(&w.b_dec)?,
        );
        let mut params = vec![
            ("W_enc", w_enc.clone()),
            ("b_enc", b_enc.clone()),
            ("W_dec", w_dec.clone()),
            ("b_dec", b_dec.clone()),
        ];
        let log_threshold = match (&w.threshold, sae_cfg.kind) {
            (Some(theta), SaeKind::JumpRelu) => Some(var(&theta.to_dtype(DType::F32)?.log()?)?),
            (None, SaeKind::JumpRelu) => anyhow::bail!("a jumprelu SAE needs its thresholds"),
            _ => None,
        };
        if let Some(log_threshold) = &log_threshold {
            params.push(("log_threshold", log_threshold.clone()));
        }
        let adam = Adam::new(params, cfg.beta1, cfg.beta2, cfg.eps)?;
        let d_sae = sae_cfg.d_sae;
        Ok(Self {
            cfg,
            sae_cfg,
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            threshold: 0.0,
            log_threshold,
            batches_inactive: vec![0; d_sae],
            adam,
            step: 0,
        })
    }

    /// JumpReLU's thresholds `θ = exp(log θ)` `[d_sae]`, differentiable.
    pub fn jumprelu_threshold(&self) -> Option<candle_core::Result<Tensor>> {
        self.log_threshold.as_ref().map(|t| t.as_tensor().exp())
    }

    /// The current SAE (BatchTopK's θ written on every feature; JumpReLU's own thresholds).
    pub fn sae(&self) -> Result<Sae> {
        let threshold = match self.jumprelu_threshold() {
            Some(theta) => Some(theta?.detach()),
            None => self
                .sae_cfg
                .kind
                .has_threshold()
                .then(|| Tensor::full(self.threshold, self.sae_cfg.d_sae, self.w_dec.device()))
                .transpose()?,
        };
        let weights = SaeWeights {
            w_enc: self.w_enc.as_tensor().clone(),
            b_enc: self.b_enc.as_tensor().clone(),
            w_dec: self.w_dec.as_tensor().clone(),
            b_dec: self.b_dec.as_tensor().clone(),
            threshold,
        };
        Sae::new(self.sae_cfg.clone(), weights)
    }

    /// One optimisation step on raw activations `xs [B, d_in]`.
    pub fn step(&mut self, xs: &Tensor) -> Result<StepStats> {
        self.step_to(xs, None)
    }

    /// One step of a transcoder: inputs `xs [B, d_in]` reconstruct `target [B, d_in]` (the
    /// output hook's activations), which goes through the inputs' normalization; `None` is an
    /// SAE (the target is the input).
    pub fn step_to(&mut self, xs: &Tensor, target: Option<&Tensor>) -> Result<StepStats> {
        let (xs, denorm) = normalize_tokens(xs, &self.sae_cfg)?; // [B, d_in]
        let target = match target {
            Some(target) => denorm.normalize(&target.to_dtype(xs.dtype())?)?,
            None => xs.clone(),
        };
        let forward = self.forward_to(&xs, &target)?;
        let loss = forward.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !loss.is_finite() {
            let what = "loss";
            return Err(NonFiniteLoss { what, value: loss }.into());
        }
        let lr = lr_at(&self.cfg, self.step);
        self.update(&forward.loss, lr)?;
        self.batches_inactive = forward.batches_inactive;
        if let Some(min) = forward.active.values.iter().copied().reduce(f32::min) {
            if matches!(self.sae_cfg.kind, SaeKind::BatchTopK | SaeKind::Matryoshka) {
                self.threshold = (1.0 - THRESHOLD_RATE) * self.threshold + THRESHOLD_RATE * min;
            }
        }
        self.step += 1;
        let scalar =
            |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        let threshold = match self.jumprelu_threshold() {
            Some(theta) => theta?.mean_all()?.to_scalar::<f32>()?,
            None => self.threshold,
        };
        Ok(StepStats {
            loss,
            mse: scalar(&forward.mse)?,
            fvu: scalar(&fvu(&target, &forward.x_hat)?)?,
            aux_loss: scalar(&forward.aux)?,
            l1_loss: scalar(&forward.l1)?,
            l0_loss: scalar(&forward.l0)?,
            l0: forward.active.len() as f64 / forward.active.n as f64,
            dead: self.dead_latents().len(),
            lr,
            threshold,
        })
    }

    /// Latents that have not fired for `n_batches_to_dead` batches.
    pub fn dead_latents(&self) -> Vec<u32> {
        dead_in(&self.batches_inactive, self.cfg.n_batches_to_dead)
    }

    /// The loss and its parts for normalized `xs [B, d_in]`; no state is changed.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Forward> {
        self.forward_to(xs, xs)
    }

    /// [`Self::forward`] against a separate normalized `target [B, d_in]` (transcoders).
    pub(crate) fn forward_to(&self, xs: &Tensor, target: &Tensor) -> Result<Forward> {
        let (w_dec, b_dec) = (self.w_dec.as_tensor(), self.b_dec.as_tensor());
        // A transcoder's b_dec lives in the output space: nothing is subtracted from its input.
        let b_in = match self.sae_cfg.apply_b_dec_to_input {
            true => b_dec.clone(),
            false => b_dec.zeros_like()?,
        };
        let encoded =
            loss::Encoded::new(xs, self.w_enc.as_tensor(), self.b_enc.as_tensor(), &b_in)?;
        let pre = &encoded.pre; // [B, d_sae]
        if self.sae_cfg.kind == SaeKind::JumpRelu {
            return self.forward_jumprelu(xs, &encoded);
        }
        let k = self.sae_cfg.k.unwrap_or(self.sae_cfg.d_sae);
        let active = loss::select(self.sae_cfg.kind, pre, k)?;
        let values = encoded.values(&active)?; // [active]
        let (mse, x_hat) = if self.sae_cfg.kind == SaeKind::Matryoshka {
            let (prefix_loss, x_hat) = loss::matryoshka_loss(
                target,
                &encoded,
                w_dec,
                b_dec,
                &active,
                &self.sae_cfg.prefix_ends(),
            )?;
            (prefix_loss, x_hat)
        } else {
            let x_hat = loss::decode_active(w_dec, &active, &values)?.broadcast_add(b_dec)?;
            (loss::mse(&x_hat, target)?, x_hat)
        };
        let batches_inactive = count_inactive(&self.batches_inactive, &active);
        let dead = dead_in(&batches_inactive, self.cfg.n_batches_to_dead);
        let (aux, aux_active) = self.aux_loss(target, &x_hat, &encoded, &dead)?;
        let l1 = if self.cfg.l1_coeff > 0.0 {
            ((values.sum_all()? / active.n as f64)? * self.cfg.l1_coeff)?
        } else {
            loss::zero(DType::F32, xs.device())?
        };
        let total = ((&mse + &aux)? + &l1)?;
        Ok(Forward {
            loss: total,
            mse,
            aux,
            l1,
            l0: loss::zero(DType::F32, xs.device())?,
            x_hat: x_hat.detach(),
            active,
            aux_active,
            batches_inactive,
        })
    }

    /// JumpReLU's forward (`train::jumprelu`): the support — pairs above `θ − ε/2` — is
    /// encoded and decoded sparsely; MSE plus the warmed-up L0 penalty. No aux-K: the
    /// thresholds, not a top-k, decide which latents fire.
    fn forward_jumprelu(&self, xs: &Tensor, encoded: &loss::Encoded) -> Result<Forward> {
        let (w_dec, b_dec) = (self.w_dec.as_tensor(), self.b_dec.as_tensor());
        let theta = self
            .jumprelu_threshold()
            .expect("a jumprelu trainer has thresholds")?; // [d_sae]
        let bandwidth = self.cfg.jumprelu_bandwidth;
        let support = jumprelu::select(&encoded.pre, &theta.to_vec1()?, bandwidth as f32)?;
        let feats = Tensor::from_slice(&support.set.feats, support.set.len(), theta.device())?;
        let theta_s = theta.index_select(&feats, 0)?; // [support]
        let z = encoded.values(&support.set)?; // [support]
        let acts = jumprelu::activations(&z, &theta_s, &support, bandwidth)?;
        let x_hat = loss::decode_active(w_dec, &support.set, &acts)?.broadcast_add(b_dec)?;
        let mse = loss::mse(&x_hat, xs)?;
        let coefficient = jumprelu::coefficient(&self.cfg, self.step, self.sae_cfg.d_in);
        let l0 = jumprelu::l0_penalty(&theta_s, &support, bandwidth, coefficient)?;
        let active = support.active();
        Ok(Forward {
            loss: (&mse + &l0)?,
            mse,
            aux: loss::zero(DType::F32, xs.device())?,
            l1: loss::zero(DType::F32, xs.device())?,
            l0,
            x_hat: x_hat.detach(),
            batches_inactive: count_inactive(&self.batches_inactive, &active),
            active,
            aux_active: ActiveSet::default(),
        })
    }

    /// Aux-K: the top `top_k_aux` dead latents of each token fit the (fixed) residual.
    fn aux_loss(
        &self,
        xs: &Tensor,
        x_hat: &Tensor,
        encoded: &loss::Encoded,
        dead: &[u32],
    ) -> Result<(Tensor, ActiveSet)> {
        // ReLU SAEs revive nothing this way (the original's vanilla SAE has no aux-K): a dead
        // ReLU latent has no positive pre-activation to select.
        let off = !self.sae_cfg.kind.uses_k() || self.cfg.aux_penalty == 0.0;
        if off || dead.is_empty() || self.cfg.top_k_aux == 0 {
            return Ok((loss::zero(DType::F32, xs.device())?, ActiveSet::default()));
        }
        // The residual is a target, not a path: aux-K must not pull the live latents.
        let residual = (xs - x_hat)?.detach(); // [B, d_in]
        let aux_set = loss::select_dead(&encoded.pre, dead, self.cfg.top_k_aux)?;
        let values = encoded.values(&aux_set)?;
        let x_aux = loss::decode_active(self.w_dec.as_tensor(), &aux_set, &values)?;
        let aux = (loss::mse(&x_aux, &residual)? * self.cfg.aux_penalty)?;
        Ok((aux, aux_set))
    }

    /// Backward, clipping, the decoder-row projection, Adam, and the row renormalisation.
    fn update(&mut self, loss: &Tensor, lr: f64) -> Result<()> {
        let grads = loss.backward()?;
        let mut vars = vec![&self.w_enc, &self.b_enc, &self.w_dec, &self.b_dec];
        vars.extend(&self.log_threshold);
        let mut gs = vars
            .iter()
            .map(|v| match grads.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => v.as_tensor().zeros_like(),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let norm = clip_grad_norm(&mut gs, self.cfg.max_grad_norm)?;
        if !norm.is_finite() {
            // Checked before Adam touches anything, so the state stays the last good one.
            let what = "gradient norm";
            return Err(NonFiniteLoss { what, value: norm }.into());
        }
        // Rows are unit norm here: a gradient along a row would only change its length,
        // which the renormalisation undoes, and would distort Adam's moments.
        let w_dec = self.w_dec.as_tensor();
        let parallel = (&gs[2] * w_dec)?.sum_keepdim(1)?; // [d_sae, 1]
        gs[2] = (&gs[2] - w_dec.broadcast_mul(&parallel)?)?;
        self.adam.step(&gs, lr)?;
        let w_dec = self.w_dec.as_tensor();
        let norms = w_dec.sqr()?.sum_keepdim(1)?.sqrt()?; // [d_sae, 1]
        self.w_dec.set(&w_dec.broadcast_div(&norms)?)?;
        Ok(())
    }
}

/// The differentiable loss and what the step needs to commit afterwards.
pub(crate) struct Forward {
    pub(crate) loss: Tensor,
    pub(crate) mse: Tensor,
    pub(crate) aux: Tensor,
    pub(crate) l1: Tensor,
    pub(crate) l0: Tensor,
    /// Detached reconstruction `[B, d_in]` in the normalized space.
    pub(crate) x_hat: Tensor,
    pub(crate) active: ActiveSet,
    /// The dead latents chosen for aux-K (empty when it is off); read by the gradient tests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) aux_active: ActiveSet,
    pub(crate) batches_inactive: Vec<u32>,
}

/// Counts after this batch: reset where a latent fired, one more where it did not.
fn count_inactive(previous: &[u32], active: &ActiveSet) -> Vec<u32> {
    let mut counts: Vec<u32> = previous.iter().map(|c| c.saturating_add(1)).collect();
    for &f in &active.feats {
        counts[f as usize] = 0;
    }
    counts
}

fn dead_in(counts: &[u32], n_batches_to_dead: u32) -> Vec<u32> {
    (0..counts.len() as u32)
        .filter(|&f| counts[f as usize] >= n_batches_to_dead)
        .collect()
}

/// `Σ‖x − x̂‖² / Σ‖x − x̄‖²` over a batch `[B, d_in]`.
pub fn fvu(xs: &Tensor, x_hat: &Tensor) -> candle_core::Result<Tensor> {
    let residual = (xs - x_hat)?.sqr()?.sum_all()?;
    let centered = xs.broadcast_sub(&xs.mean_keepdim(0)?)?.sqr()?.sum_all()?;
    residual / (centered + 1e-12)?
}
