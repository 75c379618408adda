//! Hand-made samples and folders for the analysis unit tests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::samples::format::{ActivationSample, FeatureFile, FeatureStatistics};
use crate::samples::token_names::token_names;
use crate::samples::SamplesFolder;

/// A sample with the given activating text and context split (token ids all zero).
pub(crate) fn sample(prefix: &str, text: &str, suffix: &str) -> ActivationSample {
    ActivationSample {
        feature_idx: 0,
        activation_value: 1.0,
        tokens: vec![0],
        text: text.to_string(),
        position: 0,
        context_tokens: vec![0],
        context_text: format!("{prefix}{text}{suffix}"),
        sequence_idx: 0,
        context_position: 0,
        context_prefix: prefix.to_string(),
        context_suffix: suffix.to_string(),
    }
}

/// A feature file whose samples are `(activating token, its text, activation, context ids)`;
/// statistics are derived from the samples (max, mean, count).
pub(crate) fn feature_file(feature: u32, samples: &[(u32, &str, f32, &[u32])]) -> FeatureFile {
    let top_samples: Vec<ActivationSample> = samples
        .iter()
        .map(|&(token, text, activation, context)| {
            let mut s = sample("", text, "");
            s.feature_idx = feature;
            s.tokens = vec![999, token];
            s.activation_value = activation;
            s.context_tokens = context.to_vec();
            s
        })
        .collect();
    let values: Vec<f64> = samples.iter().map(|s| f64::from(s.2)).collect();
    let max = values.iter().copied().fold(0.0, f64::max);
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    FeatureFile {
        statistics: FeatureStatistics {
            feature_idx: feature,
            max_activation: max,
            mean_activation: mean,
            num_samples: samples.len() as u64,
            activation_count: samples.len() as u64,
            all_time_max: None,
            min_activation: None,
            std_activation: None,
            firing_count: 0,
            density: 0.0,
            activation_sum: Default::default(),
            activation_sum_squares: Default::default(),
        },
        top_samples,
        activation_histogram: None,
        interval_samples: None,
        position_histogram: None,
        flags: None,
    }
}

/// Like [`feature_file`], each sample's context being only its activating token.
pub(crate) fn file_with(feature: u32, samples: &[(u32, &str, f32)]) -> FeatureFile {
    let contexts: Vec<[u32; 1]> = samples.iter().map(|s| [s.0]).collect();
    let full: Vec<(u32, &str, f32, &[u32])> = samples
        .iter()
        .zip(&contexts)
        .map(|(&(token, text, activation), context)| (token, text, activation, &context[..]))
        .collect();
    feature_file(feature, &full)
}

/// A folder (no summary, as the Python original might leave) holding `files`, whose `text` is
/// the activating token (as saectl writes it).
pub(crate) fn folder_with(files: Vec<FeatureFile>) -> SamplesFolder {
    let features: BTreeMap<u32, FeatureFile> = files
        .into_iter()
        .map(|file| (file.statistics.feature_idx, file))
        .collect();
    SamplesFolder {
        dir: PathBuf::from("samples"),
        summary: None,
        token_names: token_names(features.values(), true),
        features,
        logit_effects: None,
    }
}
