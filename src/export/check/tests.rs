//! `--check` on hand-made layouts: each kind of problem is found, on its line.

use std::io::Write;

use super::*;

fn gz(lines: &[Value]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for line in lines {
        writeln!(encoder, "{line}").unwrap();
    }
    encoder.finish().unwrap()
}

fn neuron(index: &str) -> Value {
    serde_json::json!({"modelId": "m", "layer": "3-s", "index": index, "sourceSetName": "s",
        "frac_nonzero": 0.5, "pos_str": ["a"], "pos_values": [1.0]})
}

fn activation(id: &str, index: &str) -> Value {
    serde_json::json!({"id": id, "modelId": "m", "layer": "3-s", "index": index, "creatorId": "c",
        "tokens": ["a", "b"], "values": [0.0, 2.0], "maxValue": 2.0, "maxValueTokenIndex": 1,
        "minValue": 0.0, "binMin": -1.0, "binMax": 2.0, "binContains": -1.0,
        "qualifyingTokenIndex": 1})
}

/// A valid layout `m/3-s/`, then `edit` applied to it.
fn layout(features: &[Value], activations: &[Value]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("m/3-s");
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("activations")).unwrap();
    let line = |v: Value| format!("{v}\n");
    std::fs::write(
        dir.join("model.jsonl"),
        line(serde_json::json!({"id": "m", "layers": 4,
        "neuronsPerLayer": 0, "owner": "o", "creatorId": "c"})),
    )
    .unwrap();
    std::fs::write(
        dir.join("sourceset.jsonl"),
        line(serde_json::json!({"modelId": "m", "name": "s",
        "description": "d", "creatorName": "n", "creatorId": "c"})),
    )
    .unwrap();
    std::fs::write(
        dir.join("source.jsonl"),
        line(serde_json::json!({"id": "3-s", "modelId": "m",
        "setName": "s", "creatorId": "c"})),
    )
    .unwrap();
    std::fs::write(dir.join("features/batch-0.jsonl.gz"), gz(features)).unwrap();
    std::fs::write(dir.join("activations/batch-0.jsonl.gz"), gz(activations)).unwrap();
    root
}

fn problems(root: &tempfile::TempDir) -> Vec<String> {
    check(root.path()).unwrap().problems
}

#[test]
fn a_valid_layout_has_no_problem() {
    let root = layout(
        &[neuron("0"), neuron("1")],
        &[activation("a", "0"), activation("b", "1")],
    );
    let report = check(root.path()).unwrap();
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!((report.features, report.activations), (2, 2));
    assert_eq!(report.sources.len(), 1);
}

#[test]
fn every_kind_of_problem_is_found_on_its_line() {
    let mut bad_lengths = activation("c", "0");
    bad_lengths["values"] = serde_json::json!([1.0]);
    let mut bad_max = activation("d", "0");
    bad_max["maxValue"] = serde_json::json!(5.0);
    let mut int_index = neuron("2");
    int_index["index"] = serde_json::json!(2);
    let mut extra = neuron("3");
    extra["colour"] = serde_json::json!("red");
    let root = layout(
        &[neuron("0"), neuron("0"), int_index, extra],
        &[
            activation("a", "0"),
            activation("a", "0"),
            activation("e", "9"),
            bad_lengths,
            bad_max,
        ],
    );
    let found = problems(&root);
    let has = |needle: &str| found.iter().any(|p| p.contains(needle));
    assert!(
        has("features/batch-0.jsonl.gz:2: feature \"0\" is listed twice"),
        "{found:#?}"
    );
    assert!(
        has("features/batch-0.jsonl.gz:3: index is 2, not text"),
        "{found:#?}"
    );
    assert!(has("colour is not a column of Neuron"), "{found:#?}");
    assert!(
        has("has other keys than the file's first line"),
        "{found:#?}"
    );
    assert!(
        has("activations/batch-0.jsonl.gz:2: id a is used twice"),
        "{found:#?}"
    );
    assert!(
        has("activations/batch-0.jsonl.gz:3: feature \"9\" of \"3-s\" has no row"),
        "{found:#?}"
    );
    assert!(has(":4: has 2 tokens and 1 values"), "{found:#?}");
    assert!(
        has(":5: maxValue 5.0 is not the largest value"),
        "{found:#?}"
    );
    assert!(found.iter().all(|p| !p.contains('\n')));
}

#[test]
fn missing_metadata_and_stray_files_are_reported() {
    let root = layout(&[neuron("0")], &[]);
    let dir = root.path().join("m/3-s");
    std::fs::remove_file(dir.join("source.jsonl")).unwrap();
    std::fs::write(dir.join("features/notes.txt"), "x").unwrap();
    std::fs::write(dir.join("features/batch-1.jsonl.gz"), "not gzip").unwrap();
    let found = problems(&root);
    let has = |needle: &str| found.iter().any(|p| p.contains(needle));
    assert!(has("source.jsonl: is missing"), "{found:#?}");
    assert!(
        has("features/notes.txt: does not end in .jsonl.gz"),
        "{found:#?}"
    );
    assert!(
        has("features/batch-1.jsonl.gz: is not gzipped"),
        "{found:#?}"
    );
}

#[test]
fn a_folder_without_an_export_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let err = check(root.path()).unwrap_err().to_string();
    assert!(err.contains("holds no Neuronpedia export"), "{err}");
}

#[test]
fn repeated_problems_are_summed_up() {
    let many: Vec<Value> = (0..12)
        .map(|i| {
            let mut a = activation(&format!("x{i}"), "0");
            a["minValue"] = serde_json::json!(-3.0);
            a
        })
        .collect();
    let root = layout(&[neuron("0")], &many);
    let found = problems(&root);
    assert_eq!(
        found.iter().filter(|p| p.contains("minValue")).count(),
        SHOWN_PER_KIND
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("7 more problems like these (min)")),
        "{found:#?}"
    );
}
