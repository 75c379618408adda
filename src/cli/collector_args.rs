//! The collector's flags, shared by every command that collects samples (`train`, `collect`).
//!
//! They are the Python original's config keys in kebab-case, plus the two switches that
//! restore its exact behaviour where saectl's defaults depart from it, and saectl's feature
//! view: interval samples and the thresholds of the feature flags. Each flag is optional and,
//! when given, replaces the value of a config file (or the default): the defaults live in
//! [`CollectionSettings::default`] alone (the `[default: …]` notes in the help are checked
//! against it by a test).

use clap::Args;

use super::overlay::Given;
use crate::samples::{CollectionSettings, CollectorConfig, FlagConfig, SaveConfig};

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Sample collection (the original's config keys)")]
pub struct CollectorArgs {
    /// Samples kept per feature while collecting (the exact top activations) [default: 100].
    #[arg(long, value_name = "N")]
    pub max_samples_per_feature: Option<usize>,

    /// Tokens of context around the activating token (half before, half after) [default: 20].
    #[arg(long, value_name = "TOKENS")]
    pub sample_context_size: Option<usize>,

    /// Only activations strictly above this value are counted and stored [default: 0.1].
    #[arg(long, value_name = "VALUE")]
    pub sample_activation_threshold: Option<f32>,

    /// Features written to the samples folder (those with the largest max activation)
    /// [default: 100].
    #[arg(long, value_name = "N")]
    pub top_features_to_save: Option<usize>,

    /// Samples written per feature [default: 10].
    #[arg(long, value_name = "N")]
    pub samples_per_feature_to_save: Option<usize>,

    /// Count BOS and other special tokens as samples, as the original did (default: skip them
    /// and report how many were skipped).
    #[arg(long)]
    pub include_special_tokens: bool,

    /// Allow several samples of one feature from the same context window, as the original did
    /// (default: keep only the strongest, so the top list is not one sentence ten times).
    #[arg(long)]
    pub no_dedup: bool,

    /// Intervals of [0, max activation] that get uniform samples per feature (0: none)
    /// [default: 5].
    #[arg(long, value_name = "N", help_heading = "Feature view")]
    pub interval_count: Option<usize>,

    /// Uniform samples kept per interval (0: none) [default: 5].
    #[arg(long, value_name = "N", help_heading = "Feature view")]
    pub samples_per_interval: Option<usize>,

    /// Features firing on a smaller fraction of tokens (but some) are flagged ultra-rare
    /// [default: 1e-5].
    #[arg(long, value_name = "DENSITY", help_heading = "Feature view")]
    pub ultra_rare_density: Option<f64>,

    /// The share of a feature's activations that makes one token, one narrow position range
    /// or special tokens dominant (single-token, position- and BOS-dominated flags)
    /// [default: 0.5].
    #[arg(long, value_name = "SHARE", help_heading = "Feature view")]
    pub dominant_share: Option<f64>,
}

impl CollectorArgs {
    /// Lays the given flags over `settings` (a config file's, or the defaults) and returns
    /// the flags given. Both sides are destructured field by field, so a flag or a key added
    /// on one side alone does not compile.
    pub fn overlay(&self, settings: &mut CollectionSettings) -> Vec<String> {
        let CollectorArgs {
            max_samples_per_feature,
            sample_context_size,
            sample_activation_threshold,
            top_features_to_save,
            samples_per_feature_to_save,
            include_special_tokens,
            no_dedup,
            interval_count,
            samples_per_interval,
            ultra_rare_density,
            dominant_share,
        } = self;
        let CollectionSettings {
            collector:
                CollectorConfig {
                    max_samples_per_feature: max_samples,
                    sample_context_size: context_size,
                    sample_activation_threshold: threshold,
                    exclude_special_tokens,
                    dedup_context_windows,
                    interval_count: intervals,
                    samples_per_interval: per_interval,
                },
            save:
                SaveConfig {
                    top_features_to_save: top_features,
                    samples_per_feature_to_save: per_feature,
                    flags:
                        FlagConfig {
                            ultra_rare_density: ultra_rare,
                            dominant_share: dominant,
                        },
                },
        } = settings;
        let mut given = Given::default();
        given.set(
            "max_samples_per_feature",
            max_samples_per_feature,
            max_samples,
        );
        given.set("sample_context_size", sample_context_size, context_size);
        given.set(
            "sample_activation_threshold",
            sample_activation_threshold,
            threshold,
        );
        given.set("top_features_to_save", top_features_to_save, top_features);
        given.set(
            "samples_per_feature_to_save",
            samples_per_feature_to_save,
            per_feature,
        );
        given.switch(
            "include_special_tokens",
            *include_special_tokens,
            exclude_special_tokens,
            false,
        );
        given.switch("no_dedup", *no_dedup, dedup_context_windows, false);
        given.set("interval_count", interval_count, intervals);
        given.set("samples_per_interval", samples_per_interval, per_interval);
        given.set("ultra_rare_density", ultra_rare_density, ultra_rare);
        given.set("dominant_share", dominant_share, dominant);
        given.into_flags()
    }

    /// The validated settings: `base` with the given flags laid over it.
    pub fn settings(&self, mut base: CollectionSettings) -> anyhow::Result<CollectionSettings> {
        self.overlay(&mut base);
        base.validate()?;
        Ok(base)
    }
}
