//! `saectl demo` end to end on the embedded model, and the quality bar of its result: the
//! report's features must be interpretable on the planted concepts.
//!
//! Purity (src/demo/purity.rs) is the share of a feature's top activations on words of its
//! most common concept. Random samples from the same corpus score about 0.15; a broken
//! pipeline (untrained SAE, misaligned tokens or contexts, samples from the wrong feature)
//! cannot reach the levels asserted here. The run uses fewer tokens than the default demo so
//! that the debug build finishes quickly; docs/demo.md has the distribution at full size.

use std::path::Path;

use saectl::demo::purity::{random_purity, report_purity};
use saectl::demo::{lm::token_stream, CorpusGenerator};
use saectl::samples::SamplesFolder;

use super::dashboard::browser;
use super::util::{assert_one_line_error, stderr, stdout, Saectl};

fn demo(out: &Path, home: &Path) -> std::process::Output {
    Saectl::new(["demo", "--out"])
        .arg(out)
        .args([
            "--train-tokens",
            "150000",
            "--collect-tokens",
            "40000",
            "--device",
            "cpu",
        ])
        .env("SAECTL_HOME", home)
        .run()
}

#[test]
fn the_demo_runs_end_to_end_and_its_features_match_the_planted_concepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let output = demo(&out, &dir.path().join("home"));
    let stdout = stdout(&output);
    assert!(stdout.contains("$ saectl train --hook"), "{stdout}");
    assert!(stdout.contains("against the planted concepts"), "{stdout}");
    let stderr = stderr(&output);
    assert!(stderr.contains("no --model given"), "{stderr}");
    assert!(stdout.contains("Open"), "{stdout}");
    assert!(stdout.contains("dashboard.html in a browser"), "{stdout}");
    for path in [
        "report.md",
        "dashboard.html",
        "run/train_config.json",
        "run/latest_checkpoint",
        "run/activation_samples",
        "samples/collection_summary.json",
    ] {
        assert!(out.join(path).exists(), "{path} missing");
    }

    let folder = SamplesFolder::load(&out.join("samples")).unwrap();
    // The word-level tokenizer's decoder puts the spaces between words: the marked token
    // keeps them (`and **jack** found`, not `and**jack**found`).
    for sample in folder.features.values().flat_map(|f| &f.top_samples) {
        let joined = format!(
            "{}{}{}",
            sample.context_prefix, sample.text, sample.context_suffix
        );
        assert_eq!(joined, sample.context_text);
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    // No bold marker between two letters (`and**jack**found`): the demo has no subwords.
    let chars: Vec<char> = report.chars().collect();
    let glued = chars
        .windows(4)
        .any(|w| w[0].is_alphanumeric() && w[1] == '*' && w[2] == '*' && w[3].is_alphanumeric());
    assert!(
        !glued,
        "a marked token glued to its neighbours in report.md"
    );
    let purity = report_purity(&folder, 50);
    assert!(
        purity.len() >= 30,
        "only {} features in the report",
        purity.len()
    );
    let mut shares: Vec<f64> = purity.iter().map(|p| p.purity).collect();
    shares.sort_by(|a, b| b.total_cmp(a));
    let mean = shares.iter().sum::<f64>() / shares.len() as f64;
    let pure = shares.iter().filter(|&&s| s >= 0.9).count();
    eprintln!("concept purity of the report's features, best first: {shares:.2?}");

    let stream = token_stream(&CorpusGenerator::new(4).documents(2000)).unwrap();
    let random = random_purity(&stream, 10, 500, 3);
    eprintln!(
        "mean {mean:.3}, {pure} of {} at least 0.9; random samples {random:.3}",
        shares.len()
    );
    assert!(random < 0.3, "the random baseline should be low: {random}");
    // Features on function words score 0 here (they are single-word features, checked below),
    // so the bar is on the count of pure features and the mean, both far above random: the 10
    // stored samples of a feature, drawn at random, reach 0.9 with probability about 1e-6.
    assert!(
        pure * 5 >= shares.len() * 2,
        "{pure} of {} features ≥ 0.9 pure",
        shares.len()
    );
    assert!(
        mean >= 2.0 * random + 0.1,
        "mean {mean:.3} vs random {random:.3}"
    );
    let concepts: std::collections::HashSet<_> = purity
        .iter()
        .filter(|p| p.purity >= 0.9)
        .filter_map(|p| p.concept)
        .collect();
    assert!(concepts.len() >= 6, "pure features cover only {concepts:?}");
    check_dashboard(&out, &purity);
    // Every reported feature has one explanation for most of its samples: a concept, or a
    // single word.
    for p in &purity {
        assert!(
            p.explained() >= 0.7,
            "feature {} is a mixture: {p:?}",
            p.feature
        );
    }
}

/// The dashboard finds the report's pure features by the words of their concept, and the
/// report links to it.
fn check_dashboard(out: &Path, purity: &[saectl::demo::purity::FeaturePurity]) {
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("](dashboard.html#f="),
        "the report does not link the dashboard"
    );
    let html = out.join("dashboard.html");
    let mut checked = 0;
    for p in purity.iter().filter(|p| p.purity >= 0.9).take(3) {
        let (token, _) = p.top_token.expect("a pure feature has a top token");
        let word = saectl::demo::vocab::vocabulary()[token as usize];
        let summary = browser::selftest(&html, &format!("f={}&q=tok:{word}", p.feature));
        let results: Vec<u64> = summary["search"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            results.contains(&u64::from(p.feature)),
            "tok:{word} does not find feature {} ({results:?})",
            p.feature
        );
        let view = &summary["view"][0];
        assert_eq!(view["feature"], p.feature);
        assert!(view["groups"][0].as_u64().unwrap() >= 10, "{view}");
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn the_demo_never_writes_into_a_folder_with_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let output = demo(dir.path(), &dir.path().join("home"));
    assert_one_line_error(&output, "not empty");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "mine"
    );
}
