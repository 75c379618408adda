//! Rendering a samples folder to Markdown: data in, text out.
//!
//! The layout is the Python original's (`# SAE Feature Interpretability Report`, a
//! collection summary, then per feature its statistics and top examples), improved: an
//! overview table that links to each feature's section, density and the other statistics
//! saectl records, the activating token in bold inside its context, token text escaped so
//! that Markdown shows it as it is, and the full feature view when the folder has it (flags,
//! the histogram of every activation, interval samples). The same folder always gives the same bytes: nothing
//! depends on the clock, the machine or where the folder lives (only its name is printed).

mod markdown;
mod sections;

use std::collections::BTreeMap;

use crate::analyze::{overview, FolderInfo};
use crate::samples::SamplesFolder;

/// What goes into the report (the original's `top_k_features`, `examples_per_feature`, and
/// saectl's `interval_examples`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReportOptions {
    /// Features reported, the largest max activation first.
    pub top_k_features: usize,
    pub examples_per_feature: usize,
    /// Samples shown per activation interval (0: no interval section).
    pub interval_examples: usize,
    /// Labels a reader wrote in the dashboard (`saectl report --labels`), shown per feature.
    pub labels: BTreeMap<u32, String>,
    /// Link to a dashboard beside the report (`dashboard.html`): each feature links to its
    /// page there.
    pub dashboard_link: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            top_k_features: 50,
            examples_per_feature: 10,
            interval_examples: 3,
            labels: BTreeMap::new(),
            dashboard_link: None,
        }
    }
}

/// The Markdown report of `folder`.
pub fn render_report(folder: &SamplesFolder, options: &ReportOptions) -> String {
    let info = FolderInfo::new(folder);
    let table = overview(folder, options.top_k_features);
    let mut out = String::from("# SAE Feature Interpretability Report\n\n");
    out += &format!("Generated from: {}\n\n", markdown::inline(&info.name));
    out += &sections::summary(&info, folder.summary.as_ref());
    out += &sections::overview_table(&table.rows);
    for row in &table.rows {
        let file = &folder.features[&row.stats.feature];
        let logits = folder
            .logit_effects
            .as_ref()
            .and_then(|l| l.feature(row.stats.feature));
        out += &sections::feature(folder, &row.stats, file, options, logits);
    }
    // Exactly one newline at the end of the file, whatever the last section left.
    let end = out.trim_end().len();
    out.truncate(end);
    out.push('\n');
    out
}
