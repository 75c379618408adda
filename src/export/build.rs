//! One feature of the per-feature view turned into its Neuronpedia rows: the `Neuron` row, one
//! `Activation` row per example, and an `Explanation` row when it has a label.
//!
//! What saectl keeps beyond SAEDashboard's export (docs/export.md): the exact density and the
//! streamed max; interval groups over active tokens only, with their true share of the
//! feature's activations; the qualifying token's index; each example once (an interval sample
//! that is also a top example is not repeated); the activation histogram; the logit effects in
//! Neuronpedia's convention (not centred); decoder-cosine neighbours and the decoder
//! direction's largest components when the checkpoint is at hand.

use std::collections::HashSet;

use super::rows::{row_id, ActivationRow, ExplanationRow, NeuronRow};
use crate::analyze::decoder::DecoderDirections;
use crate::features::model::{Example, FeatureData, GroupKind};
use crate::samples::bins::{bin_lower, bin_upper};

/// Residual dimensions listed per feature in `neuron_alignment_*`.
pub const ALIGNMENT_DIMENSIONS: usize = 10;

/// What every row of the export shares.
pub struct Names {
    pub model_id: String,
    /// `{layer}-{source set}`: Neuronpedia's `layer` column.
    pub source_id: String,
    pub source_set: String,
    pub creator_id: String,
    /// The collection's text, recorded as each example's `dataSource`.
    pub data_source: Option<String>,
}

/// What one feature's rows are made from, beside its view.
pub struct FeatureInputs<'a> {
    pub index: u32,
    pub data: &'a FeatureData,
    /// Each token id's text.
    pub text: &'a dyn Fn(u32) -> String,
    /// Added to the logit values to put them in Neuronpedia's convention (0 when they are).
    pub logit_shift: f32,
    /// Decoder-cosine neighbours, best first (none without the checkpoint).
    pub neighbours: Option<&'a [(u32, f32)]>,
    pub directions: Option<&'a DecoderDirections>,
    pub label: Option<&'a str>,
}

/// A feature's rows.
pub struct FeatureRows {
    pub neuron: NeuronRow,
    pub activations: Vec<ActivationRow>,
    pub explanation: Option<ExplanationRow>,
}

/// The rows of one feature.
pub fn feature_rows(names: &Names, input: &FeatureInputs<'_>) -> FeatureRows {
    let index = input.index.to_string();
    let (pos, neg) = logit_lists(input);
    let (cos_indices, cos_values) = cosine_lists(input);
    let (align_indices, align_values, align_l1) = alignment(input);
    let (bar_values, bar_heights) = histogram_bars(input.data);
    let statistics = &input.data.statistics;
    let neuron = NeuronRow {
        modelId: names.model_id.clone(),
        layer: names.source_id.clone(),
        index: index.clone(),
        sourceSetName: names.source_set.clone(),
        creatorId: names.creator_id.clone(),
        maxActApprox: statistics.max_activation,
        frac_nonzero: statistics.density,
        freq_hist_data_bar_values: bar_values,
        freq_hist_data_bar_heights: bar_heights,
        pos_str: pos.iter().map(|p| p.0.clone()).collect(),
        pos_values: pos.iter().map(|p| p.1).collect(),
        neg_str: neg.iter().map(|p| p.0.clone()).collect(),
        neg_values: neg.iter().map(|p| p.1).collect(),
        topkCosSimIndices: cos_indices,
        topkCosSimValues: cos_values,
        neuron_alignment_indices: align_indices,
        neuron_alignment_values: align_values,
        neuron_alignment_l1: align_l1,
    };
    let explanation = input.label.map(|label| ExplanationRow {
        id: row_id(&[&names.model_id, &names.source_id, &index, "label"]),
        modelId: names.model_id.clone(),
        layer: names.source_id.clone(),
        index: index.clone(),
        description: label.to_string(),
        authorId: names.creator_id.clone(),
    });
    FeatureRows {
        neuron,
        activations: activation_rows(names, input, &index),
        explanation,
    }
}

/// Every example once, top group first, then the intervals from the highest.
fn activation_rows(names: &Names, input: &FeatureInputs<'_>, index: &str) -> Vec<ActivationRow> {
    let statistics = &input.data.statistics;
    let mut seen: HashSet<(u64, u32)> = HashSet::new();
    let mut rows = Vec::new();
    for group in &input.data.groups {
        let (bin_min, bin_max, bin_contains) = match &group.kind {
            GroupKind::Top => (-1.0, statistics.max_activation, -1.0),
            GroupKind::Interval {
                lower,
                upper,
                count,
                ..
            } => (
                lower.unwrap_or(0.0),
                upper.unwrap_or(statistics.max_activation),
                *count as f64 / statistics.activation_count.max(1) as f64,
            ),
        };
        for example in &group.examples {
            if !seen.insert((example.sequence, example.position)) {
                continue;
            }
            let number = rows.len().to_string();
            let values = window_values(example);
            let (max_at, max_value) =
                values
                    .iter()
                    .copied()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
                        if v > best.1 {
                            (i, v)
                        } else {
                            best
                        }
                    });
            rows.push(ActivationRow {
                id: row_id(&[&names.model_id, &names.source_id, index, &number]),
                modelId: names.model_id.clone(),
                layer: names.source_id.clone(),
                index: index.to_string(),
                creatorId: names.creator_id.clone(),
                tokens: example.tokens.iter().map(|&t| (input.text)(t)).collect(),
                minValue: values.iter().copied().fold(f32::INFINITY, f32::min),
                values,
                maxValue: max_value,
                maxValueTokenIndex: max_at as u32,
                qualifyingTokenIndex: example.at,
                binMin: bin_min,
                binMax: bin_max,
                binContains: bin_contains,
                dataSource: names.data_source.clone(),
                dataIndex: example.sequence.to_string(),
            });
        }
    }
    rows
}

/// The feature's activation on every token of the example's window: the recorded per-token
/// activations when the collection has them, else the marked token's alone (0 elsewhere:
/// unknown, see docs/export.md).
pub fn window_values(example: &Example) -> Vec<f32> {
    let mut values = vec![0.0f32; example.tokens.len()];
    if let Some(recorded) = &example.token_activations {
        for &(i, v) in recorded {
            if let Some(slot) = values.get_mut(i as usize) {
                *slot = v;
            }
        }
    }
    values[example.at as usize] = example.activation;
    values
}

/// (text, value) of tokens, as a feature's logit list holds them.
type TokenValues = Vec<(String, f32)>;

/// The promoted and the suppressed tokens, in Neuronpedia's convention.
fn logit_lists(input: &FeatureInputs<'_>) -> (TokenValues, TokenValues) {
    let Some((top, bottom)) = &input.data.logits else {
        return (Vec::new(), Vec::new());
    };
    let list = |pairs: &[(u32, f32)]| {
        pairs
            .iter()
            .map(|&(t, v)| ((input.text)(t), v + input.logit_shift))
            .collect()
    };
    (list(top), list(bottom))
}

/// The feature itself (cosine 1) and its decoder-cosine neighbours, as Neuronpedia lists them.
fn cosine_lists(input: &FeatureInputs<'_>) -> (Vec<u32>, Vec<f32>) {
    let Some(neighbours) = input.neighbours else {
        return (Vec::new(), Vec::new());
    };
    std::iter::once((input.index, 1.0))
        .chain(neighbours.iter().copied())
        .unzip()
}

/// The largest components (by magnitude) of the unit decoder direction.
fn alignment(input: &FeatureInputs<'_>) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
    let Some(row) = input.directions.and_then(|d| d.row(input.index)) else {
        return (Vec::new(), Vec::new(), Vec::new());
    };
    let l1: f32 = row.iter().map(|v| v.abs()).sum();
    let mut order: Vec<u32> = (0..row.len() as u32).collect();
    order.sort_by(|&a, &b| {
        row[b as usize]
            .abs()
            .total_cmp(&row[a as usize].abs())
            .then(a.cmp(&b))
    });
    order.truncate(ALIGNMENT_DIMENSIONS);
    let values: Vec<f32> = order.iter().map(|&i| row[i as usize]).collect();
    let shares = values
        .iter()
        .map(|v| if l1 > 0.0 { v.abs() / l1 } else { 0.0 })
        .collect();
    (order, values, shares)
}

/// The collector's histogram as bars: each bin's centre (its open ends closed by the feature's
/// min and max activation) and its count. A folder without the minimum (the original's)
/// closes the lowest bin at 0, below which the collector's threshold lets nothing in.
fn histogram_bars(data: &FeatureData) -> (Vec<f64>, Vec<f64>) {
    let (low, high) = (
        data.statistics.min_activation.unwrap_or(0.0),
        data.statistics.max_activation,
    );
    data.histogram
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let bin = data.histogram_first_bin as usize + i;
            let lower = bin_lower(bin).max(low);
            let upper = bin_upper(bin).min(high).max(lower);
            (0.5 * (lower + upper), count as f64)
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::model::ExampleGroup;
    use crate::samples::format::{FeatureFlags, FeatureStatistics};

    fn example(sequence: u64, at: u32, activation: f32) -> Example {
        Example {
            sequence,
            position: 10 + at,
            tokens: vec![5, 6, 7, 8],
            at,
            activation,
            token_activations: None,
        }
    }

    fn data() -> FeatureData {
        let statistics = FeatureStatistics {
            feature_idx: 3,
            max_activation: 4.0,
            mean_activation: 2.0,
            num_samples: 3,
            activation_count: 40,
            all_time_max: None,
            min_activation: Some(0.5),
            std_activation: Some(1.0),
            firing_count: 50,
            density: 0.125,
            activation_sum: Default::default(),
            activation_sum_squares: Default::default(),
        };
        let mut recorded = example(2, 1, 3.0);
        recorded.token_activations = Some(vec![(0, 0.5), (1, 3.0), (3, 3.5)]);
        FeatureData {
            statistics,
            flags: FeatureFlags::default(),
            // Bins 56–58: [0.46875, 0.5), [0.5, 0.5625), [0.5625, 0.625).
            histogram_first_bin: 56,
            histogram: vec![2, 0, 5],
            groups: vec![
                ExampleGroup {
                    kind: GroupKind::Top,
                    examples: vec![example(1, 2, 4.0), recorded],
                },
                ExampleGroup {
                    kind: GroupKind::Interval {
                        index: 0,
                        lower: Some(0.5),
                        upper: Some(1.0),
                        count: 10,
                    },
                    // The second is the top example again: it is not repeated.
                    examples: vec![example(9, 0, 0.75), example(1, 2, 4.0)],
                },
            ],
            logits: Some((vec![(6, 2.0)], vec![(7, -1.0)])),
        }
    }

    fn names() -> Names {
        Names {
            model_id: "gemma-2-2b".into(),
            source_id: "12-set".into(),
            source_set: "set".into(),
            creator_id: "creator".into(),
            data_source: Some("corpus".into()),
        }
    }

    #[test]
    fn rows_carry_groups_values_and_neighbours() {
        let data = data();
        let text = |t: u32| format!("t{t}");
        let directions =
            DecoderDirections::from_rows(4, 2, vec![0.0, 1.0, 3.0, -4.0, 1.0, 0.0, 1.0, 1.0]);
        let neighbours = [(1u32, 0.5f32)];
        let rows = feature_rows(
            &names(),
            &FeatureInputs {
                index: 3,
                data: &data,
                text: &text,
                logit_shift: 0.25,
                neighbours: Some(&neighbours),
                directions: Some(&directions),
                label: Some("cats"),
            },
        );
        let n = &rows.neuron;
        assert_eq!((n.index.as_str(), n.layer.as_str()), ("3", "12-set"));
        assert_eq!((n.maxActApprox, n.frac_nonzero), (4.0, 0.125));
        assert_eq!(
            (n.pos_str.clone(), n.pos_values.clone()),
            (vec!["t6".to_string()], vec![2.25])
        );
        assert_eq!(n.neg_values, vec![-0.75]);
        assert_eq!(n.topkCosSimIndices, vec![3, 1]);
        assert_eq!(n.topkCosSimValues, vec![1.0, 0.5]);
        // Feature 3's unit direction is (1, 1)/√2: both dimensions, half the L1 norm each.
        assert_eq!(n.neuron_alignment_indices, vec![0, 1]);
        assert!((n.neuron_alignment_l1[0] - 0.5).abs() < 1e-6);
        assert_eq!(n.freq_hist_data_bar_heights, vec![2.0, 0.0, 5.0]);
        assert_eq!(rows.activations.len(), 3, "the repeated example is dropped");
        let top = &rows.activations[0];
        assert_eq!(top.tokens, vec!["t5", "t6", "t7", "t8"]);
        assert_eq!(top.values, vec![0.0, 0.0, 4.0, 0.0]);
        assert_eq!(
            (top.maxValue, top.maxValueTokenIndex, top.minValue),
            (4.0, 2, 0.0)
        );
        assert_eq!((top.binMin, top.binMax, top.binContains), (-1.0, 4.0, -1.0));
        // Recorded per-token values: the window's max is another token than the marked one.
        let recorded = &rows.activations[1];
        assert_eq!(recorded.values, vec![0.5, 3.0, 0.0, 3.5]);
        assert_eq!(
            (recorded.maxValueTokenIndex, recorded.qualifyingTokenIndex),
            (3, 1)
        );
        let interval = &rows.activations[2];
        assert_eq!(
            (interval.binMin, interval.binMax, interval.binContains),
            (0.5, 1.0, 0.25)
        );
        assert_eq!(interval.dataIndex, "9");
        let ids: HashSet<&str> = rows.activations.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(rows.explanation.unwrap().description, "cats");
    }

    #[test]
    fn without_checkpoint_or_logits_the_lists_are_empty() {
        let mut data = data();
        data.logits = None;
        let text = |t: u32| t.to_string();
        let rows = feature_rows(
            &names(),
            &FeatureInputs {
                index: 3,
                data: &data,
                text: &text,
                logit_shift: 0.0,
                neighbours: None,
                directions: None,
                label: None,
            },
        );
        assert!(rows.neuron.pos_str.is_empty() && rows.neuron.topkCosSimIndices.is_empty());
        assert!(rows.neuron.neuron_alignment_indices.is_empty());
        assert!(rows.explanation.is_none());
    }

    #[test]
    fn histogram_bars_sit_inside_the_observed_range() {
        let data = data();
        let (values, _) = histogram_bars(&data);
        assert_eq!(values.len(), 3);
        assert!(values.windows(2).all(|w| w[0] < w[1]));
        // Bin 56 starts below the feature's smallest activation, 0.5.
        assert_eq!(values, vec![0.5, 0.53125, 0.59375]);
    }
}
