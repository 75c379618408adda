//! The activating tokens of a feature's stored samples, counted: which tokens it fires on.
//!
//! A sample's activating token is the last of its `tokens` (the original stored the previous
//! and the activating token). Tokens are named by the folder's [`SamplesFolder::token_text`]:
//! saectl's `text` is the activating token alone, but the original's is both tokens decoded
//! together, so it cannot label a token (`␣the␣cat` for `cat`); a token the folder cannot name
//! shows as its id, `⟨3797⟩`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::text::visible_token;
use crate::samples::format::{ActivationSample, FeatureFile};
use crate::samples::SamplesFolder;

/// The id of the token a sample fired on (`None` for a malformed sample with no tokens).
pub fn activating_token(sample: &ActivationSample) -> Option<u32> {
    sample.tokens.last().copied()
}

/// The weight a sample carries in the measures: its activation, with non-positive values
/// (possible only with a negative collection threshold) carrying none.
pub fn sample_weight(sample: &ActivationSample) -> f64 {
    f64::from(sample.activation_value).max(0.0)
}

/// One activating token of a feature and how much of the feature's samples it accounts for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenShare {
    pub token: u32,
    /// The token's decoded text, raw.
    pub text: String,
    /// Stored samples whose activating token this is.
    pub count: usize,
    /// Sum of those samples' activations.
    pub activation_sum: f64,
}

/// The name of `token` in `folder`, or its id when the folder cannot tell its text.
pub fn token_label(folder: &SamplesFolder, token: u32) -> String {
    match folder.token_text(token) {
        Some(text) => text.to_string(),
        None => format!("⟨{token}⟩"),
    }
}

/// The feature's activating tokens, most frequent first (then larger activation sum, then
/// lower id).
pub fn token_shares(folder: &SamplesFolder, file: &FeatureFile) -> Vec<TokenShare> {
    let mut by_token: BTreeMap<u32, TokenShare> = BTreeMap::new();
    for sample in &file.top_samples {
        let Some(token) = activating_token(sample) else {
            continue;
        };
        let share = by_token.entry(token).or_insert_with(|| TokenShare {
            token,
            text: token_label(folder, token),
            count: 0,
            activation_sum: 0.0,
        });
        share.count += 1;
        share.activation_sum += sample_weight(sample);
    }
    let mut shares: Vec<TokenShare> = by_token.into_values().collect();
    shares.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.activation_sum.total_cmp(&a.activation_sum))
            .then(a.token.cmp(&b.token))
    });
    shares
}

/// The feature's most frequent activating token, if it has samples.
pub fn top_token(folder: &SamplesFolder, file: &FeatureFile) -> Option<TokenShare> {
    token_shares(folder, file).into_iter().next()
}

/// `␣cat ×5, ␣dog ×2`, or `(none)`.
pub(crate) fn render_tokens(tokens: &[TokenShare]) -> String {
    if tokens.is_empty() {
        return "(none)".to_string();
    }
    let shown: Vec<String> = tokens
        .iter()
        .map(|t| format!("{} ×{}", visible_token(&t.text), t.count))
        .collect();
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::test_support::{file_with, folder_with};

    #[test]
    fn counts_then_activation_then_id() {
        let file = file_with(
            0,
            &[
                (5, " cat", 1.0),
                (7, " dog", 3.0),
                (5, " cat", 0.5),
                (9, " owl", 3.0),
            ],
        );
        let shares = token_shares(&folder_with(vec![file.clone()]), &file);
        let order: Vec<(u32, usize)> = shares.iter().map(|s| (s.token, s.count)).collect();
        assert_eq!(order, vec![(5, 2), (7, 1), (9, 1)]);
        assert_eq!(shares[0].activation_sum, 1.5);
        assert_eq!(shares[0].text, " cat");
    }
}
