//! How alike two features are, judged from their stored samples alone.
//!
//! Two measures from the samples, each in `[0, 1]`, a third from the SAE when a checkpoint is
//! given, and their mean:
//!
//! - **Activating-token overlap**: weighted Jaccard `Σ_t min(p_A(t), p_B(t)) / Σ_t max(…)`
//!   of the features' activating-token distributions, where `p_F(t)` is the share of F's
//!   stored activation mass on samples whose activating token is `t`. Normalising each
//!   feature to a distribution first makes the measure blind to scale: a feature that fires
//!   ten times harder on the same tokens still scores 1.
//! - **Context overlap**: cosine similarity of TF-IDF bag-of-context-token vectors. Each
//!   sample adds its activation to every token of its context window, except one occurrence
//!   of its own activating token (that is the first measure's business); each token's total
//!   is then multiplied by its inverse "document" frequency over the folder's features,
//!   `idf(t) = ln((1 + n) / (1 + df(t))) + 1` (n features, df(t) of them with `t` in some
//!   context). Without it, words found around every feature ("the", ",") make unrelated
//!   features look alike; with it they count least (weight 1) but still count.
//! - **Decoder cosine** (with `--checkpoint`): cosine of the two features' decoder rows, the
//!   directions they write into the residual stream, in `[-1, 1]`; it sees redundancy and
//!   feature splitting that the samples may not show.
//! - **Combined**: the mean of the measures available, a negative decoder cosine counting 0.
//!
//! The token measure depends only on the two features; the context measure also on which
//! features the folder holds (through idf). Both see only the top samples stored, so they
//! describe the features' strongest activations.

use std::collections::BTreeMap;

use serde::Serialize;

use super::decoder::{unit_cosine, DecoderDirections};
use super::tokens::{activating_token, sample_weight};
use crate::samples::format::FeatureFile;
use crate::samples::SamplesFolder;

/// What the measures need of one feature, computed once per feature.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureProfile {
    pub feature: u32,
    /// Activating-token distribution, sorted by token id, summing to 1 (empty without mass).
    token_shares: Vec<(u32, f64)>,
    /// Bag of context tokens, sorted by token id, with its Euclidean norm.
    context: Vec<(u32, f64)>,
    context_norm: f64,
    /// Unit decoder row, when a checkpoint was given.
    decoder: Option<Vec<f32>>,
}

/// Builds profiles with the folder's idf and, optionally, the SAE's decoder directions.
pub struct Profiler<'a> {
    idf: ContextIdf,
    decoder: Option<&'a DecoderDirections>,
}

impl<'a> Profiler<'a> {
    pub fn new(folder: &SamplesFolder, decoder: Option<&'a DecoderDirections>) -> Self {
        Self {
            idf: ContextIdf::of_folder(folder),
            decoder,
        }
    }

    pub fn profile(&self, file: &FeatureFile) -> FeatureProfile {
        let mut profile = FeatureProfile::new(file, &self.idf);
        profile.decoder = self
            .decoder
            .and_then(|d| d.row(profile.feature))
            .map(<[f32]>::to_vec);
        profile
    }
}

impl FeatureProfile {
    /// The profile of `file`, its context tokens weighted by `idf`.
    pub fn new(file: &FeatureFile, idf: &ContextIdf) -> Self {
        let mut tokens: BTreeMap<u32, f64> = BTreeMap::new();
        for sample in &file.top_samples {
            if let Some(token) = activating_token(sample) {
                *tokens.entry(token).or_default() += sample_weight(sample);
            }
        }
        let total: f64 = tokens.values().sum();
        let token_shares = if total > 0.0 {
            tokens.into_iter().map(|(t, w)| (t, w / total)).collect()
        } else {
            Vec::new()
        };
        let context: Vec<(u32, f64)> = context_bag(file)
            .into_iter()
            .map(|(t, w)| (t, w * idf.weight(t)))
            .collect();
        let context_norm = context.iter().map(|&(_, w)| w * w).sum::<f64>().sqrt();
        Self {
            feature: file.statistics.feature_idx,
            token_shares,
            context,
            context_norm,
            decoder: None,
        }
    }
}

/// Activation-weighted counts of the context tokens of a feature's samples, each sample's
/// own activating token left out once; only tokens with positive weight.
fn context_bag(file: &FeatureFile) -> BTreeMap<u32, f64> {
    let mut bag: BTreeMap<u32, f64> = BTreeMap::new();
    for sample in &file.top_samples {
        let weight = sample_weight(sample);
        let own = activating_token(sample);
        let mut skipped_own = false;
        for &token in &sample.context_tokens {
            if !skipped_own && Some(token) == own {
                skipped_own = true;
                continue;
            }
            *bag.entry(token).or_default() += weight;
        }
    }
    bag.retain(|_, w| *w > 0.0);
    bag
}

/// Inverse document frequency of context tokens over a set of features (the "documents"):
/// `ln((1 + n) / (1 + df)) + 1`, so a token around every feature weighs 1 and a rare one more.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextIdf {
    features: usize,
    document_frequency: BTreeMap<u32, usize>,
}

impl ContextIdf {
    /// Every token weighs 1: the plain cosine of the bags.
    pub fn uniform() -> Self {
        Self {
            features: 0,
            document_frequency: BTreeMap::new(),
        }
    }

    /// Frequencies over `files`.
    pub fn over<'a>(files: impl IntoIterator<Item = &'a FeatureFile>) -> Self {
        let mut idf = Self::uniform();
        for file in files {
            idf.features += 1;
            for token in context_bag(file).into_keys() {
                *idf.document_frequency.entry(token).or_default() += 1;
            }
        }
        idf
    }

    /// Frequencies over every feature of the folder.
    pub fn of_folder(folder: &SamplesFolder) -> Self {
        Self::over(folder.features.values())
    }

    pub fn weight(&self, token: u32) -> f64 {
        if self.features == 0 {
            return 1.0;
        }
        let df = self.document_frequency.get(&token).copied().unwrap_or(0);
        ((1 + self.features) as f64 / (1 + df) as f64).ln() + 1.0
    }
}

/// One of the measures, for listing them with their names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    TokenOverlap,
    ContextOverlap,
    DecoderCosine,
}

impl Measure {
    /// Short column heading.
    pub fn short_name(self) -> &'static str {
        match self {
            Measure::TokenOverlap => "tokens",
            Measure::ContextOverlap => "context",
            Measure::DecoderCosine => "decoder",
        }
    }

    /// What the number is, in a few words.
    pub fn description(self) -> &'static str {
        match self {
            Measure::TokenOverlap => "activating-token overlap (weighted Jaccard)",
            Measure::ContextOverlap => "context overlap (TF-IDF cosine of context tokens)",
            Measure::DecoderCosine => "decoder-direction cosine (from the SAE checkpoint)",
        }
    }
}

/// The similarity of two features: each measure and their mean, all in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Similarity {
    pub token_overlap: f64,
    pub context_overlap: f64,
    /// Cosine of the decoder rows, when both features have one (`--checkpoint`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoder_cosine: Option<f64>,
    /// Mean of the measures above (a negative decoder cosine counts 0).
    pub combined: f64,
}

impl Similarity {
    pub fn between(a: &FeatureProfile, b: &FeatureProfile) -> Self {
        let token_overlap = weighted_jaccard(&a.token_shares, &b.token_shares);
        let context_overlap = cosine(&a.context, a.context_norm, &b.context, b.context_norm);
        let decoder_cosine = match (&a.decoder, &b.decoder) {
            (Some(x), Some(y)) => Some(unit_cosine(x, y)),
            _ => None,
        };
        let mut similarity = Self {
            token_overlap,
            context_overlap,
            decoder_cosine,
            combined: 0.0,
        };
        let measures = similarity.measures();
        similarity.combined =
            measures.iter().map(|&(_, v)| v.max(0.0)).sum::<f64>() / measures.len() as f64;
        similarity
    }

    /// Every measure with its value, in display order (the combined score excluded).
    pub fn measures(&self) -> Vec<(Measure, f64)> {
        let mut measures = vec![
            (Measure::TokenOverlap, self.token_overlap),
            (Measure::ContextOverlap, self.context_overlap),
        ];
        measures.extend(self.decoder_cosine.map(|c| (Measure::DecoderCosine, c)));
        measures
    }
}

/// `Σ min / Σ max` over the union of two sparse non-negative vectors sorted by key;
/// 0 when both are empty.
fn weighted_jaccard(a: &[(u32, f64)], b: &[(u32, f64)]) -> f64 {
    let (mut min_sum, mut max_sum) = (0.0, 0.0);
    merge_join(a, b, |x, y| {
        min_sum += x.min(y);
        max_sum += x.max(y);
    });
    if max_sum > 0.0 {
        (min_sum / max_sum).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Cosine of two sparse non-negative vectors sorted by key; 0 when either is zero.
fn cosine(a: &[(u32, f64)], a_norm: f64, b: &[(u32, f64)], b_norm: f64) -> f64 {
    if a_norm == 0.0 || b_norm == 0.0 {
        return 0.0;
    }
    let mut dot = 0.0;
    merge_join(a, b, |x, y| dot += x * y);
    (dot / (a_norm * b_norm)).clamp(0.0, 1.0)
}

/// Calls `f(a_value, b_value)` for every key of either vector (0 where a side lacks it),
/// in key order, so sums are taken in one fixed order.
fn merge_join(a: &[(u32, f64)], b: &[(u32, f64)], mut f: impl FnMut(f64, f64)) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let key_a = a.get(i).map_or(u32::MAX as u64 + 1, |e| u64::from(e.0));
        let key_b = b.get(j).map_or(u32::MAX as u64 + 1, |e| u64::from(e.0));
        if key_a == key_b {
            f(a[i].1, b[j].1);
            i += 1;
            j += 1;
        } else if key_a < key_b {
            f(a[i].1, 0.0);
            i += 1;
        } else {
            f(0.0, b[j].1);
            j += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::test_support::{feature_file, file_with};

    fn profile(file: &FeatureFile) -> FeatureProfile {
        FeatureProfile::new(file, &ContextIdf::uniform())
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn matches_hand_computed_values() {
        // A: token 5 carries 3/4 of the mass, token 7 1/4; context bag {1:2, 2:3, 3:1}.
        let a = feature_file(
            1,
            &[
                (5, "a", 2.0, &[1, 5, 2]),
                (5, "a", 1.0, &[5, 2]),
                (7, "b", 1.0, &[3, 7]),
            ],
        );
        // B: tokens 5 and 9 at 1/2 each; context bag {2:1, 3:1, 4:1}.
        let b = feature_file(2, &[(5, "a", 1.0, &[2, 5]), (9, "c", 1.0, &[9, 3, 4])]);
        let s = Similarity::between(&profile(&a), &profile(&b));
        // Σmin = min(3/4, 1/2) = 1/2; Σmax = 3/4 + 1/4 + 1/2 = 3/2.
        assert!(close(s.token_overlap, 1.0 / 3.0), "{s:?}");
        // dot = 3·1 + 1·1 = 4; norms √14 and √3.
        assert!(close(s.context_overlap, 4.0 / 42f64.sqrt()), "{s:?}");
        assert!(close(s.combined, (1.0 / 3.0 + 4.0 / 42f64.sqrt()) / 2.0));
    }

    #[test]
    fn is_symmetric_and_one_on_itself() {
        let a = feature_file(1, &[(5, "a", 2.0, &[1, 5]), (6, "b", 1.0, &[6, 2])]);
        let b = feature_file(2, &[(5, "a", 1.0, &[3, 5]), (8, "c", 4.0, &[8])]);
        let (pa, pb) = (profile(&a), profile(&b));
        assert_eq!(Similarity::between(&pa, &pb), Similarity::between(&pb, &pa));
        let own = Similarity::between(&pa, &pa);
        assert!(close(own.token_overlap, 1.0) && close(own.context_overlap, 1.0));
    }

    #[test]
    fn is_blind_to_activation_scale() {
        let a = file_with(1, &[(5, "a", 1.0), (6, "b", 1.0)]);
        let b = file_with(2, &[(5, "a", 10.0), (6, "b", 10.0)]);
        let s = Similarity::between(&profile(&a), &profile(&b));
        assert!(close(s.token_overlap, 1.0));
    }

    #[test]
    fn decoder_cosine_joins_the_measures_and_counts_zero_when_opposed() {
        let a = file_with(0, &[(5, "a", 1.0)]);
        let b = file_with(1, &[(5, "a", 1.0)]);
        let c = file_with(2, &[(6, "b", 1.0)]);
        // Rows (3, 4), (6, 8) and (-3, -4): normalised on load, so cosines 1 and -1.
        let decoder = DecoderDirections::from_rows(3, 2, vec![3.0, 4.0, 6.0, 8.0, -3.0, -4.0]);
        let folder =
            crate::analyze::test_support::folder_with(vec![a.clone(), b.clone(), c.clone()]);
        let profiler = Profiler::new(&folder, Some(&decoder));
        let same = Similarity::between(&profiler.profile(&a), &profiler.profile(&b));
        // f32 rows: exact to ~1e-7.
        let near = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(near(same.decoder_cosine.unwrap(), 1.0));
        assert_eq!(same.measures().len(), 3);
        assert!(near(
            same.combined,
            (same.token_overlap + same.context_overlap + 1.0) / 3.0
        ));
        let opposed = Similarity::between(&profiler.profile(&a), &profiler.profile(&c));
        assert!(near(opposed.decoder_cosine.unwrap(), -1.0));
        assert!(near(
            opposed.combined,
            (opposed.token_overlap + opposed.context_overlap) / 3.0
        ));
        // Without a checkpoint the measure is absent, not zero.
        let plain = Similarity::between(&profile(&a), &profile(&b));
        assert_eq!((plain.decoder_cosine, plain.measures().len()), (None, 2));
    }

    #[test]
    fn disjoint_or_empty_features_score_zero() {
        let a = file_with(1, &[(5, "a", 1.0)]);
        let b = file_with(2, &[(6, "b", 1.0)]);
        let empty = file_with(3, &[]);
        let (pa, pb, pe) = (profile(&a), profile(&b), profile(&empty));
        assert_eq!(Similarity::between(&pa, &pb).combined, 0.0);
        assert_eq!(Similarity::between(&pa, &pe).combined, 0.0);
        assert_eq!(Similarity::between(&pe, &pe).combined, 0.0);
    }

    #[test]
    fn only_one_occurrence_of_the_own_token_leaves_the_context() {
        // Context [5, 5, 2] with activating token 5: the bag is {5:1, 2:1}.
        let a = feature_file(1, &[(5, "a", 1.0, &[5, 5, 2])]);
        let b = feature_file(2, &[(9, "z", 1.0, &[5, 2, 9])]);
        let s = Similarity::between(&profile(&a), &profile(&b));
        assert!(close(s.context_overlap, 1.0));
    }

    #[test]
    fn idf_weighs_tokens_around_every_feature_least() {
        // Own tokens 9 are left out: the bags are {1, 2}, {1, 3}, {1, 4}.
        let files = [
            feature_file(1, &[(9, "x", 1.0, &[9, 1, 2])]),
            feature_file(2, &[(9, "x", 1.0, &[9, 1, 3])]),
            feature_file(3, &[(9, "x", 1.0, &[9, 1, 4])]),
        ];
        let idf = ContextIdf::over(&files);
        assert!(close(idf.weight(1), 1.0));
        assert!(close(idf.weight(2), 1.0 + 2f64.ln()));
        assert!(close(idf.weight(77), 1.0 + 4f64.ln()));
        let (a, b) = (
            FeatureProfile::new(&files[0], &idf),
            FeatureProfile::new(&files[1], &idf),
        );
        // Plain cosine 1/2; with idf 1 / (1 + (1 + ln 2)²).
        let expected = 1.0 / (1.0 + (1.0 + 2f64.ln()).powi(2));
        assert!(close(Similarity::between(&a, &b).context_overlap, expected));
        assert!(close(
            Similarity::between(&profile(&files[0]), &profile(&files[1])).context_overlap,
            0.5
        ));
    }
}
