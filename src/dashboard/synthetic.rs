//! A synthetic samples folder of any width from a fixed seed, for the dashboard's size and
//! speed measurements and its browser tests — made by the real collector, so it has every
//! file a `collect` run writes (state, summary, feature files, logit effects, tokenizer).
//!
//! Tokens follow a Zipf law over a vocabulary of made-up words. Each token triggers
//! [`FEATURES_PER_TOKEN`] features chosen by a hash; feature `f` fires on each occurrence of
//! one of its triggers with `base(f) · (0.3 + 0.7·u)`, `u` a hash of (feature, sequence,
//! position). Because an activation depends only on the token and where it is, the feature's
//! activation on every token of a stored window can be recomputed exactly
//! ([`SyntheticRule::context_activations`]) — what the collector will record per example
//! (issue 14 §1), so the size budget can be measured with them.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

use crate::collect::{write_samples_folder, Collector, FeatureActivations, TokenBatch};
use crate::data::TokenDecoder;
use crate::features::model::{ContextActivations, FeatureSet};
use crate::samples::{
    CollectionSource, CollectorConfig, FeatureLogitEffects, LogitEffects, LogitEffectsHeader,
    SamplesDir, SaveConfig, TokenEffect, STATE_FILE_NAME,
};
use crate::util::rng::{mix64, SplitMix64};

/// Features each token triggers.
pub const FEATURES_PER_TOKEN: usize = 8;
const SPECIALS: [&str; 4] = ["<pad>", "<eos>", "<bos>", "<unk>"];
const BOS: u32 = 2;
const SYLLABLES: [&str; 32] = [
    "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "da", "fe", "gu", "ho", "ji", "ke", "lu", "ma",
    "ni", "or", "pe", "qui", "ra", "se", "ti", "ul", "ve", "wo", "xa", "yo", "ze", "an", "el",
    "is",
];

/// What a synthetic folder is made of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticSpec {
    pub d_sae: usize,
    /// Words in the vocabulary (specials excluded).
    pub vocab: usize,
    pub tokens: usize,
    pub seq_len: usize,
    pub seed: u64,
}

impl SyntheticSpec {
    /// The 16k-feature folder of the size and speed budgets.
    pub fn sixteen_k(tokens: usize) -> Self {
        Self {
            d_sae: 16_384,
            vocab: 16_384,
            tokens,
            seq_len: 128,
            seed: 14,
        }
    }
}

/// The generating rule, to recompute activations.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticRule {
    spec: SyntheticSpec,
}

impl SyntheticRule {
    pub fn new(spec: SyntheticSpec) -> Self {
        Self { spec }
    }

    /// The features token `t` triggers (none for special tokens).
    fn features_of(&self, t: u32) -> impl Iterator<Item = u32> + '_ {
        let special = (t as usize) < SPECIALS.len();
        (0..FEATURES_PER_TOKEN as u64)
            .filter(move |_| !special)
            .map(move |j| {
                (mix64(self.spec.seed ^ (u64::from(t) << 8) ^ j) % self.spec.d_sae as u64) as u32
            })
    }

    fn value(&self, f: u32, sequence: u64, position: u32) -> f32 {
        let base = 1.0 + 4.0 * unit(mix64(self.spec.seed.wrapping_add(u64::from(f))));
        let u = unit(mix64(
            (sequence << 20) ^ (u64::from(position) << 40) ^ u64::from(f) ^ self.spec.seed,
        ));
        base * (0.3 + 0.7 * u)
    }

    /// Feature `f`'s activation on every token of a window starting at `start` of `sequence`.
    pub fn window(&self, f: u32, sequence: u64, start: u32, tokens: &[u32]) -> Vec<(u32, f32)> {
        tokens
            .iter()
            .enumerate()
            .filter(|(_, &t)| self.features_of(t).any(|g| g == f))
            .map(|(i, _)| (i as u32, self.value(f, sequence, start + i as u32)))
            .collect()
    }

    /// The per-token activations of every example of `model`.
    pub fn context_activations(&self, model: &FeatureSet) -> ContextActivations {
        let mut out = ContextActivations::new();
        for (f, feature) in model.features.iter().enumerate() {
            for e in feature.groups.iter().flat_map(|g| &g.examples) {
                let values = self.window(f as u32, e.sequence, e.start(), &e.tokens);
                out.insert((f as u32, e.sequence, e.position), values);
            }
        }
        out
    }
}

fn unit(bits: u64) -> f32 {
    (bits >> 40) as f32 / (1u64 << 24) as f32
}

/// The made-up words, shortest for the most frequent ranks.
pub fn words(n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let s = SYLLABLES.len();
    let mut i = 0usize;
    while out.len() < n {
        let word = if i < s * s {
            format!("{}{}", SYLLABLES[i / s], SYLLABLES[i % s])
        } else {
            let j = i - s * s;
            format!(
                "{}{}{}",
                SYLLABLES[j / (s * s) % s],
                SYLLABLES[j / s % s],
                SYLLABLES[j % s]
            )
        };
        out.push(word);
        i += 1;
    }
    out
}

/// A word-level `tokenizer.json` over `tokens` (ids in order), decoding with spaces between
/// words; special tokens are the ones named in `specials`.
pub fn word_level_tokenizer_json(tokens: &[String], specials: &[&str]) -> String {
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), json!(id)))
        .collect();
    let added: Vec<Value> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| specials.contains(&t.as_str()))
        .map(|(id, token)| {
            json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    serde_json::to_string_pretty(&tokenizer).expect("a JSON value serialises") + "\n"
}

struct Words(Vec<String>);

impl TokenDecoder for Words {
    fn decode(&self, ids: &[u32]) -> String {
        let words: Vec<&str> = ids
            .iter()
            .map(|&t| self.0.get(t as usize).map_or("<?>", String::as_str))
            .collect();
        words.join(" ")
    }
}

/// Writes the folder to `dir` (created): tokenizer.json, the collector state, the samples
/// folder and logit_effects.json. Returns the collector.
pub fn write_synthetic_folder(dir: &Path, spec: SyntheticSpec) -> Result<Collector> {
    std::fs::create_dir_all(dir)?;
    let mut vocabulary: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    vocabulary.extend(words(spec.vocab));
    let tokenizer_path = dir.join("tokenizer.json");
    std::fs::write(
        &tokenizer_path,
        word_level_tokenizer_json(&vocabulary, &SPECIALS),
    )?;
    let rule = SyntheticRule::new(spec);
    let zipf = ZipfTable::new(spec.vocab, 1.05);
    let mut rng = SplitMix64(spec.seed);
    let mut collector = Collector::new(CollectorConfig::default(), spec.d_sae, &[0, 1, BOS, 3])?;
    let rows_per_batch = 64;
    let batches = spec.tokens.div_ceil(spec.seq_len * rows_per_batch);
    for batch in 0..batches {
        let first = (batch * rows_per_batch) as u64;
        let tokens: Vec<u32> = (0..rows_per_batch * spec.seq_len)
            .map(|i| {
                if i % spec.seq_len == 0 {
                    BOS
                } else {
                    SPECIALS.len() as u32 + zipf.sample(&mut rng)
                }
            })
            .collect();
        let (mut offsets, mut indices, mut values) = (vec![0usize], Vec::new(), Vec::new());
        for (i, &t) in tokens.iter().enumerate() {
            let sequence = first + (i / spec.seq_len) as u64;
            let position = (i % spec.seq_len) as u32;
            let mut fs: Vec<u32> = rule.features_of(t).collect();
            fs.sort_unstable();
            fs.dedup();
            for f in fs {
                indices.push(f);
                values.push(rule.value(f, sequence, position));
            }
            offsets.push(indices.len());
        }
        collector.ingest(
            &TokenBatch::new(&tokens, rows_per_batch, spec.seq_len, first)?,
            &FeatureActivations::Sparse {
                offsets: &offsets,
                indices: &indices,
                values: &values,
                d_sae: spec.d_sae,
            },
        )?;
    }
    collector.save_state(&dir.join(STATE_FILE_NAME))?;
    let mut source = CollectionSource {
        tokenizer: Some(tokenizer_path.display().to_string()),
        ..CollectionSource::default()
    };
    source
        .other
        .insert("producer".into(), "saectl::dashboard::synthetic".into());
    source.other.insert("seed".into(), spec.seed.into());
    let words = Words(vocabulary);
    write_samples_folder(
        &SamplesDir::new(dir),
        &collector,
        &words,
        &SaveConfig::default(),
        source,
    )?;
    SamplesDir::new(dir).write_logit_effects(&synthetic_logits(&rule, &words, spec))?;
    Ok(collector)
}

/// Each feature promotes its trigger tokens (strongest first), then arbitrary ones.
fn synthetic_logits(rule: &SyntheticRule, words: &Words, spec: SyntheticSpec) -> LogitEffects {
    let mut triggers: Vec<Vec<u32>> = vec![Vec::new(); spec.d_sae];
    for t in SPECIALS.len() as u32..(SPECIALS.len() + spec.vocab) as u32 {
        for f in rule.features_of(t) {
            triggers[f as usize].push(t);
        }
    }
    let effect = |t: u32, value: f32| TokenEffect {
        token_id: t,
        text: words.decode(&[t]),
        value,
    };
    let features = triggers
        .iter()
        .enumerate()
        .map(|(f, tokens)| {
            let mut top: Vec<TokenEffect> = tokens
                .iter()
                .take(10)
                .enumerate()
                .map(|(i, &t)| effect(t, 2.0 - 0.1 * i as f32))
                .collect();
            let mut k = 0u64;
            while top.len() < 10 {
                let t =
                    SPECIALS.len() as u32 + (mix64(f as u64 ^ k << 32) % spec.vocab as u64) as u32;
                top.push(effect(t, 1.0 - 0.05 * top.len() as f32));
                k += 1;
            }
            let bottom = (0..10)
                .map(|i| {
                    let t = SPECIALS.len() as u32
                        + (mix64((f as u64) << 16 ^ i) % spec.vocab as u64) as u32;
                    effect(t, -1.0 + 0.05 * i as f32)
                })
                .collect();
            FeatureLogitEffects {
                feature_idx: f as u32,
                top,
                bottom,
                vocab_mean: Some(0.0),
            }
        })
        .collect();
    LogitEffects {
        header: LogitEffectsHeader {
            format_version: crate::samples::LOGIT_EFFECTS_FORMAT,
            formula: "synthetic: each feature promotes its trigger tokens".into(),
            convention: crate::samples::LogitConvention::Uncentred,
            model: "synthetic".into(),
            checkpoint: "synthetic".into(),
            d_sae: spec.d_sae as u64,
            vocab_size: (SPECIALS.len() + spec.vocab) as u64,
            tokens_per_feature: 10,
        },
        features,
    }
}

/// Inverse-CDF sampling of a Zipf law over ranks `0..n`.
struct ZipfTable {
    cdf: Vec<f64>,
}

impl ZipfTable {
    fn new(n: usize, exponent: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / (rank as f64).powf(exponent);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Self { cdf }
    }

    fn sample(&self, rng: &mut SplitMix64) -> u32 {
        let u = f64::from(rng.next_f32());
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::model::ExampleCounts;

    #[test]
    fn recomputed_window_activations_agree_with_the_collector() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SyntheticSpec {
            d_sae: 64,
            vocab: 200,
            tokens: 4096,
            seq_len: 32,
            seed: 3,
        };
        let collector = write_synthetic_folder(dir.path(), spec).unwrap();
        let model = FeatureSet::from_collector(
            &collector,
            &Default::default(),
            ExampleCounts { top: 20 },
            None,
        );
        let rule = SyntheticRule::new(spec);
        let recorded = rule.context_activations(&model);
        let mut checked = 0;
        for (f, feature) in model.features.iter().enumerate() {
            for e in feature.groups.iter().flat_map(|g| &g.examples) {
                let values = &recorded[&(f as u32, e.sequence, e.position)];
                // The marked token's value is the collector's own number, bit for bit.
                let at = values.iter().find(|(i, _)| *i == e.at).unwrap();
                assert_eq!(at.1, e.activation);
                checked += 1;
            }
        }
        assert!(checked > 500, "{checked}");
        let tokenizer =
            tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
        assert_eq!(tokenizer.decode(&[4, 5], false).unwrap(), "kaka kalo");
    }
}
