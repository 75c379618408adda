//! Labels people wrote on a feature page of the dashboard, exported from it as JSON
//! (docs/dashboard.md): `saectl report --labels` prints them and `saectl export` turns them
//! into Neuronpedia explanations.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

/// Reads a labels file exported by the page: `{"labels": {"12": "text", …}}`.
pub fn read_labels(path: &Path) -> Result<BTreeMap<u32, String>> {
    #[derive(serde::Deserialize)]
    struct LabelsFile {
        labels: BTreeMap<String, String>,
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read labels {}", path.display()))?;
    let file: LabelsFile = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a labels file exported by the dashboard (expected {{\"labels\": {{\"12\": \"…\"}}}})",
            path.display()
        )
    })?;
    file.labels
        .into_iter()
        .filter(|(_, label)| !label.trim().is_empty())
        .map(|(key, label)| {
            let feature = key.parse::<u32>().with_context(|| {
                format!(
                    "{}: label key `{key}` is not a feature index",
                    path.display()
                )
            })?;
            Ok((feature, label))
        })
        .collect()
}
