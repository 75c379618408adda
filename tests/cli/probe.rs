//! `saectl inspect` and `saectl steer` driven as a user would, on the tiny Gemma-2 and the SAE
//! `scripts/make_steering_reference.py` wrote for it (32 latents at blocks.1.hook_resid_post):
//! what they print, their JSON against the library computed another way, long texts in
//! windows, the samples folder and labels beside the features, and bad input.

use std::path::Path;
use std::process::Output;

use candle_core::{DType, Device, Tensor};
use saectl::hub::HubSettings;
use saectl::model::{
    generate, load_model, GenerateConfig, HookEdit, LoadOptions, ModelSource, Sampling,
};
use saectl::probe::{FeatureEdit, SteerMode, Steering};
use saectl::sae::import::load_any;
use serde_json::Value;

use super::util::{assert_ok, assert_one_line_error, fixture, Saectl};

const TEXT: &str = "The river ran low in the late summer, and the stones showed white.";

/// `saectl <command> --checkpoint <tiny SAE> --model <tiny model> --tokenizer … <args>`.
fn saectl(command: &str, args: &[&str]) -> Output {
    command_for(command, args).run()
}

fn command_for(command: &str, args: &[&str]) -> Saectl {
    Saectl::new([command])
        .args(["--checkpoint", &fixture("tiny-gemma2-sae")])
        .args(["--model", &fixture("tiny-gemma2")])
        .args(["--tokenizer", &fixture("tokenizer/tokenizer.json")])
        .args(["--device", "cpu"])
        .args(args)
}

fn json(output: &Output) -> Value {
    assert_ok(output);
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

#[test]
fn inspect_lists_each_tokens_features_and_the_features_of_the_text() {
    let output = saectl("inspect", &[TEXT]);
    assert_ok(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("text 1 of 1 ("), "{text}");
    assert!(text.contains("SAE at blocks.1.hook_resid_post"), "{text}");
    assert!(
        text.contains("<bos>") && text.contains("(special token: not reported)"),
        "{text}"
    );
    assert!(text.contains("features that fire most"), "{text}");

    // Every latent listed per token: the sums over tokens must be the text's totals, and the
    // values those of a dense encode of the model's activations, computed here.
    let result = json(&saectl(
        "inspect",
        &[
            TEXT,
            "--json",
            "--top-per-token",
            "32",
            "--top-features",
            "32",
        ],
    ));
    let report = &result["texts"][0];
    let tokens = report["tokens"].as_array().unwrap();
    let ids: Vec<u32> = tokens
        .iter()
        .map(|t| t["token"].as_u64().unwrap() as u32)
        .collect();
    let dense = dense_activations(&ids);
    let mut sums = vec![0f64; 32];
    for (position, token) in tokens.iter().enumerate() {
        assert_eq!(token["position"], position);
        let features = token["features"].as_array().unwrap();
        if token["special"].as_bool().unwrap() {
            assert!(features.is_empty());
            continue;
        }
        let mut previous = f64::INFINITY;
        for a in features {
            let (f, value) = (
                a["feature"].as_u64().unwrap() as usize,
                a["activation"].as_f64().unwrap(),
            );
            assert!(value <= previous, "not strongest first at {position}");
            previous = value;
            assert!((value - f64::from(dense[position][f])).abs() < 1e-4);
            sums[f] += value;
        }
        let active = dense[position].iter().filter(|&&a| a > 0.0).count();
        assert_eq!(features.len(), active, "position {position}");
    }
    let with_bos = json(&saectl(
        "inspect",
        &[TEXT, "--json", "--include-special-tokens"],
    ));
    let bos = &with_bos["texts"][0]["tokens"][0];
    assert_eq!(
        (bos["special"].as_bool(), bos["text"].as_str()),
        (Some(true), Some("<bos>"))
    );
    assert!(!bos["features"].as_array().unwrap().is_empty());

    let top = report["top_features"].as_array().unwrap();
    assert!(!top.is_empty());
    let mut previous = f64::INFINITY;
    for f in top {
        let sum = f["sum"].as_f64().unwrap();
        assert!(sum <= previous);
        previous = sum;
        assert!((sum - sums[f["feature"].as_u64().unwrap() as usize]).abs() < 1e-3);
    }
}

/// The SAE's dense activations `[tokens][32]` of `ids`, through the library.
fn dense_activations(ids: &[u32]) -> Vec<Vec<f32>> {
    let options = LoadOptions {
        device: Device::Cpu,
        dtype: DType::F32,
        layers: Some(2),
    };
    let hub = HubSettings::from_vars(|_| None);
    let source = ModelSource::Local(fixture("tiny-gemma2").into());
    let model = load_model(&source, &options, &hub).unwrap().model;
    let sae = load_any(Path::new(&fixture("tiny-gemma2-sae")), &Device::Cpu).unwrap();
    let input = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let acts = model
        .forward_to_hook(&input, &"blocks.1.hook_resid_post".parse().unwrap())
        .unwrap();
    sae.encode(&acts).unwrap().to_vec2().unwrap()
}

#[test]
fn long_texts_run_in_windows_and_files_hold_one_text_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("texts.txt");
    std::fs::write(&file, format!("{TEXT}\n\n  \nA short one.\n")).unwrap();
    let whole = json(&saectl(
        "inspect",
        &["--file", file.to_str().unwrap(), "--json"],
    ));
    let texts = whole["texts"].as_array().unwrap();
    assert_eq!(texts.len(), 2, "empty lines are skipped");
    assert_eq!(texts[1]["text"], "A short one.");

    // Windows of 8 re-read 2 tokens: the first window's tokens are read as in one pass, every
    // token is reported once, and later ones see less context (so some values differ).
    let windowed = json(&saectl("inspect", &[TEXT, "--json", "--window", "8"]));
    let (a, b) = (
        &whole["texts"][0]["tokens"],
        &windowed["texts"][0]["tokens"],
    );
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 16, "the text should span several windows");
    let same = |x: &Value, y: &Value| {
        let pairs = |t: &Value| -> Vec<(u64, f64)> {
            let mut pairs: Vec<(u64, f64)> = t["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["feature"].as_u64().unwrap(),
                        a["activation"].as_f64().unwrap(),
                    )
                })
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs
        };
        let (p, q) = (pairs(x), pairs(y));
        x["token"] == y["token"]
            && p.len() == q.len()
            && p.iter()
                .zip(&q)
                .all(|(p, q)| p.0 == q.0 && (p.1 - q.1).abs() < 1e-4)
    };
    assert!(a[..8].iter().zip(&b[..8]).all(|(x, y)| same(x, y)));
    assert!(!a[8..].iter().zip(&b[8..]).all(|(x, y)| same(x, y)));

    // Standard input with `--file -`.
    let output = command_for("inspect", &["--file", "-", "--json"])
        .stdin(b"one\ntwo\nthree\n")
        .run();
    assert_eq!(json(&output)["texts"].as_array().unwrap().len(), 3);
}

#[test]
fn samples_and_labels_describe_the_features() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    let collect = Saectl::new(["collect"])
        .args(["--checkpoint", &fixture("tiny-gemma2-sae")])
        .args(["--model", &fixture("tiny-gemma2")])
        .args(["--tokenizer", &fixture("tokenizer/tokenizer.json")])
        .args([
            "--dataset",
            &fixture("corpus/tiny.txt"),
            "--num-tokens",
            "400",
            "--seq-len",
            "16",
        ])
        .args(["--device", "cpu", "--out"])
        .arg(&samples)
        .run();
    assert_ok(&collect);
    let labels = dir.path().join("labels.json");
    std::fs::write(
        &labels,
        r#"{"5": "token 77", "9": "clamped in the reference"}"#,
    )
    .unwrap();
    let (samples, labels) = (samples.to_str().unwrap(), labels.to_str().unwrap());
    let args = [
        TEXT,
        "--samples",
        samples,
        "--labels",
        labels,
        "--top-features",
        "32",
        "--top-per-token",
        "32",
    ];
    let result = json(&saectl("inspect", &[&args[..], &["--json"]].concat()));
    let features = result["features"].as_object().unwrap();
    let listed: Vec<&str> = result["texts"][0]["top_features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            features[&f["feature"].to_string()]["top_tokens"]
                .as_array()
                .map_or("", |_| "x")
        })
        .collect();
    assert!(
        listed.contains(&"x"),
        "no feature has tokens from the samples folder"
    );
    for (feature, label) in [("5", "token 77"), ("9", "clamped in the reference")] {
        if let Some(info) = features.get(feature) {
            assert_eq!(info["label"], label);
        }
    }
    let text = String::from_utf8_lossy(&saectl("inspect", &args).stdout).into_owned();
    assert!(text.contains("fires on (in the samples folder)"), "{text}");
    assert!(text.contains("(max "), "{text}");
}

#[test]
fn steer_shows_both_continuations_and_matches_the_library() {
    let args = [
        "--feature",
        "5:120",
        "--feature",
        "17:-20",
        "--max-new-tokens",
        "6",
    ];
    let output = saectl("steer", &[&args[..], &[TEXT]].concat());
    assert_ok(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("steering at blocks.1.hook_resid_post"),
        "{text}"
    );
    assert!(text.contains("feature 5 +120, feature 17 -20"), "{text}");
    assert!(
        text.contains("unsteered: ") && text.contains("steered:   "),
        "{text}"
    );

    let result = json(&saectl("steer", &[&args[..], &[TEXT, "--json"]].concat()));
    let prompt = &result["prompts"][0];
    let ids: Vec<u32> = prompt["prompt_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let tokens = |which: &str| -> Vec<u32> {
        prompt[which]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect()
    };
    let (plain, steered) = (tokens("unsteered"), tokens("steered"));
    assert!(plain.len() <= 6 && steered.len() <= 6);
    assert_ne!(plain, steered);

    // The same generation through the library, with the steering built by hand.
    let options = LoadOptions {
        device: Device::Cpu,
        dtype: DType::F32,
        layers: None,
    };
    let source = ModelSource::Local(fixture("tiny-gemma2").into());
    let model = load_model(&source, &options, &HubSettings::from_vars(|_| None))
        .unwrap()
        .model;
    let sae = load_any(Path::new(&fixture("tiny-gemma2-sae")), &Device::Cpu).unwrap();
    let edits = [
        FeatureEdit {
            feature: 5,
            value: 120.0,
        },
        FeatureEdit {
            feature: 17,
            value: -20.0,
        },
    ];
    let steering = Steering::new(&sae, SteerMode::Add, &edits, DType::F32, &Device::Cpu).unwrap();
    let apply = |xs: &Tensor| steering.apply(xs);
    let edit = HookEdit {
        hook: "blocks.1.hook_resid_post".parse().unwrap(),
        edit: &apply,
    };
    let config = GenerateConfig {
        max_new_tokens: 6,
        sampling: Sampling::Greedy,
        stop_tokens: vec![0, 1, 2, 3],
    };
    assert_eq!(
        generate(&model, &ids, &config, Some(&edit)).unwrap().tokens,
        steered
    );
    assert_eq!(generate(&model, &ids, &config, None).unwrap().tokens, plain);
}

#[test]
fn seeded_sampling_repeats_and_clamping_works_from_a_file() {
    let sample = |seed: &str| {
        let args = [
            "--feature",
            "9",
            "--strength",
            "50",
            "--temperature",
            "1",
            "--seed",
            seed,
            "--json",
            TEXT,
        ];
        json(&saectl("steer", &args))["prompts"][0]["steered"]["tokens"].clone()
    };
    assert_eq!(sample("3"), sample("3"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.txt");
    std::fs::write(&file, "first prompt\nsecond prompt\n").unwrap();
    let args = [
        "--clamp",
        "--feature",
        "9:120",
        "--max-new-tokens",
        "3",
        "--file",
        file.to_str().unwrap(),
        "--json",
    ];
    let result = json(&saectl("steer", &args));
    assert_eq!(result["mode"], "clamp");
    assert_eq!(result["prompts"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_input_is_one_line_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let bad_labels = dir.path().join("labels.json");
    std::fs::write(&bad_labels, r#"{"cat": "x"}"#).unwrap();
    let far_labels = dir.path().join("far.json");
    std::fs::write(&far_labels, r#"{"99": "x"}"#).unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let (bad_labels, far_labels, empty) = (
        bad_labels.to_str().unwrap(),
        far_labels.to_str().unwrap(),
        empty.to_str().unwrap(),
    );
    for (command, args, needle) in [
        (
            "inspect",
            vec!["--labels", bad_labels, TEXT],
            "not a feature index",
        ),
        (
            "inspect",
            vec!["--labels", far_labels, TEXT],
            "the SAE has 32 features",
        ),
        (
            "inspect",
            vec!["--labels", "/nonexistent/l.json", TEXT],
            "failed to read labels",
        ),
        (
            "inspect",
            vec!["--samples", "/nonexistent/s", TEXT],
            "does not exist",
        ),
        ("inspect", vec!["--file", empty], "holds no text"),
        ("inspect", vec!["--window", "2", TEXT], "at least 4 tokens"),
        (
            "inspect",
            vec!["--hook", "blocks.9.hook_resid_post", TEXT],
            "valid layers are 0..=3",
        ),
        ("steer", vec!["--feature", "5", TEXT], "has no strength"),
        (
            "steer",
            vec!["--feature", "40:1", TEXT],
            "the SAE has 32 features",
        ),
        (
            "steer",
            vec!["--clamp", "--feature", "3:1", "--feature", "3:2", TEXT],
            "clamped twice",
        ),
        (
            "steer",
            vec!["--feature", "3:1", "--temperature", "-1", TEXT],
            "--temperature",
        ),
        (
            "steer",
            vec!["--feature", "3:1", "--max-new-tokens", "0", TEXT],
            "--max-new-tokens",
        ),
    ] {
        let output = saectl(command, &args);
        assert_one_line_error(&output, needle);
    }
    // A checkpoint of another width than the model.
    let output = Saectl::new(["inspect"])
        .args(["--checkpoint", &fixture("sae/saelens_standard")])
        .args([
            "--model",
            &fixture("tiny-gemma2"),
            "--tokenizer",
            &fixture("tokenizer/tokenizer.json"),
        ])
        .args([
            "--device",
            "cpu",
            "--hook",
            "blocks.1.hook_resid_post",
            TEXT,
        ])
        .run();
    assert_one_line_error(&output, "d_in 8");
    // clap's own usage errors: no text, a malformed feature.
    assert_eq!(saectl("inspect", &[]).status.code(), Some(2));
    assert_eq!(
        saectl("steer", &["--feature", "x:1", TEXT]).status.code(),
        Some(2)
    );
}
