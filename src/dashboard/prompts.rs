//! The prompt view: `saectl dashboard … --prompts FILE` runs the model and the SAE on the
//! given texts — through [`crate::probe::inspect()`], exactly as `saectl inspect` does — and
//! stores, per text, every token's non-zero features and the features that fire most over it.
//! The page shows the texts coloured by a chosen feature, each token's features on hover, and
//! links into the feature pages (docs/dashboard.md, "Prompts").
//!
//! The model is the one given, else the one the collection recorded, so that a dashboard of a
//! folder is probed with the model its samples came from.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::demo::embedded::demo_model_dir;
use crate::features::tokenizer::{token_texts, DEMO_MODEL_DIR_PREFIX};
use crate::model::{DeviceChoice, ModelSpec};
use crate::probe::inspect::{inspect, InspectConfig, InspectResult};
use crate::probe::open::{open, ProbeSpec};
use crate::probe::FeatureContext;

/// Features listed over each text (the per-token lists keep every non-zero feature).
pub const FEATURES_PER_PROMPT: usize = 20;

/// What `--prompts` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptsConfig {
    pub texts: Vec<String>,
    /// `--model`; `None`: the model the collection recorded.
    pub model: Option<String>,
    pub device: DeviceChoice,
}

/// The prompt block of the page (JSON; the field names are what the page reads).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PromptsData {
    pub hook: String,
    pub model: String,
    pub texts: Vec<PromptText>,
}

/// One text: its tokens, each token's features, and the features over the whole text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PromptText {
    pub text: String,
    /// Each token's text as it reads in running text (special tokens by their name).
    pub tokens: Vec<String>,
    /// Positions of the special tokens (the BOS…), whose activations are left out.
    pub special: Vec<usize>,
    /// Per token: every non-zero feature, `[feature, activation]`, strongest first.
    pub acts: Vec<Vec<(u32, f32)>>,
    /// The features that fire most over the text (by the sum of their activations).
    pub top: Vec<PromptFeature>,
}

/// One feature over a text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PromptFeature {
    pub f: u32,
    pub sum: f64,
    pub max: f32,
    /// First position of the max.
    pub at: usize,
    /// Tokens it fired on.
    pub tokens: usize,
}

/// Runs the model and the SAE at `checkpoint` on the texts. `recorded_model` is what the
/// collection recorded; `tokenizer` (`--tokenizer`, else the one the collection was given)
/// replaces the model's own.
pub fn compute(
    config: &PromptsConfig,
    checkpoint: &Path,
    recorded_model: Option<&str>,
    tokenizer: Option<&Path>,
    notes: &mut Vec<String>,
) -> Result<PromptsData> {
    let model = model_for_prompts(config.model.as_deref(), recorded_model, notes)?;
    let opened = open(&ProbeSpec {
        checkpoint: checkpoint.display().to_string(),
        hook: None,
        model: ModelSpec {
            model: model.clone(),
            tokenizer: tokenizer.map(Path::to_path_buf),
            dtype: None,
        },
        device: config.device,
        whole: false,
    })?;
    notes.extend(opened.notes);
    let inspect_config = InspectConfig {
        top_per_token: usize::MAX,
        top_features: FEATURES_PER_PROMPT,
        ..InspectConfig::default()
    };
    let result = inspect(
        &opened.probe,
        &config.texts,
        &inspect_config,
        &FeatureContext::default(),
    )?;
    let tokenizer = opened.probe.tokenizer.tokenizer();
    Ok(from_inspect(result, model, |ids| {
        token_texts(tokenizer, ids)
    }))
}

/// The page's form of an inspect result; `token_texts` gives each token's text as it reads in
/// running text (the feature pages show tokens the same way).
pub fn from_inspect(
    result: InspectResult,
    model: String,
    token_texts: impl Fn(&[u32]) -> Vec<String>,
) -> PromptsData {
    let texts = result
        .texts
        .into_iter()
        .map(|report| PromptText {
            tokens: token_texts(&report.tokens.iter().map(|t| t.token).collect::<Vec<_>>()),
            text: report.text,
            special: (report.tokens.iter())
                .filter(|t| t.special)
                .map(|t| t.position)
                .collect(),
            acts: (report.tokens.iter())
                .map(|t| {
                    t.features
                        .iter()
                        .map(|a| (a.feature, a.activation))
                        .collect()
                })
                .collect(),
            top: (report.top_features.into_iter())
                .map(|f| PromptFeature {
                    f: f.feature,
                    sum: f.sum,
                    max: f.max,
                    at: f.max_position,
                    tokens: f.tokens,
                })
                .collect(),
        })
        .collect();
    PromptsData {
        hook: result.hook,
        model,
        texts,
    }
}

/// The model to run: the one given, else the one the collection recorded. The embedded demo
/// model is unpacked into a folder keyed by its hash; a recorded folder of it that is gone
/// (another machine, a cleared cache) is unpacked again.
fn model_for_prompts(
    given: Option<&str>,
    recorded: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<String> {
    if let Some(model) = given {
        return Ok(model.to_string());
    }
    let Some(recorded) = recorded else {
        bail!("--prompts needs a model: the samples folder records none (give --model)");
    };
    let path = Path::new(recorded);
    let is_demo = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(DEMO_MODEL_DIR_PREFIX));
    let model = if !path.exists() && is_demo {
        demo_model_dir()?.display().to_string()
    } else if !path.exists() && (path.is_absolute() || recorded.starts_with('.')) {
        bail!(
            "--prompts: the model the collection recorded, {recorded}, is not there (give --model)"
        );
    } else {
        recorded.to_string()
    };
    notes.push(format!(
        "--prompts runs the model the collection recorded: {model}"
    ));
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_the_given_one_else_the_recorded_one() {
        let mut notes = Vec::new();
        let given = model_for_prompts(Some("a/b"), Some("c/d"), &mut notes).unwrap();
        assert_eq!(given, "a/b");
        assert!(notes.is_empty());
        let recorded = model_for_prompts(None, Some("google/gemma-2-2b"), &mut notes).unwrap();
        assert_eq!(recorded, "google/gemma-2-2b");
        assert_eq!(notes.len(), 1);
        let err = model_for_prompts(None, None, &mut notes).unwrap_err();
        assert!(err.to_string().contains("give --model"), "{err}");
        let err = model_for_prompts(None, Some("/no/such/model"), &mut notes).unwrap_err();
        assert!(err.to_string().contains("is not there"), "{err}");
    }
}
