//! `saectl export neuronpedia` on a real collection of the tiny model: every feature's rows
//! carry the collection's numbers, `--check` finds the layout clean and a tampered one not,
//! the API payloads keep the upload route's limits, bad input fails in one line — and the
//! bulk files load into a real PostgreSQL the way Neuronpedia's importer loads them, with
//! every value intact.

mod postgres;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use saectl::samples::{SamplesDir, SamplesFolder};
use serde_json::Value;

use super::util::{
    assert_ok, assert_one_line_error, collect, fixture, live_args, path_str, stderr, strs,
    write_sae, Saectl, D_SAE,
};
use postgres::Postgres;

const MODEL_ID: &str = "tiny-gemma2";
const SOURCE: &str = "2-saectl-test";

fn export(args: &[&str]) -> Output {
    Saectl::new(["export", "neuronpedia"]).args(args).run()
}

/// A live collection of the tiny model with a random SAE (`dir/sae`) into `dir/samples`, and
/// a labels file naming two features.
fn collected() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (checkpoint, samples) = (dir.path().join("sae"), dir.path().join("samples"));
    write_sae(&checkpoint, 64);
    assert_ok(&collect(&checkpoint, &samples, &strs(&live_args(200))));
    let labels = dir.path().join("labels.json");
    std::fs::write(
        &labels,
        r#"{"format": "saectl-labels", "version": 1, "labels": {"0": "the first feature", "5": "a <b>fifth</b> one \u0000"}}"#,
    )
    .unwrap();
    (dir, samples, checkpoint, labels)
}

fn read_lines(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every line of every `batch-N.jsonl.gz` of `folder`, in batch order.
fn rows(source: &Path, folder: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(source.join(folder))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.trim_start_matches("batch-")
            .trim_end_matches(".jsonl.gz")
            .parse::<u32>()
            .unwrap()
    });
    files.iter().flat_map(|f| read_lines(f)).collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn bulk_export(samples: &Path, checkpoint: &Path, labels: &Path, out: &Path) -> PathBuf {
    let output = export(&[
        path_str(samples),
        "--model-id",
        MODEL_ID,
        "--source-set",
        "saectl-test",
        "--checkpoint",
        path_str(checkpoint),
        "--labels",
        path_str(labels),
        "-o",
        path_str(out),
    ]);
    assert_ok(&output);
    assert!(stderr(&output).contains("wrote"), "{}", stderr(&output));
    out.join(MODEL_ID).join(SOURCE)
}

#[test]
fn the_bulk_layout_carries_the_collections_numbers_and_checks_clean() {
    let (dir, samples, checkpoint, labels) = collected();
    let source = bulk_export(&samples, &checkpoint, &labels, &dir.path().join("np"));
    let folder = SamplesFolder::load(&samples).unwrap();
    let summary = folder.summary.as_ref().expect("collection_summary.json");
    let effects = SamplesDir::new(&samples)
        .read_logit_effects()
        .unwrap()
        .unwrap();
    let manifest = json(&source.join("manifest.json"));
    assert_eq!(manifest["features"], D_SAE);
    assert_eq!(manifest["layer"], 2, "the hook's layer");
    assert_eq!(manifest["logit_convention"], "uncentred");
    assert_eq!(manifest["explanations"], 2);
    let model = json_line(&source.join("model.jsonl"));
    assert_eq!(
        (model["layers"].as_u64(), model["dimension"].as_u64()),
        (Some(4), Some(64))
    );

    let neurons = rows(&source, "features");
    assert_eq!(neurons.len(), D_SAE, "every feature, dead ones too");
    let activations = rows(&source, "activations");
    assert_eq!(manifest["activations"], activations.len());
    for (f, neuron) in neurons.iter().enumerate() {
        assert_eq!(neuron["index"], f.to_string());
        assert_eq!(neuron["layer"], SOURCE);
        let density = summary.firing_counts[f] as f64 / summary.tokens_seen as f64;
        assert_eq!(
            neuron["frac_nonzero"].as_f64(),
            Some(density),
            "feature {f}"
        );
        let logits = effects.feature(f as u32).unwrap();
        let pos: Vec<f32> = logits.top.iter().map(|e| e.value).collect();
        assert_eq!(
            floats(&neuron["pos_values"]),
            pos,
            "uncentred, as in the folder"
        );
        assert_eq!(neuron["topkCosSimIndices"][0], f, "itself first");
        assert_eq!(neuron["topkCosSimIndices"].as_array().unwrap().len(), 11);
        let Some(file) = folder.features.get(&(f as u32)) else {
            // Every feature that fired above the threshold (0) has a samples file.
            assert_eq!(summary.firing_counts[f], 0, "feature {f}");
            continue;
        };
        assert_eq!(
            neuron["maxActApprox"].as_f64(),
            Some(file.statistics.max_activation)
        );
        let index = f.to_string();
        let top: Vec<&Value> = activations
            .iter()
            .filter(|a| a["index"] == index.as_str() && a["binMin"] == -1.0)
            .collect();
        assert_eq!(top.len(), file.top_samples.len().min(20), "feature {f}");
        for (row, sample) in top.iter().zip(&file.top_samples) {
            let at = row["qualifyingTokenIndex"].as_u64().unwrap() as usize;
            assert_eq!(at, sample.context_position as usize);
            assert_eq!(floats(&row["values"])[at], sample.activation_value);
            assert_eq!(
                row["tokens"].as_array().unwrap().len(),
                sample.context_tokens.len()
            );
            assert_eq!(row["dataIndex"], sample.sequence_idx.to_string());
        }
    }
    let explanations = rows(&source, "explanations");
    assert_eq!(explanations.len(), 2);
    assert_eq!(explanations[1]["index"], "5");
    let dead = json(&source.join("skipped_indexes.json"));
    assert_eq!(
        dead["dead"].as_array().unwrap().len() as u64,
        summary.dead_features
    );

    let checked = export(&["--check", path_str(&dir.path().join("np"))]);
    assert_ok(&checked);
    assert!(
        stderr(&checked).contains("no problems"),
        "{}",
        stderr(&checked)
    );

    // A changed file: its checksum no longer matches, one line names it.
    let batch = source.join("explanations/batch-0.jsonl.gz");
    let mut bytes = std::fs::read(&batch).unwrap();
    bytes.extend_from_slice(b"\0");
    std::fs::write(&batch, bytes).unwrap();
    let tampered = export(&["--check", path_str(&source)]);
    assert_eq!(tampered.status.code(), Some(1));
    let out = String::from_utf8_lossy(&tampered.stdout);
    assert!(
        out.contains("explanations/batch-0.jsonl.gz: differs from the manifest"),
        "{out}"
    );
    assert_one_line_error(
        &Output {
            stdout: Vec::new(),
            ..tampered
        },
        "problems in",
    );
}

fn json_line(path: &Path) -> Value {
    serde_json::from_str(std::fs::read_to_string(path).unwrap().trim()).unwrap()
}

/// A list of the export's f32 values.
fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn the_api_payloads_keep_the_upload_routes_limits() {
    let (dir, samples, checkpoint, labels) = collected();
    let out = dir.path().join("api");
    assert_ok(&export(&[
        path_str(&samples),
        "--model-id",
        MODEL_ID,
        "--source-set",
        "saectl-test",
        "--checkpoint",
        path_str(&checkpoint),
        "--labels",
        path_str(&labels),
        "--mode",
        "api",
        "--top-examples",
        "3",
        "-o",
        path_str(&out),
    ]));
    let source = out.join(MODEL_ID).join(SOURCE);
    let model = json(&source.join("api/model-new.json"));
    assert_eq!(
        (model["id"].as_str(), model["layers"].as_u64()),
        (Some(MODEL_ID), Some(4))
    );
    let batch = json(&source.join("api/upload-batch-0.json"));
    assert_eq!(batch["source"], SOURCE);
    let features = batch["features"].as_array().unwrap();
    let skipped = json(&source.join("skipped_indexes.json"));
    let skipped = skipped["skipped_indexes"].as_array().unwrap().len();
    assert_eq!(features.len() + skipped, D_SAE);
    for feature in features {
        let activations = feature["activations"].as_array().unwrap();
        assert!(!activations.is_empty());
        let top = activations
            .iter()
            .filter(|a| a["quantileMin"] == -1.0)
            .count();
        assert!(top <= 3, "{feature}");
        for a in activations {
            assert_eq!(
                a["tokens"].as_array().unwrap().len(),
                a["values"].as_array().unwrap().len()
            );
            // A top example carries no fraction: the key is left out (the route takes no null).
            let top = a["quantileMin"] == -1.0;
            assert_eq!(a.get("quantileFraction").is_none(), top, "{a}");
        }
    }
    let labelled = features.iter().find(|f| f["index"] == 5).unwrap();
    assert!(labelled["explanations"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("a <b>fifth"));
    assert_ok(&export(&["--check", path_str(&out)]));
}

#[test]
fn bad_input_fails_in_one_line() {
    let (dir, samples, _, _) = collected();
    let s = path_str(&samples);
    let base = |model: &'static str| vec![s, "--model-id", model, "--source-set", "set"];
    assert_one_line_error(&export(&base("Tiny")), "--model-id \"Tiny\"");
    let mut api = base("my_model");
    api.extend(["--mode", "api"]);
    assert_one_line_error(&export(&api), "--model-id");
    let mut bad_set = base("m");
    bad_set[4] = "my--set";
    assert_one_line_error(&export(&bad_set), "--source-set");
    let missing = dir.path().join("missing");
    let mut gone = base("m");
    gone[0] = path_str(&missing);
    assert_one_line_error(&export(&gone), "does not exist");
    let labels = dir.path().join("far.json");
    std::fs::write(&labels, r#"{"labels": {"99": "beyond"}}"#).unwrap();
    let mut far = base("m");
    far.extend(["--labels", path_str(&labels)]);
    assert_one_line_error(&export(&far), "name feature 99");
    let mut high = base("m");
    high.extend(["--layer", "7"]);
    assert_one_line_error(&export(&high), "outside the model's 4 layers");
    // Something that is not an export where the files would go is left alone.
    let out = dir.path().join("taken");
    let taken = out.join("m").join("2-set");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    let mut into = base("m");
    into.extend(["-o", path_str(&out)]);
    assert_one_line_error(&export(&into), "not an export of saectl");
    assert!(taken.join("notes.txt").exists());
    assert_one_line_error(
        &export(&["--check", path_str(dir.path())]),
        "holds no Neuronpedia export",
    );
    assert_eq!(
        export(&[s]).status.code(),
        Some(2),
        "clap: --model-id is required"
    );
}

/// Loads every bulk file as Neuronpedia's importer does (`tests/fixtures/neuronpedia/`): the
/// Neuron, Activation and Explanation tables of its schema, `jsonb_to_recordset` over chunks
/// of 65,000 lines, `ON CONFLICT DO NOTHING`. Every row arrives with every value; importing
/// twice adds nothing.
#[test]
fn the_bulk_files_load_into_postgresql_as_neuronpedia_imports_them() {
    let (dir, samples, checkpoint, labels) = collected();
    let source = bulk_export(&samples, &checkpoint, &labels, &dir.path().join("np"));
    let db = Postgres::start();
    db.run_file(Path::new(&fixture("neuronpedia/schema.sql")));
    db.run_file(Path::new(&fixture("neuronpedia/import.sql")));
    let tables = [
        ("features", "Neuron"),
        ("activations", "Activation"),
        ("explanations", "Explanation"),
    ];
    for _ in 0..2 {
        for (folder, table) in tables {
            import_folder(&db, &source.join(folder), table);
        }
    }
    for (folder, table) in tables {
        let exported = rows(&source, folder);
        let count: usize = db
            .psql(&format!("SELECT count(*) FROM \"{table}\";"))
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            count,
            exported.len(),
            "{table}: imported twice, stored once"
        );
        let stored: Vec<Value> = db
            .psql(&format!("SELECT row_to_json(t) FROM \"{table}\" t;"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let key = |row: &Value| match table {
            "Neuron" => row["index"].as_str().unwrap().to_string(),
            _ => row["id"].as_str().unwrap().to_string(),
        };
        let by_key: std::collections::HashMap<String, &Value> =
            stored.iter().map(|row| (key(row), row)).collect();
        for row in &exported {
            let found = by_key
                .get(&key(row))
                .unwrap_or_else(|| panic!("{table}: {row} is missing"));
            for (column, value) in row.as_object().unwrap() {
                assert_same(
                    value,
                    &found[column],
                    &format!("{table} {} {column}", key(row)),
                );
            }
        }
    }
    // The importer's NUL rule: "\u0000" in a label reads back as a space.
    let label = db.psql("SELECT description FROM \"Explanation\" WHERE index = '5';");
    assert_eq!(label.trim_end_matches('\n'), "a <b>fifth</b> one  ");
}

/// Imports each file of `folder` into `table`: its text with `\u0000` replaced by a space, in
/// chunks of 65,000 lines, each one call of the importer's statement.
fn import_folder(db: &Postgres, folder: &Path, table: &str) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(entry.unwrap().path()).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let text = text.replace("\\u0000", " ");
        let lines: Vec<&str> = text.trim().lines().collect();
        for chunk in lines.chunks(65_000) {
            let payload = format!("[{}]", chunk.join(","));
            assert!(!payload.contains("$np$"));
            db.psql(&format!(
                "SELECT np_import('{table}', $np${payload}$np$::jsonb);"
            ));
        }
    }
}

/// The stored value is the exported one (numbers as doubles: PostgreSQL reads the decimal
/// text the export wrote and prints it back).
fn assert_same(exported: &Value, stored: &Value, what: &str) {
    match (exported, stored) {
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.as_f64(), b.as_f64(), "{what}: {exported} vs {stored}")
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{what}");
            for (x, y) in a.iter().zip(b) {
                assert_same(x, y, what);
            }
        }
        (Value::String(a), Value::String(b)) => {
            assert_eq!(a.replace('\u{0}', " "), *b, "{what}")
        }
        _ => assert_eq!(exported, stored, "{what}"),
    }
}
