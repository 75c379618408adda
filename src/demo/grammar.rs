//! The demo corpus: documents of short sentences whose slots are filled from the planted
//! concepts, deterministic for a seed.
//!
//! A sentence frame such as `{hero} saw a {colour} {animal} near the {place} .` fixes where
//! each concept may appear, so a language model trained on the corpus learns which concept
//! comes next, and its residual stream comes to encode "this is a colour", "an animal should
//! follow", and so on — the structure the demo's SAE is expected to recover. Two slots are
//! per document rather than per sentence: `{hero}` (a name) and `{pet}` (an animal) are drawn
//! once and repeated, so the model also gains from reading its context. Words are separated by
//! single spaces, punctuation included, which is exactly how the word-level tokenizer
//! (`vocab.rs`) splits them.

use super::concepts::Concept;
use crate::util::rng::SplitMix64;

/// The sentence frames. `{concept}` draws a fresh word of that concept; `{hero}` and `{pet}`
/// are the document's own name and animal.
const FRAMES: &[&str] = &[
    "{hero} saw a {colour} {animal} near the {place} .",
    "the {pet} {motion} to the {place} in the {time} .",
    "{hero} counted {number} {animal} in the {place} .",
    "{hero} ate {food} with {name} at the {place} .",
    "during the {weather} the {pet} felt {feeling} .",
    "{hero} {motion} through the {weather} to the {place} .",
    "the {colour} {food} was on the table .",
    "{hero} was {feeling} because the {animal} ate the {food} .",
    "every {time} {hero} {motion} to the {place} with {number} friends .",
    "{name} bought {number} {food} at the {place} .",
    "after the {weather} , {hero} and {name} found a {colour} {animal} .",
    "in the {time} the {animal} {motion} home .",
    "{hero} liked the {place} in the {time} .",
    "{hero} felt {feeling} and {motion} home .",
    "they shared {number} {food} on the {colour} table .",
    "there were {number} {colour} {animal} near the {pet} .",
];

/// Sentences per document, inclusive.
const SENTENCES: std::ops::RangeInclusive<u64> = 3..=7;

/// Generates documents of the demo corpus.
#[derive(Debug, Clone)]
pub struct CorpusGenerator {
    rng: SplitMix64,
}

impl CorpusGenerator {
    /// The same seed always gives the same documents (the generator is splitmix64).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64(seed),
        }
    }

    /// The next document: 3 to 7 sentences, words separated by single spaces.
    pub fn document(&mut self) -> String {
        let hero = self.rng.pick(Concept::Name.words());
        let pet = self.rng.pick(Concept::Animal.words());
        let count = SENTENCES.start() + self.rng.below(SENTENCES.end() - SENTENCES.start() + 1);
        let mut words: Vec<&str> = Vec::new();
        for _ in 0..count {
            let frame = self.rng.pick(FRAMES);
            for item in frame.split(' ') {
                words.push(match item {
                    "{hero}" => hero,
                    "{pet}" => pet,
                    slot if slot.starts_with('{') => self.rng.pick(slot_concept(slot).words()),
                    literal => literal,
                });
            }
        }
        words.join(" ")
    }

    /// `n` documents.
    pub fn documents(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.document()).collect()
    }
}

/// The concept a `{slot}` of a frame draws from.
fn slot_concept(slot: &str) -> Concept {
    match slot {
        "{animal}" => Concept::Animal,
        "{colour}" => Concept::Colour,
        "{number}" => Concept::Number,
        "{place}" => Concept::Place,
        "{name}" => Concept::Name,
        "{motion}" => Concept::Motion,
        "{food}" => Concept::Food,
        "{feeling}" => Concept::Feeling,
        "{weather}" => Concept::Weather,
        "{time}" => Concept::Time,
        // FRAMES is a constant checked by a test; an unknown slot is a bug in it.
        other => unreachable!("unknown slot {other} in the demo grammar"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::concepts::{FUNCTION_WORDS, PUNCTUATION};
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn same_seed_same_documents_and_different_seed_different_ones() {
        let a = CorpusGenerator::new(7).documents(20);
        assert_eq!(a, CorpusGenerator::new(7).documents(20));
        assert_ne!(a, CorpusGenerator::new(8).documents(20));
    }

    #[test]
    fn every_word_is_known_and_every_concept_appears() {
        let known: HashSet<&str> = FUNCTION_WORDS.iter().chain(PUNCTUATION).copied().collect();
        let mut concepts = HashSet::new();
        for doc in CorpusGenerator::new(1).documents(300) {
            let sentences = doc.matches(" .").count();
            assert!((3..=7).contains(&sentences), "{doc}");
            for word in doc.split(' ') {
                match Concept::of_word(word) {
                    Some(concept) => {
                        concepts.insert(concept);
                    }
                    None => assert!(known.contains(word), "unknown word `{word}` in {doc}"),
                }
            }
        }
        assert_eq!(concepts.len(), Concept::ALL.len());
    }

    #[test]
    fn every_frame_slot_is_a_concept() {
        for frame in FRAMES {
            for item in frame.split(' ').filter(|w| w.starts_with('{')) {
                if !matches!(item, "{hero}" | "{pet}") {
                    slot_concept(item); // panics on an unknown slot
                }
            }
        }
    }
}
