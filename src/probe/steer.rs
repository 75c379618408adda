//! `steer`: what a feature does when pushed. The model generates from a prompt twice — as it
//! is, and with the residual stream at the SAE's hook changed along the features' decoder
//! directions on every position (the prompt's and each generated token's) — and both
//! continuations are returned side by side.
//!
//! Both modes change the activation `a_f` of the chosen latents and move the residual by the
//! change in the SAE's reconstruction, in the residual stream's own units (docs/probe.md):
//! - add (strength `S_f`): `a_f → a_f + S_f`, so `x' = x + Σ_f S_f · W_dec[f] · s`;
//! - clamp (value `c_f`): `a_f → c_f`, so `x' = x + Σ_f (c_f − a_f) · W_dec[f] · s`, with `a_f`
//!   the SAE's inference-mode activation of this token.
//!
//! `s` undoes the SAE's input normalization for the token: 1 for an SAE without one (SAELens's
//! default, Gemma Scope), where add is exactly `x + S · W_dec[f]` — the vector a Hugging Face
//! forward hook adds in `scripts/make_steering_reference.py`; the token's standard deviation
//! for `layer_norm` (saectl's `input_unit_norm`); `‖x‖ / √d_in` for `constant_norm_rescale`.
//! So a strength is in the units of the feature's activations, which `inspect` and the samples
//! folder show. The SAE's error term `x − x̂` is kept: only the chosen latents change.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use super::Probe;
use crate::model::{
    generate, Gemma2, GenerateConfig, Generated, HookEdit, HookPoint, Sampling, StopReason,
};
use crate::sae::{Denorm, Normalization, Sae};

/// Add to the feature's direction, or set its activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SteerMode {
    Add,
    Clamp,
}

/// One feature and its strength (add) or activation (clamp).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FeatureEdit {
    pub feature: u32,
    pub value: f32,
}

/// The edits and the generation settings shared by both runs.
#[derive(Clone, Debug, PartialEq)]
pub struct SteerConfig {
    pub mode: SteerMode,
    pub edits: Vec<FeatureEdit>,
    /// Its stop tokens are extended with the tokenizer's special tokens.
    pub generate: GenerateConfig,
}

/// The change to the residual stream, ready to apply at the hook.
pub struct Steering {
    mode: SteerMode,
    sae: Sae,
    /// The features `[m]` (u32), their values `[1, m]` and decoder rows `[m, d_in]`, f32 on
    /// the SAE's device.
    features: Tensor,
    values: Tensor,
    rows: Tensor,
    /// Add without input normalization: `Σ S_f W_dec[f]` `[d_in]` in the model's dtype and on
    /// its device, added as it is (no encoding needed).
    plain_vector: Option<Tensor>,
}

impl Steering {
    /// Checks the edits against the SAE and precomputes what every position needs; `dtype`
    /// and `device` are the model's.
    pub fn new(
        sae: &Sae,
        mode: SteerMode,
        edits: &[FeatureEdit],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        check_edits(sae.config().d_sae, mode, edits)?;
        let w_dec = sae.weights().w_dec.to_dtype(DType::F32)?; // [d_sae, d_in]
        let ids: Vec<u32> = edits.iter().map(|e| e.feature).collect();
        let features = Tensor::new(ids.as_slice(), w_dec.device())?;
        let rows = w_dec.index_select(&features, 0)?; // [m, d_in]
        let values: Vec<f32> = edits.iter().map(|e| e.value).collect();
        let values = Tensor::new(values.as_slice(), w_dec.device())?.unsqueeze(0)?; // [1, m]
        let plain = mode == SteerMode::Add && sae.config().normalization == Normalization::None;
        let plain_vector = if plain {
            let vector = values.matmul(&rows)?.squeeze(0)?; // [d_in]
            Some(vector.to_device(device)?.to_dtype(dtype)?)
        } else {
            None
        };
        Ok(Self {
            mode,
            sae: sae.clone(),
            features,
            values,
            rows,
            plain_vector,
        })
    }

    /// The steered activation `[batch, seq, d_in]` → the same shape and dtype.
    pub fn apply(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(vector) = &self.plain_vector {
            return xs.broadcast_add(vector);
        }
        let (normed, denorm) = self.sae.normalize_input(xs)?; // [n, d_in] f32
        let change = match self.mode {
            SteerMode::Add => self.values.clone(), // [1, m]
            SteerMode::Clamp => {
                let acts = self.sae.activate(&self.sae.pre_activations(&normed)?)?; // [n, d_sae]
                let current = acts.index_select(&self.features, 1)?; // [n, m]
                self.values.broadcast_sub(&current)?
            }
        };
        let delta = change.matmul(&self.rows)?; // [n or 1, d_in], normalized space
        let delta = match denorm {
            Denorm::None => delta,
            Denorm::Scale(coeff) => delta.broadcast_div(&coeff)?,
            Denorm::Affine { std, .. } => delta.broadcast_mul(&std)?,
        };
        let delta = delta.broadcast_as(normed.shape())?.reshape(xs.shape())?;
        xs + delta.to_device(xs.device())?.to_dtype(xs.dtype())?
    }
}

fn check_edits(d_sae: usize, mode: SteerMode, edits: &[FeatureEdit]) -> Result<()> {
    if edits.is_empty() {
        bail!("no feature to steer");
    }
    for (i, edit) in edits.iter().enumerate() {
        if edit.feature as usize >= d_sae {
            bail!(
                "feature {} does not exist: the SAE has {d_sae} features",
                edit.feature
            );
        }
        if !edit.value.is_finite() {
            bail!("the value of feature {} is not finite", edit.feature);
        }
        if mode == SteerMode::Clamp && edits[..i].iter().any(|e| e.feature == edit.feature) {
            bail!("feature {} is clamped twice", edit.feature);
        }
    }
    Ok(())
}

/// Unsteered and steered generation from `prompt` ids: `(unsteered, steered)`.
pub fn steer_tokens(
    model: &Gemma2,
    hook: HookPoint,
    steering: &Steering,
    prompt: &[u32],
    config: &GenerateConfig,
) -> Result<(Generated, Generated)> {
    let plain = generate(model, prompt, config, None).context("unsteered generation failed")?;
    let apply = |xs: &Tensor| steering.apply(xs);
    let edit = HookEdit { hook, edit: &apply };
    let steered =
        generate(model, prompt, config, Some(&edit)).context("steered generation failed")?;
    Ok((plain, steered))
}

/// A continuation of the prompt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Continuation {
    pub tokens: Vec<u32>,
    /// The tokens decoded, special tokens left out.
    pub text: String,
    pub stop: StopReason,
}

/// One prompt, continued without and with steering.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SteeredPrompt {
    pub prompt: String,
    pub prompt_tokens: Vec<u32>,
    pub unsteered: Continuation,
    pub steered: Continuation,
}

/// Everything `steer` produced, serde-serialisable (`saectl steer --json` writes it).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SteerResult {
    pub hook: String,
    pub mode: SteerMode,
    pub edits: Vec<FeatureEdit>,
    pub max_new_tokens: usize,
    /// `greedy`, or the temperature, top-k and seed of the sampling.
    pub sampling: String,
    pub prompts: Vec<SteeredPrompt>,
}

/// Steers generation from each of `prompts` (read as documents: BOS, then the text), calling
/// `on_prompt(i)` after prompt `i`.
pub fn steer(
    probe: &Probe,
    prompts: &[String],
    config: &SteerConfig,
    on_prompt: &mut dyn FnMut(usize),
) -> Result<SteerResult> {
    let model = &probe.model;
    let steering = Steering::new(
        &probe.sae,
        config.mode,
        &config.edits,
        model.dtype(),
        model.device(),
    )?;
    let mut generation = config.generate.clone();
    generation
        .stop_tokens
        .extend(probe.tokenizer.special_token_ids());
    let continuation = |g: Generated| Continuation {
        text: probe.decode(&g.tokens),
        tokens: g.tokens,
        stop: g.stop,
    };
    let mut results = Vec::with_capacity(prompts.len());
    for (i, prompt) in prompts.iter().enumerate() {
        let ids = probe.tokenize(prompt)?;
        let (plain, steered) = steer_tokens(model, probe.hook, &steering, &ids, &generation)
            .with_context(|| format!("prompt {} of {}", i + 1, prompts.len()))?;
        results.push(SteeredPrompt {
            prompt: prompt.clone(),
            prompt_tokens: ids,
            unsteered: continuation(plain),
            steered: continuation(steered),
        });
        on_prompt(i);
    }
    Ok(SteerResult {
        hook: probe.hook.to_string(),
        mode: config.mode,
        edits: config.edits.clone(),
        max_new_tokens: config.generate.max_new_tokens,
        sampling: describe_sampling(&config.generate.sampling),
        prompts: results,
    })
}

fn describe_sampling(sampling: &Sampling) -> String {
    match sampling {
        Sampling::Greedy => "greedy".into(),
        Sampling::Sample {
            temperature,
            top_k: 0,
            seed,
        } => format!("sampling at temperature {temperature}, seed {seed}"),
        Sampling::Sample {
            temperature,
            top_k,
            seed,
        } => format!("sampling at temperature {temperature} from the top {top_k}, seed {seed}"),
    }
}
