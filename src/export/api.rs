//! The payloads of Neuronpedia's public API, one JSON file per request, for an account with an
//! API key (`x-api-key`) to send in order — saectl sends nothing:
//!
//! ```text
//! OUT/{model}/{layer}-{set}/api/model-new.json        POST /api/model/new
//!                           api/source-set-new.json   POST /api/source-set/new
//!                           api/upload-batch-N.json   POST /api/feature/upload-batch
//! ```
//!
//! The upload route takes at most 128 features per call, 20 logit tokens per list, 1,024
//! tokens per example, 512 characters per explanation, and no feature without an example:
//! dead features and features without kept examples are listed apart in
//! `skipped_indexes.json`. The route derives `maxValue` and its token from `values`; the
//! interval of an example travels as `quantileMin/Max/Fraction`.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use super::build::FeatureRows;
use super::limits::{
    API_FEATURES_PER_BATCH, API_MAX_EXPLANATION_CHARS, API_MAX_INDEX, API_MAX_LAYERS,
    API_MAX_LOGITS, API_MAX_TOKENS,
};
use super::manifest::{put, staging_for, Manifest, Skipped, SKIPPED_FILE};
use super::prepare::Prepared;
use super::rows::ActivationRow;
use super::{replace_folder, ExportMode, Written};

/// `POST /api/model/new`.
#[derive(Serialize)]
#[allow(non_snake_case)]
struct ModelNew {
    id: String,
    layers: usize,
    displayName: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

/// `POST /api/source-set/new`.
#[derive(Serialize)]
#[allow(non_snake_case)]
struct SourceSetNew {
    modelId: String,
    name: String,
    description: String,
}

/// `POST /api/feature/upload-batch`.
#[derive(Serialize)]
#[allow(non_snake_case)]
pub struct UploadBatch {
    pub modelId: String,
    pub source: String,
    pub features: Vec<ApiFeature>,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
pub struct ApiFeature {
    pub index: u32,
    pub density: f64,
    pub topLogits: Vec<ApiLogit>,
    pub bottomLogits: Vec<ApiLogit>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explanations: Vec<ApiExplanation>,
    pub activations: Vec<ApiActivation>,
}

#[derive(Serialize)]
pub struct ApiLogit {
    pub token: String,
    pub value: f32,
}

#[derive(Serialize)]
pub struct ApiExplanation {
    pub text: String,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
pub struct ApiActivation {
    pub tokens: Vec<String>,
    pub values: Vec<f32>,
    pub quantileMin: f64,
    pub quantileMax: f64,
    /// The interval's share of the feature's activations (none for the top examples: the
    /// route takes only 0–1 here, and its `-1` convention is SAEDashboard's). Left out, not
    /// `null`, when absent: the route's schema takes a number or nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantileFraction: Option<f64>,
}

/// Writes the API payloads of `prepared` under `out`.
pub fn write(prepared: &Prepared, out: &Path) -> Result<Written> {
    let layers = prepared.model.layers;
    if !(1..=API_MAX_LAYERS).contains(&layers) {
        bail!("the API takes models of 1 to {API_MAX_LAYERS} layers; this one has {layers}");
    }
    let dir = out
        .join(&prepared.target.model_id)
        .join(&prepared.names.source_id);
    let staging = staging_for(&dir)?;
    let model = ModelNew {
        id: prepared.target.model_id.clone(),
        layers,
        displayName: prepared.target.model_id.clone(),
        url: prepared.model_row().website,
    };
    let set = SourceSetNew {
        modelId: prepared.target.model_id.clone(),
        name: prepared.target.source_set.clone(),
        description: prepared.description(),
    };
    let mut files = vec![
        put(&staging, "api/model-new.json", &pretty(&model)?, 1)?,
        put(&staging, "api/source-set-new.json", &pretty(&set)?, 1)?,
    ];
    let mut skipped = Skipped {
        model_id: prepared.target.model_id.clone(),
        layer: prepared.names.source_id.clone(),
        sae_set: prepared.target.source_set.clone(),
        skipped_indexes: Vec::new(),
        dead: Vec::new(),
        without_examples: Vec::new(),
    };
    let (mut batch, mut counts, mut cut_labels) = (Vec::new(), (0, 0), 0);
    for f in 0..prepared.set.features.len() as u32 {
        let rows = prepared.rows(f);
        if rows.activations.is_empty() {
            skipped.skipped_indexes.push(f);
            match prepared.is_dead(f) {
                true => skipped.dead.push(f),
                false => skipped.without_examples.push(f),
            }
            continue;
        }
        if f > API_MAX_INDEX {
            bail!("feature {f} is beyond the API's largest index, {API_MAX_INDEX}: use the bulk layout");
        }
        counts.0 += rows.activations.len();
        counts.1 += usize::from(rows.explanation.is_some());
        let (feature, cut) = api_feature(f, rows);
        cut_labels += usize::from(cut);
        batch.push(feature);
        if batch.len() == API_FEATURES_PER_BATCH {
            files.push(upload(prepared, &staging, files.len() - 2, &mut batch)?);
        }
    }
    if !batch.is_empty() {
        files.push(upload(prepared, &staging, files.len() - 2, &mut batch)?);
    }
    let skipped_bytes = serde_json::to_vec_pretty(&skipped)?;
    let skipped_count = skipped.skipped_indexes.len();
    files.push(put(
        &staging,
        SKIPPED_FILE,
        &skipped_bytes,
        skipped_count as u64,
    )?);
    let mut manifest = Manifest::new(prepared, ExportMode::Api, counts, files.clone());
    if cut_labels > 0 {
        manifest.notes.push(format!(
            "{cut_labels} labels were cut to the API's {API_MAX_EXPLANATION_CHARS} characters"
        ));
    }
    manifest.write(&staging)?;
    replace_folder(&staging, &dir)?;
    Ok(Written {
        dir,
        files,
        skipped: skipped_count,
        activations: counts.0,
        explanations: counts.1,
    })
}

fn pretty(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `api/upload-batch-N.json` with the features in `batch` (emptied).
fn upload(
    prepared: &Prepared,
    dir: &Path,
    number: usize,
    batch: &mut Vec<ApiFeature>,
) -> Result<super::WrittenFile> {
    let body = UploadBatch {
        modelId: prepared.target.model_id.clone(),
        source: prepared.names.source_id.clone(),
        features: std::mem::take(batch),
    };
    let count = body.features.len() as u64;
    put(
        dir,
        &format!("api/upload-batch-{number}.json"),
        &pretty(&body)?,
        count,
    )
}

/// A feature as the upload route takes it; `true` when its label had to be cut.
fn api_feature(index: u32, rows: FeatureRows) -> (ApiFeature, bool) {
    let neuron = rows.neuron;
    let logits = |texts: Vec<String>, values: Vec<f32>| {
        texts
            .into_iter()
            .zip(values)
            .take(API_MAX_LOGITS)
            .map(|(token, value)| ApiLogit { token, value })
            .collect()
    };
    let mut cut = false;
    let explanations = rows
        .explanation
        .map(|e| {
            cut = e.description.chars().count() > API_MAX_EXPLANATION_CHARS;
            ApiExplanation {
                text: e
                    .description
                    .chars()
                    .take(API_MAX_EXPLANATION_CHARS)
                    .collect(),
            }
        })
        .into_iter()
        .collect();
    let feature = ApiFeature {
        index,
        density: neuron.frac_nonzero,
        topLogits: logits(neuron.pos_str, neuron.pos_values),
        bottomLogits: logits(neuron.neg_str, neuron.neg_values),
        explanations,
        activations: rows.activations.into_iter().map(api_activation).collect(),
    };
    (feature, cut)
}

/// An example, its window cut to the API's 1,024 tokens around the qualifying token.
pub fn api_activation(row: ActivationRow) -> ApiActivation {
    let len = row.tokens.len();
    let start = (row.qualifyingTokenIndex as usize)
        .saturating_sub(API_MAX_TOKENS / 2)
        .min(len.saturating_sub(API_MAX_TOKENS));
    let end = (start + API_MAX_TOKENS).min(len);
    let top = row.binContains < 0.0;
    ApiActivation {
        tokens: row.tokens[start..end].to_vec(),
        values: row.values[start..end].to_vec(),
        quantileMin: row.binMin,
        quantileMax: row.binMax,
        quantileFraction: (!top).then_some(row.binContains),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(len: usize, at: u32) -> ActivationRow {
        ActivationRow {
            id: "x".into(),
            modelId: "m".into(),
            layer: "1-s".into(),
            index: "0".into(),
            creatorId: "c".into(),
            tokens: (0..len).map(|i| i.to_string()).collect(),
            values: (0..len).map(|i| i as f32).collect(),
            maxValue: 0.0,
            maxValueTokenIndex: 0,
            minValue: 0.0,
            qualifyingTokenIndex: at,
            binMin: -1.0,
            binMax: 3.0,
            binContains: -1.0,
            dataSource: None,
            dataIndex: "0".into(),
        }
    }

    #[test]
    fn long_windows_are_cut_around_the_qualifying_token() {
        let short = api_activation(row(21, 10));
        assert_eq!(short.tokens.len(), 21);
        assert_eq!(
            short.quantileFraction, None,
            "top examples carry no fraction"
        );
        let long = api_activation(row(3000, 2000));
        assert_eq!(long.tokens.len(), API_MAX_TOKENS);
        assert_eq!(long.tokens[API_MAX_TOKENS / 2], "2000");
        let end = api_activation(row(3000, 2990));
        assert_eq!(end.tokens.last().unwrap(), "2999");
        let mut interval = row(5, 1);
        (interval.binMin, interval.binContains) = (0.5, 0.25);
        assert_eq!(api_activation(interval).quantileFraction, Some(0.25));
    }
}
