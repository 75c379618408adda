//! Writing a samples folder: the features with the largest max activation, each with its best
//! samples decoded to text and its feature view (histograms, interval samples, flags), and
//! `collection_summary.json` (with every feature's flags).
//!
//! Text is decoded here and only here, for the samples written — never per activation. Every
//! file is written atomically; feature files left by an earlier write of the same folder that
//! are no longer among the saved features are removed, so a folder never mixes two runs.

use anyhow::Result;

use super::bins::{bin_lower, bin_upper, ACTIVATION_BINS, POSITION_BIN_STARTS};
use super::collector::Collector;
use super::top_samples::StoredSample;
use crate::data::{decode_marked, TokenDecoder};
use crate::samples::format::{
    ActivationHistogram, ActivationInterval, ActivationSample, CollectionSummary, FeatureFile,
    FeatureStatistics, PositionHistogram, TopFeatureEntry, SAMPLES_FORMAT_VERSION,
};
use crate::samples::{CollectionSettings, CollectionSource, SamplesDir, SaveConfig};
use crate::util::atomic::sync_dir;

/// Number of rows in the summary's `top_features_by_activation`, as in the original.
const SUMMARY_TOP_FEATURES: usize = 50;

/// Writes `collector` to `dir` (created if missing) and returns the summary written.
/// `source` is the collection's provenance (model, hook point, checkpoint, dataset).
pub fn write_samples_folder(
    dir: &SamplesDir,
    collector: &Collector,
    decoder: &dyn TokenDecoder,
    save: &SaveConfig,
    source: CollectionSource,
) -> Result<CollectionSummary> {
    dir.create()?;
    let ranked = collector.features_by_max_activation();
    let saved: Vec<u32> = ranked
        .iter()
        .copied()
        .take(save.top_features_to_save)
        .collect();
    for &feature in &saved {
        let file = feature_file(collector, decoder, feature, save);
        dir.write_feature(&file)?;
    }
    let summary = summary(collector, &ranked, &saved, save, source);
    dir.write_summary(&summary)?;
    dir.remove_features_except(&saved)?;
    // One sync for every rename above: the folder is what a user reads after a crash.
    sync_dir(dir.root())?;
    Ok(summary)
}

fn feature_file(
    collector: &Collector,
    decoder: &dyn TokenDecoder,
    feature: u32,
    save: &SaveConfig,
) -> FeatureFile {
    let statistics = collector
        .statistics(feature)
        .expect("saved features are in range");
    let top_samples = collector
        .top_samples(feature)
        .iter()
        .take(save.samples_per_feature_to_save)
        .map(|stored| decode_sample(feature, stored, decoder))
        .collect();
    let interval_samples = collector
        .intervals(feature)
        .into_iter()
        .map(|view| ActivationInterval {
            interval: view.interval as u32,
            min_fraction: view.min_fraction,
            max_fraction: view.max_fraction,
            lower: view.lower,
            upper: view.upper,
            activation_count: view.activation_count,
            samples: view
                .samples
                .iter()
                .map(|stored| decode_sample(feature, stored, decoder))
                .collect(),
        })
        .collect();
    let mut flags = collector
        .flags(feature, &save.flags)
        .expect("saved features are in range");
    flags.top_token_text = flags.top_token.map(|token| decoder.decode(&[token]));
    FeatureFile {
        activation_histogram: Some(activation_histogram(
            &collector.activation_histogram(feature),
            &statistics,
        )),
        interval_samples: Some(interval_samples),
        position_histogram: collector
            .position_histogram(feature)
            .map(|counts| PositionHistogram {
                starts: POSITION_BIN_STARTS.to_vec(),
                counts: counts.to_vec(),
            }),
        flags: Some(flags),
        statistics,
        top_samples,
    }
}

/// The non-empty span of a feature's fixed-bin counts, with finite edges: the open ends of
/// the underflow and overflow bins are written as the feature's min and max.
fn activation_histogram(counts: &[u64], statistics: &FeatureStatistics) -> ActivationHistogram {
    let first = counts.iter().position(|&c| c > 0).unwrap_or(0);
    let last = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    let mut edges: Vec<f64> = (first..=last).map(bin_lower).collect();
    edges.push(bin_upper(last));
    if first == 0 {
        // Below 2^-8 (a value in bin 0 makes the min smaller than bin 1's edge).
        edges[0] = statistics.min_activation.unwrap_or(0.0);
    }
    if last == ACTIVATION_BINS - 1 {
        let lower = bin_lower(last);
        edges[last - first + 1] = if statistics.max_activation > lower {
            statistics.max_activation
        } else {
            lower * 1.125
        };
    }
    ActivationHistogram {
        first_bin: first as u32,
        edges,
        counts: counts[first..=last].to_vec(),
    }
}

fn decode_sample(
    feature: u32,
    stored: &StoredSample,
    decoder: &dyn TokenDecoder,
) -> ActivationSample {
    let token = stored.token();
    let context = &stored.context_tokens;
    // One decoding of the context, the token located in it (the spaces a decoder puts
    // between tokens stay in the prefix and suffix).
    let marked = decode_marked(decoder, context, stored.context_position as usize);
    ActivationSample {
        feature_idx: feature,
        activation_value: stored.activation,
        tokens: stored.previous_token.into_iter().chain([token]).collect(),
        text: marked.token,
        position: stored.position,
        context_tokens: context.clone(),
        context_text: marked.text,
        sequence_idx: stored.sequence_idx,
        context_position: stored.context_position,
        context_prefix: marked.prefix,
        context_suffix: marked.suffix,
    }
}

fn summary(
    collector: &Collector,
    ranked: &[u32],
    saved: &[u32],
    save: &SaveConfig,
    source: CollectionSource,
) -> CollectionSummary {
    let mut features_with_samples = ranked.to_vec();
    features_with_samples.sort_unstable();
    let total_samples_stored: u64 = ranked
        .iter()
        .map(|&f| collector.num_samples(f) as u64)
        .sum();
    let firing_counts = collector.firing_counts();
    let flagged = collector.flagged_features(&save.flags);
    CollectionSummary {
        total_samples_seen: collector.total_activations(),
        total_samples_stored,
        num_features_tracked: ranked.len() as u64,
        avg_samples_per_feature: total_samples_stored as f64 / ranked.len().max(1) as f64,
        features_with_samples,
        top_features_by_activation: ranked
            .iter()
            .take(SUMMARY_TOP_FEATURES)
            .map(|&f| {
                let statistics = collector
                    .statistics(f)
                    .expect("ranked features are in range");
                TopFeatureEntry {
                    feature_idx: f,
                    max_activation: statistics.max_activation,
                    num_samples: statistics.num_samples,
                }
            })
            .collect(),
        format_version: SAMPLES_FORMAT_VERSION,
        saectl_version: env!("CARGO_PKG_VERSION").to_string(),
        d_sae: collector.d_sae() as u64,
        tokens_seen: collector.tokens_seen(),
        sequences_seen: collector.sequences_seen(),
        special_tokens_excluded: collector.special_tokens_excluded(),
        dead_features: firing_counts.iter().filter(|&&c| c == 0).count() as u64,
        features_saved: saved.to_vec(),
        firing_counts,
        settings: Some(CollectionSettings {
            collector: collector.config().clone(),
            save: save.clone(),
        }),
        position_token_counts: Some(collector.position_tokens().to_vec()),
        flagged_features: Some(flagged),
        source,
    }
}
