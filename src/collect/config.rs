//! Collector settings: the Python original's keys with its defaults, plus saectl's switches.

use anyhow::{bail, Result};

/// How the collector chooses what to keep (the original's `max_samples_per_feature`,
/// `sample_context_size`, `sample_activation_threshold`).
#[derive(Clone, Debug, PartialEq)]
pub struct CollectorConfig {
    pub max_samples_per_feature: usize,
    /// Context tokens around the activating one: `[pos - n/2, pos + n/2]`, clipped to the row.
    pub sample_context_size: usize,
    /// Activations strictly above this are counted in the statistics and may be stored.
    pub sample_activation_threshold: f32,
    /// Skip BOS and other special tokens entirely (samples and statistics).
    pub exclude_special_tokens: bool,
    /// Keep at most one sample per feature per context window: of two activations of one
    /// feature in one sequence at most `sample_context_size / 2` tokens apart, only the
    /// stronger (or, on a tie, the earlier) can be stored.
    pub dedup_context_windows: bool,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            max_samples_per_feature: 100,
            sample_context_size: 20,
            sample_activation_threshold: 0.1,
            exclude_special_tokens: true,
            dedup_context_windows: true,
        }
    }
}

impl CollectorConfig {
    /// The original's behaviour exactly: special tokens count, no window deduplication.
    pub fn original() -> Self {
        Self {
            exclude_special_tokens: false,
            dedup_context_windows: false,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.max_samples_per_feature == 0 {
            bail!("--max-samples-per-feature must be at least 1");
        }
        if !self.sample_activation_threshold.is_finite() {
            bail!(
                "--sample-activation-threshold must be a finite number, got {}",
                self.sample_activation_threshold
            );
        }
        Ok(())
    }

    /// Half-width of the context window (and of the deduplication window).
    pub fn context_half_width(&self) -> usize {
        self.sample_context_size / 2
    }
}

/// What a samples folder gets (the original's `top_features_to_save`,
/// `samples_per_feature_to_save`).
#[derive(Clone, Debug, PartialEq)]
pub struct SaveConfig {
    /// Features written, those with the largest max activation first.
    pub top_features_to_save: usize,
    pub samples_per_feature_to_save: usize,
}

impl Default for SaveConfig {
    fn default() -> Self {
        Self {
            top_features_to_save: 100,
            samples_per_feature_to_save: 10,
        }
    }
}
