//! Two features side by side: statistics, most frequent tokens, best examples, the tokens
//! they share and the similarity measures between them (see [`super::similarity`]).

use anyhow::Result;
use serde::Serialize;

use super::decoder::DecoderDirections;
use super::example::{examples_of, Example};
use super::similarity::{Profiler, Similarity};
use super::stats::FeatureStats;
use super::text::{fmt_density, fmt_opt, marked_terminal, visible_token};
use super::tokens::{render_tokens, token_shares, TokenShare};
use super::RULE_WIDTH;
use crate::samples::format::FeatureFile;
use crate::samples::SamplesFolder;

/// Activating tokens listed per side.
const TOP_TOKENS_SHOWN: usize = 5;

/// The comparison of two features.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub first: Side,
    pub second: Side,
    pub similarity: Similarity,
    /// Activating tokens both features fire on, most samples first.
    pub shared_tokens: Vec<SharedToken>,
}

/// One feature of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    pub stats: FeatureStats,
    pub top_tokens: Vec<TokenShare>,
    pub examples: Vec<Example>,
}

/// An activating token of both features, with its sample count on each side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SharedToken {
    pub token: u32,
    pub text: String,
    pub first_count: usize,
    pub second_count: usize,
}

/// Compares `first` and `second`, showing `examples` samples of each.
pub fn compare(
    folder: &SamplesFolder,
    first: u32,
    second: u32,
    examples: usize,
    decoder: Option<&DecoderDirections>,
) -> Result<Comparison> {
    let (a, b) = (folder.feature(first)?, folder.feature(second)?);
    let profiler = Profiler::new(folder, decoder);
    let similarity = Similarity::between(&profiler.profile(a), &profiler.profile(b));
    Ok(Comparison {
        first: side(folder, a, examples),
        second: side(folder, b, examples),
        similarity,
        shared_tokens: shared_tokens(&token_shares(folder, a), &token_shares(folder, b)),
    })
}

fn side(folder: &SamplesFolder, file: &FeatureFile, examples: usize) -> Side {
    let mut top_tokens = token_shares(folder, file);
    top_tokens.truncate(TOP_TOKENS_SHOWN);
    Side {
        stats: FeatureStats::new(file, folder.summary.as_ref()),
        top_tokens,
        examples: examples_of(file.top_samples.iter().take(examples)),
    }
}

/// Tokens in both lists, by total sample count (then token id).
pub(crate) fn shared_tokens(a: &[TokenShare], b: &[TokenShare]) -> Vec<SharedToken> {
    let mut shared: Vec<SharedToken> = a
        .iter()
        .filter_map(|x| {
            let y = b.iter().find(|y| y.token == x.token)?;
            Some(SharedToken {
                token: x.token,
                text: x.text.clone(),
                first_count: x.count,
                second_count: y.count,
            })
        })
        .collect();
    shared.sort_by(|x, y| {
        (y.first_count + y.second_count)
            .cmp(&(x.first_count + x.second_count))
            .then(x.token.cmp(&y.token))
    });
    shared
}

impl Comparison {
    pub fn render_text(&self) -> String {
        let rule = "=".repeat(RULE_WIDTH);
        let (a, b) = (&self.first.stats, &self.second.stats);
        let mut out = format!(
            "{rule}\nFEATURE {} vs FEATURE {}\n{rule}\n\n",
            a.feature, b.feature
        );
        out += &format!(
            "  {:<24}{:>14}{:>14}\n",
            "",
            format!("feature {}", a.feature),
            format!("feature {}", b.feature)
        );
        for (label, x, y) in stat_rows(a, b) {
            out += &format!("  {label:<24}{x:>14}{y:>14}\n");
        }
        out += &format!("\nSimilarity:\n{}", self.render_similarity());
        out += &format!("\nShared activating tokens: {}\n", self.render_shared());
        for side in [&self.first, &self.second] {
            out += &render_side(side);
        }
        out
    }

    /// One line per measure and one for the combined score, values aligned.
    fn render_similarity(&self) -> String {
        let mut rows: Vec<(String, f64)> = self
            .similarity
            .measures()
            .into_iter()
            .map(|(measure, value)| (format!("{}:", measure.description()), value))
            .collect();
        rows.push(("combined (mean):".to_string(), self.similarity.combined));
        let width = rows
            .iter()
            .map(|(label, _)| label.chars().count())
            .max()
            .unwrap_or(0)
            + 2;
        rows.iter()
            .map(|(label, value)| format!("  {label:<width$}{value:.4}\n"))
            .collect()
    }

    fn render_shared(&self) -> String {
        if self.shared_tokens.is_empty() {
            return "(none)".to_string();
        }
        let shown: Vec<String> = self
            .shared_tokens
            .iter()
            .map(|t| {
                format!(
                    "{} ({} | {})",
                    visible_token(&t.text),
                    t.first_count,
                    t.second_count
                )
            })
            .collect();
        shown.join(", ")
    }
}

fn stat_rows(a: &FeatureStats, b: &FeatureStats) -> Vec<(&'static str, String, String)> {
    let row = |label, f: &dyn Fn(&FeatureStats) -> String| (label, f(a), f(b));
    vec![
        row("Max activation", &|s| format!("{:.4}", s.max_activation)),
        row("Mean activation", &|s| format!("{:.4}", s.mean_activation)),
        row("Std activation", &|s| fmt_opt(s.std_activation, 4)),
        row("Min activation", &|s| fmt_opt(s.min_activation, 4)),
        row("Total activations seen", &|s| {
            s.activation_count.to_string()
        }),
        row("Firing tokens", &|s| {
            s.firing_count.map_or("n/a".to_string(), |c| c.to_string())
        }),
        row("Density", &|s| fmt_density(s.density)),
        row("Samples stored", &|s| s.samples_stored.to_string()),
    ]
}

fn render_side(side: &Side) -> String {
    let mut out = format!(
        "\nFeature {}: most frequent tokens {}\n  Top {} examples:\n",
        side.stats.feature,
        render_tokens(&side.top_tokens),
        side.examples.len()
    );
    for example in &side.examples {
        out += &format!(
            "  [{}] {:.4}  {}\n",
            example.rank,
            example.activation,
            marked_terminal(example.parts(), &example.context_text)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::test_support::{file_with, folder_with};

    #[test]
    fn compares_two_features_and_lists_shared_tokens() {
        let folder = folder_with(vec![
            file_with(1, &[(5, " cat", 2.0), (5, " cat", 1.0), (7, " dog", 1.0)]),
            file_with(2, &[(5, " cat", 1.0), (9, " owl", 1.0)]),
        ]);
        let view = compare(&folder, 1, 2, 2, None).unwrap();
        assert!((view.similarity.token_overlap - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(view.shared_tokens.len(), 1);
        assert_eq!(
            (
                view.shared_tokens[0].first_count,
                view.shared_tokens[0].second_count
            ),
            (2, 1)
        );
        assert_eq!(view.first.examples.len(), 2);
        let text = view.render_text();
        assert!(text.contains("FEATURE 1 vs FEATURE 2"), "{text}");
        assert!(text.contains("␣cat (2 | 1)"), "{text}");
    }

    #[test]
    fn a_feature_without_samples_compares_at_zero() {
        let folder = folder_with(vec![file_with(1, &[(5, "a", 1.0)]), file_with(2, &[])]);
        let view = compare(&folder, 1, 2, 3, None).unwrap();
        assert_eq!(view.similarity.combined, 0.0);
        assert!(view.second.examples.is_empty());
    }

    #[test]
    fn unknown_feature_is_an_error() {
        let folder = folder_with(vec![file_with(1, &[(5, "a", 1.0)])]);
        let err = compare(&folder, 1, 8, 2, None).unwrap_err();
        assert!(format!("{err:#}").contains("feature 8 is not in"));
    }
}
