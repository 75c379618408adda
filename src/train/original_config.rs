//! Config files of the Python original, read as the original wrote them.
//!
//! The original's training scripts start from `get_default_cfg()` / `post_init_cfg()`, set
//! keys, and its checkpoint writer dumps the dict with `json.dump`, `str()`-ing what JSON
//! cannot hold. So a config it wrote has keys saectl takes elsewhere (the model, hook and
//! dataset are flags; dtypes and the device are chosen at run time), keys with no effect here
//! (`wandb_project`, `store_tokens_for_samples`, …), its own type names (`batch-topk`,
//! `global-matryoshka-topk`, `matryoshka-transcoder`), integers written as floats
//! (`"num_tokens": 5e8` is `500000000.0`), lists written as strings (`"[2304, 4608]"`) and
//! `None` as `null`. [`normalize`] turns such a JSON object into what [`super::TrainConfig`]
//! deserializes, naming what it set aside; every key it does not know is left in place, so a
//! typo is still refused by `deny_unknown_fields`.

use serde_json::{Map, Number, Value};

/// Keys of the original that saectl takes from flags or from the model: its
/// `get_default_cfg` / `post_init_cfg`, its transcoder configs and its training scripts.
const FROM_FLAGS: &[&str] = &[
    "model_name",
    "site",
    "layer",
    "act_size",
    "hook_point",
    "name",
    "dtype",
    "model_dtype",
    "device",
    "dataset_path",
    "dataset_split",
    "n_layers",
    "source_layer",
    "target_layer",
    "source_site",
    "target_site",
    "source_hook_point",
    "target_hook_point",
    "source_act_size",
    "target_act_size",
];

/// Keys of the original with no effect in saectl: logging, bookkeeping its writer added, and
/// the switches of its experiments (the anti-duplication sampler, correlation monitoring),
/// which saectl's collector replaces (`dedup_context_windows`, `exclude_special_tokens`).
const NO_EFFECT: &[&str] = &[
    "wandb_project",
    "wandb_entity",
    "store_tokens_for_samples",
    "top_k_matryoshka",
    "experiment_description",
    "results_root",
    "completed_steps",
    "completed_at",
    "apply_rmsnorm_scaling",
    "warmup_lr",
    "use_warmup",
    "use_decay",
    "decay_steps",
    "loss_recovered_freq",
    "loss_recovered_n_batches",
    "eval_compute_on_cpu",
    "eval_chunk_size",
    "eval_feature_subset",
    "eval_max_pairs_reported",
    "use_position_stratified_sampling",
    "use_diversity_regularization",
    "use_correlation_monitoring",
    "position_sampler_type",
    "position_diversity_weight",
    "position_bins",
    "position_tolerance",
    "min_samples_per_bin",
    "max_bos_ratio",
    "bos_penalty_factor",
    "diversity_regularizer_type",
    "orthogonality_weight",
    "correlation_weight",
    "cka_weight",
    "correlation_window_size",
    "correlation_threshold",
    "correlation_save_frequency",
    "correlation_output_dir",
    "overlap_threshold",
];

/// Keys whose value is a list, which the original's older checkpoint writer `str()`-ed.
const LIST_KEYS: &[&str] = &["group_sizes", "prefix_sizes"];

/// Scheduler names of the original's template that its `create_scheduler` ran as no schedule
/// (it knows only `warmup_only`, `decay_only` and `warmup_decay`).
const NO_SCHEDULE: &[&str] = &["constant", "cosine", "linear"];

/// `map` made readable as a [`super::TrainConfig`], and the notes to show about what changed.
pub fn normalize(mut map: Map<String, Value>) -> (Map<String, Value>, Vec<String>) {
    let mut notes = Vec::new();
    if let Some(bandwidth) = map.remove("bandwidth") {
        map.entry("jumprelu_bandwidth").or_insert(bandwidth);
    }
    // `None` in the original means "not set": the default applies.
    map.retain(|_, value| !value.is_null());
    for key in LIST_KEYS {
        if let Some(value) = map.get_mut(*key) {
            unstringify_list(value);
        }
    }
    if let Some(prefixes) = map.remove("prefix_sizes") {
        // The Matryoshka transcoder's cumulative sizes; saectl's groups are their differences.
        if !map.contains_key("group_sizes") {
            map.insert("group_sizes".into(), group_sizes_of_prefixes(prefixes));
        }
    }
    for value in map.values_mut() {
        integral_float_to_integer(value);
    }
    if let Some(Value::String(schedule)) = map.get_mut("scheduler_type") {
        if NO_SCHEDULE.contains(&schedule.as_str()) {
            notes.push(format!(
                "scheduler_type {schedule:?} ran without a schedule in the original (it knows \
                 warmup_only, decay_only and warmup_decay); none here either"
            ));
            *schedule = "none".into();
        }
    }
    let from_flags = take_keys(&mut map, FROM_FLAGS);
    if !from_flags.is_empty() {
        notes.push(format!(
            "sets {}, which saectl takes from flags (--model, --hook, --hook-out, --dataset, \
             --device, --dtype) or the model itself; ignored here",
            from_flags.join(", ")
        ));
    }
    let no_effect = take_keys(&mut map, NO_EFFECT);
    if !no_effect.is_empty() {
        notes.push(format!(
            "sets {}, which have no effect in saectl; ignored",
            no_effect.join(", ")
        ));
    }
    (map, notes)
}

/// Removes `keys` from `map`, returning those it held, in `keys`' order.
fn take_keys(map: &mut Map<String, Value>, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter(|key| map.remove(**key).is_some())
        .map(|key| key.to_string())
        .collect()
}

/// `"[2304, 4608]"` (a list the original `str()`-ed) → `[2304, 4608]`; anything else as is.
fn unstringify_list(value: &mut Value) {
    if let Value::String(text) = value {
        if let Ok(list @ Value::Array(_)) = serde_json::from_str::<Value>(text.trim()) {
            *value = list;
        }
    }
}

/// A float with an integral value (`5e8`, `500000000.0`) as an integer, so that it reads into
/// integer keys; a float key reads an integer all the same. Other values are left as they are.
fn integral_float_to_integer(value: &mut Value) {
    match value {
        Value::Number(number) if number.is_f64() => {
            let x = number.as_f64().expect("is f64");
            // Beyond 2^53 a float no longer names one integer; leave it to fail as a float.
            if x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_992.0 {
                *value = if x >= 0.0 {
                    Value::Number(Number::from(x as u64))
                } else {
                    Value::Number(Number::from(x as i64))
                };
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_float_to_integer),
        _ => {}
    }
}

/// Cumulative prefix sizes `[p1, p2, …]` → group sizes `[p1, p2 − p1, …]`. Anything that is
/// not a list of increasing integers is passed on as is, for the config's own error.
fn group_sizes_of_prefixes(prefixes: Value) -> Value {
    let Some(items) = prefixes.as_array() else {
        return prefixes;
    };
    let sizes: Option<Vec<u64>> = items
        .iter()
        .map(|item| {
            let x = item.as_f64()?;
            (x >= 0.0 && x.fract() == 0.0).then_some(x as u64)
        })
        .collect();
    let Some(sizes) = sizes else {
        return prefixes;
    };
    let mut previous = 0;
    let mut groups = Vec::with_capacity(sizes.len());
    for size in sizes {
        let Some(group) = size.checked_sub(previous) else {
            return prefixes;
        };
        groups.push(Value::from(group));
        previous = size;
    }
    Value::Array(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(json: &str) -> (Value, Vec<String>) {
        let map: Map<String, Value> = serde_json::from_str(json).unwrap();
        let (map, notes) = normalize(map);
        (Value::Object(map), notes)
    }

    #[test]
    fn values_written_the_originals_way_become_plain_json() {
        let (map, notes) = normalized(
            r#"{"num_tokens": 5e8, "lr": 3e-4, "group_sizes": "[2304, 4608]",
                "min_lr": null, "beta1": 1.0, "seed": -2.0, "scheduler_type": "cosine"}"#,
        );
        assert_eq!(map["num_tokens"], serde_json::json!(500000000u64));
        assert!(map["num_tokens"].is_u64());
        assert_eq!(map["lr"], serde_json::json!(3e-4));
        assert_eq!(map["group_sizes"], serde_json::json!([2304, 4608]));
        assert!(map.get("min_lr").is_none(), "None means the default");
        assert!(map["beta1"].is_u64() && map["seed"].is_i64());
        assert_eq!(map["scheduler_type"], "none");
        assert!(notes[0].contains("cosine"), "{notes:?}");
    }

    #[test]
    fn prefix_sizes_become_group_sizes_and_keys_are_set_aside() {
        let (map, notes) = normalized(
            r#"{"prefix_sizes": "[2304, 4608, 9216]", "source_hook_point": "blocks.8.hook_resid_mid",
                "store_tokens_for_samples": false, "top_k_matryoshka": "[10, 10]", "top_k": 96}"#,
        );
        assert_eq!(map["group_sizes"], serde_json::json!([2304, 2304, 4608]));
        assert_eq!(map.as_object().unwrap().len(), 2, "{map}");
        assert!(notes[0].contains("source_hook_point"), "{notes:?}");
        assert!(
            notes[1].contains("store_tokens_for_samples, top_k_matryoshka"),
            "{notes:?}"
        );
        // Given explicitly, group_sizes win over the prefixes; a decreasing list is passed on.
        let (map, _) = normalized(r#"{"prefix_sizes": [4, 8], "group_sizes": [1, 7]}"#);
        assert_eq!(map["group_sizes"], serde_json::json!([1, 7]));
        let (map, _) = normalized(r#"{"prefix_sizes": [8, 4]}"#);
        assert_eq!(map["group_sizes"], serde_json::json!([8, 4]));
    }

    #[test]
    fn unknown_keys_and_fractional_floats_are_left_for_the_config_to_refuse() {
        let (map, notes) = normalized(r#"{"dict_sise": 4096, "top_k": 3.5, "lr": "0.1"}"#);
        assert_eq!(map["dict_sise"], 4096);
        assert_eq!(map["top_k"], serde_json::json!(3.5));
        assert_eq!(map["lr"], "0.1");
        assert!(notes.is_empty());
    }
}
