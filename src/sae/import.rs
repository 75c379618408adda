//! Reading published SAEs: SAELens folders and Gemma Scope `params.npz`, plus [`load_any`].
//!
//! SAELens (`cfg.json` + `sae_weights.safetensors`): architectures `standard` (ReLU; also
//! `standard` with `activation_fn` `topk`, the pre-5.0 spelling of TopK), `topk`, `batchtopk`
//! (θ from `threshold` or the training buffer `topk_threshold`) and `jumprelu`. Both the flat
//! pre-6.0 `cfg.json` and 6.x's nested `metadata` are read. `normalize_activations`: `none`,
//! `constant_norm_rescale` and `layer_norm` are applied per token; `expected_average_only_in`
//! is refused (its dataset-wide factor is not stored in the folder, so encoding would be
//! silently wrong); so are `finetuning_scaling_factor` and `hook_z` reshaping.
//!
//! Gemma Scope (`params.npz`, JumpReLU): `W_enc, W_dec, b_enc, b_dec, threshold` (lowercase
//! `w_` accepted), no `b_dec` on the input, no normalization; hook and model are read from the
//! path when it follows the Hub layout (`gemma-scope-2b-pt-res/layer_12/…`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use super::checkpoint::{self, convert, read_safetensors, take_weights, CFG_FILE, WEIGHTS_FILE};
use super::config::{Normalization, SaeConfig, SaeKind};
use super::encode::Sae;
use super::original::{is_original, load_original};
use super::weights::SaeWeights;

pub const GEMMA_SCOPE_FILE: &str = "params.npz";

/// The checkpoint formats saectl reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaeFormat {
    Saectl,
    SaeLens,
    GemmaScope,
    /// The Python original's torch state dict and config (`super::original`).
    Original,
}

/// Which format `path` holds (a folder, or a `.npz` file).
pub fn detect(path: &Path) -> Result<SaeFormat> {
    if path.is_file() && path.extension().is_some_and(|e| e == "npz") {
        return Ok(SaeFormat::GemmaScope);
    }
    if path.is_file() && is_original(path) {
        return Ok(SaeFormat::Original);
    }
    if !path.is_dir() {
        bail!("SAE checkpoint {} does not exist", path.display());
    }
    if path.join(checkpoint::SAECTL_FILE).is_file() {
        Ok(SaeFormat::Saectl)
    } else if path.join(CFG_FILE).is_file() {
        Ok(SaeFormat::SaeLens)
    } else if path.join(GEMMA_SCOPE_FILE).is_file() {
        Ok(SaeFormat::GemmaScope)
    } else if is_original(path) {
        Ok(SaeFormat::Original)
    } else {
        bail!(
            "{} is not an SAE checkpoint: expected saectl.json, cfg.json (SAELens), \
             params.npz (Gemma Scope) or sae.pt (the Python original)",
            path.display()
        )
    }
}

/// Loads any supported checkpoint as f32 on `device`.
pub fn load_any(path: &Path, device: &Device) -> Result<Sae> {
    let dtype = DType::F32;
    match detect(path)? {
        SaeFormat::Saectl => Ok(checkpoint::load(path, dtype, device)?.0),
        SaeFormat::SaeLens => load_sae_lens(path, dtype, device),
        SaeFormat::GemmaScope => load_gemma_scope(path, dtype, device),
        SaeFormat::Original => load_original(path, dtype, device),
    }
}

/// Loads a SAELens folder.
pub fn load_sae_lens(dir: &Path, dtype: DType, device: &Device) -> Result<Sae> {
    let cfg_path = dir.join(CFG_FILE);
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("failed to read {}", cfg_path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("failed to parse {}", cfg_path.display()))?;
    let mut cfg =
        parse_sae_lens_cfg(&json).with_context(|| format!("in {}", cfg_path.display()))?;
    cfg.dtype = dtype;
    let file = dir.join(WEIGHTS_FILE);
    let mut tensors = read_safetensors(&file)?;
    if let Some(scale) = tensors.remove("scaling_factor") {
        check_unit_scaling(&scale, &file)?;
    }
    if cfg.kind == SaeKind::BatchTopK && !tensors.contains_key("threshold") {
        // A training checkpoint: the scalar θ buffer, broadcast as SAELens does on saving.
        if let Some(theta) = tensors.remove("topk_threshold") {
            let theta = convert(theta, "topk_threshold", &file, DType::F32, &Device::Cpu)?;
            let theta = theta.flatten_all()?.to_vec1::<f32>()?;
            let value = theta.first().copied().context("topk_threshold is empty")?;
            let filled = Tensor::full(value, cfg.d_sae, &Device::Cpu)?;
            tensors.insert("threshold".into(), filled);
        }
    }
    let weights = take_weights(&mut tensors, &cfg, &file, device)?;
    Sae::new(cfg, weights).with_context(|| format!("SAELens folder {}", dir.display()))
}

/// SAELens `cfg.json` (flat pre-6.0 or 6.x with `metadata`) → our config (dtype left f32).
pub fn parse_sae_lens_cfg(json: &Value) -> Result<SaeConfig> {
    let meta = json.get("metadata").or_else(|| json.get("meta"));
    let field = |name: &str| json.get(name).or_else(|| meta.and_then(|m| m.get(name)));
    let string = |name: &str| field(name).and_then(Value::as_str).map(str::to_owned);
    let size = |name: &str| -> Result<usize> {
        let value = field(name).and_then(Value::as_u64);
        Ok(value.with_context(|| format!("{name} is missing or not a positive integer"))? as usize)
    };
    let (d_in, d_sae) = (size("d_in")?, size("d_sae")?);
    let architecture = string("architecture").unwrap_or_else(|| "standard".into());
    let activation = string("activation_fn_str")
        .or_else(|| string("activation_fn"))
        .unwrap_or_else(|| "relu".into());
    let k = field("k")
        .or_else(|| field("activation_fn_kwargs").and_then(|kw| kw.get("k")))
        .and_then(Value::as_f64)
        .map(|k| k.round() as usize); // BatchTopK's k is a float average in SAELens
    let kind = match (architecture.as_str(), activation.as_str()) {
        ("standard", "relu") => SaeKind::Relu,
        ("standard" | "topk", "topk") | ("topk", "relu") => SaeKind::TopK,
        ("batchtopk", _) => SaeKind::BatchTopK,
        ("jumprelu", "relu") => SaeKind::JumpRelu,
        (arch, act) => bail!(
            "unsupported SAELens architecture {arch:?} with activation {act:?} (saectl reads \
             standard, topk, batchtopk and jumprelu with ReLU)"
        ),
    };
    let mut cfg = SaeConfig::new(kind, d_in, d_sae, k.filter(|_| kind.uses_k()));
    cfg.hook_name = string("hook_name").or_else(|| string("hook_point"));
    cfg.hook_name_out = string("hook_name_out");
    cfg.model_name = string("model_name");
    cfg.apply_b_dec_to_input = field("apply_b_dec_to_input")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    cfg.normalization = parse_normalization(field("normalize_activations"))?;
    if field("finetuning_scaling_factor").and_then(Value::as_bool) == Some(true) {
        bail!("finetuning_scaling_factor is not supported");
    }
    if let Some(reshape) = string("reshape_activations").filter(|r| r != "none") {
        bail!("reshape_activations {reshape:?} is not supported (only \"none\")");
    }
    cfg.validate()?;
    Ok(cfg)
}

fn parse_normalization(value: Option<&Value>) -> Result<Normalization> {
    Ok(match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Normalization::None,
        Some(Value::String(s)) if s == "none" => Normalization::None,
        Some(Value::String(s)) if s == "constant_norm_rescale" => {
            Normalization::ConstantNormRescale
        }
        Some(Value::String(s)) if s == "layer_norm" => Normalization::LayerNorm,
        // `true` is the old spelling of expected_average_only_in.
        Some(Value::Bool(true)) => bail!(unsupported_expected_average()),
        Some(Value::String(s)) if s == "expected_average_only_in" => {
            bail!(unsupported_expected_average())
        }
        Some(other) => bail!("unknown normalize_activations value {other}"),
    })
}

fn unsupported_expected_average() -> String {
    "normalize_activations \"expected_average_only_in\" is not supported: the dataset-wide \
     scaling factor it needs is not stored in the folder (fold it into the weights first)"
        .into()
}

/// SAELens drops an all-ones `scaling_factor`; anything else would change the decoder.
fn check_unit_scaling(scale: &Tensor, file: &Path) -> Result<()> {
    let values = scale
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if values.iter().any(|&v| v != 1.0) {
        bail!(
            "{} has a scaling_factor that is not all ones (finetuning scaling is not supported)",
            file.display()
        );
    }
    Ok(())
}

/// Loads a Gemma Scope `params.npz` (the file, or a folder holding it).
pub fn load_gemma_scope(path: &Path, dtype: DType, device: &Device) -> Result<Sae> {
    let file: PathBuf = if path.is_dir() {
        path.join(GEMMA_SCOPE_FILE)
    } else {
        path.to_path_buf()
    };
    let entries = super::npz::read_npz(&file)
        .with_context(|| format!("failed to read Gemma Scope weights {}", file.display()))?;
    let mut tensors: std::collections::HashMap<String, Tensor> = entries
        .into_iter()
        .map(|(name, t)| match name.strip_prefix("w_") {
            Some(rest) => (format!("W_{rest}"), t),
            None => (name, t),
        })
        .collect();
    let w_enc = tensors
        .get("W_enc")
        .with_context(|| format!("{} has no tensor W_enc", file.display()))?;
    let (d_in, d_sae) = w_enc
        .dims2()
        .with_context(|| format!("W_enc in {} is not a matrix", file.display()))?;
    let mut cfg = SaeConfig::new(SaeKind::JumpRelu, d_in, d_sae, None);
    cfg.apply_b_dec_to_input = false;
    cfg.dtype = dtype;
    (cfg.hook_name, cfg.model_name) = gemma_scope_origin(&file);
    let weights: SaeWeights = take_weights(&mut tensors, &cfg, &file, device)?;
    Sae::new(cfg, weights).with_context(|| format!("Gemma Scope file {}", file.display()))
}

/// Hook and model from a Hub-style path (`…gemma-scope-2b-pt-res…/layer_12/width_16k/…`),
/// following SAELens's Gemma Scope loader; `None` where the path does not say.
pub fn gemma_scope_origin(path: &Path) -> (Option<String>, Option<String>) {
    let text = path.to_string_lossy();
    let layer = text
        .split(['/', '\\'])
        .find_map(|part| part.strip_prefix("layer_")?.parse::<usize>().ok());
    let repo = text
        .split(['/', '\\'])
        .find(|part| part.contains("gemma-scope-"))
        .unwrap_or("");
    let hook = match (layer, repo) {
        (Some(l), r) if r.contains("-res") => Some(format!("blocks.{l}.hook_resid_post")),
        (Some(l), r) if r.contains("-mlp") => Some(format!("blocks.{l}.hook_mlp_out")),
        _ => None,
    };
    let model = ["27b", "9b", "2b"]
        .into_iter()
        .find(|size| repo.contains(&format!("-{size}-")))
        .map(|size| {
            let suffix = if repo.contains("-it-") { "-it" } else { "" };
            format!("google/gemma-2-{size}{suffix}")
        });
    (hook, model)
}
