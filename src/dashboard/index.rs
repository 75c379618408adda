//! The index block: what the feature list, the filters and the search need for every
//! feature, read by the page at load (JSON; the field names are what
//! `assets/dashboard/dashboard.js` reads, documented in docs/dashboard.md).

use std::collections::BTreeMap;

use serde::Serialize;

use super::encode::{Provenance, Vocabulary, DATA_FORMAT_VERSION, SHARD_SIZE};
use crate::features::model::{FeatureData, FeatureSet, GroupKind};

/// Flag bits of the index's `flags` column.
const DEAD: u8 = 1;
const ULTRA_RARE: u8 = 2;
const SINGLE_TOKEN: u8 = 4;
const POSITION: u8 = 8;
const BOS: u8 = 16;

/// The index block (see the module docs); field names are what the page reads.
#[derive(Serialize)]
pub(super) struct Index<'a> {
    format: u32,
    provenance: &'a Provenance,
    d_sae: usize,
    tokens_seen: u64,
    sequences_seen: u64,
    threshold: f32,
    context_size: usize,
    ultra_rare_density: f64,
    dominant_share: f64,
    shard_size: usize,
    shards: usize,
    vocab: Vec<String>,
    vocab_ids: &'a [u32],
    firing: Vec<u64>,
    count: Vec<u64>,
    max: Vec<f32>,
    mean: Vec<f32>,
    std: Vec<f32>,
    min: Vec<f32>,
    flags: Vec<u8>,
    /// Vocabulary code of the sampled top token, −1 when none.
    top_token: Vec<i64>,
    top_share: Vec<f32>,
    /// Per vocabulary code: `[feature, count, feature, count, …]` over top-example marked
    /// tokens; only codes with postings are listed (`code → list`).
    tok_post: BTreeMap<u32, Vec<u32>>,
    /// Per vocabulary code: `[feature, rank, …]` over the promoted logit tokens.
    logit_post: BTreeMap<u32, Vec<u32>>,
    has_logits: bool,
    pub(super) has_decoder: bool,
    has_token_activations: bool,
}

pub(super) fn index<'a>(
    model: &'a FeatureSet,
    provenance: &'a Provenance,
    vocab: &'a Vocabulary,
    texts: Vec<String>,
) -> Index<'a> {
    let features = &model.features;
    let column = |f: &dyn Fn(&FeatureData) -> f32| features.iter().map(f).collect::<Vec<f32>>();
    let mut tok_post: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut logit_post: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (f, feature) in features.iter().enumerate() {
        let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
        for group in feature.groups.iter().filter(|g| g.kind == GroupKind::Top) {
            for example in &group.examples {
                *counts.entry(vocab.code(example.token())).or_default() += 1;
            }
        }
        for (code, count) in counts {
            tok_post.entry(code).or_default().extend([f as u32, count]);
        }
        if let Some((top, _)) = &feature.logits {
            for (rank, &(t, _)) in top.iter().enumerate() {
                logit_post
                    .entry(vocab.code(t))
                    .or_default()
                    .extend([f as u32, rank as u32]);
            }
        }
    }
    let facts = &model.facts;
    Index {
        format: DATA_FORMAT_VERSION,
        provenance,
        d_sae: facts.d_sae,
        tokens_seen: facts.tokens_seen,
        sequences_seen: facts.sequences_seen,
        threshold: facts.activation_threshold,
        context_size: facts.context_size,
        ultra_rare_density: facts.flags.ultra_rare_density,
        dominant_share: facts.flags.dominant_share,
        shard_size: SHARD_SIZE,
        shards: features.len().div_ceil(SHARD_SIZE),
        vocab: texts,
        vocab_ids: &vocab.ids,
        firing: features.iter().map(|f| f.statistics.firing_count).collect(),
        count: features
            .iter()
            .map(|f| f.statistics.activation_count)
            .collect(),
        max: column(&|f| f.statistics.max_activation as f32),
        mean: column(&|f| f.statistics.mean_activation as f32),
        std: column(&|f| f.statistics.std_activation.map_or(f32::NAN, |v| v as f32)),
        min: column(&|f| f.statistics.min_activation.map_or(f32::NAN, |v| v as f32)),
        flags: features.iter().map(flag_bits).collect(),
        top_token: features
            .iter()
            .map(|f| f.flags.top_token.map_or(-1, |t| i64::from(vocab.code(t))))
            .collect(),
        top_share: column(&|f| f.flags.top_token_share as f32),
        tok_post,
        logit_post,
        has_logits: features.iter().any(|f| f.logits.is_some()),
        has_decoder: false,
        has_token_activations: features
            .iter()
            .flat_map(|f| f.groups.iter().flat_map(|g| &g.examples))
            .any(|e| e.token_activations.is_some()),
    }
}

fn flag_bits(feature: &FeatureData) -> u8 {
    let f = &feature.flags;
    [
        (f.dead, DEAD),
        (f.ultra_rare, ULTRA_RARE),
        (f.single_token, SINGLE_TOKEN),
        (f.position_dominated, POSITION),
        (f.bos_dominated, BOS),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |bits, (_, bit)| bits | bit)
}
