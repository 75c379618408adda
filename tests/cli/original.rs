//! The Python original's users, served: its config files load in `train` and `collect` as it
//! wrote them, and its torch checkpoints are `--checkpoint`s (fixtures written by torch with
//! `scripts/make_original_checkpoints.py`, tests/fixtures/original/).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::util::{assert_ok, assert_one_line_error, cache, fixture, path_str, stderr, Saectl};

/// The one checkpoint folder of a fixture (`checkpoints/{name}_{step}/`).
fn original_checkpoint(name: &str) -> PathBuf {
    let dir = Path::new(&fixture("original"))
        .join(name)
        .join("checkpoints");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    entries.pop().unwrap()
}

fn config_of(name: &str) -> PathBuf {
    original_checkpoint(name).join("config.json")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `train --config FILE` on a small cache, the config's sizes kept and its run length cut.
fn train_with(config: &Path, cache: &Path, out: &Path) -> std::process::Output {
    Saectl::new(["train", "--config", path_str(config)])
        .args(["--activations", path_str(cache), "--out", path_str(out)])
        .args([
            "--batch-size",
            "64",
            "--num-tokens",
            "640",
            "--device",
            "cpu",
        ])
        .run()
}

#[test]
fn the_originals_config_files_load_as_it_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 300, &[]));
    // batch-topk, num_tokens 500000000.0, dtypes str()-ed, store_tokens_for_samples.
    let run = dir.path().join("batchtopk");
    let output = train_with(&config_of("batchtopk"), &cache_dir, &run);
    assert_ok(&output);
    let err = stderr(&output);
    assert!(err.contains("model_name, site, layer, act_size"), "{err}");
    assert!(err.contains("store_tokens_for_samples"), "{err}");
    let saved = json(&run.join("train_config.json"));
    assert_eq!(saved["sae_type"], "batchtopk");
    assert_eq!(
        (saved["dict_size"].as_u64(), saved["top_k"].as_u64()),
        (Some(32), Some(4))
    );
    assert_eq!(
        saved["jumprelu_bandwidth"], 0.001,
        "the original's bandwidth"
    );
    // global-matryoshka-topk with "group_sizes": "[8, 8, 16]" and top_k_matryoshka.
    let run = dir.path().join("matryoshka");
    assert_ok(&train_with(&config_of("matryoshka"), &cache_dir, &run));
    let saved = json(&run.join("train_config.json"));
    assert_eq!(saved["sae_type"], "matryoshka");
    assert_eq!(saved["group_sizes"], serde_json::json!([8, 8, 16]));
    // collect reads the collection keys of any of them, the transcoder's later writer too.
    let transcoder =
        Path::new(&fixture("original")).join("transcoder/results/gemma-2-2b/layer2/300");
    let samples = dir.path().join("samples");
    let output = Saectl::new([
        "collect",
        "--checkpoint",
        path_str(&original_checkpoint("batchtopk")),
    ])
    .args(["--config", path_str(&transcoder.join("config.json"))])
    .args([
        "--activations",
        path_str(&cache_dir),
        "--out",
        path_str(&samples),
    ])
    .args(["--sample-activation-threshold", "0", "--device", "cpu"])
    .run();
    assert_ok(&output);
    assert!(
        stderr(&output).contains("completed_steps, completed_at"),
        "{}",
        stderr(&output)
    );
    // A typo is still refused, in one line.
    let typo = dir.path().join("typo.json");
    let mut config = json(&config_of("batchtopk"));
    config["top_K"] = 8.into();
    std::fs::write(&typo, config.to_string()).unwrap();
    assert_one_line_error(
        &train_with(&typo, &cache_dir, &dir.path().join("t")),
        "top_K",
    );
}

#[test]
fn the_originals_checkpoints_collect_and_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 300, &[]));
    let checkpoint = original_checkpoint("batchtopk");
    let samples = dir.path().join("samples");
    let output = Saectl::new(["collect", "--checkpoint", path_str(&checkpoint)])
        .args([
            "--activations",
            path_str(&cache_dir),
            "--out",
            path_str(&samples),
        ])
        .args(["--sample-activation-threshold", "0", "--device", "cpu"])
        .run();
    assert_ok(&output);
    let summary = json(&samples.join("collection_summary.json"));
    assert_eq!(summary["d_sae"], 32);
    assert_eq!(summary["source"]["sae_kind"], "batchtopk");
    let feature = summary["features_saved"][0].as_u64().unwrap().to_string();
    // The original's all_time_max is written (saectl's max is over everything already).
    let first = summary["features_saved"][0].as_u64().unwrap();
    let file = json(&samples.join(format!("feature_{first:05}_samples.json")));
    assert_eq!(
        file["statistics"]["all_time_max"],
        file["statistics"]["max_activation"]
    );
    let output = Saectl::new(["analyze", path_str(&samples), "--similar", &feature])
        .args(["--checkpoint", path_str(&checkpoint)])
        .run();
    assert_ok(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("decoder"));
    // Its hook (ln2.hook_normalized) is not the cache's: refused in one line, as for any SAE.
    let pt = Path::new(&fixture("original"))
        .join("transcoder/results/gemma-2-2b/layer2/300/checkpoints/final.pt");
    let output = Saectl::new(["collect", "--checkpoint", path_str(&pt)])
        .args([
            "--activations",
            path_str(&cache_dir),
            "--out",
            path_str(&dir.path().join("t")),
        ])
        .args(["--device", "cpu"])
        .run();
    assert_one_line_error(&output, "hook");
}

/// `(sequence-independent)` contexts of a feature file's samples, to spot repeats.
fn contexts(file: &Value) -> Vec<(String, u64)> {
    file["top_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["context_tokens"].to_string(),
                s["position"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every feature file of a samples folder has no context twice, and the summary's counts.
fn assert_no_repeats(samples: &Path) -> Value {
    let mut files = 0;
    for entry in std::fs::read_dir(samples).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("feature_")
        {
            let mut seen = contexts(&json(&path));
            let all = seen.len();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), all, "{} repeats a context", path.display());
            files += 1;
        }
    }
    assert!(files > 10, "{files} feature files");
    json(&samples.join("collection_summary.json"))
}

#[test]
fn one_collection_while_training_never_visits_a_sequence_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 300, &[]));
    // 19 cached sequences, model_batch_size 512 (the default): one collection, at step 0.
    let run = dir.path().join("cache-run");
    let output = Saectl::new(["train", "--activations", path_str(&cache_dir)])
        .args(["--out", path_str(&run), "--dict-size", "64", "--top-k", "4"])
        .args([
            "--batch-size",
            "64",
            "--num-tokens",
            "640",
            "--device",
            "cpu",
        ])
        .args([
            "--save-activation-samples",
            "true",
            "--sample-activation-threshold",
            "0",
        ])
        .args(["--samples-per-feature-to-save", "20", "--no-dedup"])
        .run();
    assert_ok(&output);
    let summary = assert_no_repeats(&run.join("activation_samples"));
    assert_eq!(summary["sequences_seen"], 19);
    let counted = summary["tokens_seen"].as_u64().unwrap();
    assert_eq!(
        counted + summary["special_tokens_excluded"].as_u64().unwrap(),
        19 * 16
    );
    // Live: the whole fixture corpus once, however many windows model_batch_size asks for.
    let run = dir.path().join("live-run");
    let output = Saectl::new(["train", "--model", &fixture("tiny-gemma2")])
        .args(["--tokenizer", &fixture("tokenizer/tokenizer.json")])
        .args([
            "--hook",
            super::util::HOOK,
            "--dataset",
            &fixture("corpus/tiny.jsonl"),
        ])
        .args([
            "--seq-len",
            "16",
            "--model-batch-size",
            "200",
            "--num-batches-in-buffer",
            "1",
        ])
        .args(["--out", path_str(&run), "--dict-size", "64", "--top-k", "4"])
        .args([
            "--batch-size",
            "64",
            "--num-tokens",
            "640",
            "--device",
            "cpu",
        ])
        .args(["--eval-sequences", "0", "--save-activation-samples", "true"])
        .args([
            "--sample-activation-threshold",
            "0",
            "--samples-per-feature-to-save",
            "20",
        ])
        .args(["--no-dedup"])
        .run();
    assert_ok(&output);
    let summary = assert_no_repeats(&run.join("activation_samples"));
    let windows = json(&run.join("checkpoints/step_000000010/data_state.json"))["corpus_windows"]
        .as_u64()
        .unwrap();
    assert!(windows < 200, "the corpus is smaller than a model batch");
    assert_eq!(summary["sequences_seen"].as_u64(), Some(windows));
}

#[test]
fn a_threshold_above_every_activation_says_so_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 300, &[]));
    let hint = "no activation above the threshold 1000 (";
    let samples = dir.path().join("samples");
    let output = Saectl::new([
        "collect",
        "--checkpoint",
        path_str(&original_checkpoint("batchtopk")),
    ])
    .args([
        "--activations",
        path_str(&cache_dir),
        "--out",
        path_str(&samples),
    ])
    .args(["--sample-activation-threshold", "1000", "--device", "cpu"])
    .run();
    assert_ok(&output);
    let err = stderr(&output);
    assert!(
        err.contains(hint) && err.contains("of 32 features fired on"),
        "{err}"
    );
    assert!(err.contains("lower --sample-activation-threshold"), "{err}");
    for command in ["analyze", "report"] {
        let output = Saectl::new([command, path_str(&samples)]).run();
        assert_one_line_error(&output, hint);
    }
    let run = dir.path().join("run");
    let output = Saectl::new(["train", "--activations", path_str(&cache_dir)])
        .args(["--out", path_str(&run), "--dict-size", "64", "--top-k", "4"])
        .args([
            "--batch-size",
            "64",
            "--num-tokens",
            "640",
            "--device",
            "cpu",
        ])
        .args([
            "--save-activation-samples",
            "true",
            "--sample-activation-threshold",
            "1000",
        ])
        .run();
    assert_ok(&output);
    assert!(stderr(&output).contains(hint), "{}", stderr(&output));
}

#[test]
fn sample_collection_settings_that_would_do_nothing_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 300, &[]));
    let train = |out: &str, extra: &[&str]| {
        Saectl::new(["train", "--activations", path_str(&cache_dir)])
            .args([
                "--out",
                path_str(&dir.path().join(out)),
                "--dict-size",
                "64",
            ])
            .args(["--top-k", "4", "--batch-size", "64", "--num-tokens", "640"])
            .args(["--device", "cpu"])
            .args(extra)
            .run()
    };
    // 10 steps, a collection every 1000 (the default): step 0 only, and it says so.
    let output = train("a", &["--save-activation-samples", "true"]);
    assert_ok(&output);
    let err = stderr(&output);
    assert!(
        err.contains("sample_collection_freq 1000 is not below the run's 10 steps"),
        "{err}"
    );
    assert!(err.contains("step 0 only"), "{err}");
    // Collection flags with collection off are refused rather than ignored.
    let output = train(
        "b",
        &[
            "--sample-collection-freq",
            "5",
            "--max-samples-per-feature",
            "5",
        ],
    );
    assert_one_line_error(
        &output,
        "--sample-collection-freq, --max-samples-per-feature only apply with \
         --save-activation-samples true",
    );
    // The help shows both defaults.
    let help = String::from_utf8(Saectl::new(["train", "--help"]).ok().stdout).unwrap();
    assert!(
        help.contains("[default: false]") && help.contains("[default: 1000]"),
        "{help}"
    );
}

/// `saectl analyze|report ARGS` on the original's folder, its stdout.
fn on_original_folder(args: &[&str]) -> String {
    let dir = fixture("original-folder");
    let output = Saectl::new(args).arg(&dir).ok();
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn folders_the_original_wrote_read_right() {
    // The top token is the activating token (` cat`), not a sample's two-token text.
    let overview = on_original_folder(&["analyze", "--json"]);
    let json: Value = serde_json::from_str(&overview).unwrap();
    let row = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stats"]["feature"] == 7)
        .unwrap()
        .clone();
    assert_eq!(row["top_token"]["text"], " cat");
    assert_eq!(row["top_token"]["count"], 3);
    // Its std and min are shown, as over its stored samples.
    assert_eq!(row["stats"]["std_activation"], 0.31180478223116176);
    assert_eq!(row["stats"]["scope"], "stored_samples");
    let text = on_original_folder(&["analyze", "--feature", "7"]);
    assert!(
        text.contains("Std activation: 0.3118 (of its 3 stored samples)"),
        "{text}"
    );
    assert!(text.contains("Min activation: 1.7500"), "{text}");
    assert!(
        text.contains("␣cat ×3") && !text.contains("␣the␣cat ×"),
        "{text}"
    );
    // Not /dev/null: the plot is written atomically (a temporary renamed into place), which as
    // root replaces the device with a regular file.
    let plots = tempfile::tempdir().unwrap();
    let plot = plots.path().join("histogram.png");
    let histogram =
        on_original_folder(&["analyze", "--histogram", "7", "--plot-out", path_str(&plot)]);
    assert!(
        histogram.contains("mean of the 3 stored samples: 2.1667"),
        "{histogram}"
    );
    assert!(!histogram.contains("mean over all"), "{histogram}");
    let similar = on_original_folder(&["analyze", "--similar", "9"]);
    assert!(
        similar.contains("␣cat") && !similar.contains("␣the␣cat"),
        "{similar}"
    );
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("report.md");
    on_original_folder(&["report", "--out", path_str(&path)]);
    let report = std::fs::read_to_string(&path).unwrap();
    assert!(
        report.contains("␣cat ×3") && !report.contains("␣the␣cat ×"),
        "{report}"
    );
    assert!(report.contains("(of its 3 stored samples)"), "{report}");
}

/// The checkpoint folders of a run, and which of them hold a collector state.
fn checkpoints(run: &Path) -> Vec<(String, bool)> {
    let mut found: Vec<(String, bool)> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let state = p.join("collector_state.safetensors").exists();
            (p.file_name().unwrap().to_str().unwrap().to_string(), state)
        })
        .collect();
    found.sort();
    found
}

#[test]
fn only_the_latest_checkpoint_keeps_the_collector_state_and_keep_checkpoints_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 300, &[]));
    let train = |out: &Path, extra: &[&str]| {
        Saectl::new(["train", "--activations", path_str(&cache_dir)])
            .args(["--out", path_str(out), "--dict-size", "64", "--top-k", "4"])
            .args([
                "--batch-size",
                "64",
                "--num-tokens",
                "640",
                "--device",
                "cpu",
            ])
            .args([
                "--checkpoint-freq",
                "3",
                "--save-activation-samples",
                "true",
            ])
            .args(["--sample-collection-freq", "2"])
            .args(extra)
            .run()
    };
    let run = dir.path().join("all");
    assert_ok(&train(&run, &[]));
    let step = |n: u32, state: bool| (format!("step_{n:09}"), state);
    let expected = [
        step(3, false),
        step(6, false),
        step(9, false),
        step(10, true),
    ];
    assert_eq!(checkpoints(&run), expected);
    let run = dir.path().join("two");
    assert_ok(&train(&run, &["--keep-checkpoints", "2"]));
    assert_eq!(checkpoints(&run), [step(9, false), step(10, true)]);
    let saved = json(&run.join("train_config.json"));
    assert_eq!(saved["keep_checkpoints"], 2);
}
