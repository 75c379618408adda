//! The planted concepts: the word lists of the demo corpus.
//!
//! Every content word of the synthetic corpus belongs to exactly one [`Concept`], and no word
//! belongs to two, so "which concept is this token?" has one answer. That is what makes the
//! demo's features checkable: a feature whose top activations all sit on animal words has
//! found the planted concept *animal*, and the share of its activations on one concept
//! (its purity, `purity.rs`) measures how well. Function words (`the`, `to`, …) and
//! punctuation belong to no concept.

/// A planted concept: a category of words the grammar uses in known slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Concept {
    Animal,
    Colour,
    Number,
    Place,
    Name,
    Motion,
    Food,
    Feeling,
    Weather,
    Time,
}

impl Concept {
    /// Every concept, in a fixed order.
    pub const ALL: [Concept; 10] = [
        Concept::Animal,
        Concept::Colour,
        Concept::Number,
        Concept::Place,
        Concept::Name,
        Concept::Motion,
        Concept::Food,
        Concept::Feeling,
        Concept::Weather,
        Concept::Time,
    ];

    /// The concept's name as reports show it.
    pub fn name(self) -> &'static str {
        match self {
            Concept::Animal => "animal",
            Concept::Colour => "colour",
            Concept::Number => "number",
            Concept::Place => "place",
            Concept::Name => "name",
            Concept::Motion => "verb of motion",
            Concept::Food => "food",
            Concept::Feeling => "feeling",
            Concept::Weather => "weather",
            Concept::Time => "time of day or year",
        }
    }

    /// The concept's words (all lower case, one token each).
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Concept::Animal => &[
                "cat", "dog", "horse", "rabbit", "fox", "wolf", "bear", "mouse", "owl", "eagle",
                "tiger", "lion", "sheep", "goat", "deer", "frog",
            ],
            Concept::Colour => &[
                "red", "blue", "green", "yellow", "purple", "orange", "white", "black", "brown",
                "grey", "pink", "golden",
            ],
            Concept::Number => &[
                "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve",
                "twenty", "forty",
            ],
            Concept::Place => &[
                "forest", "river", "city", "village", "mountain", "garden", "market", "harbor",
                "desert", "valley", "castle", "school", "library", "bridge",
            ],
            Concept::Name => &[
                "alice", "bob", "carol", "david", "emma", "frank", "grace", "henry", "iris",
                "jack", "kate", "leo", "mia", "noah",
            ],
            Concept::Motion => &[
                "ran", "walked", "flew", "swam", "jumped", "climbed", "crawled", "raced",
                "wandered", "hurried", "drifted", "marched",
            ],
            Concept::Food => &[
                "bread", "apple", "cheese", "soup", "rice", "honey", "cake", "pear", "carrot",
                "pie", "milk", "plum",
            ],
            Concept::Feeling => &[
                "happy", "sad", "angry", "calm", "afraid", "proud", "tired", "excited", "lonely",
                "curious", "nervous", "cheerful",
            ],
            Concept::Weather => &[
                "rain", "snow", "wind", "fog", "sunshine", "storm", "thunder", "frost", "hail",
                "drizzle",
            ],
            Concept::Time => &[
                "morning", "evening", "night", "noon", "dawn", "dusk", "winter", "summer",
                "spring", "autumn",
            ],
        }
    }

    /// The concept `word` belongs to, if any (function words and punctuation have none).
    pub fn of_word(word: &str) -> Option<Concept> {
        Concept::ALL
            .into_iter()
            .find(|concept| concept.words().contains(&word))
    }
}

/// The words that glue sentences together and belong to no concept.
pub const FUNCTION_WORDS: &[&str] = &[
    "the", "a", "to", "in", "at", "near", "with", "and", "of", "on", "through", "saw", "ate",
    "liked", "was", "felt", "because", "every", "during", "after", "counted", "bought", "friends",
    "shared", "found", "then", "home", "table", "it", "they", "were", "there", "some",
];

/// Punctuation tokens (written space-separated by the grammar).
pub const PUNCTUATION: &[&str] = &[".", ","];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_word_belongs_to_at_most_one_concept_and_no_word_is_also_glue() {
        let mut seen = HashSet::new();
        for concept in Concept::ALL {
            assert!(
                concept.words().len() >= 10,
                "{} is too small",
                concept.name()
            );
            for word in concept.words() {
                assert!(seen.insert(*word), "`{word}` is in two concepts");
                assert_eq!(Concept::of_word(word), Some(concept));
            }
        }
        for word in FUNCTION_WORDS.iter().chain(PUNCTUATION) {
            assert!(seen.insert(*word), "`{word}` is both glue and content");
            assert_eq!(Concept::of_word(word), None);
        }
    }
}
