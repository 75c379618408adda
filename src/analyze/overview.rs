//! The default view: the folder's most active features in one table.
//!
//! Features are ranked by max activation (ties: lower index first), as the original ranked
//! them; each row carries the statistics, the feature's most frequent activating token, which
//! is often enough to guess what the feature is about, and its flags.

use serde::Serialize;

use super::feature_view::flag_names;
use super::stats::{ranked_features, FeatureStats, FolderInfo};
use super::text::{fmt_density, fmt_opt, visible_token};
use super::tokens::{top_token, TokenShare};
use crate::samples::SamplesFolder;

/// The table of the `top` most active features.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Overview {
    pub folder: FolderInfo,
    pub rows: Vec<OverviewRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverviewRow {
    /// 1-based.
    pub rank: usize,
    pub stats: FeatureStats,
    /// Most frequent activating token among the stored samples.
    pub top_token: Option<TokenShare>,
    /// Short names of the feature's flags (empty when none, or not recorded).
    pub flags: String,
}

/// The `top` features with the largest max activation.
pub fn overview(folder: &SamplesFolder, top: usize) -> Overview {
    let summary = folder.summary.as_ref();
    let rows = ranked_features(folder)
        .into_iter()
        .take(top)
        .enumerate()
        .map(|(i, feature)| {
            let file = &folder.features[&feature];
            OverviewRow {
                rank: i + 1,
                stats: FeatureStats::new(file, summary),
                top_token: top_token(folder, file),
                flags: flag_names(file.flags.as_ref()),
            }
        })
        .collect();
    Overview {
        folder: FolderInfo::new(folder),
        rows,
    }
}

impl Overview {
    /// The terminal table.
    pub fn render_text(&self) -> String {
        let mut out = self.folder.render_text();
        out += &format!(
            "\nTop {} of {} features by max activation:\n",
            self.rows.len(),
            self.folder.features_in_folder
        );
        out += &format!(
            "{:>4}  {:>7}  {:>9}  {:>9}  {:>9}  {:>10}  {:>9}  {:>7}  top token\n",
            "rank", "feature", "max", "mean", "std", "count", "density", "samples"
        );
        for row in &self.rows {
            let s = &row.stats;
            let mut token = row.top_token.as_ref().map_or(String::new(), |t| {
                format!("{} ×{}", visible_token(&t.text), t.count)
            });
            if !row.flags.is_empty() {
                token += &format!("  [{}]", row.flags);
            }
            out += &format!(
                "{:>4}  {:>7}  {:>9.4}  {:>9.4}  {:>9}  {:>10}  {:>9}  {:>7}  {}\n",
                row.rank,
                s.feature,
                s.max_activation,
                s.mean_activation,
                fmt_opt(s.std_activation, 4),
                s.activation_count,
                fmt_density(s.density),
                s.samples_stored,
                token
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::test_support::{file_with, folder_with};

    #[test]
    fn ranks_by_max_then_index_and_truncates() {
        let folder = folder_with(vec![
            file_with(4, &[(1, "a", 0.5)]),
            file_with(2, &[(1, "a", 0.9)]),
            file_with(9, &[(2, "b", 0.5)]),
        ]);
        let view = overview(&folder, 2);
        let order: Vec<u32> = view.rows.iter().map(|r| r.stats.feature).collect();
        assert_eq!(order, vec![2, 4]);
        assert_eq!(view.rows[1].rank, 2);
        let text = view.render_text();
        assert!(text.contains("Top 2 of 3 features"), "{text}");
        // A folder without summary has no std or density recorded.
        assert!(text.contains("n/a"), "{text}");
    }
}
