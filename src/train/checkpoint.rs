//! A training checkpoint: the SAE folder of `sae::checkpoint` plus what resuming needs.
//!
//! ```text
//! <checkpoint>/cfg.json, sae_weights.safetensors, saectl.json    the SAE (SAELens-readable)
//! <checkpoint>/optimizer.safetensors    Adam's m.* and v.*, batches_inactive [d_sae] u32,
//!                                       JumpReLU's log_threshold [d_sae]
//! <checkpoint>/trainer_state.json       step, tokens consumed, θ, Adam's step count,
//!                                       seconds trained so far
//! ```
//! The SAE's `saectl.json` is written last (by `sae::checkpoint::save`), so a folder that has
//! it is complete. Every value is stored exactly (f32 tensors, θ as an f32 JSON number that
//! round-trips), which is what makes a resumed CPU run bit-identical to an uninterrupted one.
//! JumpReLU learns `log θ` but SAELens folders hold `threshold = exp(log θ)`; `log(exp(t))` need
//! not give `t` back to the bit, so the parameter itself is kept in the optimizer file.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::TrainConfig;
use super::step::Trainer;
use crate::sae::checkpoint::{self as sae_checkpoint, CheckpointMeta};
use crate::util::atomic::{write_atomic, write_json_atomic};

pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
const LOG_THRESHOLD: &str = "log_threshold";

/// The scalars of a trainer that are not tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub step: u64,
    /// Tokens of the batch stream consumed (its resume offset).
    pub tokens: u64,
    pub threshold: f32,
    pub adam_step: u64,
    /// Wall-clock seconds the run had trained when the checkpoint was written (absent, 0,
    /// in checkpoints written before it existed). Timing, not state: it differs between
    /// otherwise identical runs.
    #[serde(default)]
    pub elapsed_s: f64,
}

/// Where the run stood at a checkpoint, besides the trainer itself.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunPosition {
    /// Tokens of the batch stream consumed (its resume offset).
    pub tokens: u64,
    /// Wall-clock seconds trained so far, over every resumed part of the run.
    pub elapsed_s: f64,
}

/// Writes `trainer` into `dir`; `meta` carries the SAE's provenance (hook, dataset, …).
pub fn save(
    dir: &Path,
    trainer: &Trainer,
    position: RunPosition,
    meta: &CheckpointMeta,
) -> Result<()> {
    let tokens = position.tokens;
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let mut tensors = trainer.adam.state_tensors();
    let d_sae = trainer.batches_inactive.len();
    let inactive = Tensor::from_slice(&trainer.batches_inactive, d_sae, &Device::Cpu)?;
    tensors.push(("batches_inactive".to_string(), inactive));
    if let Some(log_threshold) = &trainer.log_threshold {
        tensors.push((LOG_THRESHOLD.to_string(), log_threshold.as_tensor().clone()));
    }
    let tensors = tensors
        .into_iter()
        .map(|(name, t)| Ok((name, t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(tensors, None).with_context(|| {
        format!(
            "failed to serialize the optimizer state for {}",
            dir.display()
        )
    })?;
    write_atomic(&dir.join(OPTIMIZER_FILE), &bytes)?;
    let state = TrainerState {
        step: trainer.step,
        tokens,
        threshold: trainer.threshold,
        adam_step: trainer.adam.step_count(),
        elapsed_s: position.elapsed_s,
    };
    write_json_atomic(&dir.join(TRAINER_STATE_FILE), &state)?;
    let mut meta = meta.clone();
    meta.training.insert("step".into(), json!(trainer.step));
    meta.training.insert("tokens".into(), json!(tokens));
    meta.training
        .insert("config".into(), serde_json::to_value(&trainer.cfg)?);
    sae_checkpoint::save(dir, &trainer.sae()?, &meta)
}

/// Reads a checkpoint written by [`save`] back into a trainer for `cfg` on `device`.
/// Returns the trainer and where the run stood.
pub fn load(
    dir: &Path,
    cfg: TrainConfig,
    device: &Device,
) -> Result<(Trainer, RunPosition, CheckpointMeta)> {
    let (sae, meta) = sae_checkpoint::load(dir, DType::F32, device)?;
    let state_path = dir.join(TRAINER_STATE_FILE);
    let text = std::fs::read_to_string(&state_path)
        .with_context(|| format!("failed to read {}", state_path.display()))?;
    let state: TrainerState = serde_json::from_str(&text)
        .with_context(|| format!("failed to parse {}", state_path.display()))?;
    let (sae_cfg, weights) = sae.into_parts();
    let mut trainer = Trainer::from_weights(cfg, sae_cfg, &weights)?;
    let optimizer_path = dir.join(OPTIMIZER_FILE);
    let tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&optimizer_path, &Device::Cpu)
            .with_context(|| format!("failed to read {}", optimizer_path.display()))?;
    trainer
        .adam
        .load_state(&tensors, state.adam_step)
        .with_context(|| format!("in {}", optimizer_path.display()))?;
    let inactive = tensors
        .get("batches_inactive")
        .with_context(|| format!("{} has no batches_inactive", optimizer_path.display()))?
        .to_vec1::<u32>()?;
    if inactive.len() != trainer.batches_inactive.len() {
        bail!(
            "{}: batches_inactive has {} entries for {} latents",
            optimizer_path.display(),
            inactive.len(),
            trainer.batches_inactive.len()
        );
    }
    trainer.batches_inactive = inactive;
    if let Some(var) = &trainer.log_threshold {
        let saved = tensors
            .get(LOG_THRESHOLD)
            .with_context(|| format!("{} has no {LOG_THRESHOLD}", optimizer_path.display()))?;
        if saved.dims() != var.dims() {
            bail!(
                "{}: {LOG_THRESHOLD} is {:?}, expected {:?}",
                optimizer_path.display(),
                saved.dims(),
                var.dims()
            );
        }
        var.set(&saved.to_dtype(DType::F32)?.to_device(device)?)?;
    }
    trainer.threshold = state.threshold;
    trainer.step = state.step;
    let position = RunPosition {
        tokens: state.tokens,
        elapsed_s: state.elapsed_s,
    };
    Ok((trainer, position, meta))
}
