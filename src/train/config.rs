//! The training configuration: the original's config keys, saectl's defaults in one place.
//!
//! [`TrainConfig`] is plain data serialized with the original's snake_case keys (its
//! `get_default_cfg` keys plus the seven sample-collection keys), so a JSON file written for
//! the original reads here unchanged as far as the keys overlap. Unknown keys are refused: a
//! typo (`top_K`) would otherwise train with a default silently. [`TrainConfig::validate`]
//! checks everything before any tensor is made, and [`TrainConfig::sae_config`] derives the
//! SAE's own config from it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sae::{Normalization, SaeConfig, SaeKind};
use crate::samples::{CollectionSettings, CollectorConfig, FlagConfig, SaveConfig};

/// Learning-rate schedules (the original's `scheduler_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    #[default]
    None,
    /// Linear warmup over `warmup_steps`, then constant (the original's `warmup_only`).
    #[serde(alias = "warmup_only")]
    Warmup,
    /// Cosine decay from `lr` to `min_lr` over the run (the original's `decay_only`).
    #[serde(alias = "decay_only")]
    Decay,
    /// Linear warmup, then cosine decay to `min_lr`.
    WarmupDecay,
}

/// Every training setting. Field names are the original's config keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(serialize_with = "kind_out", deserialize_with = "kind_in")]
    pub sae_type: SaeKind,
    pub dict_size: usize,
    pub top_k: usize,
    pub top_k_aux: usize,
    pub aux_penalty: f64,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Adam's ε (torch's default; not a key of the original, which used torch's default).
    pub eps: f64,
    /// Training tokens per step.
    pub batch_size: usize,
    pub num_tokens: u64,
    pub seed: u64,
    pub l1_coeff: f64,
    /// JumpReLU's sparsity coefficient λ (SAELens `l0_coefficient`, with SAELens's meaning:
    /// the loss is SAELens's `Σ_d (x − x̂)² + λ·L0` divided by `d_in`, see `train::jumprelu`).
    pub l0_coefficient: f64,
    /// Steps over which λ rises linearly from 0 (SAELens `l0_warm_up_steps`).
    pub l0_warm_up_steps: u64,
    /// Width ε of the rectangle kernel of JumpReLU's threshold pseudo-derivatives (SAELens
    /// `jumprelu_bandwidth`).
    pub jumprelu_bandwidth: f64,
    /// Every latent's threshold at step 0 (SAELens `jumprelu_init_threshold`).
    pub jumprelu_init_threshold: f64,
    pub n_batches_to_dead: u32,
    /// Gradients are clipped to this global L2 norm.
    pub max_grad_norm: f64,
    pub scheduler_type: ScheduleKind,
    pub warmup_steps: u64,
    /// Floor of the decaying schedules; `None` is the original's `lr · 0.01`.
    pub min_lr: Option<f64>,
    pub checkpoint_freq: u64,
    /// Checkpoints kept, the newest; older ones are deleted when a new one is complete. 0 keeps
    /// all (saectl's key; the original kept all). The collector state, which only resuming
    /// needs, is kept in the newest checkpoint alone either way.
    pub keep_checkpoints: usize,
    /// Steps between loss-recovered evaluations (they need the model: live runs, or a cache
    /// run given `--model`); one more runs at the end.
    pub perf_log_freq: u64,
    /// Steps between metrics lines in `metrics.jsonl` (saectl's; the original logged every step).
    pub log_freq: u64,
    /// Per-token layer norm of the input (SAELens `layer_norm`), as the original.
    pub input_unit_norm: bool,
    /// Matryoshka nested-prefix group sizes (summing to `dict_size`).
    pub group_sizes: Vec<usize>,
    /// Tokens per sequence of a live run (the original's key); a cache run takes its cache's.
    pub seq_len: usize,
    /// Sequences per model batch; with `num_batches_in_buffer` it sizes the shuffling buffer.
    pub model_batch_size: usize,
    pub num_batches_in_buffer: usize,
    /// Sequences of the loss-recovered evaluation (saectl's key): a live run holds out the
    /// corpus's first ones; 0 turns the evaluation off.
    pub eval_sequences: usize,
    pub save_activation_samples: bool,
    pub sample_collection_freq: u64,
    pub max_samples_per_feature: usize,
    pub sample_context_size: usize,
    pub sample_activation_threshold: f32,
    pub top_features_to_save: usize,
    pub samples_per_feature_to_save: usize,
    /// saectl's collector switches (`--include-special-tokens` and `--no-dedup` turn them off).
    pub exclude_special_tokens: bool,
    pub dedup_context_windows: bool,
    /// saectl's feature view: interval samples and flag thresholds (docs/collector.md).
    pub interval_count: usize,
    pub samples_per_interval: usize,
    pub ultra_rare_density: f64,
    pub dominant_share: f64,
}

impl Default for TrainConfig {
    /// The defaults of DESIGN §4 (the original's `get_default_cfg`), except `sae_type`:
    /// BatchTopK is saectl's default architecture.
    fn default() -> Self {
        Self {
            sae_type: SaeKind::BatchTopK,
            dict_size: 12288,
            top_k: 32,
            top_k_aux: 512,
            aux_penalty: 1.0 / 32.0,
            lr: 3e-4,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            batch_size: 4096,
            num_tokens: 1_000_000_000,
            seed: 49,
            l1_coeff: 0.0,
            // JumpReLU: Gemma Scope's recipe (Lieberum et al. 2024; Rajamanoharan et al.
            // 2024): ε = θ₀ = 0.001, λ warmed up over the first 10,000 steps. λ = 1 is
            // SAELens's default; sweep it for the L0 you want.
            l0_coefficient: 1.0,
            l0_warm_up_steps: 10_000,
            jumprelu_bandwidth: 0.001,
            jumprelu_init_threshold: 0.001,
            n_batches_to_dead: 20,
            max_grad_norm: 100_000.0,
            scheduler_type: ScheduleKind::None,
            warmup_steps: 1000,
            min_lr: None,
            checkpoint_freq: 10_000,
            keep_checkpoints: 0,
            perf_log_freq: 1000,
            log_freq: 100,
            input_unit_norm: true,
            group_sizes: Vec::new(),
            seq_len: 128,
            model_batch_size: 512,
            num_batches_in_buffer: 10,
            eval_sequences: 64,
            save_activation_samples: false,
            sample_collection_freq: 1000,
            max_samples_per_feature: 100,
            sample_context_size: 20,
            sample_activation_threshold: 0.1,
            top_features_to_save: 100,
            samples_per_feature_to_save: 10,
            exclude_special_tokens: true,
            dedup_context_windows: true,
            interval_count: 5,
            samples_per_interval: 5,
            ultra_rare_density: 1e-5,
            dominant_share: 0.5,
        }
    }
}

fn kind_out<S: Serializer>(kind: &SaeKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&kind.to_string())
}

/// Accepts every `--sae-type` spelling, the original's `vanilla` included.
fn kind_in<'de, D: Deserializer<'de>>(d: D) -> Result<SaeKind, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(serde::de::Error::custom)
}

impl TrainConfig {
    /// Reads a config file saectl wrote (a run's `train_config.json`).
    pub fn from_json_file(path: &Path) -> Result<Self> {
        Self::from_user_file(path).map(|(config, _)| config)
    }

    /// Reads a JSON config file a person gave (`--config`; snake_case keys, missing keys take
    /// the defaults), with the notes to show them.
    ///
    /// A config the Python original wrote also loads, as it wrote it
    /// ([`super::original_config`]): its keys that saectl takes elsewhere or that have no
    /// effect here are set aside — the notes say which —, its type names, integral floats and
    /// `str()`-ed lists are read as it meant them. Any other unknown key is an error, so a
    /// typo never passes silently.
    pub fn from_user_file(path: &Path) -> Result<(Self, Vec<String>)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the config {}", path.display()))?;
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| format!("failed to parse the config {}", path.display()))?;
        let (map, notes) = super::original_config::normalize(map);
        let config = serde_json::from_value(serde_json::Value::Object(map))
            .with_context(|| format!("failed to parse the config {}", path.display()))?;
        let notes = notes
            .into_iter()
            .map(|note| format!("{}: {note}", path.display()))
            .collect();
        Ok((config, notes))
    }

    /// Training steps: whole batches within `num_tokens` (the original's `num_batches`).
    pub fn total_steps(&self) -> u64 {
        self.num_tokens / self.batch_size.max(1) as u64
    }

    /// A warning when sample collection is on but its frequency leaves only step 0, the
    /// untrained SAE (the original behaved the same, without a word).
    pub fn collection_schedule_note(&self) -> Option<String> {
        let steps = self.total_steps();
        (self.save_activation_samples && steps > 0 && self.sample_collection_freq >= steps).then(
            || {
                format!(
                    "sample_collection_freq {} is not below the run's {steps} steps: samples \
                     are collected at step 0 only, from the untrained SAE; lower \
                     --sample-collection-freq, or run `saectl collect` on the final checkpoint",
                    self.sample_collection_freq
                )
            },
        )
    }

    /// The floor of the decaying schedules.
    pub fn min_lr(&self) -> f64 {
        self.min_lr.unwrap_or(self.lr * 0.01)
    }

    /// Checks every setting against the input width `d_in`; errors name the key.
    pub fn validate(&self, d_in: usize) -> Result<()> {
        self.sae_config(d_in)?;
        let positive = [
            ("batch_size", self.batch_size as u64),
            ("checkpoint_freq", self.checkpoint_freq),
            ("log_freq", self.log_freq),
            ("perf_log_freq", self.perf_log_freq),
            ("seq_len", self.seq_len as u64),
            ("model_batch_size", self.model_batch_size as u64),
            ("num_batches_in_buffer", self.num_batches_in_buffer as u64),
            ("n_batches_to_dead", self.n_batches_to_dead as u64),
            ("sample_collection_freq", self.sample_collection_freq),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            bail!("{key} must be at least 1");
        }
        self.collection_settings().validate()?;
        if self.total_steps() == 0 {
            bail!(
                "num_tokens ({}) is less than one batch (batch_size {})",
                self.num_tokens,
                self.batch_size
            );
        }
        self.validate_optimizer()
    }

    fn validate_optimizer(&self) -> Result<()> {
        let finite_positive = |x: f64| x.is_finite() && x > 0.0;
        if !finite_positive(self.lr) {
            bail!("lr must be a positive number, got {}", self.lr);
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            bail!(
                "beta1 ({}) and beta2 ({}) must be in [0, 1)",
                self.beta1,
                self.beta2
            );
        }
        if !finite_positive(self.eps) || !finite_positive(self.max_grad_norm) {
            bail!("eps and max_grad_norm must be positive");
        }
        if !(self.min_lr() >= 0.0 && self.min_lr() <= self.lr) {
            bail!(
                "min_lr ({}) must be in [0, lr = {}]",
                self.min_lr(),
                self.lr
            );
        }
        if self.aux_penalty < 0.0 || self.l1_coeff < 0.0 {
            bail!("aux_penalty and l1_coeff must not be negative");
        }
        self.validate_jumprelu()
    }

    fn validate_jumprelu(&self) -> Result<()> {
        let finite_positive = |x: f64| x.is_finite() && x > 0.0;
        if !finite_positive(self.jumprelu_bandwidth) {
            bail!(
                "jumprelu_bandwidth must be a positive number, got {}",
                self.jumprelu_bandwidth
            );
        }
        if !finite_positive(self.jumprelu_init_threshold) {
            // The threshold is learnt as its logarithm.
            bail!(
                "jumprelu_init_threshold must be a positive number, got {}",
                self.jumprelu_init_threshold
            );
        }
        if !(self.l0_coefficient.is_finite() && self.l0_coefficient >= 0.0) {
            bail!(
                "l0_coefficient must not be negative, got {}",
                self.l0_coefficient
            );
        }
        if self.sae_type == SaeKind::JumpRelu && self.l1_coeff != 0.0 {
            // The original reused l1_coeff as JumpReLU's L0 weight (on its mean-over-d_in MSE):
            // refusing it keeps one meaning per key.
            bail!(
                "jumprelu SAEs take their sparsity coefficient from l0_coefficient, not l1_coeff \
                 (the original's l1_coeff c is l0_coefficient = c · d_in here)"
            );
        }
        Ok(())
    }

    /// The sample-collection keys, as the collector and the samples folder take them.
    pub fn collection_settings(&self) -> CollectionSettings {
        CollectionSettings {
            collector: CollectorConfig {
                max_samples_per_feature: self.max_samples_per_feature,
                sample_context_size: self.sample_context_size,
                sample_activation_threshold: self.sample_activation_threshold,
                exclude_special_tokens: self.exclude_special_tokens,
                dedup_context_windows: self.dedup_context_windows,
                interval_count: self.interval_count,
                samples_per_interval: self.samples_per_interval,
            },
            save: SaveConfig {
                top_features_to_save: self.top_features_to_save,
                samples_per_feature_to_save: self.samples_per_feature_to_save,
                flags: FlagConfig {
                    ultra_rare_density: self.ultra_rare_density,
                    dominant_share: self.dominant_share,
                },
            },
        }
    }

    /// Sets the sample-collection keys (the flags laid over a config file's). Both conversions
    /// name every field, so a key added to the settings cannot be forgotten here.
    pub fn set_collection_settings(&mut self, settings: CollectionSettings) {
        let CollectionSettings {
            collector:
                CollectorConfig {
                    max_samples_per_feature,
                    sample_context_size,
                    sample_activation_threshold,
                    exclude_special_tokens,
                    dedup_context_windows,
                    interval_count,
                    samples_per_interval,
                },
            save:
                SaveConfig {
                    top_features_to_save,
                    samples_per_feature_to_save,
                    flags:
                        FlagConfig {
                            ultra_rare_density,
                            dominant_share,
                        },
                },
        } = settings;
        self.max_samples_per_feature = max_samples_per_feature;
        self.sample_context_size = sample_context_size;
        self.sample_activation_threshold = sample_activation_threshold;
        self.exclude_special_tokens = exclude_special_tokens;
        self.dedup_context_windows = dedup_context_windows;
        self.interval_count = interval_count;
        self.samples_per_interval = samples_per_interval;
        self.top_features_to_save = top_features_to_save;
        self.samples_per_feature_to_save = samples_per_feature_to_save;
        self.ultra_rare_density = ultra_rare_density;
        self.dominant_share = dominant_share;
    }

    /// The SAE this config trains on inputs of width `d_in` (validated).
    pub fn sae_config(&self, d_in: usize) -> Result<SaeConfig> {
        let k = self.sae_type.uses_k().then_some(self.top_k);
        let mut sae = SaeConfig::new(self.sae_type, d_in, self.dict_size, k);
        sae.group_sizes = self.group_sizes.clone();
        if self.input_unit_norm {
            sae.normalization = Normalization::LayerNorm;
        }
        sae.validate()
            .with_context(|| format!("invalid {} SAE settings", self.sae_type))?;
        Ok(sae)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_config_file_loads_and_a_typo_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg.json");
        // get_default_cfg() after post_init_cfg, as the original would dump it.
        std::fs::write(
            &path,
            r#"{"seed": 49, "batch_size": 4096, "lr": 0.0003, "num_tokens": 1000000000,
            "l1_coeff": 0, "beta1": 0.9, "beta2": 0.99, "max_grad_norm": 100000, "seq_len": 128,
            "dtype": "torch.float32", "model_dtype": "torch.float32", "model_name": "gemma-2-2b",
            "site": "resid_pre", "layer": 8, "act_size": 2304, "dict_size": 12288,
            "device": "cuda:0", "model_batch_size": 512, "num_batches_in_buffer": 10,
            "dataset_path": "Skylion007/openwebtext", "wandb_project": "sparse_autoencoders",
            "input_unit_norm": true, "perf_log_freq": 1000, "sae_type": "topk",
            "checkpoint_freq": 10000, "n_batches_to_dead": 20, "top_k": 32, "top_k_aux": 512,
            "aux_penalty": 0.03125, "bandwidth": 0.002, "hook_point": "blocks.8.hook_resid_pre",
            "name": "gemma-2-2b_blocks.8.hook_resid_pre_12288_topk_32_0.0003",
            "save_activation_samples": true, "max_samples_per_feature": 50}"#,
        )
        .unwrap();
        let (cfg, notes) = TrainConfig::from_user_file(&path).unwrap();
        assert!(notes[0].contains("model_name, site, layer"), "{notes:?}");
        assert_eq!(
            (cfg.seed, cfg.top_k, cfg.max_samples_per_feature),
            (49, 32, 50)
        );
        assert_eq!(cfg.jumprelu_bandwidth, 0.002);
        std::fs::write(&path, r#"{"dict_sise": 4096}"#).unwrap();
        let err = format!("{:#}", TrainConfig::from_user_file(&path).unwrap_err());
        assert!(err.contains("dict_sise"), "{err}");
    }

    fn err(cfg: &TrainConfig) -> String {
        format!("{:#}", cfg.validate(64).unwrap_err())
    }

    #[test]
    fn the_collection_keys_default_and_round_trip_as_the_settings_do() {
        // The one source of the collector's defaults is `CollectionSettings::default`; the
        // training config's flat copy of the keys must agree with it.
        let defaults = TrainConfig::default();
        assert_eq!(
            defaults.collection_settings(),
            CollectionSettings::default()
        );
        let mut settings = CollectionSettings::default();
        settings.collector.max_samples_per_feature = 7;
        settings.collector.dedup_context_windows = false;
        settings.save.flags.dominant_share = 0.75;
        let mut cfg = TrainConfig::default();
        cfg.set_collection_settings(settings.clone());
        assert_eq!(cfg.collection_settings(), settings);
        // The training config's JSON keys are the settings' keys, with the same values.
        let train_keys = serde_json::to_value(&cfg).unwrap();
        let settings_keys = serde_json::to_value(&settings).unwrap();
        for (key, value) in settings_keys.as_object().unwrap() {
            assert_eq!(&train_keys[key], value, "{key}");
        }
    }

    #[test]
    fn defaults_are_the_originals() {
        let cfg = TrainConfig::default();
        assert_eq!(
            (cfg.batch_size, cfg.top_k, cfg.top_k_aux, cfg.seed),
            (4096, 32, 512, 49)
        );
        assert_eq!((cfg.beta1, cfg.beta2, cfg.lr), (0.9, 0.99, 3e-4));
        assert_eq!(cfg.aux_penalty, 1.0 / 32.0);
        cfg.validate(2304).unwrap();
    }

    #[test]
    fn bad_settings_name_the_key() {
        let base = TrainConfig {
            dict_size: 32,
            ..TrainConfig::default()
        };
        assert!(err(&TrainConfig {
            top_k: 33,
            ..base.clone()
        })
        .contains("larger than d_sae"));
        let groups = TrainConfig {
            sae_type: SaeKind::Matryoshka,
            group_sizes: vec![8, 16],
            ..base.clone()
        };
        assert!(err(&TrainConfig { top_k: 4, ..groups }).contains("sum to 24"));
        assert!(err(&TrainConfig {
            batch_size: 0,
            ..base.clone()
        })
        .contains("batch_size"));
        assert!(err(&TrainConfig {
            num_tokens: 10,
            ..base.clone()
        })
        .contains("less than one batch"));
        assert!(err(&TrainConfig {
            lr: -1.0,
            ..base.clone()
        })
        .contains("lr"));
        assert!(err(&TrainConfig { beta2: 1.0, ..base }).contains("beta2"));
    }

    #[test]
    fn jumprelu_settings_are_checked() {
        let base = TrainConfig {
            sae_type: SaeKind::JumpRelu,
            dict_size: 32,
            ..TrainConfig::default()
        };
        base.validate(64).unwrap();
        let bad = |cfg: TrainConfig, key: &str| {
            let msg = err(&cfg);
            assert!(msg.contains(key), "{msg}");
        };
        bad(
            TrainConfig {
                jumprelu_bandwidth: 0.0,
                ..base.clone()
            },
            "jumprelu_bandwidth",
        );
        bad(
            TrainConfig {
                jumprelu_init_threshold: -0.1,
                ..base.clone()
            },
            "jumprelu_init_threshold",
        );
        bad(
            TrainConfig {
                l0_coefficient: f64::NAN,
                ..base.clone()
            },
            "l0_coefficient",
        );
        bad(
            TrainConfig {
                l1_coeff: 1e-3,
                ..base.clone()
            },
            "l0_coefficient, not l1_coeff",
        );
        let json: TrainConfig = serde_json::from_str(
            r#"{"sae_type": "jumprelu", "l0_coefficient": 5, "jumprelu_bandwidth": 0.05}"#,
        )
        .unwrap();
        assert_eq!((json.l0_coefficient, json.jumprelu_bandwidth), (5.0, 0.05));
        assert_eq!(json.l0_warm_up_steps, 10_000);
    }

    #[test]
    fn json_uses_the_original_keys_and_refuses_typos() {
        let cfg: TrainConfig = serde_json::from_str(
            r#"{"sae_type": "vanilla", "dict_size": 64, "scheduler_type": "warmup_only"}"#,
        )
        .unwrap();
        assert_eq!(cfg.sae_type, SaeKind::Relu);
        assert_eq!(cfg.scheduler_type, ScheduleKind::Warmup);
        assert_eq!(cfg.seed, 49);
        let round: TrainConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(round, cfg);
        let typo = serde_json::from_str::<TrainConfig>(r#"{"top_K": 8}"#).unwrap_err();
        assert!(typo.to_string().contains("top_K"), "{typo}");
    }
}
