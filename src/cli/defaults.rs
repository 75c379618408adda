//! The defaults the help shows are the library's: an optional flag's `[default: …]` is
//! written in its doc comment (clap cannot show a default it does not apply), so these tests
//! read every such note back and compare it with the `Default` of the type the flag is laid
//! over — `CollectionSettings`, `SourceOptions`, `TrainConfig`.

use clap::CommandFactory;
use serde_json::Value;

use super::Cli;
use crate::data::SourceOptions;
use crate::samples::CollectionSettings;
use crate::train::TrainConfig;

/// The `[default: X]` note of `--flag` in `saectl command --help`, if it has one.
fn help_default(command: &str, flag: &str) -> Option<String> {
    let cli = Cli::command();
    let sub = cli.find_subcommand(command).expect("a subcommand");
    let arg = sub.get_arguments().find(|a| a.get_long() == Some(flag))?;
    let help = arg.get_help()?.to_string();
    let (_, rest) = help.split_once("[default: ")?;
    Some(rest.split_once(']')?.0.to_string())
}

/// `shown` (as the help writes it: `1e-5`, `1/32`, `text`) equals the JSON `value` (f32 keys
/// to f32 precision; a `None` default is computed, and described in words: `lr / 100`).
fn same_value(shown: &str, value: &Value) -> bool {
    let number = |text: &str| -> Option<f64> {
        match text.split_once('/') {
            Some((a, b)) => Some(a.trim().parse::<f64>().ok()? / b.trim().parse::<f64>().ok()?),
            None => text.parse().ok(),
        }
    };
    match value {
        Value::String(text) => text == shown,
        Value::Bool(b) => shown == b.to_string(),
        Value::Number(n) => match (number(shown), n.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-7 * b.abs(),
            _ => false,
        },
        Value::Null => number(shown).is_none(),
        _ => false,
    }
}

/// Checks every key of `defaults` whose flag (`--key-name`) has a `[default: …]` note in
/// `command`'s help; returns the keys checked.
fn check(command: &str, defaults: Value) -> Vec<String> {
    let mut checked = Vec::new();
    for (key, value) in defaults.as_object().expect("a struct") {
        let flag = key.replace('_', "-");
        let Some(shown) = help_default(command, &flag) else {
            continue;
        };
        assert!(
            same_value(&shown, value),
            "saectl {command} --{flag} says [default: {shown}] but the default is {value}"
        );
        checked.push(key.clone());
    }
    checked
}

#[test]
fn the_collector_and_text_flags_show_the_library_defaults() {
    let settings = serde_json::to_value(CollectionSettings::default()).unwrap();
    let text = serde_json::to_value(SourceOptions::default()).unwrap();
    for command in ["collect", "train"] {
        // Every collector key has a flag of its name but the two switches
        // (--include-special-tokens, --no-dedup turn exclude/dedup off).
        assert_eq!(check(command, settings.clone()).len(), 9, "{command}");
        let text_keys = check(command, text.clone());
        assert_eq!(
            text_keys,
            ["revision", "split", "text_field", "txt_documents"]
        );
    }
    assert_eq!(check("cache", text).len(), 4);
}

#[test]
fn the_training_flags_show_the_training_defaults() {
    let checked = check(
        "train",
        serde_json::to_value(TrainConfig::default()).unwrap(),
    );
    for key in [
        "dict_size",
        "top_k",
        "aux_penalty",
        "lr",
        "num_tokens",
        "input_unit_norm",
        "save_activation_samples",
        "sample_collection_freq",
    ] {
        assert!(checked.iter().any(|k| k == key), "{key} not checked");
    }
}

#[test]
fn the_report_flags_default_to_the_report_options() {
    let parsed = <Cli as clap::Parser>::try_parse_from(["saectl", "report", "dir"]).unwrap();
    let super::Command::Report(args) = parsed.command else {
        unreachable!()
    };
    let config = args.resolve().unwrap();
    assert_eq!(config.options, crate::report::ReportOptions::default());
}
