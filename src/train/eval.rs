//! The loss-recovered evaluation: how much of the model's next-token loss survives when the
//! SAE's reconstruction replaces the activation it was trained on.
//!
//! On a fixed set of evaluation sequences the model's mean next-token cross-entropy is taken
//! four ways, with the activation at the splice hook (an SAE's hook; a transcoder's output
//! hook) left alone (`ce_clean`), replaced by the SAE's reconstruction (`ce_sae`), by zeros
//! (`ce_zero`), and by its mean over every evaluation token (`ce_mean`, the original's
//! `mean_abl_hook`). The fraction of loss recovered is
//! `(ce_zero − ce_sae) / (ce_zero − ce_clean)` (1: as good as the model, 0: as bad as
//! deleting the activation), and the same against mean ablation. The clean and ablated losses
//! depend only on the model and the sequences, so they are computed once, when the run opens;
//! each evaluation then costs one forward pass over the sequences.
//!
//! Cross-entropy is over every position but the last of each sequence (position `t` predicts
//! token `t + 1`), from the soft-capped logits, in f32. The sequences are run a few at a time
//! so that the logits (`rows · seq_len · vocab`) stay under 2^26 values.

use anyhow::{Context, Result};
use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::model::{Gemma2, HookPoint};
use crate::sae::Sae;

/// Logits values per forward pass, at most (256 MiB in f32).
const MAX_LOGITS: usize = 1 << 26;

/// One evaluation's losses (mean next-token cross-entropy in nats).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossRecovered {
    pub ce_clean: f64,
    pub ce_sae: f64,
    pub ce_zero: f64,
    pub ce_mean: f64,
}

impl LossRecovered {
    /// `(ce_zero − ce_sae) / (ce_zero − ce_clean)`; `None` when zero ablation costs nothing.
    pub fn recovered(&self) -> Option<f64> {
        fraction(self.ce_zero, self.ce_sae, self.ce_clean)
    }

    /// `(ce_mean − ce_sae) / (ce_mean − ce_clean)`; `None` when mean ablation costs nothing.
    pub fn recovered_mean(&self) -> Option<f64> {
        fraction(self.ce_mean, self.ce_sae, self.ce_clean)
    }
}

fn fraction(ablated: f64, sae: f64, clean: f64) -> Option<f64> {
    let gap = ablated - clean;
    (gap.abs() > 1e-9 * clean.abs().max(1.0)).then(|| (ablated - sae) / gap)
}

/// A few evaluation sequences run together: token ids `[rows, seq]` and the SAE's input
/// activations for them `[rows, seq, d_model]` (model dtype, model device).
struct Chunk {
    ids: Tensor,
    inputs: Tensor,
}

/// The evaluation set of a run with its fixed baselines.
pub struct CeEval {
    model: Gemma2,
    splice: HookPoint,
    chunks: Vec<Chunk>,
    sequences: usize,
    ce_clean: f64,
    ce_zero: f64,
    ce_mean: f64,
}

impl CeEval {
    /// Runs the clean and ablated passes over `tokens` (`[n · seq_len]`, row-major) with the
    /// whole `model`. The SAE reads `hook_in`; its reconstruction replaces `splice`.
    pub fn new(
        model: Gemma2,
        hook_in: HookPoint,
        splice: HookPoint,
        tokens: &[u32],
        seq_len: usize,
    ) -> Result<Self> {
        let sequences = tokens.len() / seq_len.max(1);
        if seq_len < 2 || sequences == 0 {
            anyhow::bail!("the loss-recovered evaluation needs sequences of at least 2 tokens");
        }
        let per_pass = (MAX_LOGITS / (seq_len * model.config().vocab_size)).clamp(1, 64);
        let device = model.device().clone();
        let (mut chunks, mut clean, mut sum) = (Vec::new(), Sum::default(), None);
        for start in (0..sequences).step_by(per_pass) {
            let rows = per_pass.min(sequences - start);
            let slice = &tokens[start * seq_len..(start + rows) * seq_len];
            let ids = Tensor::from_slice(slice, (rows, seq_len), &device)?;
            let mut seen = None;
            let logits = model.logits_with_replacement(&ids, &splice, |act| {
                seen = Some(act.clone());
                Ok(act.clone())
            })?;
            clean.add(next_token_ce(&logits, &ids)?);
            let seen = seen.context("internal: the splice hook was not reached")?;
            let token_sum = seen.to_dtype(DType::F32)?.sum((0, 1))?; // [d_model]
            sum = Some(match sum {
                None => token_sum,
                Some(total) => (total + token_sum)?,
            });
            let inputs = match hook_in == splice {
                true => seen,
                false => model.forward_to_hook(&ids, &hook_in)?,
            };
            chunks.push(Chunk { ids, inputs });
        }
        let total = sum.expect("at least one chunk");
        let mean = (total / (sequences * seq_len) as f64)?.to_dtype(model.dtype())?; // [d_model]
        let (mut zero, mut mean_ablated) = (Sum::default(), Sum::default());
        for chunk in &chunks {
            let logits =
                model.logits_with_replacement(&chunk.ids, &splice, |act| act.zeros_like())?;
            zero.add(next_token_ce(&logits, &chunk.ids)?);
            let logits = model.logits_with_replacement(&chunk.ids, &splice, |act| {
                mean.broadcast_as(act.shape())?.contiguous()
            })?;
            mean_ablated.add(next_token_ce(&logits, &chunk.ids)?);
        }
        Ok(Self {
            model,
            splice,
            chunks,
            sequences,
            ce_clean: clean.mean(),
            ce_zero: zero.mean(),
            ce_mean: mean_ablated.mean(),
        })
    }

    /// Number of evaluation sequences.
    pub fn sequences(&self) -> usize {
        self.sequences
    }

    /// The losses with `sae`'s reconstruction spliced in.
    pub fn evaluate(&self, sae: &Sae) -> Result<LossRecovered> {
        let sae_device = sae.weights().w_enc.device().clone();
        let mut spliced = Sum::default();
        for chunk in &self.chunks {
            let (rows, seq_len, d_model) = chunk.inputs.dims3()?;
            let xs = chunk
                .inputs
                .reshape((rows * seq_len, d_model))?
                .to_device(&sae_device)?;
            let recon = sae
                .reconstruct(&xs)? // [rows·seq, d_model]
                .reshape((rows, seq_len, d_model))?
                .to_device(self.model.device())?
                .to_dtype(self.model.dtype())?;
            let logits = self
                .model
                .logits_with_replacement(&chunk.ids, &self.splice, |_| Ok(recon))?;
            spliced.add(next_token_ce(&logits, &chunk.ids)?);
        }
        Ok(LossRecovered {
            ce_clean: self.ce_clean,
            ce_sae: spliced.mean(),
            ce_zero: self.ce_zero,
            ce_mean: self.ce_mean,
        })
    }
}

/// A running sum of per-token losses.
#[derive(Default)]
struct Sum {
    total: f64,
    count: usize,
}

impl Sum {
    fn add(&mut self, (total, count): (f64, usize)) {
        self.total += total;
        self.count += count;
    }

    fn mean(&self) -> f64 {
        self.total / self.count.max(1) as f64
    }
}

/// Summed next-token cross-entropy of `logits [b, s, vocab]` for `ids [b, s]` (position `t`
/// predicts token `t + 1`), and the number of predictions `b · (s − 1)`.
pub fn next_token_ce(logits: &Tensor, ids: &Tensor) -> candle_core::Result<(f64, usize)> {
    let (b, s, _) = logits.dims3()?;
    let logits = logits.narrow(1, 0, s - 1)?.to_dtype(DType::F32)?; // [b, s−1, vocab]
    let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let targets = ids
        .narrow(1, 1, s - 1)?
        .to_dtype(DType::U32)?
        .unsqueeze(2)?
        .contiguous()?; // [b, s−1, 1]
    let picked = log_probs.gather(&targets, 2)?; // [b, s−1, 1]
    let total = picked.sum_all()?.to_scalar::<f32>()? as f64;
    Ok((-total, b * (s - 1)))
}
