//! The real `saectl` binary, driven as a user would: help, version, shared flags and usage
//! errors.

use super::util::{saectl, stderr};

#[test]
fn help_lists_every_subcommand() {
    let output = saectl(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["train", "collect", "analyze", "report"] {
        assert!(
            text.contains(command),
            "--help does not mention {command}:\n{text}"
        );
    }
}

#[test]
fn version_is_the_crate_version() {
    let output = saectl(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("saectl {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn collecting_commands_take_the_originals_keys() {
    for command in ["train", "collect"] {
        let output = saectl(&[command, "--help"]);
        let text = String::from_utf8_lossy(&output.stdout);
        for flag in [
            "--max-samples-per-feature",
            "--sample-context-size",
            "--sample-activation-threshold",
            "--top-features-to-save",
            "--samples-per-feature-to-save",
            "--include-special-tokens",
            "--no-dedup",
            "--interval-count",
            "--samples-per-interval",
            "--ultra-rare-density",
            "--dominant-share",
        ] {
            assert!(text.contains(flag), "{command} --help lacks {flag}");
        }
    }
    let train = String::from_utf8_lossy(&saectl(&["train", "--help"]).stdout).into_owned();
    assert!(
        train.contains("--save-activation-samples") && train.contains("--sample-collection-freq")
    );
}

#[test]
fn bad_collector_settings_are_one_clear_line() {
    for (flag, value, message) in [
        (
            "--max-samples-per-feature",
            "0",
            "error: --max-samples-per-feature must be at least 1",
        ),
        (
            "--dominant-share",
            "0",
            "error: --dominant-share must be above 0",
        ),
        (
            "--interval-count",
            "50",
            "error: --interval-count must be at most 20",
        ),
    ] {
        let output = saectl(&[
            "collect",
            "--checkpoint",
            "sae",
            "--activations",
            "cache",
            "--out",
            "out",
            flag,
            value,
        ]);
        assert_eq!(output.status.code(), Some(1));
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(message), "{err}");
    }
    let output = saectl(&["collect", "--sample-activation-threshold", "abc"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap's usage errors exit with 2"
    );
}

#[test]
fn train_without_a_run_folder_is_a_usage_error() {
    let output = saectl(&["train"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap's usage errors exit with 2"
    );
    assert!(stderr(&output).contains("--out"), "{}", stderr(&output));
}

/// Issue 7 §1: in a build without CUDA, `--device cuda` is one clear error line (before any
/// input is read), and `--device auto` (the default) runs on the CPU with a note on stderr.
#[test]
fn device_cuda_without_cuda_support_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return; // a CUDA build opens the GPU or fails on the machine's own terms
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-cache");
    let out = dir.path().join("run");
    let (missing, out) = (missing.to_str().unwrap(), out.to_str().unwrap());
    for command in ["train", "cache"] {
        let mut args = vec![command, "--device", "cuda", "--out", out];
        if command == "train" {
            args.extend(["--activations", missing]);
        } else {
            let corpus = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/corpus/tiny.txt"
            );
            let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-gemma2");
            args.extend(["--model", model, "--hook", "blocks.0.hook_resid_post"]);
            args.extend(["--dataset", corpus, "--num-tokens", "64"]);
        }
        let output = saectl(&args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{command}: {}",
            stderr(&output)
        );
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{command}: {err}");
        assert!(
            err.starts_with("error: this saectl was built without CUDA support"),
            "{command}: {err}"
        );
    }
    let output = saectl(&["train", "--activations", missing, "--out", out]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let mut lines = err.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("note: this build has no GPU support"),
        "{err}"
    );
    assert!(lines.next().unwrap().starts_with("error: "), "{err}");
}

#[test]
fn train_help_lists_jumprelu_and_its_keys() {
    let text = String::from_utf8_lossy(&saectl(&["train", "--help"]).stdout).into_owned();
    for needle in [
        "jumprelu",
        "--l0-coefficient",
        "--l0-warm-up-steps",
        "--jumprelu-bandwidth",
        "--jumprelu-init-threshold",
    ] {
        assert!(text.contains(needle), "train --help lacks {needle}");
    }
}
