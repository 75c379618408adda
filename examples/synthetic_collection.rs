//! Runs the real collector over a synthetic stream and writes a samples folder.
//!
//! Until a language model is wired in, this is the quickest way to see the collector, `analyze`
//! and `report` work end to end. Sentences are drawn from a tiny grammar whose words fall in
//! known categories (animals, colours, places, numbers); each synthetic "feature" fires on one
//! category with noise, a few fire on two (polysemantic), and some never fire (dead). The
//! activations are dense `[tokens, d_sae]`, as a ReLU SAE would produce.
//!
//! `cargo run --release --example synthetic_collection [-- OUT_DIR]` (default
//! `target/synthetic-samples`), then `saectl analyze OUT_DIR` or `saectl report OUT_DIR`.

use std::path::PathBuf;

use saectl::collect::{write_samples_folder, Collector, FeatureActivations, TokenBatch};
use saectl::data::TokenDecoder;
use saectl::samples::{CollectionSource, CollectorConfig, SamplesDir, SaveConfig};
use saectl::util::rng::SplitMix64;

const BOS: u32 = 2;
const SEQ_LEN: usize = 32;
const ROWS_PER_BATCH: usize = 16;
const BATCHES: usize = 40;
const D_SAE: usize = 64;

const FILLER: &[&str] = &[
    "the", "a", "saw", "near", "with", "and", "today", "was", "very", "in", ".",
];
const CATEGORIES: &[(&str, &[&str])] = &[
    ("animal", &["cat", "dog", "horse", "owl", "fox"]),
    ("colour", &["red", "blue", "green", "yellow"]),
    ("place", &["Paris", "Lima", "Oslo", "Cairo"]),
    ("number", &["two", "seven", "twelve", "forty"]),
];

/// Token ids: 0–3 specials, then filler words, then each category's words.
struct Vocabulary {
    words: Vec<String>,
    category_of: Vec<Option<usize>>,
}

impl Vocabulary {
    fn new() -> Self {
        let mut words: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"]
            .map(String::from)
            .to_vec();
        let mut category_of = vec![None; 4];
        for word in FILLER {
            words.push(word.to_string());
            category_of.push(None);
        }
        for (category, (_, members)) in CATEGORIES.iter().enumerate() {
            for word in *members {
                words.push(word.to_string());
                category_of.push(Some(category));
            }
        }
        Self { words, category_of }
    }

    fn ids_in(&self, category: usize) -> Vec<u32> {
        (0..self.words.len() as u32)
            .filter(|&t| self.category_of[t as usize] == Some(category))
            .collect()
    }
}

impl TokenDecoder for Vocabulary {
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&t| {
                format!(
                    " {}",
                    self.words.get(t as usize).map_or("<?>", String::as_str)
                )
            })
            .collect()
    }
}

/// One sequence: BOS, then filler words with a category word every few tokens.
fn sentence(rng: &mut SplitMix64, vocab: &Vocabulary) -> Vec<u32> {
    let filler: Vec<u32> = (4..4 + FILLER.len() as u32).collect();
    let mut tokens = vec![BOS];
    while tokens.len() < SEQ_LEN {
        let token = if rng.next_u64() % 3 == 0 {
            let category = (rng.next_u64() % CATEGORIES.len() as u64) as usize;
            rng.pick(&vocab.ids_in(category))
        } else {
            rng.pick(&filler)
        };
        tokens.push(token);
    }
    tokens
}

/// Feature `f` responds to category `f % 4`; every 8th also to the next category; features
/// 48.. are dead. Small noise fires everywhere below the threshold.
fn activations(rng: &mut SplitMix64, tokens: &[u32], vocab: &Vocabulary) -> Vec<f32> {
    let mut values = vec![0.0f32; tokens.len() * D_SAE];
    for (t, &token) in tokens.iter().enumerate() {
        let category = vocab.category_of[token as usize];
        for f in 0..48 {
            let own = f % CATEGORIES.len();
            let responds = category == Some(own)
                || (f % 8 == 0 && category == Some((own + 1) % CATEGORIES.len()));
            let noise = if rng.next_u64() % 16 == 0 {
                rng.next_f32() * 0.08
            } else {
                0.0
            };
            values[t * D_SAE + f] = if responds {
                0.5 + rng.next_f32() * (1.0 + f as f32 / 48.0)
            } else {
                noise
            };
        }
    }
    values
}

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/synthetic-samples"), PathBuf::from);
    let vocab = Vocabulary::new();
    let mut rng = SplitMix64(49);
    let mut collector = Collector::new(CollectorConfig::default(), D_SAE, &[0, 1, BOS, 3])?;
    for batch in 0..BATCHES {
        let tokens: Vec<u32> = (0..ROWS_PER_BATCH)
            .flat_map(|_| sentence(&mut rng, &vocab))
            .collect();
        let values = activations(&mut rng, &tokens, &vocab);
        let token_batch = TokenBatch::new(
            &tokens,
            ROWS_PER_BATCH,
            SEQ_LEN,
            (batch * ROWS_PER_BATCH) as u64,
        )?;
        collector.ingest(
            &token_batch,
            &FeatureActivations::Dense {
                values: &values,
                d_sae: D_SAE,
            },
        )?;
    }
    let mut source = CollectionSource::default();
    source
        .other
        .insert("producer".into(), "examples/synthetic_collection.rs".into());
    let summary = write_samples_folder(
        &SamplesDir::new(&out),
        &collector,
        &vocab,
        &SaveConfig {
            top_features_to_save: 48,
            ..SaveConfig::default()
        },
        source,
    )?;
    eprintln!(
        "wrote {} features from {} tokens ({} BOS skipped, {} dead features) to {}",
        summary.features_saved.len(),
        summary.tokens_seen,
        summary.special_tokens_excluded,
        summary.dead_features,
        out.display()
    );
    Ok(())
}
