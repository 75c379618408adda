//! `saectl analyze` and `saectl report` driven through the real binary on a tiny samples
//! folder made by the real collector and folder writer (a twenty-word vocabulary, eight
//! features, five sentences): every view in text and JSON, the SVG, the report against its
//! golden file, and the bad inputs that must end in one `error:` line and exit code 1.
//!
//! `UPDATE_DOCS=1 cargo test --test cli` rewrites the golden files (util.rs).

use std::path::{Path, PathBuf};

use saectl::collect::{write_samples_folder, Collector, FeatureActivations, TokenBatch};
use saectl::data::TokenDecoder;
use saectl::samples::{CollectionSource, CollectorConfig, SamplesDir, SaveConfig};
use serde_json::Value;
use tempfile::TempDir;

use super::util::{assert_golden, assert_one_line_error, path_str, saectl, stderr, stdout};

/// Token id → text. Id 0 is BOS; the rest mix words with text that Markdown or a terminal
/// would mangle if shown raw (newline, lone space, `*`, `|`, `<b>`, `_x_`).
const VOCAB: &[&str] = &[
    "<bos>", "The", " cat", " sat", " on", " the", " mat", ".", " dog", " ran", "\n", " ", "*",
    " |", " <b>", "_x_", " fluffy", " a", " big", " bird",
];

const SENTENCES: &[&[u32]] = &[
    &[0, 1, 16, 2, 3, 4, 5, 6, 7, 10],
    &[0, 17, 18, 8, 9, 4, 5, 6, 12, 13],
    &[0, 1, 2, 3, 4, 17, 18, 11, 14, 15],
    &[0, 17, 19, 3, 4, 5, 8, 7, 10, 1],
    &[0, 1, 8, 9, 10, 5, 2, 9, 7, 6],
];

const D_SAE: usize = 8;

struct WordDecoder;

impl TokenDecoder for WordDecoder {
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&id| VOCAB.get(id as usize).copied().unwrap_or("<unk>"))
            .collect()
    }
}

/// What each feature responds to: `(token, base activation)`. Feature 6 is dead; feature 7
/// fires everywhere below the collection threshold (density, but no samples).
fn base_activation(feature: usize, token: u32) -> f32 {
    let table: &[(u32, f32)] = match feature {
        0 => &[(2, 0.5)],                                   // cat
        1 => &[(2, 0.4), (8, 0.6), (19, 0.5)],              // animals
        2 => &[(3, 0.7), (9, 0.6)],                         // sat / ran
        3 => &[(7, 0.3), (10, 0.9), (12, 0.8)],             // punctuation, newline
        4 => &[(11, 0.5), (13, 0.6), (14, 0.7), (15, 0.4)], // odd tokens
        5 => &[(6, 0.5), (8, 0.3)],                         // mat, dog
        7 => return 0.05,
        _ => &[],
    };
    table
        .iter()
        .find(|&&(t, _)| t == token)
        .map_or(0.0, |&(_, v)| v)
}

/// Writes the fixture folder to `dir`.
fn write_fixture(dir: &Path) {
    let config = CollectorConfig {
        max_samples_per_feature: 10,
        sample_context_size: 6,
        ..CollectorConfig::default()
    };
    let mut collector = Collector::new(config, D_SAE, &[0]).unwrap();
    let seq_len = SENTENCES[0].len();
    let tokens: Vec<u32> = SENTENCES.iter().flat_map(|s| s.iter().copied()).collect();
    let mut values = vec![0f32; tokens.len() * D_SAE];
    for (t, &token) in tokens.iter().enumerate() {
        let (row, position) = (t / seq_len, t % seq_len);
        for feature in 0..D_SAE {
            let base = base_activation(feature, token);
            if base > 0.0 {
                // Distinct values: later rows and positions a little stronger.
                values[t * D_SAE + feature] = base + 0.01 * row as f32 + 0.001 * position as f32;
            }
        }
    }
    let batch = TokenBatch::new(&tokens, SENTENCES.len(), seq_len, 0).unwrap();
    let activations = FeatureActivations::Dense {
        values: &values,
        d_sae: D_SAE,
    };
    collector.ingest(&batch, &activations).unwrap();
    let save = SaveConfig {
        top_features_to_save: 100,
        samples_per_feature_to_save: 5,
        ..SaveConfig::default()
    };
    let source = CollectionSource {
        model: Some("tiny-words".into()),
        ..CollectionSource::default()
    };
    let folder = SamplesDir::new(dir);
    write_samples_folder(&folder, &collector, &WordDecoder, &save, source).unwrap();
}

/// A fresh fixture folder named `samples` (the report prints the folder's name).
fn fixture() -> (TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("samples");
    write_fixture(&dir);
    (temp, dir)
}

fn json_of(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&stdout(&saectl(&args))).expect("--json prints JSON")
}

#[test]
fn overview_lists_features_by_max_activation() {
    let (_temp, dir) = fixture();
    let text = stdout(&saectl(&["analyze", path_str(&dir)]));
    assert!(text.contains("Samples folder: samples"), "{text}");
    assert!(
        text.contains("Tokens seen: 45 (5 special tokens excluded)"),
        "{text}"
    );
    assert!(
        text.contains("Top 6 of 6 features by max activation"),
        "{text}"
    );
    let json = json_of(&["analyze", path_str(&dir), "--top", "2"]);
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Feature 3 peaks on the newline (0.9 + …), feature 2 on " sat" (0.7 + …).
    assert_eq!(rows[0]["stats"]["feature"], 3);
    assert_eq!(rows[0]["top_token"]["text"], "\n");
    assert_eq!(json["folder"]["dead_features"], 1);
}

#[test]
fn feature_report_marks_the_token_in_its_context() {
    let (_temp, dir) = fixture();
    let text = stdout(&saectl(&[
        "analyze",
        path_str(&dir),
        "--feature",
        "0",
        "-n",
        "2",
    ]));
    assert!(text.contains("FEATURE 0 INTERPRETABILITY REPORT"), "{text}");
    assert!(text.contains("Top 2 Activating Examples:"), "{text}");
    assert!(text.contains("Activating text: ' cat'"), "{text}");
    assert!(
        text.contains("Context: ...<bos>The[[ cat]] sat on a..."),
        "{text}"
    );
    assert!(
        text.contains("Context: ... ran⏎ the[[ cat]] ran. mat..."),
        "{text}"
    );
    assert!(
        text.contains("Tokens seen (whole collection): 45"),
        "{text}"
    );
    let json = json_of(&["analyze", path_str(&dir), "--feature", "0"]);
    assert_eq!(json["stats"]["activation_count"], 3);
    assert_eq!(json["examples"].as_array().unwrap().len(), 3);
    assert_eq!(json["examples"][0]["context_prefix"], " ran\n the");
    // The feature view: flags, every activation binned, uniform samples per interval.
    assert!(text.contains("  Flags: none"), "{text}");
    assert!(
        text.contains("Activation histogram (all 3 activations above the threshold"),
        "{text}"
    );
    assert!(text.contains("Interval Samples"), "{text}");
    assert!(text.contains("Interval 5 (0.80–1.00 of max"), "{text}");
    assert_eq!(json["intervals"].as_array().unwrap().len(), 5);
    let interval_total: u64 = json["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["activation_count"].as_u64().unwrap())
        .sum();
    assert_eq!(interval_total, 3);
    assert_eq!(json["flags"]["single_token"], false);
}

#[test]
fn compare_shows_both_features_and_the_measures() {
    let (_temp, dir) = fixture();
    let text = stdout(&saectl(&["analyze", path_str(&dir), "--compare", "0", "1"]));
    assert!(text.contains("FEATURE 0 vs FEATURE 1"), "{text}");
    assert!(
        text.contains("activating-token overlap (weighted Jaccard):"),
        "{text}"
    );
    assert!(
        text.contains("Shared activating tokens: ␣cat (3 | 1)"),
        "{text}"
    );
    let json = json_of(&["analyze", path_str(&dir), "--compare", "0", "1"]);
    let similarity = &json["similarity"];
    let combined = similarity["combined"].as_f64().unwrap();
    let mean = (similarity["token_overlap"].as_f64().unwrap()
        + similarity["context_overlap"].as_f64().unwrap())
        / 2.0;
    assert!((combined - mean).abs() < 1e-12 && combined > 0.0);
}

#[test]
fn similar_ranks_the_neighbours() {
    let (_temp, dir) = fixture();
    let json = json_of(&["analyze", path_str(&dir), "--similar", "1", "--top-k", "2"]);
    let neighbours = json["neighbours"].as_array().unwrap();
    assert_eq!(neighbours.len(), 2);
    let first = neighbours[0]["similarity"]["combined"].as_f64().unwrap();
    let second = neighbours[1]["similarity"]["combined"].as_f64().unwrap();
    assert!(first >= second);
    let text = stdout(&saectl(&["analyze", path_str(&dir), "--similar", "1"]));
    assert!(
        text.contains("Features most similar to feature 1"),
        "{text}"
    );
}

#[test]
fn clusters_group_the_animal_features() {
    let (_temp, dir) = fixture();
    let json = json_of(&[
        "analyze",
        path_str(&dir),
        "--clusters",
        "--min-similarity",
        "0.2",
    ]);
    let clusters = json["clusters"].as_array().unwrap();
    let holds_0_and_1 = clusters.iter().any(|c| {
        let members = c["members"].as_array().unwrap();
        members.contains(&Value::from(0)) && members.contains(&Value::from(1))
    });
    assert!(holds_0_and_1, "{json}");
    let text = stdout(&saectl(&["analyze", path_str(&dir), "--clusters"]));
    assert!(text.starts_with("Clusters (average linkage"), "{text}");
}

#[test]
fn histogram_prints_bars_and_writes_an_svg() {
    let (temp, dir) = fixture();
    let output = saectl(&["analyze", path_str(&dir), "--histogram", "1"]);
    let text = stdout(&output);
    assert!(text.contains('│') && text.contains('█'), "{text}");
    let svg_path = dir.join("feature_00001_histogram.svg");
    let stderr = stderr(&output);
    assert!(stderr.contains("feature_00001_histogram.svg"), "{stderr}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    let out = temp.path().join("h.svg");
    let json = json_of(&[
        "analyze",
        path_str(&dir),
        "--histogram",
        "1",
        "--bins",
        "3",
        "--plot-out",
        path_str(&out),
    ]);
    // The folder holds every activation in fixed bins: merged to at most 3 bars, all 7 of
    // feature 1's activations are there.
    assert_eq!(json["source"], "all_activations");
    let counts = json["histogram"]["counts"].as_array().unwrap();
    assert!(counts.len() <= 3, "{counts:?}");
    let total: u64 = counts.iter().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(total, 7);
    assert_eq!(json["svg"], path_str(&out));
    // Same folder, same picture.
    saectl(&[
        "analyze",
        path_str(&dir),
        "--histogram",
        "1",
        "--plot-out",
        path_str(&out),
    ]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), svg);
}

#[test]
fn report_matches_the_golden_file_and_is_deterministic() {
    let (_temp, dir) = fixture();
    let output = saectl(&[
        "report",
        path_str(&dir),
        "--top-k-features",
        "5",
        "--examples-per-feature",
        "3",
    ]);
    assert!(output.status.success(), "{output:?}");
    let report_path = dir.join("interpretability_report.md");
    let stderr = stderr(&output);
    assert!(stderr.contains(path_str(&report_path)), "{stderr}");
    assert!(output.stdout.is_empty());
    let first = std::fs::read(&report_path).unwrap();
    // A second folder from the same data, elsewhere: the same bytes.
    let (_temp2, dir2) = fixture();
    let out2 = dir2.join("again.md");
    saectl(&[
        "report",
        path_str(&dir2),
        "--out",
        path_str(&out2),
        "--top-k-features",
        "5",
        "--examples-per-feature",
        "3",
    ]);
    assert_eq!(std::fs::read(&out2).unwrap(), first);
    assert_golden("report.md", &first);
}

#[test]
fn bad_input_is_one_line_and_exit_code_1() {
    let temp = tempfile::tempdir().unwrap();
    let missing = temp.path().join("nope");
    for command in ["analyze", "report"] {
        assert_one_line_error(&saectl(&[command, path_str(&missing)]), "does not exist");
    }
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_one_line_error(&saectl(&["analyze", path_str(&empty)]), "holds no feature_");
    assert_one_line_error(&saectl(&["report", path_str(&empty)]), "holds no feature_");

    let (_fixture, dir) = fixture();
    let dir_str = path_str(&dir);
    assert_one_line_error(
        &saectl(&["analyze", dir_str, "--feature", "99"]),
        "feature 99 is not in",
    );
    assert_one_line_error(
        &saectl(&["analyze", dir_str, "--compare", "0", "98"]),
        "feature 98 is not in",
    );
    assert_one_line_error(
        &saectl(&["analyze", dir_str, "--similar", "97"]),
        "feature 97 is not in",
    );
    assert_one_line_error(
        &saectl(&["analyze", dir_str, "--histogram", "96"]),
        "feature 96 is not in",
    );

    // A truncated feature file, then a corrupt summary: the error names the file.
    let feature_file = dir.join("feature_00000_samples.json");
    let bytes = std::fs::read(&feature_file).unwrap();
    std::fs::write(&feature_file, &bytes[..bytes.len() / 2]).unwrap();
    for command in ["analyze", "report"] {
        assert_one_line_error(&saectl(&[command, dir_str]), "feature_00000_samples.json");
    }
    std::fs::write(&feature_file, &bytes).unwrap();
    std::fs::write(dir.join("collection_summary.json"), "{not json").unwrap();
    assert_one_line_error(&saectl(&["analyze", dir_str]), "collection_summary.json");
}

#[test]
fn a_folder_of_empty_feature_files_has_no_samples() {
    let (_temp, dir) = fixture();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with("feature_") {
            let mut file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            file["top_samples"] = Value::Array(Vec::new());
            std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        }
    }
    assert_one_line_error(&saectl(&["analyze", path_str(&dir)]), "holds no samples");
}

/// The Python original's folder (tests/fixtures/original-samples/): the seed's documented
/// feature file and a summary with only the original's keys. Nothing saectl adds is present.
fn write_original_folder(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let original = PathBuf::from(super::util::fixture("original-samples"));
    for name in ["feature_00042_samples.json", "collection_summary.json"] {
        std::fs::copy(original.join(name), dir.join(name)).unwrap();
    }
}

#[test]
fn folders_of_the_python_original_are_read_without_inventing_numbers() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("original");
    write_original_folder(&dir);
    let text = stdout(&saectl(&["analyze", path_str(&dir), "--feature", "42"]));
    // The documentation's example records no std; its `text` is one word for two tokens, so
    // the folder cannot name token 3797 alone: it shows as its id.
    assert!(text.contains("Std activation: n/a"), "{text}");
    assert!(text.contains("⟨3797⟩ ×1"), "{text}");
    assert!(text.contains("Firing tokens: n/a"), "{text}");
    assert!(text.contains("Total activations seen: 1523"), "{text}");
    assert!(
        text.contains("Context: ...the fluffy[[ cat]] sat on the warm mat..."),
        "{text}"
    );
    assert!(!text.contains("Tokens seen"), "{text}");
    let output = saectl(&["report", path_str(&dir)]);
    assert!(output.status.success(), "{output:?}");
    let report = std::fs::read_to_string(dir.join("interpretability_report.md")).unwrap();
    assert!(
        report.contains("…the fluffy **cat** sat on the warm mat…"),
        "{report}"
    );
    assert!(
        report.contains(
            "| 1 | [42](#feature-42) | 0.8734 | 0.4521 | n/a | 1523 | n/a | 100 | ⟨3797⟩ ×1 |"
        ),
        "{report}"
    );
}
