//! The layers of docs/architecture.md hold: every `crate::` path in `src/` points to a module
//! on a lower layer (or to its own module), never up and never sideways. Comments are skipped:
//! a doc link may point anywhere.

use std::path::Path;

/// The layers, bottom first (docs/architecture.md).
const LAYERS: &[&[&str]] = &[
    &["util"],
    &["hub"],
    &["model", "data", "sae", "samples"],
    &["stream"],
    &["cache"],
    &["collect", "analyze"],
    &["train", "report", "probe"],
    &["demo"],
    &["features"],
    &["dashboard", "export"],
    &["cli"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules named by `crate::` paths in the code (not the comments) of `text`.
fn imported_modules(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs");
        if matches!(module, "lib" | "main") {
            continue;
        }
        let from = layer(module).unwrap_or_else(|| panic!("{module} is on no layer"));
        for to in imported_modules(&std::fs::read_to_string(file).unwrap()) {
            if to == module {
                continue;
            }
            let to_layer = layer(&to).unwrap_or_else(|| panic!("{to} is on no layer"));
            if to_layer >= from {
                wrong.push(format!("{} imports crate::{to}", relative.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scan_sees_imports_and_skips_comments() {
    let text =
        "use crate::samples::X;\n//! see crate::cli\nlet a = crate::util::f(); // crate::demo";
    assert_eq!(imported_modules(text), ["samples", "util"]);
}
