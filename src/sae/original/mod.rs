//! Checkpoints of the Python original: a torch state dict (`sae.pt`) beside its `config.json`.
//!
//! The original saved `torch.save(model.state_dict())` in `checkpoints/{name}_{step}/sae.pt`
//! (later `results/{model}/layer{L}/{steps}/checkpoints/{step_N,final}.pt` with `config.json`
//! in the run folder). The state dict is read with candle's pickle reader (no Python, and no
//! code in the file is run: only tensors are taken out of it); the config says what the
//! tensors mean. Its classes, and how saectl encodes them exactly as they did at inference:
//!
//! | state dict | class | inference |
//! |---|---|---|
//! | `jumprelu.log_threshold` | `JumpReLUSAE` | `relu(x·W_enc + b_enc)` kept above `exp(log θ_f)` (no `b_dec` on the input) |
//! | scalar `threshold`, transcoder config | `MatryoshkaTranscoder` | `relu(x·W_enc + b_enc)` kept above θ |
//! | scalar `threshold`, groups | `GlobalBatchTopKMatryoshkaSAE` | `relu((x − b_dec)·W_enc)` kept above θ |
//! | scalar `threshold` | `BatchTopKSAE` | the same |
//! | none, `sae_type` `vanilla` | `VanillaSAE` | `relu((x − b_dec)·W_enc + b_enc)` |
//! | none | `TopKSAE` | the `top_k` largest of `relu((x − b_dec)·W_enc)` |
//!
//! The TopK-family encoders of the original never used `b_enc` (it stays in the state dict,
//! untrained): it is read as zero for them. `input_unit_norm` is [`Normalization::LayerNorm`].
//! A transcoder's `W_dec [F, d_out]` must have `d_out = d_in` (every hook point saectl reads
//! is `d_model` wide).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::{Map, Value};

use super::checkpoint::take_weights;
use super::config::{Normalization, SaeConfig, SaeKind};
use super::encode::Sae;

/// The state dict's file name in the original's `checkpoints/{name}_{step}/` folders.
pub const ORIGINAL_STATE_FILE: &str = "sae.pt";
/// The config the original wrote beside it.
pub const ORIGINAL_CONFIG_FILE: &str = "config.json";
const LOG_THRESHOLD: &str = "jumprelu.log_threshold";

/// Whether `path` is one of the original's checkpoints: a folder holding `sae.pt`, or a
/// `.pt` / `.pth` file.
pub fn is_original(path: &Path) -> bool {
    if path.is_dir() {
        return path.join(ORIGINAL_STATE_FILE).is_file();
    }
    path.is_file() && path.extension().is_some_and(|e| e == "pt" || e == "pth")
}

/// Loads one of the original's checkpoints as `dtype` on `device`.
pub fn load_original(path: &Path, dtype: DType, device: &Device) -> Result<Sae> {
    let (state_file, config_file) = files_of(path)?;
    let text = std::fs::read_to_string(&config_file)
        .with_context(|| format!("failed to read {}", config_file.display()))?;
    let config: Map<String, Value> = serde_json::from_str(&text)
        .with_context(|| format!("failed to parse {}", config_file.display()))?;
    let mut tensors: HashMap<String, Tensor> = candle_core::pickle::read_all(&state_file)
        .with_context(|| {
            format!(
                "failed to read the torch state dict {} (a zip file written by torch.save)",
                state_file.display()
            )
        })?
        .into_iter()
        .collect();
    let (mut cfg, ignores_b_enc) = sae_config(&config, &tensors)
        .with_context(|| format!("{} with {}", state_file.display(), config_file.display()))?;
    cfg.dtype = dtype;
    prepare_tensors(&mut tensors, &cfg, ignores_b_enc, &state_file)?;
    let weights = take_weights(&mut tensors, &cfg, &state_file, device)?;
    Sae::new(cfg, weights).with_context(|| format!("checkpoint {}", state_file.display()))
}

/// The state dict and its config: `DIR/sae.pt` + `DIR/config.json`, or a `.pt` file with
/// `config.json` beside it or, in the later layout (`RUN/checkpoints/final.pt`), in `RUN`.
fn files_of(path: &Path) -> Result<(PathBuf, PathBuf)> {
    if path.is_dir() {
        return Ok((
            path.join(ORIGINAL_STATE_FILE),
            existing_config(&[path.join(ORIGINAL_CONFIG_FILE)], path)?,
        ));
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![parent.join(ORIGINAL_CONFIG_FILE)];
    if parent.file_name().is_some_and(|name| name == "checkpoints") {
        if let Some(run) = parent.parent() {
            candidates.push(run.join(ORIGINAL_CONFIG_FILE));
        }
    }
    Ok((path.to_path_buf(), existing_config(&candidates, path)?))
}

fn existing_config(candidates: &[PathBuf], path: &Path) -> Result<PathBuf> {
    match candidates.iter().find(|c| c.is_file()) {
        Some(found) => Ok(found.clone()),
        None => bail!(
            "{} is a torch checkpoint of the Python original, but its {ORIGINAL_CONFIG_FILE} \
             (which says what the tensors are) is not beside it",
            path.display()
        ),
    }
}

/// The architecture from the state dict's keys and the config's `sae_type`, the rest of the
/// config as the original's classes read it, and whether their encoder ignored `b_enc`.
fn sae_config(
    config: &Map<String, Value>,
    tensors: &HashMap<String, Tensor>,
) -> Result<(SaeConfig, bool)> {
    let w_enc = tensors
        .get("W_enc")
        .context("the state dict has no W_enc")?;
    let (d_in, d_sae) = w_enc.dims2().context("W_enc is not a matrix")?;
    if let Some((_, d_out)) = tensors.get("W_dec").and_then(|w| w.dims2().ok()) {
        if d_out != d_in {
            bail!(
                "a transcoder from width {d_in} to width {d_out}: saectl reads hook points of \
                 one width (d_model)"
            );
        }
    }
    let sae_type = text(config, "sae_type").unwrap_or_default();
    let transcoder = sae_type.contains("transcoder") || config.contains_key("target_hook_point");
    let groups = group_sizes(config)?;
    let kind = if tensors.contains_key(LOG_THRESHOLD) {
        SaeKind::JumpRelu
    } else if tensors.contains_key("threshold") {
        match transcoder || !groups.is_empty() || sae_type.contains("matryoshka") {
            true => SaeKind::Matryoshka,
            false => SaeKind::BatchTopK,
        }
    } else if sae_type == "vanilla" || sae_type == "relu" {
        SaeKind::Relu
    } else if sae_type.contains("batch") || sae_type.contains("matryoshka") {
        bail!("sae_type is {sae_type:?}, but the state dict has no threshold");
    } else {
        SaeKind::TopK
    };
    let k = match kind.uses_k() {
        true => Some(integer(config, "top_k")?.context("the config has no top_k")?),
        false => None,
    };
    let mut cfg = SaeConfig::new(kind, d_in, d_sae, k);
    if kind == SaeKind::Matryoshka {
        // A transcoder with no prefixes recorded is one group (the whole dictionary).
        cfg.group_sizes = match groups.is_empty() {
            true => vec![d_sae],
            false => groups,
        };
    }
    cfg.apply_b_dec_to_input = !transcoder && kind != SaeKind::JumpRelu;
    // The transcoder read `input_unit_norm` with a default of false, the SAEs required it
    // (get_default_cfg sets true).
    let unit_norm = config.get("input_unit_norm").and_then(Value::as_bool);
    if unit_norm.unwrap_or(!transcoder) {
        cfg.normalization = Normalization::LayerNorm;
    }
    cfg.hook_name = text(config, "source_hook_point").or_else(|| text(config, "hook_point"));
    if transcoder {
        cfg.hook_name_out = text(config, "target_hook_point");
    }
    cfg.model_name = text(config, "model_name");
    cfg.validate()?;
    let ignores_b_enc = !transcoder && kind.uses_k();
    Ok((cfg, ignores_b_enc))
}

/// The state dict under saectl's names: `threshold [d_sae]` from the scalar θ or from
/// `exp(jumprelu.log_threshold)`, and `b_enc` zero where the original's encoder ignored it.
fn prepare_tensors(
    tensors: &mut HashMap<String, Tensor>,
    cfg: &SaeConfig,
    ignores_b_enc: bool,
    file: &Path,
) -> Result<()> {
    let d_sae = cfg.d_sae;
    if let Some(log_threshold) = tensors.remove(LOG_THRESHOLD) {
        let threshold = log_threshold.to_dtype(DType::F32)?.exp()?;
        tensors.insert("threshold".into(), threshold);
    } else if let Some(theta) = tensors.remove("threshold") {
        let values = theta
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let [value] = values[..] else {
            bail!(
                "{}: threshold holds {} values; the original's is one number",
                file.display(),
                values.len()
            );
        };
        tensors.insert(
            "threshold".into(),
            Tensor::full(value, d_sae, &Device::Cpu)?,
        );
    }
    if ignores_b_enc {
        tensors.insert(
            "b_enc".into(),
            Tensor::zeros(d_sae, DType::F32, &Device::Cpu)?,
        );
    }
    Ok(())
}

/// `group_sizes` (a list, or the string the original's first writer made of it), else the
/// transcoder's cumulative `prefix_sizes` turned into group sizes; empty when neither is set.
fn group_sizes(config: &Map<String, Value>) -> Result<Vec<usize>> {
    if let Some(groups) = list(config, "group_sizes")? {
        return Ok(groups);
    }
    let Some(prefixes) = list(config, "prefix_sizes")? else {
        return Ok(Vec::new());
    };
    let mut previous = 0;
    prefixes
        .iter()
        .map(|&end| {
            let size = end
                .checked_sub(previous)
                .context("prefix_sizes must increase")?;
            previous = end;
            Ok(size)
        })
        .collect()
}

/// A list of sizes written as a JSON list or as the `str()` of a Python list.
fn list(config: &Map<String, Value>, key: &str) -> Result<Option<Vec<usize>>> {
    let value = match config.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => serde_json::from_str(text)
            .with_context(|| format!("{key} {text:?} is not a list of sizes"))?,
        Some(value) => value.clone(),
    };
    let items = value
        .as_array()
        .with_context(|| format!("{key} is not a list"))?;
    items
        .iter()
        .map(|item| as_integer(item).with_context(|| format!("{key} holds {item}, not a size")))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// An integer key, also when the original wrote it as a float (`5e8`).
fn integer(config: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    config
        .get(key)
        .map(|value| as_integer(value).with_context(|| format!("{key} is {value}, not an integer")))
        .transpose()
}

fn as_integer(value: &Value) -> Option<usize> {
    let x = value.as_f64()?;
    (x >= 0.0 && x.fract() == 0.0).then_some(x as usize)
}

fn text(config: &Map<String, Value>, key: &str) -> Option<String> {
    config.get(key).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests;
