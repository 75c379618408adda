//! `saectl train` live on the tiny Gemma-2: a run goes end to end with the loss-recovered
//! evaluation, a cut and resumed run equals one run, a transcoder records both hook points
//! (and a cache refuses to train one), samples collected live equal those collected from a
//! cache of the same text, and bad input fails in one line.

use std::path::Path;
use std::process::Output;

use saectl::samples::format::FeatureFile;
use saectl::samples::SamplesFolder;
use serde_json::Value;

use super::util::{
    assert_ok, assert_one_line_error, cache, fixture, path_str, stderr, Saectl, HOOK,
};

fn train(args: &[String]) -> Output {
    Saectl::new(["train"]).args(args).run()
}

/// A live run of 30 steps of 40 tokens over the fixture corpus (it wraps around once),
/// evaluating every 5 steps on 4 held-out sequences; `overrides` replace a flag's value or add
/// the flag.
fn live_args(out: &Path, overrides: &[(&str, &str)]) -> Vec<String> {
    let mut flags: Vec<(String, String)> = [
        ("--model", fixture("tiny-gemma2")),
        ("--tokenizer", fixture("tokenizer/tokenizer.json")),
        ("--hook", HOOK.to_string()),
        ("--dataset", fixture("corpus/tiny.jsonl")),
        ("--seq-len", "16".into()),
        ("--model-batch-size", "3".into()),
        ("--num-batches-in-buffer", "2".into()),
        ("--batch-size", "40".into()),
        ("--num-tokens", "1200".into()),
        ("--dict-size", "32".into()),
        ("--top-k", "2".into()),
        ("--eval-sequences", "4".into()),
        ("--perf-log-freq", "5".into()),
        ("--log-freq", "5".into()),
        ("--checkpoint-freq", "10".into()),
        ("--device", "cpu".into()),
        ("--out", out.display().to_string()),
    ]
    .into_iter()
    .map(|(flag, value)| (flag.to_string(), value))
    .collect();
    for (flag, value) in overrides {
        match flags.iter_mut().find(|(f, _)| f == flag) {
            Some(entry) => entry.1 = value.to_string(),
            None => flags.push((flag.to_string(), value.to_string())),
        }
    }
    flags
        .into_iter()
        .flat_map(|(flag, value)| [flag, value])
        .collect()
}

/// `args` without `flag` and its value.
fn without(mut args: Vec<String>, flag: &str) -> Vec<String> {
    let at = args.iter().position(|a| a == flag).unwrap();
    args.drain(at..at + 2);
    args
}

/// The lines of a run's `metrics.jsonl` without their timing fields, each with its
/// `elapsed_s`; asserts that the clock moves forward and every line has a positive rate.
fn timed_metrics(run: &Path) -> Vec<(Value, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<(Value, f64)> = text
        .lines()
        .map(|l| {
            let mut line: Value = serde_json::from_str(l).unwrap();
            let map = line.as_object_mut().unwrap();
            let elapsed = map.remove("elapsed_s").unwrap().as_f64().unwrap();
            let rate = map.remove("tokens_per_s").unwrap().as_f64().unwrap();
            assert!(rate > 0.0, "{l}");
            (line, elapsed)
        })
        .collect();
    assert!(lines.windows(2).all(|w| w[1].1 > w[0].1), "{text}");
    lines
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn live_training_runs_end_to_end_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    // The model and the corpus as relative paths: cfg.json must record them absolute.
    let relative = [
        ("--model", "tiny-gemma2"),
        ("--dataset", "corpus/tiny.jsonl"),
    ];
    let output = Saectl::new(["train"])
        .args(live_args(&full, &relative))
        .current_dir(Path::new(&fixture("")))
        .run();
    assert_ok(&output);
    let stderr = stderr(&output);
    assert!(
        stderr.contains("trained 30 steps (1200 tokens)"),
        "{stderr}"
    );
    assert!(stderr.contains("loss recovered"), "{stderr}");
    let metrics = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    let lines: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for line in &lines {
        for key in ["ce_clean", "ce_sae", "ce_zero", "ce_mean", "ce_recovered"] {
            assert!(line[key].is_number(), "{key} missing in {line}");
        }
    }
    let run = json(&full.join("run.json"));
    assert_eq!(run["hook"], HOOK);
    assert!(run["text"]["dataset"]
        .as_str()
        .unwrap()
        .ends_with("tiny.jsonl"));
    let cfg = json(&full.join("checkpoints/step_000000030/cfg.json"));
    assert_eq!(cfg["hook_name"], HOOK);
    let canonical = |p: &str| std::fs::canonicalize(fixture(p)).unwrap();
    assert_eq!(cfg["model_name"], path_str(&canonical("tiny-gemma2")));
    assert_eq!(
        cfg["dataset_path"],
        path_str(&canonical("corpus/tiny.jsonl"))
    );
    // Cut after step 10, resumed from another working directory.
    let cut = dir.path().join("cut");
    std::fs::create_dir_all(cut.join("checkpoints")).unwrap();
    for file in ["run.json", "train_config.json"] {
        std::fs::copy(full.join(file), cut.join(file)).unwrap();
    }
    let step10 = "checkpoints/step_000000010";
    std::fs::create_dir_all(cut.join(step10)).unwrap();
    for entry in std::fs::read_dir(full.join(step10)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), cut.join(step10).join(entry.file_name())).unwrap();
    }
    std::fs::write(cut.join("latest_checkpoint"), step10).unwrap();
    let kept: String = metrics.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(cut.join("metrics.jsonl"), kept).unwrap();
    let output = Saectl::new(["train", "--resume", path_str(&cut), "--device", "cpu"])
        .current_dir(dir.path())
        .run();
    assert_ok(&output);
    let bytes = |root: &Path, name: &str| std::fs::read(root.join(name)).unwrap();
    let last = "checkpoints/step_000000030";
    for name in ["sae_weights.safetensors", "optimizer.safetensors"] {
        let name = format!("{last}/{name}");
        assert!(bytes(&full, &name) == bytes(&cut, &name), "{name} differs");
    }
    // The same lines, timing aside; the resumed part's clock continues the first part's.
    let (first, resumed) = (timed_metrics(&full), timed_metrics(&cut));
    let untimed = |lines: &[(Value, f64)]| -> Vec<Value> {
        lines.iter().map(|(line, _)| line.clone()).collect()
    };
    assert_eq!(untimed(&first), untimed(&resumed));
    assert_eq!(first[..2], resumed[..2]);
    let at_cut = json(&cut.join(step10).join("trainer_state.json"))["elapsed_s"]
        .as_f64()
        .unwrap();
    assert!(at_cut > 0.0 && resumed[2..].iter().all(|(_, t)| *t > at_cut));
    // The resumed run records the model and the corpus in the same form.
    let cfg = format!("{last}/cfg.json");
    assert_eq!(bytes(&full, &cfg), bytes(&cut, &cfg));
}

#[test]
fn a_transcoder_trains_live_and_a_cache_refuses_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("tc");
    let hooks = [
        ("--hook", "blocks.1.ln2.hook_normalized"),
        ("--hook-out", "blocks.1.hook_mlp_out"),
    ];
    assert_ok(&train(&live_args(&run, &hooks)));
    let cfg = json(&run.join("checkpoints/step_000000030/cfg.json"));
    assert_eq!(cfg["hook_name"], "blocks.1.ln2.hook_normalized");
    assert_eq!(cfg["hook_name_out"], "blocks.1.hook_mlp_out");
    assert_eq!(
        (cfg["hook_layer_out"].as_u64(), cfg["d_out"].as_u64()),
        (Some(1), Some(64))
    );
    assert_eq!(cfg["apply_b_dec_to_input"], false);
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 300, &[]));
    let output = train(&[
        "--activations".into(),
        cache_dir.display().to_string(),
        "--hook-out".into(),
        "blocks.2.hook_mlp_out".into(),
        "--out".into(),
        dir.path().join("refused").display().to_string(),
        "--device".into(),
        "cpu".into(),
    ]);
    assert_one_line_error(&output, "train it live");
    assert!(!dir.path().join("refused").exists());
}

/// Sample collection at step 0 only (the same initial SAE in both runs), from a cache of the
/// corpus and live over it with nothing held out: the same sequences, the same special tokens
/// skipped, the same samples.
#[test]
fn samples_collected_live_equal_samples_from_a_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    assert_ok(&cache(&cache_dir, 100_000, &[]));
    let collect = [
        ("--save-activation-samples", "true"),
        ("--sample-collection-freq", "1000"),
        ("--model-batch-size", "8"),
        ("--eval-sequences", "0"),
    ];
    let live = dir.path().join("live");
    assert_ok(&train(&live_args(&live, &collect)));
    let cached = dir.path().join("cached");
    let mut args = live_args(&cached, &collect);
    for flag in ["--model", "--tokenizer", "--hook", "--dataset", "--seq-len"] {
        args = without(args, flag);
    }
    args.extend(["--activations".into(), cache_dir.display().to_string()]);
    assert_ok(&train(&args));
    let (live, cached) = (
        SamplesFolder::load(&live.join("activation_samples")).unwrap(),
        SamplesFolder::load(&cached.join("activation_samples")).unwrap(),
    );
    let (a, b) = (live.summary.unwrap(), cached.summary.unwrap());
    assert!(a.special_tokens_excluded > 0);
    assert_eq!(
        (a.tokens_seen, a.sequences_seen, a.special_tokens_excluded),
        (b.tokens_seen, b.sequences_seen, b.special_tokens_excluded)
    );
    assert_eq!(
        live.features.keys().collect::<Vec<_>>(),
        cached.features.keys().collect::<Vec<_>>()
    );
    let key = |file: &FeatureFile| {
        let samples = file.top_samples.iter();
        samples
            .map(|s| (s.sequence_idx, s.position))
            .collect::<Vec<_>>()
    };
    for (f, file) in &live.features {
        assert_eq!(key(file), key(&cached.features[f]), "feature {f}");
    }
}

#[test]
fn bad_live_input_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let no_hook = without(live_args(&out, &[]), "--hook");
    assert_one_line_error(&train(&no_hook), "needs --hook and --dataset");
    let deep = live_args(&out, &[("--hook", "blocks.9.hook_resid_post")]);
    assert_one_line_error(&train(&deep), "layer");
    assert_one_line_error(
        &train(&live_args(&out, &[("--eval-sequences", "100")])),
        "nothing is left to train on",
    );
    let wide_k = live_args(&out, &[("--top-k", "64")]);
    assert_one_line_error(&train(&wide_k), "larger than d_sae");
    let resume_with_model = train(&[
        "--resume".into(),
        out.display().to_string(),
        "--model".into(),
        "x".into(),
    ]);
    assert_eq!(resume_with_model.status.code(), Some(2));
    assert!(!out.exists());
}
