//! The text of each activating token, as far as a folder tells it without a tokenizer.
//!
//! saectl's samples record the activating token's own text in `text`. The Python original's
//! record the previous and the activating token decoded together (`" the cat"` for `[the,
//! cat]`): naming the token by it would label a feature `␣the␣cat`, and differently for each
//! previous token. The folder holds enough to recover most tokens' own text when the decoder
//! only joins what it decodes (byte-level BPE, SentencePiece inside a text): a sample at
//! position 0 records its token alone; a pair whose previous token is known leaves the
//! activating token's text after it (and the other way round); a context whose tokens are known
//! but one leaves that one's text. These steps repeat until nothing new is learnt. A token
//! that cannot be recovered this way has no name (views show its id).

use std::collections::BTreeMap;

use super::format::{ActivationSample, FeatureFile};

/// Rounds of the fixed point: each learns from what the previous one named.
const MAX_ROUNDS: usize = 16;

/// Token id → its text, for the tokens the folder names.
pub type TokenNames = BTreeMap<u32, String>;

/// The names of the activating tokens of `features`. `text_is_token`: the folder's `text` is
/// the activating token alone (saectl's folders).
pub fn token_names<'a>(
    features: impl Iterator<Item = &'a FeatureFile> + Clone,
    text_is_token: bool,
) -> TokenNames {
    let samples = || features.clone().flat_map(samples_of);
    let mut names = TokenNames::new();
    for sample in samples() {
        if text_is_token || sample.tokens.len() == 1 {
            if let Some(&token) = sample.tokens.last() {
                names.entry(token).or_insert_with(|| sample.text.clone());
            }
        }
    }
    if text_is_token {
        return names;
    }
    for _ in 0..MAX_ROUNDS {
        let before = names.len();
        for sample in samples() {
            learn_from_pair(&mut names, sample);
            learn_from_context(&mut names, &sample.context_tokens, &sample.context_text);
        }
        if names.len() == before {
            break;
        }
    }
    names
}

/// Every sample of a feature file: its top samples and its interval samples.
fn samples_of(file: &FeatureFile) -> impl Iterator<Item = &ActivationSample> {
    let intervals = file.interval_samples.iter().flatten();
    file.top_samples
        .iter()
        .chain(intervals.flat_map(|interval| &interval.samples))
}

/// `[previous, token]` decoded together: either part's text from the other's.
fn learn_from_pair(names: &mut TokenNames, sample: &ActivationSample) {
    let [previous, token] = sample.tokens[..] else {
        return;
    };
    learn_from_context(names, &[previous, token], &sample.text);
}

/// `text` is `ids` decoded together: strip the known names from both ends; a single token
/// left is named by what remains.
fn learn_from_context(names: &mut TokenNames, ids: &[u32], text: &str) {
    let (mut first, mut last) = (0, ids.len());
    let mut rest = text;
    while first < last {
        match names
            .get(&ids[first])
            .and_then(|n| rest.strip_prefix(n.as_str()))
        {
            Some(stripped) => {
                rest = stripped;
                first += 1;
            }
            None => break,
        }
    }
    while first < last {
        match names
            .get(&ids[last - 1])
            .and_then(|n| rest.strip_suffix(n.as_str()))
        {
            Some(stripped) => {
                rest = stripped;
                last -= 1;
            }
            None => break,
        }
    }
    if last - first == 1 && !rest.is_empty() {
        names.entry(ids[first]).or_insert_with(|| rest.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::format::FeatureStatistics;

    fn sample(tokens: &[u32], text: &str, context: &[u32], context_text: &str) -> ActivationSample {
        ActivationSample {
            feature_idx: 0,
            activation_value: 1.0,
            tokens: tokens.to_vec(),
            text: text.into(),
            position: tokens.len() as u32 - 1,
            context_tokens: context.to_vec(),
            context_text: context_text.into(),
            sequence_idx: 0,
            context_position: 0,
            context_prefix: String::new(),
            context_suffix: String::new(),
        }
    }

    fn file(samples: Vec<ActivationSample>) -> FeatureFile {
        let statistics: FeatureStatistics = serde_json::from_str(
            r#"{"feature_idx": 0, "max_activation": 1, "mean_activation": 1, "num_samples": 1,
                "activation_count": 1}"#,
        )
        .unwrap();
        FeatureFile {
            statistics,
            top_samples: samples,
            activation_histogram: None,
            interval_samples: None,
            position_histogram: None,
            flags: None,
        }
    }

    #[test]
    fn the_originals_pairs_and_contexts_name_their_tokens() {
        // 2 = "<bos>", 5 = " the", 7 = " cat", 9 = " sat", 4 = " a".
        let files = [file(vec![
            sample(&[2], "<bos>", &[2, 5, 7], "<bos> the cat"),
            sample(&[2, 5], "<bos> the", &[2, 5, 7], "<bos> the cat"),
            sample(&[5, 7], " the cat", &[2, 5, 7, 9], "<bos> the cat sat"),
            sample(&[4, 7], " a cat", &[4, 7], " a cat"),
        ])];
        let names = token_names(files.iter(), false);
        // <bos> from position 0, " the" after it, then " cat", " sat" (context) and " a".
        let expected = [
            (2, "<bos>"),
            (4, " a"),
            (5, " the"),
            (7, " cat"),
            (9, " sat"),
        ];
        let got: Vec<(u32, &str)> = names.iter().map(|(&k, v)| (k, v.as_str())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn what_cannot_be_told_stays_unnamed_and_saectl_texts_are_taken_as_they_are() {
        let files = [file(vec![sample(&[5, 7], " the cat", &[5, 7], " the cat")])];
        assert!(token_names(files.iter(), false).is_empty());
        let names = token_names(files.iter(), true);
        assert_eq!(names.get(&7).map(String::as_str), Some(" the cat"));
    }
}
