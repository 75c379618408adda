//! saectl's checkpoint folder (DESIGN §3.1): SAELens-readable, plus what saectl needs.
//!
//! ```text
//! <dir>/cfg.json                  SAELens field names and meanings (pre-6.0 flat layout,
//!                                 which SAELens 6 still reads and converts)
//! <dir>/sae_weights.safetensors   W_enc, W_dec, b_enc, b_dec (+ threshold)
//! <dir>/saectl.json               format version, the full SaeConfig, open training fields
//! ```
//! BatchTopK and Matryoshka are written to `cfg.json` as `jumprelu` with `threshold` = θ on
//! every feature — SAELens's own inference form of a BatchTopK SAE — so SAELens encodes them
//! exactly as saectl does; `saectl.json` keeps the real kind. Every file is written to a
//! temporary name and renamed.
//!
//! `cfg.json` also says how the training text was packed, in the fields SAELens's
//! `ActivationsStore` reads ([`packing_fields`]), so that a SAELens user regenerates the activations
//! saectl trained on: one BOS before every document, documents concatenated across rows.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::config::{dtype_name, SaeConfig, SaeKind};
use super::encode::Sae;
use super::weights::SaeWeights;
use crate::util::atomic::{sync_dir, sync_parent, write_atomic, write_json_atomic};

pub const CFG_FILE: &str = "cfg.json";
pub const WEIGHTS_FILE: &str = "sae_weights.safetensors";
pub const SAECTL_FILE: &str = "saectl.json";
pub const FORMAT_VERSION: u32 = 1;

/// The contents of `saectl.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format_version: u32,
    pub sae: SaeConfig,
    /// Tokens per sequence the SAE was trained on (SAELens `context_size`).
    #[serde(default)]
    pub context_size: Option<usize>,
    /// Where the training text came from (SAELens `dataset_path`).
    #[serde(default)]
    pub dataset_path: Option<String>,
    /// Open room for the trainer: step, tokens seen, the resolved training config, …
    #[serde(default)]
    pub training: Map<String, Value>,
}

impl CheckpointMeta {
    pub fn new(sae: SaeConfig) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            sae,
            context_size: None,
            dataset_path: None,
            training: Map::new(),
        }
    }
}

/// Writes `sae` into `dir` (created if needed). `meta.sae` is replaced by `sae`'s config.
pub fn save(dir: &Path, sae: &Sae, meta: &CheckpointMeta) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create checkpoint folder {}", dir.display()))?;
    let meta = CheckpointMeta {
        format_version: FORMAT_VERSION,
        sae: sae.config().clone(),
        ..meta.clone()
    };
    let tensors = sae
        .weights()
        .named()
        .into_iter()
        .map(|(name, t)| Ok((name, t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(tensors, None)
        .with_context(|| format!("failed to serialize the weights for {}", dir.display()))?;
    write_atomic(&dir.join(WEIGHTS_FILE), &bytes)?;
    write_json_atomic(&dir.join(CFG_FILE), &sae_lens_cfg(&meta))?;
    // saectl.json last: its presence marks a complete checkpoint.
    write_json_atomic(&dir.join(SAECTL_FILE), &meta)?;
    // A checkpoint reported as written must survive a power loss: sync its renames (and the
    // files a training checkpoint put there before), and its entry in a parent just made.
    sync_dir(dir)?;
    sync_parent(dir)
}

/// Reads a checkpoint written by [`save`], converting the weights to `dtype` on `device`.
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<(Sae, CheckpointMeta)> {
    let meta_path = dir.join(SAECTL_FILE);
    let text = std::fs::read_to_string(&meta_path)
        .with_context(|| format!("failed to read {}", meta_path.display()))?;
    let mut meta: CheckpointMeta = serde_json::from_str(&text)
        .with_context(|| format!("failed to parse {}", meta_path.display()))?;
    if meta.format_version > FORMAT_VERSION {
        bail!(
            "{} has format version {}; this saectl reads up to {FORMAT_VERSION}",
            meta_path.display(),
            meta.format_version
        );
    }
    if !dir.join(CFG_FILE).is_file() {
        bail!("checkpoint {} has no {CFG_FILE}", dir.display());
    }
    meta.sae.dtype = dtype;
    let mut tensors = read_safetensors(&dir.join(WEIGHTS_FILE))?;
    let weights = take_weights(&mut tensors, &meta.sae, &dir.join(WEIGHTS_FILE), device)?;
    let sae = Sae::new(meta.sae.clone(), weights)
        .with_context(|| format!("checkpoint {} is inconsistent", dir.display()))?;
    Ok((sae, meta))
}

/// All tensors of a safetensors file, on the CPU, with the file named in errors.
pub(crate) fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        bail!("missing weights file {}", path.display());
    }
    candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("failed to read {}", path.display()))
}

/// Takes the SAELens-named tensors out of `tensors`, checks their dtypes (floats only) and
/// converts them to `cfg.dtype` on `device`. `threshold` is taken when the kind has one.
pub(crate) fn take_weights(
    tensors: &mut HashMap<String, Tensor>,
    cfg: &SaeConfig,
    file: &Path,
    device: &Device,
) -> Result<SaeWeights> {
    let mut take = |name: &str| -> Result<Tensor> {
        let tensor = tensors
            .remove(name)
            .with_context(|| format!("{} has no tensor {name}", file.display()))?;
        convert(tensor, name, file, cfg.dtype, device)
    };
    let weights = SaeWeights {
        w_enc: take("W_enc")?,
        w_dec: take("W_dec")?,
        b_enc: take("b_enc")?,
        b_dec: take("b_dec")?,
        threshold: cfg
            .kind
            .has_threshold()
            .then(|| take("threshold"))
            .transpose()?,
    };
    weights
        .check(cfg)
        .with_context(|| format!("in {}", file.display()))?;
    Ok(weights)
}

/// Float tensors convert to `dtype` (f16/bf16 checkpoints widen to f32); integers are refused.
pub(crate) fn convert(
    tensor: Tensor,
    name: &str,
    file: &Path,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    if !tensor.dtype().is_float() {
        bail!(
            "tensor {name} in {} has dtype {:?}; SAE weights must be floating point",
            file.display(),
            tensor.dtype()
        );
    }
    Ok(tensor.to_dtype(dtype)?.to_device(device)?)
}

/// How saectl packs text (docs/data.md §3–4), in SAELens's `cfg.json` names: no BOS forced at
/// the start of a row (`prepend_bos: false` — SAELens's `true` means a BOS opening every row),
/// a BOS before every document (`sequence_separator_token: "bos"`), documents concatenated
/// across rows, every position trained on (BOS included), and the model's residual stream as
/// Hugging Face computes it (TransformerLens must not centre the writing weights).
pub fn packing_fields() -> Map<String, Value> {
    let fields = json!({
        "prepend_bos": false,
        "sequence_separator_token": "bos",
        "disable_concat_sequences": false,
        "exclude_special_tokens": false,
        "seqpos_slice": [null],
        "model_class_name": "HookedTransformer",
        "model_from_pretrained_kwargs": { "center_writing_weights": false },
    });
    match fields {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// `cfg.json` in SAELens's (pre-6.0, flat) layout.
fn sae_lens_cfg(meta: &CheckpointMeta) -> Value {
    let cfg = &meta.sae;
    let (architecture, activation_fn) = match cfg.kind {
        SaeKind::Relu => ("standard", "relu"),
        SaeKind::TopK => ("topk", "topk"),
        SaeKind::JumpRelu | SaeKind::BatchTopK | SaeKind::Matryoshka => ("jumprelu", "relu"),
    };
    let kwargs = match (cfg.kind, cfg.k) {
        (SaeKind::TopK, Some(k)) => json!({ "k": k }),
        _ => json!({}),
    };
    let mut out = json!({
        "architecture": architecture,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": dtype_name::to_str(cfg.dtype),
        "device": "cpu",
        "model_name": cfg.model_name,
        "hook_name": cfg.hook_name,
        "hook_layer": cfg.hook_name.as_deref().and_then(hook_layer),
        "hook_head_index": null,
        "activation_fn_str": activation_fn,
        "activation_fn_kwargs": kwargs,
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "finetuning_scaling_factor": false,
        "normalize_activations": cfg.normalization.sae_lens_name(),
        "context_size": meta.context_size,
        "dataset_path": meta.dataset_path,
        "sae_lens_training_version": null,
    });
    for (key, value) in packing_fields() {
        out[key] = value;
    }
    if let (SaeKind::TopK, Some(k)) = (cfg.kind, cfg.k) {
        out["k"] = json!(k);
    }
    if let Some(out_hook) = &cfg.hook_name_out {
        // SAELens's transcoder fields; every hook point saectl reads has width d_model.
        out["hook_name_out"] = json!(out_hook);
        out["hook_layer_out"] = json!(hook_layer(out_hook));
        out["hook_head_index_out"] = Value::Null;
        out["d_out"] = json!(cfg.d_in);
    }
    out
}

/// The layer of a TransformerLens hook name (`blocks.12.hook_resid_post` → 12).
pub fn hook_layer(hook_name: &str) -> Option<usize> {
    hook_name
        .strip_prefix("blocks.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}
