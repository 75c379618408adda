//! Reading a samples folder back: `collection_summary.json` and every
//! `feature_XXXXX_samples.json`, with errors that name the file at fault.
//!
//! Analysis and reporting only ever see this type, never the collector, so they work on
//! folders written by the Python original as well as by saectl.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::bins::ACTIVATION_BINS;
use super::dir::SamplesDir;
use super::format::{CollectionSummary, FeatureFile};
use super::logit_effects::LogitEffects;
use super::token_names::{token_names, TokenNames};

/// A loaded samples folder.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplesFolder {
    pub dir: PathBuf,
    /// Absent in folders whose producer wrote none (the original always wrote one).
    pub summary: Option<CollectionSummary>,
    /// Feature files by feature index.
    pub features: BTreeMap<u32, FeatureFile>,
    /// `logit_effects.json`, when the collection had the model at hand.
    pub logit_effects: Option<LogitEffects>,
    /// The activating tokens' texts the folder tells ([`token_names`]).
    pub token_names: TokenNames,
}

impl SamplesFolder {
    /// Loads every feature file and the summary. A folder with no feature file is an error:
    /// there is nothing to analyze, and it usually means the wrong path.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.exists() {
            bail!("samples folder {} does not exist", dir.display());
        }
        if !dir.is_dir() {
            bail!(
                "{} is not a folder (expected a samples folder)",
                dir.display()
            );
        }
        let folder = SamplesDir::new(dir);
        let summary = folder.read_summary()?;
        let mut features = BTreeMap::new();
        for feature_idx in folder.feature_indices()? {
            let file = folder.read_feature(feature_idx)?;
            let path = folder.feature(feature_idx);
            if file.statistics.feature_idx != feature_idx {
                bail!(
                    "{}: statistics.feature_idx is {} but the file name says {}",
                    path.display(),
                    file.statistics.feature_idx,
                    feature_idx
                );
            }
            check_feature_view(&file).with_context(|| format!("{}", path.display()))?;
            features.insert(feature_idx, file);
        }
        if features.is_empty() {
            let why = summary.as_ref().and_then(|s| s.why_empty());
            match why {
                Some(why) => bail!("samples folder {} holds no samples: {why}", dir.display()),
                None => bail!(
                    "samples folder {} holds no feature_XXXXX_samples.json files",
                    dir.display()
                ),
            }
        }
        // saectl's `text` is the activating token alone; the original's is two tokens.
        let text_is_token = summary.as_ref().is_some_and(|s| s.format_version >= 1);
        Ok(Self {
            token_names: token_names(features.values(), text_is_token),
            dir: dir.to_path_buf(),
            summary,
            features,
            logit_effects: folder.read_logit_effects()?,
        })
    }

    /// The activating token's text, when the folder tells it (see [`token_names`]).
    pub fn token_text(&self, token: u32) -> Option<&str> {
        self.token_names.get(&token).map(String::as_str)
    }

    /// The feature's file, or an error listing what the folder does hold.
    pub fn feature(&self, feature_idx: u32) -> Result<&FeatureFile> {
        self.features.get(&feature_idx).with_context(|| {
            let first: Vec<String> = self.features.keys().take(10).map(u32::to_string).collect();
            let more = if self.features.len() > 10 {
                ", …"
            } else {
                ""
            };
            format!(
                "feature {feature_idx} is not in {} ({} features saved: {}{more})",
                self.dir.display(),
                self.features.len(),
                first.join(", ")
            )
        })
    }
}

/// The feature view's arrays must fit together (the views draw them without further checks).
fn check_feature_view(file: &FeatureFile) -> Result<()> {
    if let Some(h) = &file.activation_histogram {
        if h.edges.len() != h.counts.len() + 1
            || h.counts.is_empty()
            || h.first_bin as usize + h.counts.len() > ACTIVATION_BINS
        {
            bail!(
                "activation_histogram has {} edges and {} counts from bin {} (expected one more edge than counts, within {ACTIVATION_BINS} bins)",
                h.edges.len(),
                h.counts.len(),
                h.first_bin
            );
        }
        if h.edges.iter().any(|e| !e.is_finite()) || h.edges.windows(2).any(|w| w[0] >= w[1]) {
            bail!("activation_histogram edges must be finite and increasing");
        }
    }
    if let Some(p) = &file.position_histogram {
        if p.starts.len() != p.counts.len() {
            bail!(
                "position_histogram has {} starts and {} counts",
                p.starts.len(),
                p.counts.len()
            );
        }
    }
    Ok(())
}
