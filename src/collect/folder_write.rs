//! Writing a samples folder: the features with the largest max activation, each with its best
//! samples decoded to text, and `collection_summary.json`.
//!
//! Text is decoded here and only here, for the samples written — never per activation. Every
//! file is written atomically; feature files left by an earlier write of the same folder that
//! are no longer among the saved features are removed, so a folder never mixes two runs.

use std::path::Path;

use anyhow::{Context, Result};

use super::collector::Collector;
use super::config::SaveConfig;
use super::format::{
    feature_file_name, parse_feature_file_name, ActivationSample, CollectionSettings,
    CollectionSummary, FeatureFile, TopFeatureEntry, SAMPLES_FORMAT_VERSION, SUMMARY_FILE_NAME,
};
use super::top_samples::StoredSample;
use crate::util::atomic::write_json_atomic;

/// Turns token ids into text (a tokenizer, or a test vocabulary).
pub trait TokenDecoder {
    /// Decodes `ids`; implementations return a visible marker rather than fail, so one bad id
    /// cannot lose a whole collection at save time.
    fn decode(&self, ids: &[u32]) -> String;
}

/// Number of rows in the summary's `top_features_by_activation`, as in the original.
const SUMMARY_TOP_FEATURES: usize = 50;

/// Writes `collector` to `dir` (created if missing) and returns the summary written.
/// `source` is free-form provenance (model, hook point, checkpoint, dataset).
pub fn write_samples_folder(
    dir: &Path,
    collector: &Collector,
    decoder: &dyn TokenDecoder,
    save: &SaveConfig,
    source: serde_json::Map<String, serde_json::Value>,
) -> Result<CollectionSummary> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create samples folder {}", dir.display()))?;
    let ranked = collector.features_by_max_activation();
    let saved: Vec<u32> = ranked
        .iter()
        .copied()
        .take(save.top_features_to_save)
        .collect();
    for &feature in &saved {
        let file = feature_file(
            collector,
            decoder,
            feature,
            save.samples_per_feature_to_save,
        );
        write_json_atomic(&dir.join(feature_file_name(feature)), &file)?;
    }
    let summary = summary(collector, &ranked, &saved, save, source);
    write_json_atomic(&dir.join(SUMMARY_FILE_NAME), &summary)?;
    remove_stale_feature_files(dir, &saved)?;
    Ok(summary)
}

fn feature_file(
    collector: &Collector,
    decoder: &dyn TokenDecoder,
    feature: u32,
    limit: usize,
) -> FeatureFile {
    let statistics = collector
        .statistics(feature)
        .expect("saved features are in range");
    let top_samples = collector
        .top_samples(feature)
        .iter()
        .take(limit)
        .map(|stored| decode_sample(feature, stored, decoder))
        .collect();
    FeatureFile {
        statistics,
        top_samples,
    }
}

fn decode_sample(
    feature: u32,
    stored: &StoredSample,
    decoder: &dyn TokenDecoder,
) -> ActivationSample {
    let token = stored.token();
    let context_position = stored.context_position as usize;
    let context = &stored.context_tokens;
    ActivationSample {
        feature_idx: feature,
        activation_value: stored.activation,
        tokens: stored.previous_token.into_iter().chain([token]).collect(),
        text: decoder.decode(&[token]),
        position: stored.position,
        context_tokens: context.clone(),
        context_text: decoder.decode(context),
        sequence_idx: stored.sequence_idx,
        context_position: stored.context_position,
        context_prefix: decoder.decode(&context[..context_position]),
        context_suffix: decoder.decode(&context[context_position + 1..]),
    }
}

fn summary(
    collector: &Collector,
    ranked: &[u32],
    saved: &[u32],
    save: &SaveConfig,
    source: serde_json::Map<String, serde_json::Value>,
) -> CollectionSummary {
    let mut features_with_samples = ranked.to_vec();
    features_with_samples.sort_unstable();
    let total_samples_stored: u64 = ranked
        .iter()
        .map(|&f| collector.num_samples(f) as u64)
        .sum();
    let firing_counts = collector.firing_counts();
    let config = collector.config();
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
            max_samples_per_feature: config.max_samples_per_feature,
            sample_context_size: config.sample_context_size,
            sample_activation_threshold: config.sample_activation_threshold,
            top_features_to_save: save.top_features_to_save,
            samples_per_feature_to_save: save.samples_per_feature_to_save,
            exclude_special_tokens: config.exclude_special_tokens,
            dedup_context_windows: config.dedup_context_windows,
        }),
        source,
    }
}

fn remove_stale_feature_files(dir: &Path, saved: &[u32]) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
        let Some(feature) = entry.file_name().to_str().and_then(parse_feature_file_name) else {
            continue;
        };
        if !saved.contains(&feature) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("failed to remove stale {}", entry.path().display()))?;
        }
    }
    Ok(())
}
