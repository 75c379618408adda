//! `--check` of the API payloads (`api/`): what Neuronpedia's routes validate before they
//! accept a request (`app/api/model/new`, `source-set/new`, `feature/upload-batch`).

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use super::{sorted_entries, CheckReport, Problems};
use crate::export::limits::{
    API_FEATURES_PER_BATCH, API_MAX_DESCRIPTION_CHARS, API_MAX_EXPLANATION_CHARS, API_MAX_INDEX,
    API_MAX_LAYERS, API_MAX_LOGITS, API_MAX_TOKENS,
};

pub(super) fn check(
    source: &Path,
    problems: &mut Problems,
    report: &mut CheckReport,
) -> Result<()> {
    let dir = source.join("api");
    for path in sorted_entries(&dir)? {
        let file = format!(
            "api/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let bytes =
            std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        let body: Value = match serde_json::from_slice(&bytes) {
            Ok(body) => body,
            Err(err) => {
                problems.add(&file, None, "json", format!("is not JSON: {err}"));
                continue;
            }
        };
        let mut p = |message: String| problems.add(&file, None, "payload", message);
        match file.as_str() {
            "api/model-new.json" => model_new(&body, &mut p),
            "api/source-set-new.json" => source_set_new(&body, &mut p),
            name if name.starts_with("api/upload-batch-") => {
                upload_batch(&body, &mut p);
                report.api_batches += 1;
                report.features += body["features"].as_array().map_or(0, Vec::len);
            }
            _ => p("is not one of the API's payloads".into()),
        }
    }
    Ok(())
}

fn model_new(body: &Value, p: &mut impl FnMut(String)) {
    let id = body["id"].as_str().unwrap_or_default();
    let id_ok = (2..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c));
    if !id_ok {
        p(format!("id {} is not a model id the API takes", body["id"]));
    }
    if !body["layers"]
        .as_u64()
        .is_some_and(|l| (1..=API_MAX_LAYERS as u64).contains(&l))
    {
        p(format!(
            "layers {} is not 1 to {API_MAX_LAYERS}",
            body["layers"]
        ));
    }
}

fn source_set_new(body: &Value, p: &mut impl FnMut(String)) {
    let name = body["name"].as_str().unwrap_or_default();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name != "neurons";
    if !ok {
        p(format!(
            "name {} is not a source set name the API takes",
            body["name"]
        ));
    }
    if !body["modelId"].is_string() {
        p("modelId is missing".into());
    }
    if body["description"]
        .as_str()
        .is_some_and(|d| d.chars().count() > API_MAX_DESCRIPTION_CHARS)
    {
        p(format!(
            "description is longer than {API_MAX_DESCRIPTION_CHARS} characters"
        ));
    }
}

fn upload_batch(body: &Value, p: &mut impl FnMut(String)) {
    if !body["modelId"].is_string() || !body["source"].is_string() {
        p("modelId and source must be text".into());
    }
    let Some(features) = body["features"].as_array() else {
        p("features is missing".into());
        return;
    };
    if !(1..=API_FEATURES_PER_BATCH).contains(&features.len()) {
        p(format!(
            "has {} features; the API takes 1 to {API_FEATURES_PER_BATCH}",
            features.len()
        ));
    }
    let mut seen = HashSet::new();
    for feature in features {
        let index = feature["index"].as_u64();
        let at = format!("feature {}", feature["index"]);
        match index {
            Some(i) if i <= u64::from(API_MAX_INDEX) => {
                if !seen.insert(i) {
                    p(format!("{at} is listed twice"));
                }
            }
            _ => p(format!("{at}: index is not 0 to {API_MAX_INDEX}")),
        }
        if feature["density"]
            .as_f64()
            .is_some_and(|d| !(0.0..=1.0).contains(&d))
        {
            p(format!(
                "{at}: density {} is not a fraction",
                feature["density"]
            ));
        }
        for list in ["topLogits", "bottomLogits"] {
            let items = feature[list].as_array().map_or(&[][..], Vec::as_slice);
            if items.len() > API_MAX_LOGITS {
                p(format!(
                    "{at}: {list} has {} tokens; at most {API_MAX_LOGITS}",
                    items.len()
                ));
            }
            if items
                .iter()
                .any(|i| !i["token"].is_string() || !i["value"].is_number())
            {
                p(format!(
                    "{at}: {list} holds an entry without token and value"
                ));
            }
        }
        for explanation in feature["explanations"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
        {
            let chars = explanation["text"]
                .as_str()
                .map_or(0, |t| t.chars().count());
            if !(1..=API_MAX_EXPLANATION_CHARS).contains(&chars) {
                p(format!(
                    "{at}: an explanation has {chars} characters; 1 to {API_MAX_EXPLANATION_CHARS}"
                ));
            }
        }
        activations(feature, &at, p);
    }
}

fn activations(feature: &Value, at: &str, p: &mut impl FnMut(String)) {
    let activations = feature["activations"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if activations.is_empty() {
        p(format!(
            "{at}: has no activation; the API takes none without"
        ));
    }
    for (i, activation) in activations.iter().enumerate() {
        let (tokens, values) = (
            activation["tokens"].as_array().map_or(0, Vec::len),
            activation["values"].as_array().map_or(0, Vec::len),
        );
        if tokens != values || !(1..=API_MAX_TOKENS).contains(&tokens) {
            p(format!("{at}, activation {i}: {tokens} tokens and {values} values (equal, 1 to {API_MAX_TOKENS})"));
        }
        // Absent is fine; `null` is not (the route's schema takes a number or no key).
        let out_of_range = |f: &&Value| !f.as_f64().is_some_and(|f| (0.0..=1.0).contains(&f));
        if let Some(fraction) = activation.get("quantileFraction").filter(out_of_range) {
            p(format!(
                "{at}, activation {i}: quantileFraction {fraction} is not 0 to 1"
            ));
        }
    }
}
