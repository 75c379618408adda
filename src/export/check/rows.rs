//! The rules on one row of the bulk layout beyond its columns' types: a feature's row in the
//! folder of its model and source, with a feature number and lists of matching lengths; an
//! example's `tokens` and `values` of equal length, with `maxValue`, `minValue`, their token,
//! the qualifying token and the group consistent with its values.

use serde_json::Value;

use super::Problems;

pub(super) fn check_neuron(
    row: &Value,
    name: &str,
    number: usize,
    (model, source): (&str, &str),
    set: Option<&str>,
    problems: &mut Problems,
) {
    if row["modelId"] != model || row["layer"] != source {
        problems.add(
            name,
            Some(number),
            "place",
            format!(
                "is {}/{}, but the folder is {model}/{source}",
                row["modelId"], row["layer"]
            ),
        );
    }
    if row["index"]
        .as_str()
        .is_none_or(|i| i.parse::<u32>().is_err())
    {
        problems.add(
            name,
            Some(number),
            "index",
            format!("index {} is not a feature number", row["index"]),
        );
    }
    if let (Some(set), Some(given)) = (set, row["sourceSetName"].as_str()) {
        if set != given {
            problems.add(
                name,
                Some(number),
                "set",
                format!("sourceSetName {given:?} is not the source set {set:?}"),
            );
        }
    }
    if let Some(density) = row["frac_nonzero"].as_f64() {
        if !(0.0..=1.0).contains(&density) {
            problems.add(
                name,
                Some(number),
                "density",
                format!("frac_nonzero {density} is not a fraction"),
            );
        }
    }
    for group in [
        &["pos_str", "pos_values"][..],
        &["neg_str", "neg_values"],
        &["topkCosSimIndices", "topkCosSimValues"],
        &["freq_hist_data_bar_values", "freq_hist_data_bar_heights"],
        &[
            "logits_hist_data_bar_values",
            "logits_hist_data_bar_heights",
        ],
        &[
            "neuron_alignment_indices",
            "neuron_alignment_values",
            "neuron_alignment_l1",
        ],
    ] {
        let lengths: Vec<usize> = group
            .iter()
            .map(|k| row[*k].as_array().map_or(0, Vec::len))
            .collect();
        if lengths.windows(2).any(|w| w[0] != w[1]) {
            problems.add(
                name,
                Some(number),
                "lengths",
                format!("{} have lengths {lengths:?}", group.join("/")),
            );
        }
    }
}

pub(super) fn check_activation(row: &Value, name: &str, number: usize, problems: &mut Problems) {
    let (Some(tokens), Some(values)) = (row["tokens"].as_array(), row["values"].as_array()) else {
        return;
    };
    let values: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    if tokens.len() != values.len() || values.is_empty() {
        problems.add(
            name,
            Some(number),
            "lengths",
            format!("has {} tokens and {} values", tokens.len(), values.len()),
        );
        return;
    }
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0);
    if row["maxValue"].as_f64().is_some_and(|m| !close(m, max)) {
        problems.add(
            name,
            Some(number),
            "max",
            format!(
                "maxValue {} is not the largest value, {max}",
                row["maxValue"]
            ),
        );
    }
    if row["minValue"].as_f64().is_some_and(|m| !close(m, min)) {
        problems.add(
            name,
            Some(number),
            "min",
            format!(
                "minValue {} is not the smallest value, {min}",
                row["minValue"]
            ),
        );
    }
    match row["maxValueTokenIndex"].as_u64().map(|i| i as usize) {
        Some(i) if i < values.len() && close(values[i], max) => {}
        Some(i) => problems.add(
            name,
            Some(number),
            "max",
            format!("maxValueTokenIndex {i} does not point at the largest value"),
        ),
        None => {}
    }
    if let Some(i) = row["qualifyingTokenIndex"].as_u64() {
        if i as usize >= values.len() {
            problems.add(
                name,
                Some(number),
                "qualifying",
                format!(
                    "qualifyingTokenIndex {i} is outside the {} tokens",
                    values.len()
                ),
            );
        }
    }
    let (low, high, share) = (
        row["binMin"].as_f64(),
        row["binMax"].as_f64(),
        row["binContains"].as_f64(),
    );
    if let (Some(low), Some(high)) = (low, high) {
        if low != -1.0 && low > high {
            problems.add(
                name,
                Some(number),
                "bin",
                format!("binMin {low} is above binMax {high}"),
            );
        }
    }
    if share.is_some_and(|s| s != -1.0 && !(0.0..=1.0).contains(&s)) {
        problems.add(
            name,
            Some(number),
            "bin",
            format!("binContains {} is not a fraction", row["binContains"]),
        );
    }
}
