//! Concept purity: how well a feature of the demo matches one planted concept.
//!
//! A feature's purity is the share of its stored top activations whose activating token is a
//! word of its most common concept (tokens of no concept — function words, punctuation —
//! count against it). A feature that fires on animal words only has purity 1; samples drawn at
//! random from the corpus reach about the share of the most common concept among all tokens
//! (measured by [`random_purity`]), far below. `saectl demo` prints the purity of the report's
//! features and the integration test asserts it (docs/demo.md has the measured distribution).

use std::collections::BTreeMap;

use super::concepts::Concept;
use super::vocab::vocabulary;
use crate::analyze::overview;
use crate::samples::SamplesFolder;
use crate::util::rng::SplitMix64;

/// One feature's purity.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturePurity {
    pub feature: u32,
    /// Stored top samples measured.
    pub samples: usize,
    /// The most common concept among the activating tokens (None: no sample is a concept word).
    pub concept: Option<Concept>,
    /// Share of the samples on that concept's words.
    pub purity: f64,
    /// Different words of that concept among the samples: 1 for a single-word feature, more
    /// for a feature of the concept as a whole.
    pub distinct_words: usize,
    /// The most common activating token and its share of the samples.
    pub top_token: Option<(u32, f64)>,
}

/// The concept of token `id` of the demo tokenizer, if it is a concept word.
pub fn concept_of_token(id: u32) -> Option<Concept> {
    vocabulary()
        .get(id as usize)
        .and_then(|word| Concept::of_word(word))
}

/// Purity of a group of activating tokens.
pub fn purity_of_tokens(feature: u32, tokens: &[u32]) -> FeaturePurity {
    let mut counts: BTreeMap<Concept, usize> = BTreeMap::new();
    for &token in tokens {
        if let Some(concept) = concept_of_token(token) {
            *counts.entry(concept).or_default() += 1;
        }
    }
    // Ties go to the first concept in `Concept::ALL` order (BTreeMap iterates in that order).
    let best = counts.iter().fold(
        None,
        |best: Option<(Concept, usize)>, (&c, &n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((c, n)),
        },
    );
    let concept = best.map(|(c, _)| c);
    let mut token_counts: BTreeMap<u32, usize> = BTreeMap::new();
    for &token in tokens {
        *token_counts.entry(token).or_default() += 1;
    }
    let distinct_words = token_counts
        .keys()
        .filter(|&&t| concept.is_some() && concept_of_token(t) == concept)
        .count();
    // Most common token; ties to the lower id.
    let top_token = token_counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&t, &n)| (t, n as f64 / tokens.len() as f64));
    FeaturePurity {
        feature,
        samples: tokens.len(),
        concept,
        purity: match best {
            Some((_, n)) if !tokens.is_empty() => n as f64 / tokens.len() as f64,
            _ => 0.0,
        },
        distinct_words,
        top_token,
    }
}

impl FeaturePurity {
    /// The larger of the concept purity and the top token's share: how much of the feature
    /// one explanation covers, when a feature of a single function word (`through`) counts as
    /// explained too.
    pub fn explained(&self) -> f64 {
        self.purity
            .max(self.top_token.map_or(0.0, |(_, share)| share))
    }

    /// One line for the terminal: `animal 100% (6 words: bear, …)` or the top word.
    pub fn describe(&self, examples: &[u32]) -> String {
        let vocab = vocabulary();
        let word = |t: u32| vocab.get(t as usize).copied().unwrap_or("?");
        match (self.concept, self.top_token) {
            (Some(concept), _) if self.purity >= 0.5 => {
                let mut words: Vec<&str> = Vec::new();
                for &t in examples {
                    if concept_of_token(t) == Some(concept) && !words.contains(&word(t)) {
                        words.push(word(t));
                    }
                }
                words.truncate(5);
                let noun = if self.distinct_words == 1 {
                    "word"
                } else {
                    "words"
                };
                format!(
                    "{:>4.0}% {} ({} {noun}: {}{})",
                    100.0 * self.purity,
                    concept.name(),
                    self.distinct_words,
                    words.join(", "),
                    if self.distinct_words > words.len() {
                        ", …"
                    } else {
                        ""
                    }
                )
            }
            (_, Some((token, share))) => format!(
                "{:>4.0}% the word `{}` (no planted concept)",
                100.0 * share,
                word(token)
            ),
            _ => "no samples".to_string(),
        }
    }
}

/// Purity of the `top` features a report shows (the largest max activation first), measured
/// on each feature's stored top samples.
pub fn report_purity(folder: &SamplesFolder, top: usize) -> Vec<FeaturePurity> {
    overview(folder, top)
        .rows
        .iter()
        .map(|row| {
            let feature = row.stats.feature;
            let tokens: Vec<u32> = folder.features[&feature]
                .top_samples
                .iter()
                .filter_map(|s| s.tokens.last().copied())
                .collect();
            purity_of_tokens(feature, &tokens)
        })
        .collect()
}

/// Mean purity of `groups` groups of `size` tokens drawn uniformly from `stream`: what a
/// feature with random (or misaligned) samples would score.
pub fn random_purity(stream: &[u32], size: usize, groups: usize, seed: u64) -> f64 {
    let mut rng = SplitMix64(seed);
    let total: f64 = (0..groups)
        .map(|g| {
            let tokens: Vec<u32> = (0..size)
                .map(|_| stream[rng.below(stream.len() as u64) as usize])
                .collect();
            purity_of_tokens(g as u32, &tokens).purity
        })
        .sum();
    total / groups.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(word: &str) -> u32 {
        vocabulary().iter().position(|w| *w == word).unwrap() as u32
    }

    #[test]
    fn purity_counts_the_majority_concept_against_all_samples() {
        let tokens = [id("cat"), id("dog"), id("red"), id("the")];
        let p = purity_of_tokens(7, &tokens);
        assert_eq!(
            (p.concept, p.purity, p.samples),
            (Some(Concept::Animal), 0.5, 4)
        );
        assert_eq!(p.distinct_words, 2);
        assert_eq!(p.explained(), 0.5);
        let none = purity_of_tokens(1, &[id("the"), id("."), id("the")]);
        assert_eq!((none.concept, none.purity), (None, 0.0));
        assert_eq!(none.top_token, Some((id("the"), 2.0 / 3.0)));
        assert!(none.describe(&[]).contains("`the`"));
        assert_eq!(purity_of_tokens(2, &[]).purity, 0.0);
    }

    #[test]
    fn random_samples_from_the_corpus_are_far_from_pure() {
        let docs = super::super::grammar::CorpusGenerator::new(5).documents(200);
        let stream = super::super::lm::token_stream(&docs).unwrap();
        let random = random_purity(&stream, 20, 200, 1);
        assert!(random < 0.3, "random purity {random}");
    }
}
