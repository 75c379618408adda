//! Reading a collector out: statistics, top samples, and the feature view (histograms,
//! interval samples, flags) — what the folder writer and the tests see.

use std::cmp::Ordering;

use super::bins::{bin_lower, ACTIVATION_BINS, POSITION_BINS};
use super::collector::Collector;
use super::flags::{feature_flags, FlagInputs};
use super::interval_samples::{interval_bins, interval_lower};
use super::token_sample::TopToken;
use super::top_samples::StoredSample;
use crate::samples::format::{FeatureFlags, FeatureStatistics, FlaggedFeatures};
use crate::samples::FlagConfig;

/// An interval sample read out of a collector, with its sampling priority.
#[derive(Clone, Debug, PartialEq)]
pub struct PrioritizedSample {
    pub priority: u64,
    pub sample: StoredSample,
}

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
    /// The block of `feature` and its index there, `None` for an unknown feature.
    fn find(&self, feature: u32) -> Option<(&super::block::FeatureBlock, usize)> {
        ((feature as usize) < self.d_sae).then(|| self.block(feature as usize))
    }

    /// Number of samples kept for `feature` (0 for an unknown feature).
    pub fn num_samples(&self, feature: u32) -> usize {
        self.find(feature)
            .map_or(0, |(block, f)| block.top[f].len(self.params.capacity))
    }

    /// The feature's kept samples, best first (empty for an unknown feature), each with its
    /// context and the feature's activation on every token of it where it fires
    /// ([`StoredSample::context_activations`]) — what a dashboard colours a window by.
    pub fn top_samples(&self, feature: u32) -> Vec<StoredSample> {
        self.find(feature).map_or_else(Vec::new, |(block, f)| {
            block.top[f]
                .sorted(self.params.capacity)
                .iter()
                .map(|entry| block.stored_top(&self.params, entry))
                .collect()
        })
    }

    /// Statistics of one feature; `None` when `feature >= d_sae`.
    pub fn statistics(&self, feature: u32) -> Option<FeatureStatistics> {
        let (block, f) = self.find(feature)?;
        let moments = &block.state[f].moments;
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
            num_samples: block.top[f].len(self.params.capacity) as u64,
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

    /// Every feature's state, in feature order.
    fn states(&self) -> impl Iterator<Item = &super::block::FeatureState> {
        self.blocks.iter().flat_map(|block| &block.state)
    }

    /// Per feature, tokens where it fired.
    pub fn firing_counts(&self) -> Vec<u64> {
        self.states().map(|s| s.moments.firing).collect()
    }

    /// Activations above the threshold over all features (the original's `total_samples_seen`).
    pub fn total_activations(&self) -> u64 {
        self.states().map(|s| s.moments.count).sum()
    }

    /// Features with at least one sample, the largest max activation first (ties: lower
    /// index first) — the order in which the original chose `top_features_to_save`.
    pub fn features_by_max_activation(&self) -> Vec<u32> {
        let max = |f: u32| {
            let (block, f) = self.block(f as usize);
            block.state[f].moments.max
        };
        let mut features: Vec<u32> = (0..self.d_sae as u32)
            .filter(|&f| self.num_samples(f) > 0)
            .collect();
        features.sort_by(|&a, &b| {
            let (ma, mb) = (max(a), max(b));
            mb.partial_cmp(&ma)
                .unwrap_or(Ordering::Equal)
                .then(a.cmp(&b))
        });
        features
    }

    /// The feature's activation histogram over all [`ACTIVATION_BINS`] fixed bins (empty for
    /// an unknown feature).
    pub fn activation_histogram(&self, feature: u32) -> Vec<u64> {
        self.find(feature).map_or_else(Vec::new, |(block, f)| {
            (0..ACTIVATION_BINS)
                .map(|b| block.bin_count(f * ACTIVATION_BINS + b))
                .collect()
        })
    }

    /// The feature's activations above the threshold per position bin.
    pub fn position_histogram(&self, feature: u32) -> Option<[u64; POSITION_BINS]> {
        let (block, f) = self.find(feature)?;
        Some(block.state[f].positions)
    }

    /// Counted tokens per position bin.
    pub fn position_tokens(&self) -> [u64; POSITION_BINS] {
        self.position_tokens
    }

    /// Activations above the threshold on special tokens, per feature.
    pub fn special_activations(&self, feature: u32) -> u64 {
        self.find(feature)
            .map_or(0, |(block, f)| block.special_activations[f])
    }

    /// The most frequent token of the feature's uniform token sample.
    pub fn sampled_top_token(&self, feature: u32) -> Option<TopToken> {
        let (block, f) = self.find(feature)?;
        block.token_samples[f].top_token()
    }

    /// The feature's sampled `(priority, token)` pairs, lowest priority first.
    pub fn token_sample(&self, feature: u32) -> Vec<(u64, u32)> {
        self.find(feature)
            .map_or_else(Vec::new, |(block, f)| block.token_samples[f].sorted())
    }

    /// Every interval sample the feature keeps (all strata), lowest priority first.
    pub fn interval_store(&self, feature: u32) -> Vec<PrioritizedSample> {
        self.find(feature).map_or_else(Vec::new, |(block, f)| {
            block.intervals[f]
                .all()
                .iter()
                .map(|entry| PrioritizedSample {
                    priority: entry.priority,
                    sample: block.stored_interval(&self.params, entry),
                })
                .collect()
        })
    }

    /// The feature's `interval_count` intervals with their samples (empty when interval
    /// sampling is off, the feature is unknown or never passed the threshold). Samples carry
    /// their context activations, as [`top_samples`](Self::top_samples)' do.
    pub fn intervals(&self, feature: u32) -> Vec<IntervalView> {
        let shape = self.params.shape;
        let Some((block, f)) = self.find(feature) else {
            return Vec::new();
        };
        let moments = &block.state[f].moments;
        if !shape.enabled() || moments.count == 0 {
            return Vec::new();
        }
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
                    samples: block.intervals[f]
                        .interval(&shape, i, moments.max)
                        .iter()
                        .map(|entry| block.stored_interval(&self.params, entry))
                        .collect(),
                }
            })
            .collect()
    }

    /// The feature's flags under `config` (`None` for an unknown feature).
    pub fn flags(&self, feature: u32, config: &FlagConfig) -> Option<FeatureFlags> {
        let (block, f) = self.find(feature)?;
        let state = &block.state[f];
        let inputs = FlagInputs {
            firing_count: state.moments.firing,
            tokens_seen: self.tokens_seen,
            activation_count: state.moments.count,
            special_activations: block.special_activations[f],
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
