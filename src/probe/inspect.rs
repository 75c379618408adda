//! `inspect`: which features fire on a text. The model runs to the SAE's hook, the SAE encodes
//! every token (inference mode, as `collect` does), and the result lists, per token, its
//! strongest features and, over the whole text, the features that fire most.
//!
//! Definitions (docs/probe.md):
//! - a text is read as a document: the tokenizer's BOS, then its tokens;
//! - special tokens (the BOS…) are listed but their activations are left out, as `collect`
//!   leaves them out by default, unless `include_special_tokens`;
//! - per token: the `top_per_token` largest activations, ties to the lower feature index;
//! - over a text: features ranked by the sum of their activations over its tokens (the
//!   largest single activation, where and on how many tokens it fired are given beside it);
//! - texts longer than `window` tokens run in windows that re-read a quarter of a window of
//!   context ([`plan_windows`]).

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use serde::Serialize;

use super::feature_context::{FeatureContext, FeatureInfo};
use super::windows::plan_windows;
use super::Probe;
use crate::sae::SparseActs;

/// How much `inspect` lists, and how it reads long texts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InspectConfig {
    /// Features listed per token.
    pub top_per_token: usize,
    /// Features listed per text.
    pub top_features: usize,
    /// Tokens per forward pass; longer texts run in windows.
    pub window: usize,
    /// Report the activations on special tokens (the BOS…) too.
    pub include_special_tokens: bool,
}

impl Default for InspectConfig {
    fn default() -> Self {
        Self {
            top_per_token: 5,
            top_features: 10,
            window: 1024,
            include_special_tokens: false,
        }
    }
}

impl InspectConfig {
    pub fn validate(&self) -> Result<()> {
        if self.window < 4 {
            bail!(
                "the window must hold at least 4 tokens, not {}",
                self.window
            );
        }
        Ok(())
    }

    /// Tokens each window after the first re-reads: a quarter of a window.
    pub fn window_context(&self) -> usize {
        self.window / 4
    }
}

/// One feature's activation on one token.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Activation {
    pub feature: u32,
    pub activation: f32,
}

/// One token of a text and its strongest features.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenFeatures {
    /// Position in the tokenized text (the BOS is 0).
    pub position: usize,
    pub token: u32,
    pub text: String,
    /// A special token: its activations are not reported unless asked for.
    pub special: bool,
    /// Strongest first.
    pub features: Vec<Activation>,
}

/// One feature over a whole text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureOverText {
    pub feature: u32,
    /// Sum of its activations over the text's reported tokens: the ranking key.
    pub sum: f64,
    /// Its largest activation, and the first position that reached it.
    pub max: f32,
    pub max_position: usize,
    /// Reported tokens it fired on.
    pub tokens: usize,
}

/// One inspected text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TextReport {
    pub text: String,
    pub tokens: Vec<TokenFeatures>,
    /// The features that fire most over the text, most first.
    pub top_features: Vec<FeatureOverText>,
}

/// Everything `inspect` found, serde-serialisable (`saectl inspect --json` writes it).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InspectResult {
    pub hook: String,
    pub d_sae: usize,
    pub config: InspectConfig,
    pub texts: Vec<TextReport>,
    /// The samples folder the features' top tokens come from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples_folder: Option<String>,
    /// What the samples folder and labels say about every feature listed above (absent
    /// without them).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<u32, FeatureInfo>,
}

/// Inspects each of `texts` (see the module docs); `context` describes the features listed.
pub fn inspect(
    probe: &Probe,
    texts: &[String],
    config: &InspectConfig,
    context: &FeatureContext,
) -> Result<InspectResult> {
    inspect_with_progress(probe, texts, config, context, &mut |_| {})
}

/// [`inspect`], calling `on_text(i)` after text `i`.
pub fn inspect_with_progress(
    probe: &Probe,
    texts: &[String],
    config: &InspectConfig,
    context: &FeatureContext,
    on_text: &mut dyn FnMut(usize),
) -> Result<InspectResult> {
    config.validate()?;
    context.check_width(probe.sae.config().d_sae)?;
    let specials = probe.tokenizer.special_token_ids();
    let mut reports = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let report = inspect_text(probe, text, config, &specials)
            .with_context(|| format!("text {} of {}", i + 1, texts.len()))?;
        reports.push(report);
        on_text(i);
    }
    let mut features = BTreeMap::new();
    if !context.is_empty() {
        for report in &reports {
            let per_token = report
                .tokens
                .iter()
                .flat_map(|t| &t.features)
                .map(|a| a.feature);
            let over_text = report.top_features.iter().map(|f| f.feature);
            for feature in per_token.chain(over_text) {
                features
                    .entry(feature)
                    .or_insert_with(|| context.info(feature));
            }
        }
    }
    Ok(InspectResult {
        hook: probe.hook.to_string(),
        d_sae: probe.sae.config().d_sae,
        config: config.clone(),
        texts: reports,
        samples_folder: context.samples_dir().map(|dir| dir.display().to_string()),
        features,
    })
}

fn inspect_text(
    probe: &Probe,
    text: &str,
    config: &InspectConfig,
    specials: &[u32],
) -> Result<TextReport> {
    let ids = probe.tokenize(text)?;
    if ids.is_empty() {
        bail!("the text has no tokens");
    }
    let mut tokens = Vec::with_capacity(ids.len());
    let mut totals: HashMap<u32, FeatureOverText> = HashMap::new();
    for window in plan_windows(ids.len(), config.window, config.window_context())? {
        let acts = encode_window(probe, &ids[window.start..window.end])?;
        let reported = ids[window.report_from..window.end].iter();
        for (position, &token) in (window.report_from..).zip(reported) {
            let special = specials.binary_search(&token).is_ok();
            let mut features = Vec::new();
            if !special || config.include_special_tokens {
                features = token_activations(&acts, position - window.start);
                for a in &features {
                    add_to_total(&mut totals, a, position);
                }
                features.truncate(config.top_per_token);
            }
            tokens.push(TokenFeatures {
                position,
                token,
                text: probe.token_text(token),
                special,
                features,
            });
        }
    }
    let mut top_features: Vec<FeatureOverText> = totals.into_values().collect();
    top_features.sort_by(|a, b| b.sum.total_cmp(&a.sum).then(a.feature.cmp(&b.feature)));
    top_features.truncate(config.top_features);
    Ok(TextReport {
        text: text.to_string(),
        tokens,
        top_features,
    })
}

/// The SAE's activations of `ids` read as one sequence, as a CSR over its tokens.
fn encode_window(probe: &Probe, ids: &[u32]) -> Result<SparseActs> {
    let input = Tensor::from_vec(ids.to_vec(), (1, ids.len()), probe.model.device())?;
    let acts = probe.model.forward_to_hook(&input, &probe.hook)?; // [1, n, d_model]
    Ok(probe.sae.encode_sparse(&acts)?)
}

/// Every non-zero activation of token `t`, strongest first (ties: lower feature first).
fn token_activations(acts: &SparseActs, t: usize) -> Vec<Activation> {
    let range = acts.offsets[t]..acts.offsets[t + 1];
    let mut features: Vec<Activation> = acts.indices[range.clone()]
        .iter()
        .zip(&acts.values[range])
        .map(|(&feature, &activation)| Activation {
            feature,
            activation,
        })
        .collect();
    features.sort_by(|a, b| {
        b.activation
            .total_cmp(&a.activation)
            .then(a.feature.cmp(&b.feature))
    });
    features
}

fn add_to_total(totals: &mut HashMap<u32, FeatureOverText>, a: &Activation, position: usize) {
    let total = totals.entry(a.feature).or_insert(FeatureOverText {
        feature: a.feature,
        sum: 0.0,
        max: f32::NEG_INFINITY,
        max_position: position,
        tokens: 0,
    });
    total.sum += f64::from(a.activation);
    total.tokens += 1;
    if a.activation > total.max {
        total.max = a.activation;
        total.max_position = position;
    }
}
