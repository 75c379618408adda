//! The rows Neuronpedia's tables take, as saectl writes them: one struct per table, its fields
//! named and typed as `apps/webapp/prisma/schema.prisma` declares the columns (docs/export.md
//! lists them). Neuronpedia's importer matches a line's keys to columns by name and takes the
//! column list from a file's first line, so every line of a file carries the same keys: a
//! value saectl does not know is written as the column's default (an empty list), never left
//! out on some lines only.
//!
//! `index` and `layer` are strings (the columns are `text`); `layer` is the source id
//! `{layer}-{source set}`. Ids are derived from what a row describes (model, source, feature,
//! example), so importing the same export twice adds nothing (`ON CONFLICT DO NOTHING`).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A `Neuron` row: one feature.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(non_snake_case)]
pub struct NeuronRow {
    pub modelId: String,
    pub layer: String,
    pub index: String,
    pub sourceSetName: String,
    pub creatorId: String,
    /// The largest activation the collection saw (streamed over every token).
    pub maxActApprox: f64,
    /// Tokens where the feature fired / tokens counted, exactly.
    pub frac_nonzero: f64,
    /// Activation histogram: bin centres and counts of the activations above the threshold.
    pub freq_hist_data_bar_values: Vec<f64>,
    pub freq_hist_data_bar_heights: Vec<f64>,
    /// The most promoted and suppressed output tokens and their logit effects.
    pub pos_str: Vec<String>,
    pub pos_values: Vec<f32>,
    pub neg_str: Vec<String>,
    pub neg_values: Vec<f32>,
    /// Decoder-cosine neighbours, the feature itself first (cosine 1), as Neuronpedia's
    /// similar-features pane reads them.
    pub topkCosSimIndices: Vec<u32>,
    pub topkCosSimValues: Vec<f32>,
    /// The residual dimensions the unit decoder direction weighs most: index, component, and
    /// the component's share of the direction's L1 norm.
    pub neuron_alignment_indices: Vec<u32>,
    pub neuron_alignment_values: Vec<f32>,
    pub neuron_alignment_l1: Vec<f32>,
}

/// An `Activation` row: one example window of one feature.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(non_snake_case)]
pub struct ActivationRow {
    pub id: String,
    pub modelId: String,
    pub layer: String,
    pub index: String,
    pub creatorId: String,
    /// The window's tokens as text.
    pub tokens: Vec<String>,
    /// The feature's activation on each token (0 where it did not fire or was not recorded).
    pub values: Vec<f32>,
    pub maxValue: f32,
    pub maxValueTokenIndex: u32,
    pub minValue: f32,
    /// The token that put the example in its group.
    pub qualifyingTokenIndex: u32,
    /// The group: `-1, max, -1` for the top examples, else the interval's bounds and its
    /// share of the feature's activations.
    pub binMin: f64,
    pub binMax: f64,
    pub binContains: f64,
    /// Where the window comes from: the collection's text, and the sequence's index in it.
    pub dataSource: Option<String>,
    pub dataIndex: String,
}

/// An `Explanation` row: a label written on the dashboard.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(non_snake_case)]
pub struct ExplanationRow {
    pub id: String,
    pub modelId: String,
    pub layer: String,
    pub index: String,
    pub description: String,
    pub authorId: String,
}

/// The `Model` row (`model.jsonl`; created only when the model is not there yet).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(non_snake_case)]
pub struct ModelRow {
    pub id: String,
    pub displayName: String,
    pub displayNameShort: String,
    pub creatorId: String,
    pub owner: String,
    pub layers: u64,
    pub neuronsPerLayer: u64,
    pub dimension: Option<u64>,
    pub instruct: bool,
    pub visibility: &'static str,
    pub inferenceEnabled: bool,
    pub website: Option<String>,
}

/// The `SourceSet` row (`sourceset.jsonl`): the SAE family, one source per layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(non_snake_case)]
pub struct SourceSetRow {
    pub modelId: String,
    pub name: String,
    pub description: String,
    pub creatorName: String,
    pub creatorId: String,
    pub urls: Vec<String>,
    pub visibility: &'static str,
    pub hasDashboards: bool,
    pub showCorrelated: bool,
}

/// The `Source` row (`source.jsonl`): this SAE at this layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[allow(non_snake_case)]
pub struct SourceRow {
    pub id: String,
    pub modelId: String,
    pub setName: String,
    pub creatorId: String,
    pub visibility: &'static str,
    pub hasDashboards: bool,
    pub inferenceEnabled: bool,
    /// The checkpoint's SAELens `cfg.json`, when it has one.
    pub saelensConfig: Option<serde_json::Value>,
    pub saelensRelease: Option<String>,
    pub saelensSaeId: Option<String>,
    pub hfRepoId: Option<String>,
    pub hfFolderId: Option<String>,
    /// Sequences read and tokens per sequence.
    pub num_prompts: Option<u64>,
    pub num_tokens_in_prompt: Option<u64>,
    pub dataset: Option<String>,
    pub notes: Option<String>,
}

/// A row id from what the row describes: `sx` and 24 hex digits of a SHA-256 (cuid-shaped,
/// stable across exports of the same SAE).
pub fn row_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("sx{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_unambiguous() {
        let a = row_id(&["gemma-2-2b", "12-set", "7", "0"]);
        assert_eq!(a, row_id(&["gemma-2-2b", "12-set", "7", "0"]));
        assert_eq!(a.len(), 26);
        assert_ne!(a, row_id(&["gemma-2-2b", "12-set", "7", "1"]));
        // Parts are separated: moving a character between parts changes the id.
        assert_ne!(row_id(&["ab", "c"]), row_id(&["a", "bc"]));
    }

    #[test]
    fn written_keys_are_columns() {
        use crate::export::schema::NEURON;
        let keys = |value: serde_json::Value| -> Vec<String> {
            value.as_object().unwrap().keys().cloned().collect()
        };
        let neuron = NeuronRow {
            modelId: "m".into(),
            layer: "1-s".into(),
            index: "0".into(),
            sourceSetName: "s".into(),
            creatorId: "c".into(),
            maxActApprox: 1.0,
            frac_nonzero: 0.5,
            freq_hist_data_bar_values: vec![],
            freq_hist_data_bar_heights: vec![],
            pos_str: vec![],
            pos_values: vec![],
            neg_str: vec![],
            neg_values: vec![],
            topkCosSimIndices: vec![],
            topkCosSimValues: vec![],
            neuron_alignment_indices: vec![],
            neuron_alignment_values: vec![],
            neuron_alignment_l1: vec![],
        };
        for key in keys(serde_json::to_value(&neuron).unwrap()) {
            assert!(NEURON.column(&key).is_some(), "{key}");
        }
    }
}
