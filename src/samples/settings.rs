//! The collection settings: the Python original's sample-collection keys with its defaults,
//! plus saectl's switches — what the collector keeps ([`CollectorConfig`]), what a folder
//! gets ([`SaveConfig`], [`FlagConfig`]), and both together ([`CollectionSettings`]).
//!
//! These types are the one place the keys are spelled and their defaults set: the folder's
//! `settings` and the collector state's header are their serde forms, the collecting commands'
//! flags are laid over them (`cli::collector_args`), and `train::TrainConfig` — flat, for the
//! seed's config files — converts to and from them field by field, tied by a test. Keys that
//! folders of older versions lack take their defaults.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Most intervals `interval_count` may ask for: histogram bins are 6–12% wide, so finer
/// intervals near the max would mostly be empty.
pub const MAX_INTERVALS: usize = 20;

/// How the collector chooses what to keep (the original's `max_samples_per_feature`,
/// `sample_context_size`, `sample_activation_threshold`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Intervals of `[0, max]` that get uniform samples (0: none).
    pub interval_count: usize,
    /// Uniform samples kept per interval (0: none).
    pub samples_per_interval: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            max_samples_per_feature: 100,
            sample_context_size: 20,
            sample_activation_threshold: 0.1,
            exclude_special_tokens: true,
            dedup_context_windows: true,
            interval_count: 5,
            samples_per_interval: 5,
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
        if self.interval_count > MAX_INTERVALS {
            bail!(
                "--interval-count must be at most {MAX_INTERVALS} (got {}): activation bins are 6-12% wide, finer intervals would be empty",
                self.interval_count
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SaveConfig {
    /// Features written, those with the largest max activation first.
    pub top_features_to_save: usize,
    pub samples_per_feature_to_save: usize,
    /// Thresholds of the feature flags (saectl's).
    #[serde(flatten)]
    pub flags: FlagConfig,
}

impl Default for SaveConfig {
    fn default() -> Self {
        Self {
            top_features_to_save: 100,
            samples_per_feature_to_save: 10,
            flags: FlagConfig::default(),
        }
    }
}

/// Flag thresholds (write-time settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlagConfig {
    /// Features firing on fewer than this fraction of tokens (and more than none) are
    /// ultra-rare.
    pub ultra_rare_density: f64,
    /// The share that makes a token, a position range or special tokens dominant.
    pub dominant_share: f64,
}

impl Default for FlagConfig {
    fn default() -> Self {
        Self {
            ultra_rare_density: 1e-5,
            dominant_share: 0.5,
        }
    }
}

impl FlagConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.ultra_rare_density >= 0.0 && self.ultra_rare_density <= 1.0) {
            bail!(
                "--ultra-rare-density must be between 0 and 1, got {}",
                self.ultra_rare_density
            );
        }
        if !(self.dominant_share > 0.0 && self.dominant_share <= 1.0) {
            bail!(
                "--dominant-share must be above 0 and at most 1, got {}",
                self.dominant_share
            );
        }
        Ok(())
    }
}

/// Every sample-collection key: the settings a folder was made with (its summary's
/// `settings`), and what `collect` and `train` take from flags and config files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectionSettings {
    #[serde(flatten)]
    pub collector: CollectorConfig,
    #[serde(flatten)]
    pub save: SaveConfig,
}

impl CollectionSettings {
    /// Checks every key; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        self.collector.validate()?;
        self.save.flags.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_records_every_key_and_older_folders_take_the_defaults() {
        let settings = CollectionSettings::default();
        let json = serde_json::to_value(&settings).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "dedup_context_windows",
                "dominant_share",
                "exclude_special_tokens",
                "interval_count",
                "max_samples_per_feature",
                "sample_activation_threshold",
                "sample_context_size",
                "samples_per_feature_to_save",
                "samples_per_interval",
                "top_features_to_save",
                "ultra_rare_density",
            ]
        );
        assert_eq!(
            json["sample_activation_threshold"],
            serde_json::json!(0.1f32)
        );
        // A folder written before the feature view: the seed's keys and saectl's two switches.
        let older: CollectionSettings = serde_json::from_str(
            r#"{"max_samples_per_feature": 7, "sample_context_size": 20,
                "sample_activation_threshold": 0.5, "top_features_to_save": 3,
                "samples_per_feature_to_save": 2, "exclude_special_tokens": false,
                "dedup_context_windows": true}"#,
        )
        .unwrap();
        assert_eq!(older.collector.max_samples_per_feature, 7);
        assert!(!older.collector.exclude_special_tokens);
        assert_eq!(older.save.top_features_to_save, 3);
        assert_eq!(
            older.collector.interval_count,
            settings.collector.interval_count
        );
        assert_eq!(older.save.flags, settings.save.flags);
    }
}
