//! The bad-input matrix (docs/reliability.md): every flag that takes a number, a path or a
//! name, for every command, given zero, a negative, a huge or a non-UTF-8 value where that is
//! wrong; a resumed run given flags that disagree with it; output folders that cannot be
//! written (read-only, a file, inside an input). Every case: a non-zero exit, exactly one
//! `error` line on stderr, no panic, and no output left behind.
//!
//! Each command starts from a base command line that works; a case changes one flag (or adds
//! it). The runs are cheap: bad input fails before anything heavy is loaded.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::small_fs::SmallFs;
use super::util::{
    assert_ok, cache, collect, fixture, path_str, saectl, stderr, write_sae, Saectl, HOOK,
};

/// What the cases share: a cache, an SAE of its width, a samples folder and two shards.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let inputs = Self { dir };
        assert_ok(&cache(&inputs.path("cache"), 96, &[]));
        write_sae(&inputs.path("sae"), 64);
        let cache_arg = path_str(&inputs.path("cache")).to_string();
        for (name, shard) in [("samples", None), ("s0", Some("0/2")), ("s1", Some("1/2"))] {
            let mut source = vec!["--activations", &cache_arg];
            if let Some(shard) = shard {
                source.extend(["--shard", shard]);
            }
            assert_ok(&collect(&inputs.path("sae"), &inputs.path(name), &source));
        }
        inputs
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        path_str(&self.path(name)).to_string()
    }

    /// The base command line of `command`, writing (where it writes) to `out`.
    fn base(&self, command: &str, out: &Path) -> Vec<OsString> {
        let out = path_str(out).to_string();
        let (model, tokenizer, corpus) = (
            fixture("tiny-gemma2"),
            fixture("tokenizer/tokenizer.json"),
            fixture("corpus/tiny.jsonl"),
        );
        let live = [
            "--model",
            &model,
            "--tokenizer",
            &tokenizer,
            "--device",
            "cpu",
        ];
        let text = ["--dataset", &corpus, "--seq-len", "16"];
        let words = fixture("corpus/tiny.txt");
        let file = ["--file", words.as_str()];
        let args: Vec<String> = match command {
            "cache" => [
                &["cache", "--hook", HOOK, "--num-tokens", "64"][..],
                &live,
                &text,
            ]
            .concat()
            .into_iter()
            .map(String::from)
            .chain(["--out".into(), out])
            .collect(),
            "collect" => vec![
                "collect".into(),
                "--checkpoint".into(),
                self.arg("sae"),
                "--activations".into(),
                self.arg("cache"),
                "--device".into(),
                "cpu".into(),
                "--out".into(),
                out,
            ],
            "collect-live" => [&["collect", "--num-tokens", "64"][..], &live, &text]
                .concat()
                .into_iter()
                .map(String::from)
                .chain(["--checkpoint".into(), self.arg("sae"), "--out".into(), out])
                .collect(),
            "train" => [
                "train",
                "--activations",
                &self.arg("cache"),
                "--sae-type",
                "topk",
                "--dict-size",
                "16",
                "--top-k",
                "2",
                "--batch-size",
                "16",
                "--num-tokens",
                "32",
                "--device",
                "cpu",
                "--out",
                &out,
            ]
            .map(String::from)
            .to_vec(),
            "analyze" => vec!["analyze".into(), self.arg("samples")],
            "analyze-histogram" => {
                vec![
                    "analyze".into(),
                    self.arg("samples"),
                    "--histogram".into(),
                    "1".into(),
                ]
            }
            "analyze-clusters" => vec![
                "analyze".into(),
                self.arg("samples"),
                "--clusters".into(),
                "--checkpoint".into(),
                self.arg("sae"),
            ],
            "analyze-similar" => vec![
                "analyze".into(),
                self.arg("samples"),
                "--similar".into(),
                "1".into(),
                "--checkpoint".into(),
                self.arg("sae"),
            ],
            "report" => vec!["report".into(), self.arg("samples"), "--out".into(), out],
            "dashboard" => vec!["dashboard".into(), self.arg("samples"), "--out".into(), out],
            "merge" => vec![
                "merge".into(),
                self.arg("s0"),
                self.arg("s1"),
                "--out".into(),
                out,
            ],
            "inspect" => [
                &["inspect", "--checkpoint", &self.arg("sae")][..],
                &live,
                &file,
            ]
            .concat()
            .into_iter()
            .map(String::from)
            .collect(),
            "steer" => [
                &[
                    "steer",
                    "--checkpoint",
                    &self.arg("sae"),
                    "--feature",
                    "1:4",
                ][..],
                &live,
                &["--max-new-tokens", "2"],
                &file,
            ]
            .concat()
            .into_iter()
            .map(String::from)
            .collect(),
            other => panic!("no base for {other}"),
        };
        args.into_iter().map(OsString::from).collect()
    }
}

/// `args` with `flag`'s value replaced by `value`, or both appended.
fn with_flag(mut args: Vec<OsString>, flag: &str, value: &OsStr) -> Vec<OsString> {
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_owned(),
        None => args.extend([OsString::from(flag), value.to_owned()]),
    }
    args
}

/// A non-zero exit with exactly one `error` line containing `needle`, and no panic.
fn refused(output: &Output, case: &str, needle: &str) -> Result<(), String> {
    let stderr = stderr(output);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    if output.status.success() {
        return Err(format!("{case}: succeeded\n{stderr}"));
    }
    if stderr.contains("panicked") || errors.len() != 1 {
        return Err(format!("{case}: not one error line\n{stderr}"));
    }
    if !errors[0].contains(needle) {
        return Err(format!("{case}: expected {needle:?} in {}", errors[0]));
    }
    Ok(())
}

fn assert_refused(output: &Output, case: &str, needle: &str) {
    if let Err(failure) = refused(output, case, needle) {
        panic!("{failure}");
    }
}

/// Panics listing every failure.
fn assert_none(failures: &[String]) {
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const NON_UTF8: &[u8] = b"bad-\xff\xfe";

#[test]
fn every_bad_flag_value_is_one_line_and_leaves_nothing() {
    let inputs = Inputs::new();
    let non_utf8 = OsStr::from_bytes(NON_UTF8);
    let missing = inputs.arg("missing");
    let huge = "99999999999999999999999";
    // (command, flag, value, what the error line says)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("cache", "--num-tokens", "0", "num-tokens"),
        ("cache", "--num-tokens", "-1", "unexpected argument '-1'"),
        ("cache", "--num-tokens", huge, "number too large"),
        (
            "cache",
            "--seq-len",
            "0",
            "seq_len and batch size must be at least 1",
        ),
        ("cache", "--seq-len", huge, "number too large"),
        (
            "cache",
            "--model-batch-size",
            "0",
            "batch size must be at least 1",
        ),
        (
            "cache",
            "--sequences-per-shard",
            "0",
            "sequences per shard must be at least 1",
        ),
        ("cache", "--hook", "blocks.99.hook_resid_post", "blocks.99"),
        ("cache", "--hook", "nonsense", "nonsense"),
        ("cache", "--text-field", "no_such_field", "no_such_field"),
        ("cache", "--dataset", &missing, "missing"),
        ("cache", "--model", &missing, "missing"),
        ("cache", "--tokenizer", &missing, "missing"),
        ("cache", "--cache-dtype", "f64", "f64"),
        ("cache", "--device", "tpu", "tpu"),
        (
            "collect",
            "--batch-sequences",
            "0",
            "--batch-sequences must be at least 1",
        ),
        (
            "collect",
            "--save-every-tokens",
            "0",
            "--save-every-tokens must be at least 1",
        ),
        ("collect", "--max-samples-per-feature", "0", "at least 1"),
        (
            "collect",
            "--max-samples-per-feature",
            huge,
            "number too large",
        ),
        (
            "collect",
            "--sample-context-size",
            "-1",
            "unexpected argument '-1'",
        ),
        ("collect", "--sample-activation-threshold", "nan", "finite"),
        ("collect", "--sample-activation-threshold", "inf", "finite"),
        ("collect", "--interval-count", "50", "at most 20"),
        ("collect", "--dominant-share", "0", "above 0"),
        ("collect", "--dominant-share", "2", "dominant-share"),
        ("collect", "--ultra-rare-density", "2", "ultra-rare-density"),
        ("collect", "--shard", "2/2", "2/2"),
        ("collect", "--shard", "0/0", "0/0"),
        ("collect", "--shard", "x", "x"),
        ("collect", "--checkpoint", &missing, "missing"),
        ("collect", "--activations", &missing, "missing"),
        (
            "collect",
            "--hook",
            "blocks.0.hook_resid_post",
            "blocks.0.hook_resid_post",
        ),
        ("collect", "--config", &missing, "missing"),
        ("collect", "--tokenizer", &missing, "missing"),
        ("collect-live", "--num-tokens", "0", "num-tokens"),
        (
            "collect-live",
            "--model-batch-size",
            "0",
            "batch size must be at least 1",
        ),
        ("train", "--dict-size", "0", "d_sae (0) must be positive"),
        ("train", "--batch-size", "0", "at least 1"),
        ("train", "--num-tokens", "0", "num_tokens"),
        ("train", "--top-k", "0", "top"),
        ("train", "--top-k", "99", "top"),
        ("train", "--lr", "0", "lr"),
        ("train", "--lr", "nan", "lr"),
        ("train", "--beta1", "1", "beta1"),
        ("train", "--aux-penalty", "nan", "aux_penalty"),
        ("train", "--l1-coeff", "-1", "unexpected argument '-1'"),
        ("train", "--l1-coeff", "inf", "l1_coeff"),
        ("train", "--max-grad-norm", "0", "max_grad_norm"),
        ("train", "--checkpoint-freq", "0", "checkpoint"),
        ("train", "--seed", "-1", "unexpected argument '-1'"),
        ("train", "--sae-type", "nonsense", "nonsense"),
        ("train", "--activations", &missing, "missing"),
        ("train", "--config", &missing, "missing"),
        ("analyze", "--feature", "999", "999"),
        ("analyze-histogram", "--bins", "0", "bins"),
        ("analyze", "--top", "-1", "unexpected argument '-1'"),
        ("analyze-clusters", "--min-similarity", "nan", "similarity"),
        ("analyze", "--histogram", "999", "999"),
        ("analyze-similar", "--checkpoint", &missing, "missing"),
        (
            "report",
            "--top-k-features",
            "-1",
            "unexpected argument '-1'",
        ),
        ("report", "--labels", &missing, "missing"),
        (
            "dashboard",
            "--top-examples",
            "-1",
            "unexpected argument '-1'",
        ),
        ("dashboard", "--checkpoint", &missing, "missing"),
        ("dashboard", "--tokenizer", &missing, "missing"),
        ("merge", "--tokenizer", &missing, "missing"),
        ("inspect", "--checkpoint", &missing, "missing"),
        ("inspect", "--samples", &missing, "missing"),
        ("inspect", "--labels", &missing, "missing"),
        ("inspect", "--file", &missing, "missing"),
        ("inspect", "--hook", "nonsense", "nonsense"),
        ("inspect", "--window", "0", "window"),
        ("steer", "--feature", "x", "x"),
        ("steer", "--feature", "999:1", "999"),
        ("steer", "--strength", "nan", "strength"),
        ("steer", "--temperature", "-1", "temperature"),
        ("steer", "--file", &missing, "missing"),
    ];
    let (mut checked, mut failures) = (0, Vec::new());
    for (i, &(command, flag, value, needle)) in cases.iter().enumerate() {
        // The dashboard writes one .html file; the others a folder or a file of any name.
        let out = inputs.path(&format!("out{i}.html"));
        let args = with_flag(inputs.base(command, &out), flag, OsStr::new(value));
        let case = format!("{command} {flag} {value}");
        failures.extend(refused(&Saectl::new(&args).run(), &case, needle).err());
        if out.exists() {
            failures.push(format!("{case}: left {}", out.display()));
        }
        checked += 1;
    }
    // Non-UTF-8 bytes in every path and name flag: a name is refused by the parser, a path
    // is taken as given and is not found.
    for (command, flag) in [
        ("cache", "--dataset"),
        ("cache", "--hook"),
        ("cache", "--text-field"),
        ("collect", "--checkpoint"),
        ("collect", "--activations"),
        ("collect", "--hook"),
        ("train", "--activations"),
        ("train", "--sae-type"),
        ("report", "--labels"),
        ("inspect", "--checkpoint"),
        ("steer", "--feature"),
    ] {
        let out = inputs.path(&format!("out-{command}{flag}"));
        let args = with_flag(inputs.base(command, &out), flag, non_utf8);
        let case = format!("{command} {flag} <non-UTF-8>");
        failures.extend(refused(&Saectl::new(&args).run(), &case, "").err());
        if out.exists() {
            failures.push(format!("{case}: left {}", out.display()));
        }
        checked += 1;
    }
    assert_none(&failures);
    assert!(checked > 80, "{checked} cases");
}

#[test]
fn a_resumed_run_given_other_flags_is_refused() {
    let inputs = Inputs::new();
    // A training run, then --resume with a flag that would change it.
    let run = inputs.path("run");
    assert_ok(&Saectl::new(inputs.base("train", &run)).run());
    for (flag, value) in [
        ("--dict-size", "32"),
        ("--lr", "0.1"),
        ("--batch-size", "8"),
    ] {
        let output = saectl(&["train", "--resume", path_str(&run), flag, value]);
        assert_refused(&output, &format!("train --resume {flag}"), flag);
    }
    // A collection resumed with other settings or from another source.
    let samples = inputs.arg("samples");
    let other = [
        ("--max-samples-per-feature", "3"),
        ("--sample-context-size", "2"),
        ("--activations", &inputs.arg("missing-cache")),
    ];
    for (flag, value) in other {
        let args = with_flag(
            inputs.base("collect", Path::new(&samples)),
            flag,
            OsStr::new(value),
        );
        assert_refused(&Saectl::new(&args).run(), &format!("collect {flag}"), "");
    }
    // A cache extended with another sequence length or hook.
    for (flag, value) in [("--seq-len", "8"), ("--hook", "blocks.1.hook_resid_post")] {
        let output = super::util::cache(&inputs.path("cache"), 128, &[(flag, value)]);
        assert_refused(&output, &format!("cache {flag}"), "");
    }
}

#[test]
fn unwritable_outputs_are_one_line() {
    let inputs = Inputs::new();
    // A file where a folder goes (and a folder where a file goes).
    let file = inputs.path("a-file");
    std::fs::write(&file, "mine").unwrap();
    for command in ["cache", "collect", "train", "merge"] {
        let output = Saectl::new(inputs.base(command, &file)).run();
        assert_refused(&output, &format!("{command} --out FILE"), "");
        assert_eq!(std::fs::read(&file).unwrap(), b"mine", "{command}");
    }
    for command in ["report", "dashboard"] {
        let output = Saectl::new(inputs.base(command, inputs.dir.path())).run();
        assert_refused(&output, &format!("{command} --out DIR"), "");
    }
    // An output inside an input folder, or an input inside the output.
    let cases = [
        (
            "collect",
            inputs.path("cache/samples"),
            "is inside --activations",
        ),
        ("collect", inputs.path("cache"), "is --activations itself"),
        ("train", inputs.path("cache/run"), "is inside --activations"),
        (
            "merge",
            inputs.path("s0/merged"),
            "is inside the input folder",
        ),
    ];
    for (command, out, needle) in cases {
        let output = Saectl::new(inputs.base(command, &out)).run();
        assert_refused(
            &output,
            &format!("{command} --out {}", out.display()),
            needle,
        );
    }
    let corpus_dir = inputs.path("corpus");
    std::fs::create_dir(&corpus_dir).unwrap();
    std::fs::copy(fixture("corpus/tiny.jsonl"), corpus_dir.join("tiny.jsonl")).unwrap();
    let args = with_flag(
        inputs.base("cache", &corpus_dir.join("cache")),
        "--dataset",
        corpus_dir.as_os_str(),
    );
    assert_refused(
        &Saectl::new(&args).run(),
        "cache into its text",
        "is inside --dataset",
    );
    assert!(!corpus_dir.join("cache").exists());
    // A read-only file system (EROFS: refused to root too).
    let Some(fs) = SmallFs::mount("read-only output") else {
        return;
    };
    fs.read_only();
    for command in ["cache", "collect", "train", "merge", "report", "dashboard"] {
        let out = fs.path().join("out.html");
        let output = Saectl::new(inputs.base(command, &out)).run();
        assert_refused(
            &output,
            &format!("{command} on a read-only fs"),
            "Read-only file system",
        );
    }
}
