//! `saectl export neuronpedia --check DIR`: reads an export back and lists every problem, one
//! line each — for the bulk layout: every line of every file against the tables' columns and
//! types ([`super::schema`]), the same keys on every line of a file (the importer takes the
//! column list from the first), `tokens` and `values` of equal length, `maxValue`,
//! `minValue` and their token consistent with `values`, unique ids, every activation and
//! explanation with its feature, the limits on lines and files, and the files against the
//! manifest's checksums; for the API payloads: the upload route's limits.
//!
//! It reads any folder in Neuronpedia's layout, saectl's or not (the manifest is optional).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::limits::{FEATURES_PER_FILE, MAX_FILES_PER_FOLDER, MAX_LINES_PER_FILE};
use super::manifest::{sha256_hex, Manifest};
use super::schema::{Table, ACTIVATION, EXPLANATION, MODEL, NEURON, SOURCE, SOURCE_SET};

mod api_payloads;
mod rows;

use rows::{check_activation, check_neuron};

/// Problems shown per kind and file before they are summed up.
const SHOWN_PER_KIND: usize = 5;

/// What `--check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The source folders checked.
    pub sources: Vec<PathBuf>,
    pub features: usize,
    pub activations: usize,
    pub explanations: usize,
    pub api_batches: usize,
    /// One line each: `file:line: what is wrong`.
    pub problems: Vec<String>,
}

/// Checks every export under `dir` (a source folder, or a root holding `{model}/{source}/`).
pub fn check(dir: &Path) -> Result<CheckReport> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let sources = source_folders(dir)?;
    if sources.is_empty() {
        bail!(
            "{} holds no Neuronpedia export (a folder with source.jsonl or api/, or {{model}}/{{source}}/ folders with them)",
            dir.display()
        );
    }
    let mut report = CheckReport::default();
    for source in sources {
        let mut problems = Problems::default();
        if source.join("api").is_dir() {
            api_payloads::check(&source, &mut problems, &mut report)?;
        }
        if source.join("source.jsonl").is_file() || source.join("features").is_dir() {
            check_bulk(&source, &mut problems, &mut report)?;
        }
        check_manifest(&source, &mut problems)?;
        report.problems.extend(problems.finish());
        report.sources.push(source);
    }
    Ok(report)
}

fn is_source(dir: &Path) -> bool {
    ["source.jsonl", "features", "api"]
        .iter()
        .any(|name| dir.join(name).exists())
}

fn source_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    if is_source(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut found = Vec::new();
    for model in sorted_entries(dir)? {
        if !model.is_dir() {
            continue;
        }
        for source in sorted_entries(&model)? {
            if source.is_dir() && is_source(&source) {
                found.push(source);
            }
        }
    }
    Ok(found)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.retain(|p| {
        p.file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
    });
    entries.sort();
    Ok(entries)
}

/// Problems, a few shown per kind and file and the rest counted.
#[derive(Default)]
pub(super) struct Problems {
    lines: Vec<String>,
    counts: HashMap<(String, String), usize>,
}

impl Problems {
    /// `message` at `place` (`file` or `file:line`); `kind` groups repeats.
    pub(super) fn add(&mut self, file: &str, line: Option<usize>, kind: &str, message: String) {
        let count = self
            .counts
            .entry((file.to_string(), kind.to_string()))
            .or_default();
        *count += 1;
        if *count <= SHOWN_PER_KIND {
            let place = match line {
                Some(line) => format!("{file}:{line}"),
                None => file.to_string(),
            };
            self.lines.push(format!("{place}: {message}"));
        }
    }

    fn finish(mut self) -> Vec<String> {
        let mut more: Vec<_> = self
            .counts
            .into_iter()
            .filter(|(_, n)| *n > SHOWN_PER_KIND)
            .collect();
        more.sort();
        for ((file, kind), n) in more {
            self.lines.push(format!(
                "{file}: {} more problems like these ({kind})",
                n - SHOWN_PER_KIND
            ));
        }
        self.lines
    }
}

/// The lines of a (gzipped) JSON-lines file, parsed; problems for lines that are not objects.
fn read_lines(path: &Path, name: &str, problems: &mut Problems) -> Result<Vec<(usize, Value)>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    let text = if name.ends_with(".gz") {
        let mut text = String::new();
        match flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_string(&mut text) {
            Ok(_) => text,
            Err(err) => {
                problems.add(
                    name,
                    None,
                    "gzip",
                    format!("is not gzipped UTF-8 text: {err}"),
                );
                return Ok(Vec::new());
            }
        }
    } else {
        match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                problems.add(name, None, "utf8", "is not UTF-8 text".into());
                return Ok(Vec::new());
            }
        }
    };
    let mut lines = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<Value>(line) {
            Ok(value) if value.is_object() => lines.push((i + 1, value)),
            Ok(_) => problems.add(name, Some(i + 1), "object", "is not a JSON object".into()),
            Err(err) => problems.add(name, Some(i + 1), "json", format!("is not JSON: {err}")),
        }
    }
    Ok(lines)
}

/// Every line against `table`, and the same keys on every line.
fn check_rows(table: &Table, name: &str, lines: &[(usize, Value)], problems: &mut Problems) {
    let first: Option<Vec<&String>> = lines
        .first()
        .map(|(_, v)| v.as_object().expect("objects only").keys().collect());
    for (number, value) in lines {
        let object = value.as_object().expect("objects only");
        for (key, item) in object {
            match table.column(key) {
                None => problems.add(name, Some(*number), "column", format!(
                    "{key} is not a column of {} (the importer drops it, or Prisma refuses the row)",
                    table.name
                )),
                Some(column) => {
                    if let Some(problem) = table.value_problem(column, item) {
                        problems.add(name, Some(*number), "type", problem);
                    }
                }
            }
        }
        for column in table.columns.iter().filter(|c| c.required) {
            if !object.contains_key(column.name) {
                problems.add(
                    name,
                    Some(*number),
                    "required",
                    format!("{} is missing", column.name),
                );
            }
        }
        if let Some(first) = &first {
            let keys: Vec<&String> = object.keys().collect();
            if &keys != first {
                problems.add(name, Some(*number), "keys", "has other keys than the file's first line (the importer takes the columns from the first line only)".into());
            }
        }
    }
}

/// The files of `folder`: `(relative name, path)`, sorted; problems for what the importer
/// would skip or not see.
fn batch_files(
    source: &Path,
    folder: &str,
    problems: &mut Problems,
) -> Result<Vec<(String, PathBuf)>> {
    let dir = source.join(folder);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for path in sorted_entries(&dir)? {
        let name = format!(
            "{folder}/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        if path.is_dir() {
            problems.add(
                &name,
                None,
                "subfolder",
                "is a folder: the importer reads no subfolder".into(),
            );
        } else if !name.ends_with(".jsonl.gz") {
            problems.add(
                &name,
                None,
                "suffix",
                "does not end in .jsonl.gz: the importer skips it".into(),
            );
        } else {
            files.push((name, path));
        }
    }
    if files.len() > MAX_FILES_PER_FOLDER {
        problems.add(
            folder,
            None,
            "files",
            format!(
                "holds {} files; the importer lists at most {MAX_FILES_PER_FOLDER}",
                files.len()
            ),
        );
    }
    Ok(files)
}

type Key = (String, String, String);

fn key_of(value: &Value) -> Key {
    let text = |k: &str| value[k].as_str().unwrap_or_default().to_string();
    (text("modelId"), text("layer"), text("index"))
}

fn check_bulk(source: &Path, problems: &mut Problems, report: &mut CheckReport) -> Result<()> {
    let (model_id, source_id) = folder_names(source);
    let metadata = check_metadata(source, &model_id, &source_id, problems)?;
    let mut neurons: HashSet<Key> = HashSet::new();
    for (name, path) in batch_files(source, "features", problems)? {
        let lines = read_lines(&path, &name, problems)?;
        if lines.len() > FEATURES_PER_FILE.max(MAX_LINES_PER_FILE) {
            problems.add(
                &name,
                None,
                "lines",
                format!("has {} lines; at most {MAX_LINES_PER_FILE}", lines.len()),
            );
        }
        check_rows(&NEURON, &name, &lines, problems);
        for (number, row) in &lines {
            check_neuron(
                row,
                &name,
                *number,
                (&model_id, &source_id),
                metadata.as_deref(),
                problems,
            );
            if !neurons.insert(key_of(row)) {
                problems.add(
                    &name,
                    Some(*number),
                    "duplicate",
                    format!("feature {} is listed twice", row["index"]),
                );
            }
        }
        report.features += lines.len();
    }
    let mut ids: HashSet<String> = HashSet::new();
    for (folder, table) in [("activations", &ACTIVATION), ("explanations", &EXPLANATION)] {
        for (name, path) in batch_files(source, folder, problems)? {
            let lines = read_lines(&path, &name, problems)?;
            if lines.len() > MAX_LINES_PER_FILE {
                problems.add(
                    &name,
                    None,
                    "lines",
                    format!("has {} lines; at most {MAX_LINES_PER_FILE}", lines.len()),
                );
            }
            check_rows(table, &name, &lines, problems);
            for (number, row) in &lines {
                let id = row["id"].as_str().unwrap_or_default().to_string();
                if !ids.insert(format!("{folder}/{id}")) {
                    problems.add(
                        &name,
                        Some(*number),
                        "duplicate",
                        format!("id {id} is used twice"),
                    );
                }
                if !neurons.contains(&key_of(row)) {
                    problems.add(
                        &name,
                        Some(*number),
                        "orphan",
                        format!(
                            "feature {} of {} has no row in features/",
                            row["index"], row["layer"]
                        ),
                    );
                }
                if folder == "activations" {
                    check_activation(row, &name, *number, problems);
                }
            }
            match folder {
                "activations" => report.activations += lines.len(),
                _ => report.explanations += lines.len(),
            }
        }
    }
    Ok(())
}

/// The model and source ids the folder's place names (`…/{model}/{source}`).
fn folder_names(source: &Path) -> (String, String) {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    (name(source.parent()), name(Some(source)))
}

/// `model.jsonl`, `sourceset.jsonl`, `source.jsonl`: one row each, consistent with the folder.
/// Returns the source set's name.
fn check_metadata(
    source: &Path,
    model_id: &str,
    source_id: &str,
    problems: &mut Problems,
) -> Result<Option<String>> {
    let mut set_name = None;
    for (name, table) in [
        ("model.jsonl", &MODEL),
        ("sourceset.jsonl", &SOURCE_SET),
        ("source.jsonl", &SOURCE),
    ] {
        let path = source.join(name);
        if !path.is_file() {
            problems.add(
                name,
                None,
                "missing",
                "is missing: the import needs it".into(),
            );
            continue;
        }
        let lines = read_lines(&path, name, problems)?;
        if lines.len() != 1 {
            problems.add(
                name,
                None,
                "count",
                format!("has {} rows; one is expected", lines.len()),
            );
        }
        check_rows(table, name, &lines, problems);
        for (number, row) in &lines {
            let field = |k: &str| row[k].as_str().unwrap_or_default();
            let (model, id) = match name {
                "model.jsonl" => (field("id"), None),
                "source.jsonl" => (field("modelId"), Some(field("id"))),
                _ => (field("modelId"), None),
            };
            if model != model_id {
                problems.add(
                    name,
                    Some(*number),
                    "model",
                    format!("names model {model:?}, but the folder is under {model_id:?}"),
                );
            }
            if id.is_some_and(|id| id != source_id) {
                problems.add(
                    name,
                    Some(*number),
                    "source",
                    format!(
                        "is source {:?}, but the folder is {source_id:?}",
                        field("id")
                    ),
                );
            }
            match name {
                "sourceset.jsonl" => set_name = Some(field("name").to_string()),
                "source.jsonl" if !source_id.ends_with(&format!("-{}", field("setName"))) => {
                    problems.add(
                        name,
                        Some(*number),
                        "set",
                        format!("source {source_id:?} is not {{layer}}-{}", field("setName")),
                    )
                }
                _ => {}
            }
        }
    }
    Ok(set_name)
}

/// The files against the manifest, when there is one.
fn check_manifest(source: &Path, problems: &mut Problems) -> Result<()> {
    let manifest = match Manifest::read(source) {
        Ok(Some(manifest)) => manifest,
        Ok(None) => return Ok(()),
        Err(err) => {
            problems.add(super::MANIFEST_FILE, None, "manifest", format!("{err:#}"));
            return Ok(());
        }
    };
    for file in &manifest.files {
        let path = source.join(&file.path);
        match std::fs::read(&path) {
            Ok(bytes) if sha256_hex(&bytes) == file.sha256 => {}
            Ok(_) => problems.add(
                &file.path,
                None,
                "checksum",
                "differs from the manifest's SHA-256 (changed since the export)".into(),
            ),
            Err(_) => problems.add(
                &file.path,
                None,
                "missing",
                "is listed in the manifest but missing".into(),
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
