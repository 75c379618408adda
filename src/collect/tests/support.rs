//! Test helpers: a word vocabulary decoder and batch builders.

use crate::collect::{Collector, FeatureActivations, TokenBatch};
use crate::data::TokenDecoder;
use crate::samples::CollectorConfig;

/// Decodes id `t` as `" tok{t}"` (the original's mock tokenizer joined `tok{t}` with spaces).
pub struct WordDecoder;

impl TokenDecoder for WordDecoder {
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|t| format!(" tok{t}")).collect()
    }
}

/// A dense `[batch, seq, d_sae]` batch that is zero except for `hits` `(row, pos, feature, value)`.
pub fn dense(
    batch: usize,
    seq: usize,
    d_sae: usize,
    hits: &[(usize, usize, usize, f32)],
) -> Vec<f32> {
    let mut values = vec![0.0; batch * seq * d_sae];
    for &(row, pos, feature, value) in hits {
        values[(row * seq + pos) * d_sae + feature] = value;
    }
    values
}

/// Ingests one dense batch whose rows are numbered from `first_sequence`.
pub fn ingest_dense(
    collector: &mut Collector,
    tokens: &[u32],
    seq: usize,
    values: &[f32],
    first_sequence: u64,
) {
    let batch = tokens.len() / seq;
    let tokens = TokenBatch::new(tokens, batch, seq, first_sequence).unwrap();
    let d_sae = collector.d_sae();
    collector
        .ingest(&tokens, &FeatureActivations::Dense { values, d_sae })
        .unwrap();
}

pub fn original(max_samples: usize, context: usize, threshold: f32) -> CollectorConfig {
    CollectorConfig {
        max_samples_per_feature: max_samples,
        sample_context_size: context,
        sample_activation_threshold: threshold,
        ..CollectorConfig::original()
    }
}

pub use crate::util::rng::SplitMix64 as SplitMix;
