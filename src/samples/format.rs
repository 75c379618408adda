//! The samples folder's JSON records: the seed's contract, plus saectl's additions.
//!
//! The Python original wrote `feature_XXXXX_samples.json` files (`statistics` + `top_samples`)
//! and a `collection_summary.json`. Every key it wrote is kept with the same name and meaning
//! (`tokens` is the previous + activating token, as the original sliced it); saectl only adds
//! keys. The additions are what the original lost: exact statistics over every activation
//! (not only the stored ones), the feature's firing density, the sample's place in the corpus
//! and the split of its context around the activating token, so a report can mark it.

use serde::{Deserialize, Serialize};

use super::settings::CollectionSettings;
use super::source::CollectionSource;

/// Version of the samples-folder layout written by this build.
pub const SAMPLES_FORMAT_VERSION: u32 = 1;

/// One top-activating token of one feature, with its context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationSample {
    pub feature_idx: u32,
    pub activation_value: f32,
    /// The previous token and the activating token (the original's `tokens[pos-1:pos+1]`).
    pub tokens: Vec<u32>,
    /// The activating token alone, decoded.
    pub text: String,
    /// Position of the activating token in its sequence.
    pub position: u32,
    /// Tokens `[position - ctx/2, position + ctx/2]`, clipped to the sequence.
    pub context_tokens: Vec<u32>,
    pub context_text: String,
    // ---- saectl additions ----
    /// Index of the sequence (row) in the collection's token stream; with `position` it
    /// identifies the token and breaks ties (earlier token wins).
    #[serde(default)]
    pub sequence_idx: u64,
    /// Index of the activating token inside `context_tokens`.
    #[serde(default)]
    pub context_position: u32,
    /// `context_tokens[..context_position]` decoded.
    #[serde(default)]
    pub context_prefix: String,
    /// `context_tokens[context_position + 1..]` decoded.
    #[serde(default)]
    pub context_suffix: String,
}

/// A sum kept as an unevaluated pair `hi + lo` of f64 (double-double), so that sums over
/// shards merge to the same bits as one sum over the whole stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactSum {
    pub hi: f64,
    pub lo: f64,
}

/// Statistics of one feature over every activation above the threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureStatistics {
    pub feature_idx: u32,
    /// Largest activation seen (0 when none passed the threshold).
    pub max_activation: f64,
    /// Mean over every activation above the threshold (the original averaged the stored
    /// samples only).
    pub mean_activation: f64,
    /// Number of samples the collector kept for this feature (≤ max_samples_per_feature).
    pub num_samples: u64,
    /// Number of activations strictly above the threshold.
    pub activation_count: u64,
    /// The largest activation ever seen (the original's key; saectl's `max_activation` is
    /// already that). Absent in the original's documentation example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_time_max: Option<f64>,
    /// Smallest activation above the threshold (0 when none). The original wrote it too, over
    /// its stored samples; absent in its documentation example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_activation: Option<f64>,
    /// Population standard deviation over the activations above the threshold (the
    /// original: over its stored samples, `np.std`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_activation: Option<f64>,
    // ---- saectl additions ----
    /// Tokens on which the feature is non-zero (> 0), threshold or not.
    #[serde(default)]
    pub firing_count: u64,
    /// `firing_count / tokens_seen`: the fraction of (non-excluded) tokens where it fires.
    #[serde(default)]
    pub density: f64,
    /// Sum and sum of squares of the activations above the threshold, kept exactly enough
    /// that folders merge without drift.
    #[serde(default)]
    pub activation_sum: ExactSum,
    #[serde(default)]
    pub activation_sum_squares: ExactSum,
}

/// `feature_XXXXX_samples.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureFile {
    pub statistics: FeatureStatistics,
    /// Best first: activation descending, then earlier token first.
    pub top_samples: Vec<ActivationSample>,
    // ---- saectl additions (absent in folders of the original and of older saectl) ----
    /// Every activation above the threshold, counted in fixed log-spaced bins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_histogram: Option<ActivationHistogram>,
    /// Uniform samples from intervals of `[0, max_activation]` (empty when turned off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_samples: Option<Vec<ActivationInterval>>,
    /// Activations above the threshold by position in the sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_histogram: Option<PositionHistogram>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<FeatureFlags>,
}

/// A feature's activations above the threshold in the collector's fixed bins: 8 per octave
/// from 2^-8 to 2^12 (edges `2^e · (1 + j/8)`), an underflow bin 0 below and an overflow bin
/// 161 above. Only the bins from the first to the last non-empty one are listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationHistogram {
    /// Index of the first listed bin in the fixed layout: folders add counts bin by bin.
    pub first_bin: u32,
    /// `counts.len() + 1` edges. The open ends are written as the feature's min activation
    /// (below bin 1) and max activation (above bin 161).
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
}

/// Activations above the threshold per position bin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionHistogram {
    /// First position of each bin (0, 1, 2, 4, 8, 16, 32, 64); the last bin is open-ended.
    pub starts: Vec<u32>,
    pub counts: Vec<u64>,
}

/// One interval of `[0, max_activation]` and activations drawn uniformly from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationInterval {
    /// 0 is the lowest interval.
    pub interval: u32,
    /// The nominal interval, as fractions of the max: `[interval/n, (interval+1)/n)`.
    pub min_fraction: f64,
    pub max_fraction: f64,
    /// The activation range actually sampled: the nominal one snapped to histogram bin edges
    /// (`lower ≤ a < upper`; the first interval starts above the threshold, the last ends at
    /// the max, included). Absent when no bin falls in the interval.
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Activations in that range: the population the samples are drawn from.
    pub activation_count: u64,
    /// Uniform without replacement, shown strongest first.
    pub samples: Vec<ActivationSample>,
}

/// Labels that single out a feature, with the numbers behind them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureFlags {
    /// Never fired (> 0) on a counted token.
    pub dead: bool,
    /// Fired, with a density below the folder's `ultra_rare_density`.
    pub ultra_rare: bool,
    /// One token makes up at least `dominant_share` of its activations (estimated).
    pub single_token: bool,
    /// At least `dominant_share` of its activations fall in one narrow position bin.
    pub position_dominated: bool,
    /// At least `dominant_share` of its activations (special tokens included) are on BOS or
    /// another special token.
    pub bos_dominated: bool,
    /// The most frequent activating token of a uniform sample of its activations.
    pub top_token: Option<u32>,
    pub top_token_text: Option<String>,
    /// That token's share of the sample: an estimate of its share of all activations.
    pub top_token_share: f64,
    /// Activations in the sample (at most 64).
    pub token_sample_size: u64,
    /// Index (into `position_histogram.starts`) of the narrow position bin holding the most
    /// activations, and its share of them.
    pub top_position_bin: Option<u32>,
    pub top_position_share: f64,
    /// Activations above the threshold on special tokens, counted even when those tokens are
    /// excluded from samples and statistics.
    pub special_token_activations: u64,
    /// Their share of all activations above the threshold, special tokens included.
    pub special_token_share: f64,
}

/// The features carrying each flag, over every feature of the SAE (saved or not).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlaggedFeatures {
    pub dead: Vec<u32>,
    pub ultra_rare: Vec<u32>,
    pub single_token: Vec<u32>,
    pub position_dominated: Vec<u32>,
    pub bos_dominated: Vec<u32>,
}

/// One row of the summary's `top_features_by_activation` (the original's top 50).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopFeatureEntry {
    pub feature_idx: u32,
    pub max_activation: f64,
    pub num_samples: u64,
}

/// `collection_summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionSummary {
    /// Activations above the threshold, summed over features.
    pub total_samples_seen: u64,
    /// Samples held by the collector, summed over features.
    pub total_samples_stored: u64,
    /// Features with at least one stored sample.
    pub num_features_tracked: u64,
    pub avg_samples_per_feature: f64,
    pub features_with_samples: Vec<u32>,
    /// The 50 features with the largest max activation.
    pub top_features_by_activation: Vec<TopFeatureEntry>,
    // ---- saectl additions ----
    #[serde(default)]
    pub format_version: u32,
    #[serde(default)]
    pub saectl_version: String,
    /// Width of the SAE (number of features).
    #[serde(default)]
    pub d_sae: u64,
    /// Tokens that entered the statistics (special tokens excluded when that is on).
    #[serde(default)]
    pub tokens_seen: u64,
    #[serde(default)]
    pub sequences_seen: u64,
    /// BOS/special-token positions skipped.
    #[serde(default)]
    pub special_tokens_excluded: u64,
    /// Features with no firing at all over `tokens_seen`.
    #[serde(default)]
    pub dead_features: u64,
    /// Features that have a `feature_XXXXX_samples.json` in this folder, in file order.
    #[serde(default)]
    pub features_saved: Vec<u32>,
    /// Per feature (index = feature), the number of tokens where it fired: densities of
    /// every feature, saved or not.
    #[serde(default)]
    pub firing_counts: Vec<u64>,
    #[serde(default)]
    pub settings: Option<CollectionSettings>,
    /// Tokens counted per position bin (the baseline of the position flag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_token_counts: Option<Vec<u64>>,
    /// Every feature carrying each flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged_features: Option<FlaggedFeatures>,
    /// Provenance (model, hook point, checkpoint, dataset) set by the producer.
    #[serde(default)]
    pub source: CollectionSource,
}

impl CollectionSummary {
    /// Why a collection saved no samples, in one sentence with what to change, or `None` when
    /// it has samples (or the folder does not record enough to tell: the original's).
    pub fn why_empty(&self) -> Option<String> {
        if self.num_features_tracked > 0 || self.format_version == 0 {
            return None;
        }
        let fired = self
            .firing_counts
            .iter()
            .filter(|&&count| count > 0)
            .count();
        let tokens = self.tokens_seen;
        let threshold = self
            .settings
            .as_ref()
            .map(|s| s.collector.sample_activation_threshold);
        Some(match threshold {
            _ if tokens == 0 => format!(
                "no token was collected ({} special tokens skipped): give more text, or \
                 --include-special-tokens",
                self.special_tokens_excluded
            ),
            _ if fired == 0 => {
                format!("no feature fired on the {tokens} tokens collected (a dead SAE?)")
            }
            Some(threshold) => format!(
                "no activation above the threshold {threshold} ({fired} of {} features fired \
                 on {tokens} tokens): lower --sample-activation-threshold",
                self.d_sae
            ),
            None => format!("no activation above the threshold ({fired} features fired)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_collection_says_why() {
        let mut summary: CollectionSummary = serde_json::from_str(
            r#"{"total_samples_seen": 0, "total_samples_stored": 0, "num_features_tracked": 0,
                "avg_samples_per_feature": 0.0, "features_with_samples": [],
                "top_features_by_activation": [], "format_version": 1, "d_sae": 4,
                "tokens_seen": 300, "firing_counts": [3, 0, 9, 1]}"#,
        )
        .unwrap();
        summary.settings = Some(CollectionSettings::default());
        summary
            .settings
            .as_mut()
            .unwrap()
            .collector
            .sample_activation_threshold = 1000.0;
        let why = summary.why_empty().unwrap();
        assert!(
            why.contains("threshold 1000 (3 of 4 features fired on 300 tokens)"),
            "{why}"
        );
        assert!(why.contains("lower --sample-activation-threshold"), "{why}");
        summary.firing_counts = vec![0; 4];
        assert!(summary.why_empty().unwrap().contains("no feature fired"));
        summary.tokens_seen = 0;
        assert!(summary
            .why_empty()
            .unwrap()
            .contains("no token was collected"));
        summary.num_features_tracked = 1;
        assert_eq!(summary.why_empty(), None);
    }

    #[test]
    fn seed_example_parses() {
        // The seed's documented example, verbatim keys only: saectl's additions default.
        let json = include_str!("../../tests/fixtures/original-samples/feature_00042_samples.json");
        let file: FeatureFile = serde_json::from_str(json).unwrap();
        assert_eq!(file.statistics.activation_count, 1523);
        assert_eq!(file.top_samples[0].text, " cat");
        assert_eq!(file.top_samples[0].sequence_idx, 0);
    }
}
