//! Gemma-2 configuration, read from a Hugging Face `config.json`.
//!
//! candle-transformers' `gemma2::Config` has most of these fields, but not `layer_types`,
//! `rope_parameters` (transformers ≥ 5 writes `rope_theta` there), `tie_word_embeddings` or a
//! fractional `query_pre_attn_scalar`, so saectl keeps its own struct. Defaults for absent
//! fields are those of Hugging Face's `Gemma2Config`, so a config means what it means there.

use candle_nn::Activation;
use serde::Deserialize;

/// The attention pattern of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerType {
    /// Causal attention restricted to the last `sliding_window` positions (self included).
    SlidingAttention,
    /// Causal attention over the whole sequence.
    FullAttention,
}

/// Rotary-embedding parameters as transformers ≥ 5 writes them.
#[derive(Clone, Debug, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
}

/// The fields of a Gemma-2 `config.json` that the forward pass uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Gemma2Config {
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    #[serde(default = "default_activation")]
    pub hidden_activation: Activation,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// transformers < 5 writes `rope_theta` at the top level; ≥ 5 inside `rope_parameters`.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// Attention scores are scaled by `query_pre_attn_scalar^-0.5` (not `head_dim^-0.5`).
    #[serde(default = "default_query_pre_attn_scalar")]
    pub query_pre_attn_scalar: f64,
    #[serde(default = "default_sliding_window")]
    pub sliding_window: Option<usize>,
    /// Per-layer pattern; when absent, even layers slide and odd layers are global (as HF).
    #[serde(default)]
    pub layer_types: Option<Vec<LayerType>>,
    #[serde(default = "default_attn_softcap")]
    pub attn_logit_softcapping: Option<f64>,
    #[serde(default = "default_final_softcap")]
    pub final_logit_softcapping: Option<f64>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub use_bidirectional_attention: Option<bool>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
}

fn default_activation() -> Activation {
    Activation::GeluPytorchTanh
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_query_pre_attn_scalar() -> f64 {
    256.0
}
fn default_sliding_window() -> Option<usize> {
    Some(4096)
}
fn default_attn_softcap() -> Option<f64> {
    Some(50.0)
}
fn default_final_softcap() -> Option<f64> {
    Some(30.0)
}
fn default_true() -> bool {
    true
}

const DEFAULT_ROPE_THETA: f64 = 10_000.0;

impl Gemma2Config {
    /// Parses and validates the text of a `config.json`.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("not a valid Gemma-2 config.json: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects configs this forward pass would compute wrongly rather than silently.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if let Some(kind) = &self.model_type {
            if kind != "gemma2" {
                bail!("model_type is `{kind}`, but saectl's forward pass supports only `gemma2`");
            }
        }
        if self.num_hidden_layers == 0 || self.hidden_size == 0 || self.vocab_size == 0 {
            bail!("config has zero layers, hidden size or vocabulary");
        }
        let (heads, kv_heads) = (self.num_attention_heads, self.num_key_value_heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            bail!("num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({kv_heads})");
        }
        if self.head_dim == 0 || self.head_dim % 2 != 0 {
            bail!(
                "head_dim ({}) must be even for rotary embeddings",
                self.head_dim
            );
        }
        if self.query_pre_attn_scalar <= 0.0 {
            bail!("query_pre_attn_scalar must be positive");
        }
        if let Some(rope) = &self.rope_parameters {
            if let Some(kind) = rope.rope_type.as_deref() {
                if kind != "default" {
                    bail!("rope_type `{kind}` is not supported (only `default`)");
                }
            }
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                bail!(
                    "layer_types has {} entries for {} layers",
                    types.len(),
                    self.num_hidden_layers
                );
            }
        }
        if self.use_bidirectional_attention == Some(true) {
            bail!("use_bidirectional_attention is not supported (saectl runs causal Gemma-2)");
        }
        if self.sliding_window == Some(0) {
            bail!("sliding_window must be positive");
        }
        Ok(())
    }

    /// Base of the rotary embedding's frequencies.
    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|rope| rope.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(DEFAULT_ROPE_THETA)
    }

    /// Attention pattern of `layer`: HF's default slides on even layers (`layer % 2 == 0`).
    pub fn layer_type(&self, layer: usize) -> LayerType {
        match &self.layer_types {
            Some(types) => types[layer],
            None if layer % 2 == 0 => LayerType::SlidingAttention,
            None => LayerType::FullAttention,
        }
    }

    /// The window of `layer`, or `None` for global attention.
    pub fn sliding_window_of(&self, layer: usize) -> Option<usize> {
        match self.layer_type(layer) {
            LayerType::SlidingAttention => self.sliding_window,
            LayerType::FullAttention => None,
        }
    }

    /// Attention-score scale `query_pre_attn_scalar^-0.5` (candle's gemma2 uses `head_dim`).
    pub fn attention_scale(&self) -> f64 {
        self.query_pre_attn_scalar.powf(-0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 4
        })
    }

    #[test]
    fn absent_fields_take_hugging_face_defaults() {
        let config = Gemma2Config::from_json(&minimal().to_string()).unwrap();
        assert_eq!(config.query_pre_attn_scalar, 256.0);
        assert_eq!(config.sliding_window, Some(4096));
        assert_eq!(config.attn_logit_softcapping, Some(50.0));
        assert_eq!(config.final_logit_softcapping, Some(30.0));
        assert_eq!(config.rope_theta(), 10_000.0);
        assert!(config.tie_word_embeddings);
        let types: Vec<_> = (0..3).map(|l| config.layer_type(l)).collect();
        use LayerType::*;
        assert_eq!(types, [SlidingAttention, FullAttention, SlidingAttention]);
    }

    #[test]
    fn explicit_null_disables_softcapping() {
        let mut json = minimal();
        json["final_logit_softcapping"] = serde_json::Value::Null;
        json["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 5e5});
        let config = Gemma2Config::from_json(&json.to_string()).unwrap();
        assert_eq!(config.final_logit_softcapping, None);
        assert_eq!(config.rope_theta(), 5e5);
    }

    #[test]
    fn unsupported_configs_are_rejected() {
        let cases = [
            (
                "model_type",
                serde_json::json!("llama"),
                "supports only `gemma2`",
            ),
            ("num_key_value_heads", serde_json::json!(3), "multiple"),
            (
                "layer_types",
                serde_json::json!(["full_attention"]),
                "layer_types",
            ),
        ];
        for (field, value, message) in cases {
            let mut json = minimal();
            json[field] = value;
            let err = Gemma2Config::from_json(&json.to_string()).unwrap_err();
            assert!(err.to_string().contains(message), "{field}: {err}");
        }
        let err = Gemma2Config::from_json("{}").unwrap_err().to_string();
        assert!(err.contains("vocab_size"), "{err}");
    }
}
