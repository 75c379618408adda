//! What an SAE is, independent of its weights: architecture, sizes, hook points, input handling.
//!
//! [`SaeConfig`] is plain data, validated once ([`SaeConfig::validate`]) before any tensor is
//! made, so that a bad `k` or `group_sizes` fails with a sentence instead of a shape error deep
//! in a matmul. It is serialized as-is into `saectl.json`; `cfg.json` (SAELens names) is derived
//! from it in [`super::checkpoint`].

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use candle_core::DType;
use serde::{Deserialize, Serialize};

/// The closed set of architectures. Names are the CLI's `--sae-type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaeKind {
    /// Training: global top `k·B` of a batch of `B` tokens. Inference: learned threshold.
    BatchTopK,
    /// The `k` largest pre-activations of every token, rectified.
    TopK,
    /// ReLU with an L1 penalty in training (the original's `vanilla`; SAELens `standard`).
    Relu,
    /// ReLU gated by a learned per-feature threshold (Gemma Scope).
    JumpRelu,
    /// BatchTopK whose loss averages the reconstructions of nested prefixes (`group_sizes`).
    Matryoshka,
}

impl SaeKind {
    pub const ALL: [SaeKind; 5] = [
        Self::BatchTopK,
        Self::TopK,
        Self::Relu,
        Self::JumpRelu,
        Self::Matryoshka,
    ];

    /// Whether training needs `k` (and validation requires it).
    pub fn uses_k(self) -> bool {
        matches!(self, Self::BatchTopK | Self::TopK | Self::Matryoshka)
    }

    /// Whether the weights carry `threshold [d_sae]`: JumpReLU's own, or BatchTopK's scalar θ
    /// broadcast to every feature (SAELens saves BatchTopK for inference the same way).
    pub fn has_threshold(self) -> bool {
        matches!(self, Self::BatchTopK | Self::JumpRelu | Self::Matryoshka)
    }
}

impl fmt::Display for SaeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BatchTopK => "batchtopk",
            Self::TopK => "topk",
            Self::Relu => "relu",
            Self::JumpRelu => "jumprelu",
            Self::Matryoshka => "matryoshka",
        })
    }
}

impl FromStr for SaeKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            // The original's type names: `batch-topk` (its BatchTopKSAE), `vanilla` (the
            // L1-penalised ReLU SAE), and its Matryoshka SAE and transcoders (one global
            // BatchTopK over nested groups; a transcoder's hooks are flags here).
            "batchtopk" | "batch-topk" => Self::BatchTopK,
            "topk" => Self::TopK,
            "relu" | "vanilla" => Self::Relu,
            "jumprelu" => Self::JumpRelu,
            "matryoshka"
            | "global-matryoshka-topk"
            | "matryoshka-transcoder"
            | "matryoshka-cross-layer-transcoder" => Self::Matryoshka,
            other => bail!(
                "unknown SAE type {other:?}: expected one of batchtopk (or batch-topk), topk, \
                 relu (or vanilla), jumprelu, matryoshka (or global-matryoshka-topk, \
                 matryoshka-transcoder)"
            ),
        })
    }
}

/// Per-token input normalization applied before encoding and undone after decoding
/// (SAELens `normalize_activations`). `expected_average_only_in` is not representable: it needs
/// a dataset-wide factor that SAELens folders do not store (see `docs/sae.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    #[default]
    None,
    /// `x · sqrt(d_in) / ‖x‖` per token; the output is divided by the same factor.
    ConstantNormRescale,
    /// `(x − mean) / (std + 1e-5)` per token (unbiased std, as torch); undone on the output.
    /// The original's `input_unit_norm` is exactly this.
    LayerNorm,
}

impl Normalization {
    /// The SAELens `normalize_activations` value.
    pub fn sae_lens_name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ConstantNormRescale => "constant_norm_rescale",
            Self::LayerNorm => "layer_norm",
        }
    }
}

/// Everything about an SAE except its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeConfig {
    pub kind: SaeKind,
    pub d_in: usize,
    pub d_sae: usize,
    /// Active latents per token (TopK) or on average (BatchTopK, Matryoshka); `None` otherwise.
    pub k: Option<usize>,
    /// Matryoshka group sizes; their prefix sums are the nested dictionaries. Empty otherwise.
    #[serde(default)]
    pub group_sizes: Vec<usize>,
    /// Input hook point (TransformerLens name, e.g. `blocks.12.hook_resid_post`), if known.
    pub hook_name: Option<String>,
    /// Target hook point of a transcoder (e.g. `blocks.12.hook_mlp_out`); `None` for an SAE.
    #[serde(default)]
    pub hook_name_out: Option<String>,
    /// Model id (Hugging Face repo id or local name), if known.
    pub model_name: Option<String>,
    /// Subtract `b_dec` from the input before encoding (SAELens default `true`).
    pub apply_b_dec_to_input: bool,
    #[serde(default)]
    pub normalization: Normalization,
    #[serde(with = "dtype_name")]
    pub dtype: DType,
}

impl SaeConfig {
    /// A config with saectl's defaults: no hook, f32, `b_dec` applied to the input.
    pub fn new(kind: SaeKind, d_in: usize, d_sae: usize, k: Option<usize>) -> Self {
        Self {
            kind,
            d_in,
            d_sae,
            k,
            group_sizes: Vec::new(),
            hook_name: None,
            hook_name_out: None,
            model_name: None,
            apply_b_dec_to_input: true,
            normalization: Normalization::None,
            dtype: DType::F32,
        }
    }

    /// Checks every invariant the tensor code relies on.
    pub fn validate(&self) -> Result<()> {
        if self.d_in == 0 || self.d_sae == 0 {
            bail!(
                "d_in ({}) and d_sae ({}) must be positive",
                self.d_in,
                self.d_sae
            );
        }
        self.validate_k()?;
        self.validate_groups()?;
        if self.hook_name_out.is_some() && self.apply_b_dec_to_input {
            // A transcoder's b_dec lives in the output space: subtracting it from the input
            // would mix two different activation spaces.
            bail!("a transcoder (hook_name_out set) cannot have apply_b_dec_to_input");
        }
        if !matches!(
            self.dtype,
            DType::F32 | DType::F16 | DType::BF16 | DType::F64
        ) {
            bail!("SAE dtype must be a float type, got {:?}", self.dtype);
        }
        Ok(())
    }

    fn validate_k(&self) -> Result<()> {
        match (self.kind.uses_k(), self.k) {
            (true, None) => bail!("{} SAEs need k (--top-k)", self.kind),
            (true, Some(0)) => bail!("k must be at least 1"),
            (true, Some(k)) if k > self.d_sae => {
                bail!("k ({k}) is larger than d_sae ({})", self.d_sae)
            }
            _ => Ok(()),
        }
    }

    fn validate_groups(&self) -> Result<()> {
        if self.kind != SaeKind::Matryoshka {
            if !self.group_sizes.is_empty() {
                bail!("group_sizes are only meaningful for matryoshka SAEs");
            }
            return Ok(());
        }
        if self.group_sizes.is_empty() {
            bail!("matryoshka SAEs need group_sizes");
        }
        if let Some(i) = self.group_sizes.iter().position(|&size| size == 0) {
            bail!("group_sizes[{i}] is 0: every group needs at least one latent");
        }
        let total: usize = self.group_sizes.iter().sum();
        if total != self.d_sae {
            bail!(
                "group_sizes {:?} sum to {total}, not d_sae ({})",
                self.group_sizes,
                self.d_sae
            );
        }
        Ok(())
    }

    /// The end index of each nested Matryoshka prefix (`[g0, g0+g1, …, d_sae]`).
    pub fn prefix_ends(&self) -> Vec<usize> {
        self.group_sizes
            .iter()
            .scan(0, |end, &size| {
                *end += size;
                Some(*end)
            })
            .collect()
    }
}

/// SAELens / torch dtype names (`float32`, …), used in `cfg.json` and `saectl.json`.
pub mod dtype_name {
    use anyhow::{bail, Result};
    use candle_core::DType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn to_str(dtype: DType) -> &'static str {
        match dtype {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F64 => "float64",
            _ => "float32",
        }
    }

    /// Accepts the torch spellings too (`torch.float32`), as SAELens writes them after `.to()`.
    pub fn parse(name: &str) -> Result<DType> {
        Ok(match name.trim_start_matches("torch.") {
            "float32" | "float" | "f32" => DType::F32,
            "float16" | "half" | "f16" => DType::F16,
            "bfloat16" | "bf16" => DType::BF16,
            "float64" | "double" | "f64" => DType::F64,
            other => bail!("unsupported SAE dtype {other:?} (expected float32, float16, bfloat16)"),
        })
    }

    pub fn serialize<S: Serializer>(dtype: &DType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(to_str(*dtype))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DType, D::Error> {
        let name = String::deserialize(d)?;
        parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(cfg: &SaeConfig) -> String {
        format!("{:#}", cfg.validate().unwrap_err())
    }

    #[test]
    fn names_round_trip_and_vanilla_is_relu() {
        for kind in SaeKind::ALL {
            assert_eq!(kind.to_string().parse::<SaeKind>().unwrap(), kind);
        }
        assert_eq!("vanilla".parse::<SaeKind>().unwrap(), SaeKind::Relu);
        assert!("gated"
            .parse::<SaeKind>()
            .unwrap_err()
            .to_string()
            .contains("gated"));
    }

    #[test]
    fn k_is_checked() {
        let mut cfg = SaeConfig::new(SaeKind::TopK, 8, 32, Some(33));
        assert!(err(&cfg).contains("larger than d_sae"));
        cfg.k = Some(0);
        assert!(err(&cfg).contains("at least 1"));
        cfg.k = None;
        assert!(err(&cfg).contains("need k"));
        cfg.k = Some(32);
        cfg.validate().unwrap();
        // ReLU ignores k.
        SaeConfig::new(SaeKind::Relu, 8, 32, None)
            .validate()
            .unwrap();
    }

    #[test]
    fn groups_are_checked() {
        let mut cfg = SaeConfig::new(SaeKind::Matryoshka, 8, 32, Some(4));
        assert!(err(&cfg).contains("need group_sizes"));
        cfg.group_sizes = vec![8, 16];
        assert!(err(&cfg).contains("sum to 24"));
        cfg.group_sizes = vec![8, 0, 24];
        assert!(err(&cfg).contains("group_sizes[1] is 0"));
        cfg.group_sizes = vec![8, 8, 16];
        cfg.validate().unwrap();
        assert_eq!(cfg.prefix_ends(), vec![8, 16, 32]);
        let mut topk = SaeConfig::new(SaeKind::TopK, 8, 32, Some(4));
        topk.group_sizes = vec![32];
        assert!(err(&topk).contains("only meaningful"));
    }

    #[test]
    fn transcoder_rejects_b_dec_on_input() {
        let mut cfg = SaeConfig::new(SaeKind::TopK, 8, 32, Some(4));
        cfg.hook_name_out = Some("blocks.3.hook_mlp_out".into());
        assert!(err(&cfg).contains("transcoder"));
        cfg.apply_b_dec_to_input = false;
        cfg.validate().unwrap();
    }

    #[test]
    fn config_json_round_trips() {
        let mut cfg = SaeConfig::new(SaeKind::Matryoshka, 8, 32, Some(4));
        cfg.group_sizes = vec![16, 16];
        cfg.dtype = DType::BF16;
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("\"bfloat16\"") && json.contains("\"matryoshka\""));
        assert_eq!(serde_json::from_str::<SaeConfig>(&json).unwrap(), cfg);
    }
}
