//! The real `saectl` binary, driven as a user would: help, version, shared flags and usage
//! errors.

use std::process::{Command, Output};

fn saectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saectl"))
        .args(args)
        .output()
        .expect("saectl runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

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
    let output = saectl(&[
        "collect",
        "--checkpoint",
        "sae",
        "--activations",
        "cache",
        "--out",
        "out",
        "--max-samples-per-feature",
        "0",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: --max-samples-per-feature must be at least 1"),
        "{err}"
    );
    for (flag, value, message) in [
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
fn train_without_a_cache_is_a_usage_error() {
    let output = saectl(&["train"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap's usage errors exit with 2"
    );
    assert!(
        stderr(&output).contains("--activations"),
        "{}",
        stderr(&output)
    );
}
