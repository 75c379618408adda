//! The collector's flags, shared by every command that collects samples (`train`, `collect`).
//!
//! They are the Python original's config keys in kebab-case, with its defaults, plus the two
//! switches that restore its exact behaviour where saectl's defaults depart from it, and
//! saectl's feature view: interval samples and the thresholds of the feature flags.

use clap::Args;

use crate::samples::{CollectorConfig, FlagConfig, SaveConfig};
use crate::train::TrainConfig;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sample collection (the original's config keys)")]
pub struct CollectorArgs {
    /// Samples kept per feature while collecting (the exact top activations).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_samples_per_feature: usize,

    /// Tokens of context around the activating token (half before, half after).
    #[arg(long, default_value_t = 20, value_name = "TOKENS")]
    pub sample_context_size: usize,

    /// Only activations strictly above this value are counted and stored.
    #[arg(long, default_value_t = 0.1, value_name = "VALUE")]
    pub sample_activation_threshold: f32,

    /// Features written to the samples folder (those with the largest max activation).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub top_features_to_save: usize,

    /// Samples written per feature.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub samples_per_feature_to_save: usize,

    /// Count BOS and other special tokens as samples, as the original did (default: skip them
    /// and report how many were skipped).
    #[arg(long)]
    pub include_special_tokens: bool,

    /// Allow several samples of one feature from the same context window, as the original did
    /// (default: keep only the strongest, so the top list is not one sentence ten times).
    #[arg(long)]
    pub no_dedup: bool,

    /// Intervals of [0, max activation] that get uniform samples per feature (0: none).
    #[arg(
        long,
        default_value_t = 5,
        value_name = "N",
        help_heading = "Feature view"
    )]
    pub interval_count: usize,

    /// Uniform samples kept per interval (0: none).
    #[arg(
        long,
        default_value_t = 5,
        value_name = "N",
        help_heading = "Feature view"
    )]
    pub samples_per_interval: usize,

    /// Features firing on a smaller fraction of tokens (but some) are flagged ultra-rare.
    #[arg(
        long,
        default_value_t = 1e-5,
        value_name = "DENSITY",
        help_heading = "Feature view"
    )]
    pub ultra_rare_density: f64,

    /// The share of a feature's activations that makes one token, one narrow position range
    /// or special tokens dominant (single-token, position- and BOS-dominated flags).
    #[arg(
        long,
        default_value_t = 0.5,
        value_name = "SHARE",
        help_heading = "Feature view"
    )]
    pub dominant_share: f64,
}

impl CollectorArgs {
    /// The validated collector configuration.
    pub fn collector_config(&self) -> anyhow::Result<CollectorConfig> {
        let config = CollectorConfig {
            max_samples_per_feature: self.max_samples_per_feature,
            sample_context_size: self.sample_context_size,
            sample_activation_threshold: self.sample_activation_threshold,
            exclude_special_tokens: !self.include_special_tokens,
            dedup_context_windows: !self.no_dedup,
            interval_count: self.interval_count,
            samples_per_interval: self.samples_per_interval,
        };
        config.validate()?;
        self.flag_config().validate()?;
        Ok(config)
    }

    pub fn flag_config(&self) -> FlagConfig {
        FlagConfig {
            ultra_rare_density: self.ultra_rare_density,
            dominant_share: self.dominant_share,
        }
    }

    pub fn save_config(&self) -> SaveConfig {
        SaveConfig {
            top_features_to_save: self.top_features_to_save,
            samples_per_feature_to_save: self.samples_per_feature_to_save,
            flags: self.flag_config(),
        }
    }

    /// Lays these flags over a config file's keys (`train --config`, `collect --config`). The
    /// flags carry defaults, so a value equal to the default cannot be told from an absent
    /// flag: such values leave the file's setting alone.
    pub fn overlay(&self, cfg: &mut TrainConfig) -> anyhow::Result<()> {
        let collector = self.collector_config()?;
        let save = self.save_config();
        let defaults = TrainConfig::default();
        let set = |value: usize, default: usize, slot: &mut usize| {
            if value != default {
                *slot = value;
            }
        };
        set(
            collector.max_samples_per_feature,
            defaults.max_samples_per_feature,
            &mut cfg.max_samples_per_feature,
        );
        set(
            collector.sample_context_size,
            defaults.sample_context_size,
            &mut cfg.sample_context_size,
        );
        set(
            save.top_features_to_save,
            defaults.top_features_to_save,
            &mut cfg.top_features_to_save,
        );
        set(
            save.samples_per_feature_to_save,
            defaults.samples_per_feature_to_save,
            &mut cfg.samples_per_feature_to_save,
        );
        set(
            collector.interval_count,
            defaults.interval_count,
            &mut cfg.interval_count,
        );
        set(
            collector.samples_per_interval,
            defaults.samples_per_interval,
            &mut cfg.samples_per_interval,
        );
        if collector.sample_activation_threshold != defaults.sample_activation_threshold {
            cfg.sample_activation_threshold = collector.sample_activation_threshold;
        }
        if save.flags.ultra_rare_density != defaults.ultra_rare_density {
            cfg.ultra_rare_density = save.flags.ultra_rare_density;
        }
        if save.flags.dominant_share != defaults.dominant_share {
            cfg.dominant_share = save.flags.dominant_share;
        }
        if self.include_special_tokens {
            cfg.exclude_special_tokens = false;
        }
        if self.no_dedup {
            cfg.dedup_context_windows = false;
        }
        Ok(())
    }
}
