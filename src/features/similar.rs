//! Similar features, three ways, precomputed for every feature so the page only looks them up.
//!
//! - **Token overlap**: the features fire on the same tokens. Each feature's marked tokens
//!   (over all its examples) form a distribution; the score is the overlap of two
//!   distributions, `Σ_t min(p(t), q(t))` — 1 for identical token mixes, 0 for disjoint ones.
//! - **Context overlap**: the features fire in the same passages. Each example's marked token
//!   falls in a block of `block` tokens of its sequence; the score is the Jaccard index of two
//!   features' sets of (sequence, block). It finds features that describe one passage from
//!   different angles, whatever the token.
//! - **Decoder cosine** (with the checkpoint): the cosine of the decoder rows, the standard
//!   measure of redundancy and feature splitting.
//!
//! The first two go through an inverted index, so their cost follows the postings, not
//! `d_sae²`; very common keys are capped at [`MAX_POSTINGS`] heaviest entries (a token that
//! a thousand features fire on says little about any two of them).

use std::collections::HashMap;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};

use super::model::FeatureSet;
use crate::analyze::decoder::DecoderDirections;
use crate::util::parallel;

/// Neighbours listed per feature and measure.
pub const NEIGHBOURS: usize = 10;
/// Postings kept per token or passage key.
const MAX_POSTINGS: usize = 256;

/// Per feature, the most similar features with their scores, best first.
pub type NeighbourLists = Vec<Vec<(u32, f32)>>;

/// Token overlap of every feature with every other (see the module docs).
pub fn token_overlap(model: &FeatureSet) -> NeighbourLists {
    let mut weights: Vec<Vec<(u32, f32)>> = Vec::with_capacity(model.features.len());
    for feature in &model.features {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for example in feature.groups.iter().flat_map(|g| &g.examples) {
            *counts.entry(example.token()).or_default() += 1;
        }
        let total: u32 = counts.values().sum();
        let mut list: Vec<(u32, f32)> = counts
            .into_iter()
            .map(|(t, c)| (t, c as f32 / total as f32))
            .collect();
        list.sort_by_key(|&(t, _)| t);
        weights.push(list);
    }
    overlap_neighbours(&weights, |a, b| a.min(b), |shared, _, _| shared)
}

/// Context overlap of every feature with every other (see the module docs).
pub fn context_overlap(model: &FeatureSet, block: u32) -> NeighbourLists {
    let block = block.max(1);
    let mut keys_of: Vec<Vec<(u64, f32)>> = Vec::with_capacity(model.features.len());
    for feature in &model.features {
        let mut keys: Vec<u64> = feature
            .groups
            .iter()
            .flat_map(|g| &g.examples)
            .map(|e| e.sequence.wrapping_mul(1 << 24) ^ u64::from(e.position / block))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys_of.push(keys.into_iter().map(|k| (k, 1.0)).collect());
    }
    let sizes: Vec<f32> = keys_of.iter().map(|k| k.len() as f32).collect();
    overlap_neighbours(
        &keys_of,
        |_, _| 1.0,
        |shared, a, b| shared / (sizes[a] + sizes[b] - shared),
    )
}

/// The top neighbours under `score(Σ_key combine(w_a, w_b), a, b)` over shared keys, on
/// every core.
fn overlap_neighbours<K: Copy + Eq + std::hash::Hash + Sync>(
    keys_of: &[Vec<(K, f32)>],
    combine: impl Fn(f32, f32) -> f32 + Sync,
    score: impl Fn(f32, usize, usize) -> f32 + Sync,
) -> NeighbourLists {
    overlap_neighbours_on(parallel::cores(), keys_of, combine, score)
}

/// Features scored per task: enough that a task's map of shared weights is reused.
const FEATURES_PER_TASK: usize = 256;

/// [`overlap_neighbours`] on `threads`: each feature's list depends only on the postings (its
/// sums run over its own keys in order), so the lists do not depend on the thread count.
fn overlap_neighbours_on<K: Copy + Eq + std::hash::Hash + Sync>(
    threads: usize,
    keys_of: &[Vec<(K, f32)>],
    combine: impl Fn(f32, f32) -> f32 + Sync,
    score: impl Fn(f32, usize, usize) -> f32 + Sync,
) -> NeighbourLists {
    let mut postings: HashMap<K, Vec<(u32, f32)>> = HashMap::new();
    for (f, keys) in keys_of.iter().enumerate() {
        for &(key, w) in keys {
            postings.entry(key).or_default().push((f as u32, w));
        }
    }
    for list in postings.values_mut() {
        if list.len() > MAX_POSTINGS {
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            list.truncate(MAX_POSTINGS);
        }
    }
    let tasks = keys_of.len().div_ceil(FEATURES_PER_TASK);
    let lists = parallel::map(threads, tasks, |task| {
        let mut shared: HashMap<u32, f32> = HashMap::new();
        let first = task * FEATURES_PER_TASK;
        let last = (first + FEATURES_PER_TASK).min(keys_of.len());
        (first..last)
            .map(|f| {
                shared.clear();
                for (key, w) in &keys_of[f] {
                    for &(g, wg) in &postings[key] {
                        if g as usize != f {
                            *shared.entry(g).or_default() += combine(*w, wg);
                        }
                    }
                }
                let scored: Vec<(u32, f32)> = shared
                    .iter()
                    .map(|(&g, &s)| (g, score(s, f, g as usize)))
                    .collect();
                best(scored)
            })
            .collect::<Vec<_>>()
    });
    lists.into_iter().flatten().collect()
}

/// The [`NEIGHBOURS`] highest scores, ties to the lower index.
fn best(mut scored: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(NEIGHBOURS);
    scored
}

/// Decoder-cosine neighbours of every feature: `W_dec W_decᵀ` in blocks of rows on the CPU,
/// the top [`NEIGHBOURS`] of each row kept.
pub fn decoder_cosine(directions: &DecoderDirections, d_in: usize) -> Result<NeighbourLists> {
    const BLOCK: usize = 512;
    let d_sae = directions.d_sae();
    let rows: Vec<f32> = (0..d_sae as u32)
        .flat_map(|f| directions.row(f).expect("feature is in range").to_vec())
        .collect();
    let all = Tensor::from_vec(rows, (d_sae, d_in), &Device::Cpu)?; // [d_sae, d_in]
    let all_t = all.t()?.contiguous()?; // [d_in, d_sae]
    let mut out = Vec::with_capacity(d_sae);
    for start in (0..d_sae).step_by(BLOCK) {
        let len = BLOCK.min(d_sae - start);
        let cosines = all
            .narrow(0, start, len)?
            .matmul(&all_t)?
            .to_vec2::<f32>()
            .context("decoder cosines")?; // [len, d_sae]
        for (i, row) in cosines.into_iter().enumerate() {
            let f = start + i;
            let scored = row
                .into_iter()
                .enumerate()
                .filter(|&(g, c)| g != f && c.is_finite())
                .map(|(g, c)| (g as u32, c))
                .collect();
            out.push(best(scored));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_scores_by_shared_weight_and_excludes_self() {
        // 0 and 1 share token 7 fully; 2 shares half its mass with 0.
        let keys = vec![
            vec![(7u32, 1.0f32)],
            vec![(7, 1.0)],
            vec![(7, 0.5), (9, 0.5)],
            vec![(11, 1.0)],
        ];
        let lists = overlap_neighbours(&keys, |a, b| a.min(b), |s, _, _| s);
        assert_eq!(lists[0], vec![(1, 1.0), (2, 0.5)]);
        assert_eq!(lists[2], vec![(0, 0.5), (1, 0.5)]);
        assert!(lists[3].is_empty());
    }

    #[test]
    fn overlap_lists_do_not_depend_on_the_thread_count() {
        // 1,000 features over 60 keys with uneven weights: several tasks, many ties.
        let keys: Vec<Vec<(u32, f32)>> = (0..1000u32)
            .map(|f| {
                (0..1 + f % 5)
                    .map(|j| ((f * 7 + j * 13) % 60, 1.0 / (1 + (f + j) % 3) as f32))
                    .collect()
            })
            .collect();
        let serial = overlap_neighbours_on(1, &keys, |a, b| a.min(b), |s, _, _| s);
        assert_eq!(serial.len(), 1000);
        assert!(serial.iter().all(|l| l.len() == NEIGHBOURS));
        for threads in [2, 3] {
            let parallel = overlap_neighbours_on(threads, &keys, |a, b| a.min(b), |s, _, _| s);
            assert_eq!(parallel, serial, "{threads} threads");
        }
    }

    #[test]
    fn decoder_cosine_finds_the_parallel_row() {
        let directions = DecoderDirections::from_rows(3, 2, vec![1.0, 0.0, 0.0, 1.0, 2.0, 0.1]);
        let lists = decoder_cosine(&directions, 2).unwrap();
        assert_eq!(lists[0][0].0, 2);
        assert!((lists[0][0].1 - 0.99875).abs() < 1e-4, "{:?}", lists[0]);
        assert_eq!(lists[1][0].0, 2);
    }
}
