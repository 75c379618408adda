//! A feature's statistics and the folder's totals, as every view shows them.
//!
//! The folder's JSON keeps saectl's additions (density, tokens seen) with serde defaults of
//! zero, so a folder written by the Python original reads back with zeros where it recorded
//! nothing. A zero would then be a lie: these views turn the additions into `None` ("not
//! recorded") unless the summary says saectl wrote the folder. The original did record a
//! mean, std and min, over the samples it stored rather than over every activation:
//! [`StatsScope`] says which, and the views say so next to the numbers.

use std::cmp::Ordering;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::samples::format::{CollectionSummary, FeatureFile, FlaggedFeatures};
use crate::samples::SamplesFolder;

/// What a folder's mean, std and min are taken over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsScope {
    /// Every activation above the threshold (saectl).
    AllActivations,
    /// The samples the collector stored (the Python original).
    StoredSamples,
}

/// One feature's statistics over every activation above the collection threshold (or, in
/// folders of the original, its stored samples: `scope`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureStats {
    pub feature: u32,
    pub max_activation: f64,
    /// Over `scope`.
    pub mean_activation: f64,
    /// Over `scope`; `None` when the folder did not record it.
    pub std_activation: Option<f64>,
    pub min_activation: Option<f64>,
    pub scope: StatsScope,
    /// Activations above the collection threshold.
    pub activation_count: u64,
    /// Tokens on which the feature fired (> 0), threshold or not.
    pub firing_count: Option<u64>,
    /// `firing_count / tokens_seen`.
    pub density: Option<f64>,
    /// Samples the collector kept (its `max_samples_per_feature` bound).
    pub samples_stored: u64,
    /// Samples written to this folder (its `samples_per_feature_to_save` bound).
    pub samples_in_folder: usize,
}

impl FeatureStats {
    pub fn new(file: &FeatureFile, summary: Option<&CollectionSummary>) -> Self {
        let s = &file.statistics;
        let recorded = written_by_saectl(summary);
        let density_known = recorded && summary.is_some_and(|summary| summary.tokens_seen > 0);
        Self {
            feature: s.feature_idx,
            max_activation: s.max_activation,
            mean_activation: s.mean_activation,
            std_activation: s.std_activation,
            min_activation: s.min_activation,
            scope: match recorded {
                true => StatsScope::AllActivations,
                false => StatsScope::StoredSamples,
            },
            activation_count: s.activation_count,
            firing_count: recorded.then_some(s.firing_count),
            density: density_known.then_some(s.density),
            samples_stored: s.num_samples,
            samples_in_folder: file.top_samples.len(),
        }
    }
}

impl FeatureStats {
    /// `""`, or ` (of its N stored samples)` after a mean, std or min of the original's.
    pub fn scope_note(&self) -> String {
        match self.scope {
            StatsScope::AllActivations => String::new(),
            StatsScope::StoredSamples => {
                format!(" (of its {} stored samples)", self.samples_stored)
            }
        }
    }
}

/// Whether saectl's additions in the folder's JSON are real values rather than defaults.
fn written_by_saectl(summary: Option<&CollectionSummary>) -> bool {
    summary.is_some_and(|summary| summary.format_version >= 1)
}

/// What the whole folder says about the collection; `None` where it recorded nothing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FolderInfo {
    /// The folder's own name (never an absolute path, so output does not depend on where
    /// the folder lives).
    pub name: String,
    pub features_in_folder: usize,
    pub samples_in_folder: usize,
    /// Width of the SAE.
    pub d_sae: Option<u64>,
    /// Activations above the threshold, all features (the original's `total_samples_seen`).
    pub total_activations: Option<u64>,
    pub total_samples_stored: Option<u64>,
    pub features_tracked: Option<u64>,
    pub avg_samples_per_feature: Option<f64>,
    pub tokens_seen: Option<u64>,
    pub special_tokens_excluded: Option<u64>,
    pub dead_features: Option<u64>,
    pub activation_threshold: Option<f32>,
    pub context_size: Option<usize>,
    /// Features carrying each flag, over the whole SAE (saved or not).
    pub flag_counts: Option<FlagCounts>,
}

impl FolderInfo {
    pub fn new(folder: &SamplesFolder) -> Self {
        let summary = folder.summary.as_ref();
        let recorded = summary.filter(|s| written_by_saectl(Some(s)));
        let settings = recorded.and_then(|s| s.settings.as_ref());
        Self {
            name: folder_name(&folder.dir),
            features_in_folder: folder.features.len(),
            samples_in_folder: folder.features.values().map(|f| f.top_samples.len()).sum(),
            d_sae: recorded.map(|s| s.d_sae).filter(|&d| d > 0),
            total_activations: summary.map(|s| s.total_samples_seen),
            total_samples_stored: summary.map(|s| s.total_samples_stored),
            features_tracked: summary.map(|s| s.num_features_tracked),
            avg_samples_per_feature: summary.map(|s| s.avg_samples_per_feature),
            tokens_seen: recorded.map(|s| s.tokens_seen),
            special_tokens_excluded: recorded.map(|s| s.special_tokens_excluded),
            dead_features: recorded.filter(|s| s.d_sae > 0).map(|s| s.dead_features),
            activation_threshold: settings.map(|s| s.collector.sample_activation_threshold),
            context_size: settings.map(|s| s.collector.sample_context_size),
            flag_counts: recorded
                .and_then(|s| s.flagged_features.as_ref())
                .map(FlagCounts::new),
        }
    }
}

impl FolderInfo {
    /// The lines the terminal views print about the folder, each ending in a newline;
    /// facts the folder did not record are left out.
    pub fn render_text(&self) -> String {
        let mut out = format!("Samples folder: {}\n", self.name);
        let of_width = self
            .d_sae
            .map_or(String::new(), |d| format!(" (of d_sae {d})"));
        out += &format!(
            "  Features in folder: {}{of_width}, samples in folder: {}\n",
            self.features_in_folder, self.samples_in_folder
        );
        if let Some(total) = self.total_activations {
            out += &format!("  Total activations seen (all features): {total}\n");
        }
        if let Some(tokens) = self.tokens_seen {
            let excluded = match self.special_tokens_excluded {
                Some(n) if n > 0 => format!(" ({n} special tokens excluded)"),
                _ => String::new(),
            };
            out += &format!("  Tokens seen: {tokens}{excluded}\n");
        }
        if let Some(dead) = self.dead_features {
            out += &format!("  Dead features: {dead}\n");
        }
        if let Some(counts) = &self.flag_counts {
            out += &format!("  Flagged features: {}\n", counts.render());
        }
        out
    }
}

/// The last component of `dir`; for `.` or `..`, that of its canonical form.
pub fn folder_name(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    name.or_else(|| {
        let canonical = dir.canonicalize().ok()?;
        Some(canonical.file_name()?.to_string_lossy().into_owned())
    })
    .unwrap_or_else(|| dir.display().to_string())
}

/// The folder's features, largest max activation first; ties: lower feature index first.
pub fn ranked_features(folder: &SamplesFolder) -> Vec<u32> {
    let mut ranked: Vec<(u32, f64)> = folder
        .features
        .iter()
        .map(|(&feature, file)| (feature, file.statistics.max_activation))
        .collect();
    ranked.sort_by(|a, b| by_score_then_index(a.1, a.0, b.1, b.0));
    ranked.into_iter().map(|(feature, _)| feature).collect()
}

/// Higher score first, then lower feature index: the order of every ranked list here.
pub(crate) fn by_score_then_index(a_score: f64, a: u32, b_score: f64, b: u32) -> Ordering {
    b_score.total_cmp(&a_score).then(a.cmp(&b))
}

/// Refuses a folder whose feature files hold no sample at all: every view would be empty,
/// and it usually means the collection threshold was too high.
pub fn ensure_has_samples(folder: &SamplesFolder) -> Result<()> {
    if folder
        .features
        .values()
        .all(|file| file.top_samples.is_empty())
    {
        bail!(
            "samples folder {} holds no samples ({} feature files, all empty)",
            folder.dir.display(),
            folder.features.len()
        );
    }
    Ok(())
}

/// The feature's file, or an error saying a feature with no stored sample has nothing to show.
pub(crate) fn feature_with_samples(folder: &SamplesFolder, feature: u32) -> Result<&FeatureFile> {
    let file = folder.feature(feature)?;
    if file.top_samples.is_empty() {
        bail!(
            "feature {feature} has no stored samples in {}",
            folder.dir.display()
        );
    }
    Ok(file)
}

/// How many features carry each flag, over the whole SAE.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FlagCounts {
    pub dead: usize,
    pub ultra_rare: usize,
    pub single_token: usize,
    pub position_dominated: usize,
    pub bos_dominated: usize,
}

impl FlagCounts {
    pub fn new(flagged: &FlaggedFeatures) -> Self {
        Self {
            dead: flagged.dead.len(),
            ultra_rare: flagged.ultra_rare.len(),
            single_token: flagged.single_token.len(),
            position_dominated: flagged.position_dominated.len(),
            bos_dominated: flagged.bos_dominated.len(),
        }
    }

    /// `dead 1, ultra-rare 0, single-token 2, position-dominated 0, BOS-dominated 1`.
    pub fn render(&self) -> String {
        format!(
            "dead {}, ultra-rare {}, single-token {}, position-dominated {}, BOS-dominated {}",
            self.dead,
            self.ultra_rare,
            self.single_token,
            self.position_dominated,
            self.bos_dominated
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_rank_the_lower_index_first() {
        let mut items = [(7, 1.0), (3, 2.0), (5, 1.0), (1, 0.5)];
        items.sort_by(|a, b| by_score_then_index(a.1, a.0, b.1, b.0));
        let order: Vec<u32> = items.iter().map(|i| i.0).collect();
        assert_eq!(order, vec![3, 5, 7, 1]);
    }

    #[test]
    fn folder_name_is_the_last_component() {
        assert_eq!(folder_name(Path::new("/a/b/samples")), "samples");
        assert_eq!(folder_name(Path::new("samples/")), "samples");
        assert!(!folder_name(Path::new(".")).is_empty());
    }
}
