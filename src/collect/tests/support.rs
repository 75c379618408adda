//! Test helpers: a word vocabulary decoder and batch builders.

use crate::collect::{Collector, CollectorConfig, FeatureActivations, TokenBatch, TokenDecoder};

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

/// Deterministic pseudo-random numbers (splitmix64) for building test data without a crate.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
