//! One feature in detail: the Python original's feature report (its documented "Example
//! Output"), with what saectl adds — min, firing count and density, the folder's token
//! totals, the most frequent activating tokens, the activating token marked inside its
//! context (`...the fluffy [[ cat]] sat...`), and the full feature view when the folder has
//! it: flags, the histogram of every activation, positions, and interval samples.

use anyhow::Result;
use serde::Serialize;

use super::example::{examples_of, render_example, Example};
use super::feature_view::{
    activation_histogram, flag_labels, interval_examples, render_positions, IntervalExamples,
    DEFAULT_MAX_BARS,
};
use super::histogram::Histogram;
use super::logits::logit_line;
use super::stats::{FeatureStats, FolderInfo};
use super::text::{fmt_density, fmt_opt, visible_token};
use super::tokens::{render_tokens, token_shares, TokenShare};
use super::RULE_WIDTH;
use crate::samples::format::{FeatureFlags, PositionHistogram};
use crate::samples::{FeatureLogitEffects, SamplesFolder};

/// Activating tokens listed in a feature's summary line.
const TOP_TOKENS_SHOWN: usize = 5;

/// The report of one feature.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureReport {
    pub folder: FolderInfo,
    pub stats: FeatureStats,
    /// Most frequent activating tokens among the stored samples (at most 5).
    pub top_tokens: Vec<TokenShare>,
    pub examples: Vec<Example>,
    /// The output tokens its decoder direction moves most, when the folder has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_effects: Option<FeatureLogitEffects>,
    /// The feature view (absent in folders that did not record it).
    pub flags: Option<FeatureFlags>,
    /// Every activation above the threshold, fixed bins regrouped to at most 24 bars.
    pub histogram: Option<Histogram>,
    pub positions: Option<PositionHistogram>,
    /// Each interval with up to the requested number of examples.
    pub intervals: Vec<IntervalExamples>,
}

/// The report of `feature` with its best `examples` samples (none for a feature whose file
/// holds no sample: its statistics still tell something).
pub fn feature_report(
    folder: &SamplesFolder,
    feature: u32,
    examples: usize,
) -> Result<FeatureReport> {
    let file = folder.feature(feature)?;
    let mut top_tokens = token_shares(folder, file);
    top_tokens.truncate(TOP_TOKENS_SHOWN);
    Ok(FeatureReport {
        folder: FolderInfo::new(folder),
        stats: FeatureStats::new(file, folder.summary.as_ref()),
        top_tokens,
        examples: examples_of(file.top_samples.iter().take(examples)),
        logit_effects: folder
            .logit_effects
            .as_ref()
            .and_then(|l| l.feature(feature))
            .cloned(),
        flags: file.flags.clone(),
        histogram: activation_histogram(file, DEFAULT_MAX_BARS),
        positions: file.position_histogram.clone(),
        intervals: interval_examples(file, examples),
    })
}

impl FeatureReport {
    /// The terminal report, in the original's layout.
    pub fn render_text(&self) -> String {
        let rule = "=".repeat(RULE_WIDTH);
        let mut out = format!(
            "{rule}\nFEATURE {} INTERPRETABILITY REPORT\n{rule}\n\n",
            self.stats.feature
        );
        out += "Statistics:\n";
        out += &render_stats(&self.stats, "  ");
        if let Some(flags) = &self.flags {
            let labels = flag_labels(flags, self.stats.density);
            let shown = if labels.is_empty() {
                "none".to_string()
            } else {
                labels.join("; ")
            };
            out += &format!("  Flags: {shown}\n");
        }
        if let Some(tokens) = self.folder.tokens_seen {
            let excluded = self.folder.special_tokens_excluded.unwrap_or(0);
            out += &format!(
                "  Tokens seen (whole collection): {tokens}, special tokens excluded: {excluded}\n"
            );
        }
        out += &format!(
            "\nMost frequent activating tokens: {}\n",
            render_tokens(&self.top_tokens)
        );
        if let Some(logits) = &self.logit_effects {
            out += "\nLogit effects (decoder direction through the final norm and unembedding):\n";
            out += &format!("  Promotes:   {}\n", logit_line(&logits.top, visible_token));
            out += &format!(
                "  Suppresses: {}\n",
                logit_line(&logits.bottom, visible_token)
            );
        }
        out += &format!(
            "\nTop {} Activating Examples:\n{}\n",
            self.examples.len(),
            "-".repeat(RULE_WIDTH)
        );
        for example in &self.examples {
            out += &format!("\n{}", render_example(example));
        }
        out += &self.render_view();
        out
    }

    /// The feature view's sections (nothing for folders that did not record it).
    fn render_view(&self) -> String {
        let mut out = String::new();
        if let Some(histogram) = &self.histogram {
            out += &format!(
                "\nActivation histogram (all {} activations above the threshold, log-spaced bins):\n{}",
                histogram.total(),
                histogram.render_bars()
            );
        }
        if let Some(positions) = &self.positions {
            out += &format!(
                "\nActivations by position: {}\n",
                render_positions(positions)
            );
        }
        if !self.intervals.is_empty() {
            out += &format!(
                "\nInterval Samples (drawn uniformly within each interval):\n{}\n",
                "-".repeat(RULE_WIDTH)
            );
            // Strongest interval first, as the report and Neuronpedia show them.
            for interval in self.intervals.iter().rev() {
                out += &format!("\n{}\n", interval.heading());
                for example in &interval.examples {
                    out += &format!("\n{}", render_example(example));
                }
            }
        }
        out
    }
}

/// Max, mean, std and min of a feature's activations, each saying over what it was taken
/// (the terminal view and the Markdown report print the same four lines).
pub(crate) fn activation_lines(s: &FeatureStats) -> [String; 4] {
    [
        format!("Max activation: {:.4}", s.max_activation),
        format!(
            "Mean activation: {:.4}{}",
            s.mean_activation,
            s.scope_note()
        ),
        format!(
            "Std activation: {}{}",
            fmt_opt(s.std_activation, 4),
            s.scope_note()
        ),
        format!(
            "Min activation: {}{}",
            fmt_opt(s.min_activation, 4),
            s.scope_note()
        ),
    ]
}

/// The statistics lines of one feature, each prefixed by `indent`.
pub(crate) fn render_stats(s: &FeatureStats, indent: &str) -> String {
    let firing = match s.firing_count {
        Some(count) => format!("{count} (density {})", fmt_density(s.density)),
        None => "n/a".to_string(),
    };
    let [max, mean, std, min] = activation_lines(s);
    [
        max,
        mean,
        std,
        min,
        format!("Total activations seen: {}", s.activation_count),
        format!("Firing tokens: {firing}"),
        format!(
            "Samples stored: {} ({} in this folder)",
            s.samples_stored, s.samples_in_folder
        ),
    ]
    .iter()
    .map(|line| format!("{indent}{line}\n"))
    .collect()
}
