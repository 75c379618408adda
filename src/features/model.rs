//! The per-feature view: every feature of the SAE with its statistics, histogram, flags, logit
//! effects and example groups, read out of the collector (not only the features that got a
//! JSON file). The dashboard draws it, the Neuronpedia export writes it out.
//!
//! Token ids stay ids here; text is decoded once per distinct id by whoever writes it out
//! (`dashboard::encode`, `export`). Each example carries the feature's activation on every token
//! of its window (sparse: position in the window and value), as the collector recorded it
//! (`StoredSample::context_activations`); [`attach_context_activations`] replaces them with
//! values computed elsewhere (the synthetic benchmark folder).

use std::collections::HashMap;

use crate::collect::{Collector, StoredSample};
use crate::samples::format::{FeatureFlags, FeatureStatistics};
use crate::samples::{FeatureLogitEffects, FlagConfig};
use crate::util::parallel;

/// One example: a window of a sequence and the activation of the feature at its marked token.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The sequence's index in the collection's token stream and the marked token's position.
    pub sequence: u64,
    pub position: u32,
    /// The window's token ids and the index of the marked token in it.
    pub tokens: Vec<u32>,
    pub at: u32,
    pub activation: f32,
    /// The feature's non-zero activations on the window's tokens (index in `tokens`, value),
    /// when known (the collector records them; `None` only for examples built by hand).
    pub token_activations: Option<Vec<(u32, f32)>>,
}

impl Example {
    fn from_stored(sample: &StoredSample) -> Self {
        Self {
            sequence: sample.sequence_idx,
            position: sample.position,
            tokens: sample.context_tokens.clone(),
            at: sample.context_position,
            activation: sample.activation,
            token_activations: Some(sample.context_activations.clone()),
        }
    }

    /// The marked token's id.
    pub fn token(&self) -> u32 {
        self.tokens[self.at as usize]
    }

    /// Position in its sequence of the window's first token.
    pub fn start(&self) -> u32 {
        self.position - self.at
    }
}

/// (token id, value) pairs: logit effects.
pub type TokenValues = Vec<(u32, f32)>;

/// Which examples a group holds.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupKind {
    /// The feature's strongest activations.
    Top,
    /// Uniform samples of the activations in `[lower, upper)` (bin edges; `None` when no bin
    /// falls in the interval), drawn from `count` activations.
    Interval {
        index: u32,
        lower: Option<f64>,
        upper: Option<f64>,
        count: u64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExampleGroup {
    pub kind: GroupKind,
    pub examples: Vec<Example>,
}

/// Everything one feature's page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureData {
    pub statistics: FeatureStatistics,
    pub flags: FeatureFlags,
    /// The collector's fixed-bin histogram: index of the first listed bin and the counts up
    /// to the last non-empty one (empty when the feature never passed the threshold).
    pub histogram_first_bin: u32,
    pub histogram: Vec<u64>,
    /// Top examples first, then the intervals, highest first.
    pub groups: Vec<ExampleGroup>,
    /// Promoted and suppressed output tokens, when the folder has them.
    pub logits: Option<(TokenValues, TokenValues)>,
}

/// Collection-wide facts the page shows beside every feature.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionFacts {
    pub d_sae: usize,
    pub tokens_seen: u64,
    pub sequences_seen: u64,
    pub activation_threshold: f32,
    pub context_size: usize,
    pub flags: FlagConfig,
}

/// Every feature of a collection, as the dashboard shows it and the export writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSet {
    pub facts: CollectionFacts,
    /// One entry per feature of the SAE, in index order.
    pub features: Vec<FeatureData>,
}

/// How many examples a feature page gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExampleCounts {
    /// Top examples per feature (the collector keeps `max_samples_per_feature`).
    pub top: usize,
}

impl FeatureSet {
    /// Every feature of `collector`, with the top `counts.top` examples and every interval.
    pub fn from_collector(
        collector: &Collector,
        flags: &FlagConfig,
        counts: ExampleCounts,
        logits: Option<&[FeatureLogitEffects]>,
    ) -> Self {
        let config = collector.config();
        let logit_of: HashMap<u32, &FeatureLogitEffects> = logits
            .unwrap_or_default()
            .iter()
            .map(|l| (l.feature_idx, l))
            .collect();
        // Features read out independently: on every core, in index order.
        let features = parallel::map_chunked(parallel::cores(), collector.d_sae(), 64, |f| {
            let f = f as u32;
            feature(collector, f, flags, counts, logit_of.get(&f).copied())
        });
        Self {
            facts: CollectionFacts {
                d_sae: collector.d_sae(),
                tokens_seen: collector.tokens_seen(),
                sequences_seen: collector.sequences_seen(),
                activation_threshold: config.sample_activation_threshold,
                context_size: config.sample_context_size,
                flags: flags.clone(),
            },
            features,
        }
    }

    /// Examples over all features.
    pub fn example_count(&self) -> usize {
        self.features
            .iter()
            .flat_map(|f| &f.groups)
            .map(|g| g.examples.len())
            .sum()
    }
}

fn feature(
    collector: &Collector,
    f: u32,
    flags: &FlagConfig,
    counts: ExampleCounts,
    logits: Option<&FeatureLogitEffects>,
) -> FeatureData {
    let statistics = collector.statistics(f).expect("feature is in range");
    let all_bins = collector.activation_histogram(f);
    let (first, histogram) = match (
        all_bins.iter().position(|&c| c > 0),
        all_bins.iter().rposition(|&c| c > 0),
    ) {
        (Some(first), Some(last)) => (first, all_bins[first..=last].to_vec()),
        _ => (0, Vec::new()),
    };
    let top: Vec<Example> = collector
        .top_samples(f)
        .iter()
        .take(counts.top)
        .map(Example::from_stored)
        .collect();
    let mut groups = vec![ExampleGroup {
        kind: GroupKind::Top,
        examples: top,
    }];
    for view in collector.intervals(f).into_iter().rev() {
        groups.push(ExampleGroup {
            kind: GroupKind::Interval {
                index: view.interval as u32,
                lower: view.lower,
                upper: view.upper,
                count: view.activation_count,
            },
            examples: view.samples.iter().map(Example::from_stored).collect(),
        });
    }
    let pairs = |effects: &[crate::samples::TokenEffect]| {
        effects
            .iter()
            .map(|e| (e.token_id, e.value))
            .collect::<Vec<_>>()
    };
    FeatureData {
        statistics,
        flags: collector.flags(f, flags).expect("feature is in range"),
        histogram_first_bin: first as u32,
        histogram,
        groups,
        logits: logits.map(|l| (pairs(&l.top), pairs(&l.bottom))),
    }
}

/// Per-token activations of one example as a samples file records them, keyed by the
/// example's identity (feature, sequence, position).
pub type ContextActivations = HashMap<(u32, u64, u32), Vec<(u32, f32)>>;

/// Gives every example found in `recorded` its per-token activations; returns how many got
/// them. Entries pointing outside their window are dropped (a stale or foreign file).
pub fn attach_context_activations(model: &mut FeatureSet, recorded: &ContextActivations) -> usize {
    let mut attached = 0;
    for (f, feature) in model.features.iter_mut().enumerate() {
        for example in feature
            .groups
            .iter_mut()
            .flat_map(|g| g.examples.iter_mut())
        {
            let Some(values) = recorded.get(&(f as u32, example.sequence, example.position)) else {
                continue;
            };
            let len = example.tokens.len() as u32;
            let mut kept: Vec<(u32, f32)> = values
                .iter()
                .copied()
                .filter(|&(i, v)| i < len && v.is_finite() && v != 0.0)
                .collect();
            kept.sort_by_key(|&(i, _)| i);
            kept.dedup_by_key(|&mut (i, _)| i);
            example.token_activations = Some(kept);
            attached += 1;
        }
    }
    attached
}
