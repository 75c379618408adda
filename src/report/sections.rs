//! The report's sections: collection summary, overview table, one section per feature with
//! its feature view (the histogram of every activation and the interval samples, for folders
//! that recorded them).

use crate::analyze::feature_report::activation_lines;
use crate::analyze::feature_view::{
    activation_histogram, flag_labels, IntervalExamples, DEFAULT_MAX_BARS,
};
use crate::analyze::logits::logit_line;
use crate::analyze::overview::OverviewRow;
use crate::analyze::text::context_parts;
use crate::analyze::text::{fmt_density, fmt_opt};
use crate::analyze::tokens::{token_shares, TokenShare};
use crate::analyze::{FeatureStats, FolderInfo};
use crate::samples::format::{ActivationSample, CollectionSummary, FeatureFile};
use crate::samples::{FeatureLogitEffects, SamplesFolder};

use super::{markdown, ReportOptions};

/// Activating tokens listed per feature.
const TOP_TOKENS_SHOWN: usize = 5;

/// `## Collection Summary`: the original's four totals, then what saectl adds.
pub fn summary(info: &FolderInfo, summary: Option<&CollectionSummary>) -> String {
    let mut lines: Vec<String> = Vec::new();
    match summary {
        Some(s) => {
            lines.push(format!(
                "Total samples seen: {} (activations above the threshold, all features)",
                s.total_samples_seen
            ));
            lines.push(format!("Total samples stored: {}", s.total_samples_stored));
            lines.push(format!("Features tracked: {}", s.num_features_tracked));
            lines.push(format!(
                "Average samples per feature: {:.2}",
                s.avg_samples_per_feature
            ));
        }
        None => lines.push("No collection summary in this folder: totals unknown".to_string()),
    }
    lines.push(format!(
        "Features in this folder: {} ({} samples)",
        info.features_in_folder, info.samples_in_folder
    ));
    lines.extend(recorded_facts(info));
    let mut out = String::from("## Collection Summary\n\n");
    for line in lines {
        out += &format!("- {line}\n");
    }
    out += &source_lines(summary);
    out.push('\n');
    out
}

/// The summary lines only saectl records, for those present.
fn recorded_facts(info: &FolderInfo) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(d_sae) = info.d_sae {
        lines.push(format!("SAE width (d_sae): {d_sae}"));
    }
    if let Some(tokens) = info.tokens_seen {
        lines.push(format!("Tokens seen: {tokens}"));
    }
    if let Some(excluded) = info.special_tokens_excluded {
        lines.push(format!("Special tokens excluded: {excluded}"));
    }
    if let Some(dead) = info.dead_features {
        lines.push(format!("Dead features: {dead}"));
    }
    if let Some(counts) = &info.flag_counts {
        lines.push(format!(
            "Flagged features (all features of the SAE): {}",
            counts.render()
        ));
    }
    if let (Some(threshold), Some(context)) = (info.activation_threshold, info.context_size) {
        lines.push(format!(
            "Activation threshold: {threshold}; context size: {context} tokens"
        ));
    }
    lines
}

/// `- Source:` and one sub-item per provenance key, when the producer recorded any.
fn source_lines(summary: Option<&CollectionSummary>) -> String {
    let Some(source) = summary.map(|s| s.source.to_map()).filter(|s| !s.is_empty()) else {
        return String::new();
    };
    let mut out = String::from("- Source:\n");
    for (key, value) in &source {
        let value = match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        out += &format!(
            "  - {}: {}\n",
            markdown::inline(key),
            markdown::inline(&value)
        );
    }
    out
}

/// `## Top N Most Active Features` and a table whose feature cells link to the sections.
pub fn overview_table(rows: &[OverviewRow]) -> String {
    let mut out = format!(
        "## Top {} Most Active Features\n\nRanked by max activation (ties: lower index first).\n\n",
        rows.len()
    );
    out += "| Rank | Feature | Max | Mean | Std | Activations | Density | Samples | Top token | Flags |\n";
    out += "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :--- | :--- |\n";
    for row in rows {
        let s = &row.stats;
        let token = row.top_token.as_ref().map_or(String::new(), token_count);
        out += &format!(
            "| {} | [{}](#feature-{}) | {:.4} | {:.4} | {} | {} | {} | {} | {} | {} |\n",
            row.rank,
            s.feature,
            s.feature,
            s.max_activation,
            s.mean_activation,
            fmt_opt(s.std_activation, 4),
            s.activation_count,
            fmt_density(s.density),
            s.samples_stored,
            token,
            row.flags
        );
    }
    out.push('\n');
    out
}

/// `␣cat ×5`, escaped.
fn token_count(share: &TokenShare) -> String {
    format!("{} ×{}", markdown::token(&share.text), share.count)
}

/// `### Feature F`: statistics (and logit effects, when known), the top examples, the feature
/// view, then a rule.
pub fn feature(
    folder: &SamplesFolder,
    stats: &FeatureStats,
    file: &FeatureFile,
    options: &ReportOptions,
    logits: Option<&FeatureLogitEffects>,
) -> String {
    let mut out = format!("### Feature {}\n\n", stats.feature);
    out += &feature_links(stats.feature, options);
    out += "**Statistics:**\n\n";
    for line in stat_lines(folder, stats, file) {
        out += &format!("- {line}\n");
    }
    if let Some(logits) = logits {
        out += &format!(
            "- Promoted output tokens (logit effect): {}\n",
            logit_line(&logits.top, markdown::token)
        );
        out += &format!(
            "- Suppressed output tokens (logit effect): {}\n",
            logit_line(&logits.bottom, markdown::token)
        );
    }
    let shown: Vec<&ActivationSample> = file
        .top_samples
        .iter()
        .take(options.examples_per_feature)
        .collect();
    out += &format!("\n**Top {} Examples:**\n\n", shown.len());
    for (i, sample) in shown.iter().enumerate() {
        out += &example_line(i + 1, sample);
    }
    out.push('\n');
    out += &histogram(file);
    out += &intervals(file, options.interval_examples);
    out += "---\n\n";
    out
}

/// The reader's label and the link to the feature's dashboard page, when there are any.
fn feature_links(feature: u32, options: &ReportOptions) -> String {
    let mut out = String::new();
    if let Some(label) = options.labels.get(&feature) {
        out += &format!("**Label:** {}\n\n", markdown::inline(label));
    }
    if let Some(link) = &options.dashboard_link {
        out += &format!("[Open in the dashboard]({link}#f={feature})\n\n");
    }
    out
}

fn stat_lines(folder: &SamplesFolder, s: &FeatureStats, file: &FeatureFile) -> Vec<String> {
    let firing = match s.firing_count {
        Some(count) => format!("{count} (density {})", fmt_density(s.density)),
        None => "n/a".to_string(),
    };
    let tokens: Vec<String> = token_shares(folder, file)
        .iter()
        .take(TOP_TOKENS_SHOWN)
        .map(token_count)
        .collect();
    let mut lines = activation_lines(s).to_vec();
    lines.extend([
        format!("Total activations: {}", s.activation_count),
        format!("Firing tokens: {firing}"),
        format!(
            "Samples stored: {} ({} in this folder)",
            s.samples_stored, s.samples_in_folder
        ),
        format!("Most frequent activating tokens: {}", tokens.join(", ")),
    ]);
    if let Some(flags) = &file.flags {
        let labels: Vec<String> = flag_labels(flags, s.density)
            .iter()
            .map(|label| markdown::inline(label))
            .collect();
        let shown = if labels.is_empty() {
            "none".to_string()
        } else {
            labels.join("; ")
        };
        lines.push(format!("Flags: {shown}"));
    }
    lines
}

/// One numbered example: its numbers on the item line, its marked context below.
fn example_line(rank: usize, sample: &ActivationSample) -> String {
    let marker = format!("{rank}. ");
    let indent = " ".repeat(marker.len());
    format!(
        "{marker}Activation **{:.4}** · token “{}” · position {}\n{indent}- {}\n",
        sample.activation_value,
        markdown::token(&sample.text),
        sample.position,
        markdown::marked_context(context_parts(sample), &sample.context_text)
    )
}

/// `**Activation histogram**` and the terminal bars in a text block.
fn histogram(file: &FeatureFile) -> String {
    let Some(histogram) = activation_histogram(file, DEFAULT_MAX_BARS) else {
        return String::new();
    };
    format!(
        "**Activation histogram** (all {} activations above the threshold, log-spaced bins):\n\n```text\n{}```\n\n",
        histogram.total(),
        histogram.render_bars()
    )
}

/// `**Interval samples**`: per interval, strongest first, its range and up to `examples`
/// uniform samples.
fn intervals(file: &FeatureFile, examples: usize) -> String {
    let Some(intervals) = file.interval_samples.as_ref().filter(|i| !i.is_empty()) else {
        return String::new();
    };
    if examples == 0 {
        return String::new();
    }
    let mut out = String::from("**Interval samples** (drawn uniformly within each interval):\n\n");
    for interval in intervals.iter().rev() {
        out += &format!("*{}*\n\n", IntervalExamples::new(interval, 0).heading());
        let shown: Vec<_> = interval.samples.iter().take(examples).collect();
        for (i, sample) in shown.iter().enumerate() {
            out += &example_line(i + 1, sample);
        }
        if !shown.is_empty() {
            out.push('\n');
        }
    }
    out
}
