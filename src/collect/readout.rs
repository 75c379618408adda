//! Reading a collector out: statistics, top samples, and the feature view (histograms,
//! interval samples, flags) — what the folder writer and the tests see.

use std::cmp::Ordering;

use super::bins::{bin_lower, ACTIVATION_BINS, POSITION_BINS};
use super::collector::Collector;
use super::flags::{feature_flags, FlagInputs};
use super::interval_samples::{interval_bins, interval_lower, PrioritizedSample};
use super::token_sample::TopToken;
use super::top_samples::{StoredSample, TopSamples};
use crate::samples::format::{FeatureFlags, FeatureStatistics, FlaggedFeatures};
use crate::samples::FlagConfig;

/// A feature's statistics and samples, read out of a collector.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSummary {
    pub statistics: FeatureStatistics,
    pub samples: Vec<StoredSample>,
}

/// One interval of `[0, max]` and its uniform samples, read out of a collector.
#[derive(Clone, Debug, PartialEq)]
pub struct IntervalView {
    pub interval: usize,
    pub min_fraction: f64,
    pub max_fraction: f64,
    /// The sampled range (bin edges; see [`super::format::ActivationInterval`]).
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub activation_count: u64,
    /// Strongest first.
    pub samples: Vec<StoredSample>,
}

impl Collector {
    /// Number of samples kept for `feature` (0 for an unknown feature).
    pub fn num_samples(&self, feature: u32) -> usize {
        self.top.get(feature as usize).map_or(0, TopSamples::len)
    }

    /// The feature's kept samples, best first (empty for an unknown feature).
    pub fn top_samples(&self, feature: u32) -> Vec<StoredSample> {
        self.top
            .get(feature as usize)
            .map_or_else(Vec::new, TopSamples::sorted)
    }

    /// Statistics of one feature; `None` when `feature >= d_sae`.
    pub fn statistics(&self, feature: u32) -> Option<FeatureStatistics> {
        let moments = &self.state.get(feature as usize)?.moments;
        let density = if self.tokens_seen == 0 {
            0.0
        } else {
            moments.firing as f64 / self.tokens_seen as f64
        };
        let (min, max) = if moments.count == 0 {
            (0.0, 0.0)
        } else {
            (moments.min, moments.max)
        };
        Some(FeatureStatistics {
            feature_idx: feature,
            max_activation: f64::from(max),
            mean_activation: moments.mean(),
            num_samples: self.top[feature as usize].len() as u64,
            activation_count: moments.count,
            all_time_max: Some(f64::from(max)),
            min_activation: Some(f64::from(min)),
            std_activation: Some(moments.std()),
            firing_count: moments.firing,
            density,
            activation_sum: moments.sum,
            activation_sum_squares: moments.sum_squares,
        })
    }

    /// Statistics and samples of one feature.
    pub fn feature(&self, feature: u32) -> Option<FeatureSummary> {
        Some(FeatureSummary {
            statistics: self.statistics(feature)?,
            samples: self.top_samples(feature),
        })
    }

    /// Per feature, tokens where it fired.
    pub fn firing_counts(&self) -> Vec<u64> {
        self.state.iter().map(|s| s.moments.firing).collect()
    }

    /// Activations above the threshold over all features (the original's `total_samples_seen`).
    pub fn total_activations(&self) -> u64 {
        self.state.iter().map(|s| s.moments.count).sum()
    }

    /// Features with at least one sample, the largest max activation first (ties: lower
    /// index first) — the order in which the original chose `top_features_to_save`.
    pub fn features_by_max_activation(&self) -> Vec<u32> {
        let mut features: Vec<u32> = (0..self.d_sae as u32)
            .filter(|&f| !self.top[f as usize].is_empty())
            .collect();
        features.sort_by(|&a, &b| {
            let (ma, mb) = (
                self.state[a as usize].moments.max,
                self.state[b as usize].moments.max,
            );
            mb.partial_cmp(&ma)
                .unwrap_or(Ordering::Equal)
                .then(a.cmp(&b))
        });
        features
    }

    /// The feature's activation histogram over all [`ACTIVATION_BINS`] fixed bins (empty for
    /// an unknown feature).
    pub fn activation_histogram(&self, feature: u32) -> Vec<u64> {
        let f = feature as usize;
        if f >= self.d_sae {
            return Vec::new();
        }
        (0..ACTIVATION_BINS)
            .map(|b| self.bin_count(f * ACTIVATION_BINS + b))
            .collect()
    }

    /// The feature's activations above the threshold per position bin.
    pub fn position_histogram(&self, feature: u32) -> Option<[u64; POSITION_BINS]> {
        Some(self.state.get(feature as usize)?.positions)
    }

    /// Counted tokens per position bin.
    pub fn position_tokens(&self) -> [u64; POSITION_BINS] {
        self.position_tokens
    }

    /// Activations above the threshold on special tokens, per feature.
    pub fn special_activations(&self, feature: u32) -> u64 {
        self.special_activations
            .get(feature as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The most frequent token of the feature's uniform token sample.
    pub fn sampled_top_token(&self, feature: u32) -> Option<TopToken> {
        self.token_samples.get(feature as usize)?.top_token()
    }

    /// The feature's sampled `(priority, token)` pairs, lowest priority first.
    pub fn token_sample(&self, feature: u32) -> Vec<(u64, u32)> {
        self.token_samples
            .get(feature as usize)
            .map_or_else(Vec::new, |s| s.sorted())
    }

    /// Every interval sample the feature keeps (all strata), lowest priority first.
    pub fn interval_store(&self, feature: u32) -> Vec<PrioritizedSample> {
        let shape = self.interval_shape();
        self.intervals
            .get(feature as usize)
            .map_or_else(Vec::new, |i| i.all(&shape))
    }

    /// The feature's `interval_count` intervals with their samples (empty when interval
    /// sampling is off, the feature is unknown or never passed the threshold).
    pub fn intervals(&self, feature: u32) -> Vec<IntervalView> {
        let shape = self.interval_shape();
        let f = feature as usize;
        if !shape.enabled() || f >= self.d_sae || self.state[f].moments.count == 0 {
            return Vec::new();
        }
        let moments = &self.state[f].moments;
        let histogram = self.activation_histogram(feature);
        let n = shape.intervals;
        (0..n)
            .map(|i| {
                let bins = interval_bins(&shape, i, moments.max);
                let max = f64::from(moments.max);
                let (lower, upper) = if bins.is_empty() {
                    (None, None)
                } else {
                    // Bin edges, kept within [threshold, max]: the range that holds the max
                    // ends there.
                    let threshold = self.config.sample_activation_threshold;
                    let lower = interval_lower(&bins, threshold).min(max);
                    let upper = if bins.end == ACTIVATION_BINS {
                        max
                    } else {
                        bin_lower(bins.end).min(max)
                    };
                    (Some(lower), Some(upper.max(lower)))
                };
                IntervalView {
                    interval: i,
                    min_fraction: i as f64 / n as f64,
                    max_fraction: (i + 1) as f64 / n as f64,
                    lower,
                    upper,
                    activation_count: histogram[bins].iter().sum(),
                    samples: self.intervals[f].interval(&shape, i, moments.max),
                }
            })
            .collect()
    }

    /// The feature's flags under `config` (`None` for an unknown feature).
    pub fn flags(&self, feature: u32, config: &FlagConfig) -> Option<FeatureFlags> {
        let state = self.state.get(feature as usize)?;
        let inputs = FlagInputs {
            firing_count: state.moments.firing,
            tokens_seen: self.tokens_seen,
            activation_count: state.moments.count,
            special_activations: self.special_activations[feature as usize],
            special_excluded: self.config.exclude_special_tokens,
            top_token: self.sampled_top_token(feature),
            positions: &state.positions,
            position_tokens: &self.position_tokens,
        };
        Some(feature_flags(&inputs, config))
    }

    /// Every feature carrying each flag, ascending.
    pub fn flagged_features(&self, config: &FlagConfig) -> FlaggedFeatures {
        let mut out = FlaggedFeatures::default();
        for feature in 0..self.d_sae as u32 {
            let flags = self.flags(feature, config).expect("feature is in range");
            for (on, list) in [
                (flags.dead, &mut out.dead),
                (flags.ultra_rare, &mut out.ultra_rare),
                (flags.single_token, &mut out.single_token),
                (flags.position_dominated, &mut out.position_dominated),
                (flags.bos_dominated, &mut out.bos_dominated),
            ] {
                if on {
                    list.push(feature);
                }
            }
        }
        out
    }
}
