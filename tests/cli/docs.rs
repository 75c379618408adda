//! docs/cli.md is the `--help` of every command, so the reference cannot drift from the binary.
//! On a mismatch the test fails with the command to regenerate the file:
//! `UPDATE_DOCS=1 cargo test --test cli docs` (the variable that rewrites every golden file,
//! see util.rs).

use super::util::{Saectl, UPDATE};

/// Each command's words (`export neuronpedia` is a subcommand's).
const COMMANDS: [&str; 11] = [
    "demo",
    "train",
    "collect",
    "analyze",
    "report",
    "dashboard",
    "export neuronpedia",
    "cache",
    "merge",
    "inspect",
    "steer",
];

fn help(args: &[&str]) -> String {
    let output = Saectl::new(args).arg("--help").env_remove("COLUMNS").run();
    assert!(output.status.success(), "saectl {args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

fn expected() -> String {
    let mut doc = String::from(
        "# Command-line reference\n\n\
         Every command's `--help`, as the binary prints it (generated; a test keeps it in \
         sync: `UPDATE_DOCS=1 cargo test --test cli docs` rewrites it). The guides are the \
         other files of docs/: demo.md, train.md, collect.md, analysis.md, dashboard.md, export.md, \
         cache.md, probe.md.\n\n\
         ## saectl\n\n```text\n",
    );
    doc.push_str(&help(&[]));
    doc.push_str("```\n");
    for command in COMMANDS {
        doc.push_str(&format!("\n## saectl {command}\n\n```text\n"));
        let words: Vec<&str> = command.split(' ').collect();
        doc.push_str(&help(&words));
        doc.push_str("```\n");
    }
    doc
}

#[test]
fn docs_cli_md_is_the_help_of_every_command() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md");
    let expected = expected();
    if std::env::var_os(UPDATE).is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/cli.md is out of date with `saectl --help`; regenerate it with \
         `UPDATE_DOCS=1 cargo test --test cli docs`"
    );
}
