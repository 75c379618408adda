//! What is known about a feature beyond the text being inspected: from a samples folder, the
//! tokens it fires on most and the largest activation seen; from a labels file, a person's
//! label.
//!
//! The labels file is what the dashboard exports: one JSON object mapping the feature index,
//! written as a decimal string, to its label — `{"12": "animals", "40": "the word `through`"}`.
//! Keys that are not feature indices and values that are not strings are errors (a wrong file
//! should not silently label nothing).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::analyze::tokens::token_shares;
use crate::samples::SamplesFolder;

/// A feature's activating token in the samples folder and how many stored samples it has.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenCount {
    pub token: u32,
    pub text: String,
    pub count: usize,
}

/// Everything known about one feature outside the inspected text.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FeatureInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Largest activation of the feature over the samples folder's corpus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_activation: Option<f64>,
    /// Share of the corpus's tokens the feature fired on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub density: Option<f64>,
    /// Its most frequent activating tokens among the stored top samples, most frequent first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_tokens: Vec<TokenCount>,
}

/// A samples folder and labels to describe features with (either may be absent).
#[derive(Clone, Debug, Default)]
pub struct FeatureContext {
    samples: Option<SamplesFolder>,
    labels: BTreeMap<u32, String>,
    tokens_per_feature: usize,
}

impl FeatureContext {
    /// `tokens_per_feature`: activating tokens listed per feature.
    pub fn new(
        samples: Option<SamplesFolder>,
        labels: BTreeMap<u32, String>,
        tokens_per_feature: usize,
    ) -> Self {
        Self {
            samples,
            labels,
            tokens_per_feature,
        }
    }

    /// Refuses a samples folder collected with an SAE of another width.
    pub fn check_width(&self, d_sae: usize) -> Result<()> {
        let folder_width = self
            .samples
            .as_ref()
            .and_then(|s| s.summary.as_ref())
            .map(|summary| summary.d_sae)
            .filter(|&w| w > 0);
        if let Some(width) = folder_width {
            if width != d_sae as u64 {
                bail!(
                    "the samples folder was collected with an SAE of {width} features, but this \
                     one has {d_sae}: it belongs to another SAE"
                );
            }
        }
        if let Some((&feature, _)) = self.labels.range(d_sae as u32..).next() {
            bail!("the labels name feature {feature}, but the SAE has {d_sae} features");
        }
        Ok(())
    }

    /// The samples folder's path, when there is one.
    pub fn samples_dir(&self) -> Option<&Path> {
        self.samples.as_ref().map(|s| s.dir.as_path())
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_none() && self.labels.is_empty()
    }

    /// What the folder and the labels say about `feature` (empty when they say nothing).
    pub fn info(&self, feature: u32) -> FeatureInfo {
        let mut info = FeatureInfo {
            label: self.labels.get(&feature).cloned(),
            ..FeatureInfo::default()
        };
        let samples = self.samples.as_ref();
        if let Some((samples, file)) = samples.and_then(|s| Some((s, s.features.get(&feature)?))) {
            info.max_activation = Some(file.statistics.max_activation);
            info.density = Some(file.statistics.density);
            info.top_tokens = token_shares(samples, file)
                .into_iter()
                .take(self.tokens_per_feature)
                .map(|share| TokenCount {
                    token: share.token,
                    text: share.text,
                    count: share.count,
                })
                .collect();
        }
        info
    }
}

/// Reads a labels file: `{"<feature index>": "label", ...}`.
pub fn read_labels(path: &Path) -> Result<BTreeMap<u32, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read labels {}", path.display()))?;
    parse_labels(&text).with_context(|| format!("labels {}", path.display()))
}

fn parse_labels(text: &str) -> Result<BTreeMap<u32, String>> {
    let value: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
    let Some(object) = value.as_object() else {
        bail!("expected a JSON object {{\"<feature index>\": \"label\", ...}}");
    };
    let mut labels = BTreeMap::new();
    for (key, label) in object {
        let Ok(feature) = key.parse::<u32>() else {
            bail!("key {key:?} is not a feature index");
        };
        let Some(label) = label.as_str() else {
            bail!("the label of feature {feature} is not a string: {label}");
        };
        labels.insert(feature, label.to_string());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_feature_indices_to_strings() {
        let labels = parse_labels(r#"{"12": "animals", "3": "the word `through`"}"#).unwrap();
        assert_eq!(labels[&12], "animals");
        assert_eq!(labels.len(), 2);
        for (bad, why) in [
            ("[1, 2]", "JSON object"),
            (r#"{"cat": "x"}"#, "not a feature index"),
            (r#"{"-1": "x"}"#, "not a feature index"),
            (r#"{"4": 5}"#, "not a string"),
            ("{", "not valid JSON"),
        ] {
            let err = format!("{:#}", parse_labels(bad).unwrap_err());
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn labels_beyond_the_sae_are_refused() {
        let labels = parse_labels(r#"{"7": "a", "99": "b"}"#).unwrap();
        let context = FeatureContext::new(None, labels, 5);
        assert!(context.check_width(100).is_ok());
        let err = context.check_width(50).unwrap_err().to_string();
        assert!(err.contains("feature 99"), "{err}");
        assert_eq!(context.info(7).label.as_deref(), Some("a"));
        assert_eq!(context.info(8), FeatureInfo::default());
    }
}
