//! `saectl dashboard`: the file it writes, opened in a real headless Chromium with the network
//! off. Each browser test reads the page's self-test summary (what it rendered, what the search
//! found, and errors, script errors and CSP violations, which must all be 0).

pub mod browser;
mod fixtures;
mod png;

use std::path::Path;
use std::process::Output;

use saectl::dashboard::synthetic::{write_synthetic_folder, SyntheticSpec};
use serde_json::Value;

use super::util::{assert_ok, assert_one_line_error, Saectl};
use fixtures::{hostile_folder, hostile_tokens, write_folder, FIRST_HOSTILE};

pub fn dashboard(args: &[&str]) -> Output {
    Saectl::new(["dashboard"]).args(args).run()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn hostile_tokens_show_as_text_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    let d_sae = hostile_folder(&samples);
    assert_ok(&dashboard(&[s(&samples)]));
    let html = samples.join("dashboard.html");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<meta charset=\"utf-8\">"));
    assert!(page.contains("Content-Security-Policy\" content=\"default-src 'none';"));
    assert!(
        !page.contains("alert("),
        "token text must only travel encoded"
    );

    let tokens = hostile_tokens();
    for (i, token) in tokens[FIRST_HOSTILE as usize..].iter().enumerate() {
        let summary = browser::selftest(&html, &format!("f={i}"));
        let view = &summary["view"][0];
        assert_eq!(view["feature"], i);
        // Only the page's own script runs: the data blocks are not scripts, and no token
        // became one.
        assert_eq!(summary["scripts"]["executable"], 1, "{summary}");
        let marked = strings(&view["marked_tokens"]);
        assert!(!marked.is_empty(), "feature {i} shows no example: {view}");
        // Word-level tokens read with the space that separates them; long ones are cut.
        let expected = visible(&format!(" {token}"));
        let expected = if expected.chars().count() > 40 {
            expected.chars().take(40).collect::<String>() + "…"
        } else {
            expected
        };
        for shown in &marked {
            assert_eq!(shown, &expected, "token {i} shows as {shown:?}");
        }
    }
    let summary = browser::selftest(&html, "f=0&q=tok:%3Cscript%3Ealert(1)%3C/script%3E");
    assert_eq!(summary["search"]["results"][0], 0, "{}", summary["search"]);
    assert_eq!(summary["d_sae"], d_sae);
    let dom = browser::dump_dom(&html, "f=0");
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!dom.contains("<script>alert(1)"));
    assert!(!dom.contains("<img src=\"x\""));
}

/// What the page shows for a token (the script's `visible`).
fn visible(token: &str) -> String {
    token
        .chars()
        .map(|c| match c {
            '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap().to_string(),
            '\u{202a}'..='\u{202e}' => format!("⟨U+{:04X}⟩", c as u32),
            c => c.to_string(),
        })
        .collect()
}

#[test]
fn a_folder_where_nothing_fired_lists_every_feature_as_dead() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    write_folder(&samples, &hostile_tokens(), 5, |_| None);
    assert_ok(&dashboard(&[
        s(&samples),
        "-o",
        s(&dir.path().join("d.html")),
    ]));
    let summary = browser::selftest(&dir.path().join("d.html"), "f=3&filter=dead");
    assert_eq!(summary["chips"]["dead"], 5, "{summary}");
    assert_eq!(summary["chips"]["alive"], 0);
    let view = &summary["view"][0];
    assert_eq!(view["feature"], 3);
    assert_eq!(strings(&view["flags"]), ["dead"]);
    assert_eq!(view["histogram_bars"], 0);
    assert_eq!(view["groups"].as_array().unwrap().len(), 0);
}

#[test]
fn a_one_feature_sae_shows_its_feature() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    write_folder(&samples, &hostile_tokens(), 1, |id| {
        (id == 5).then_some((0, 1.5))
    });
    assert_ok(&dashboard(&[s(&samples)]));
    let summary = browser::selftest(&samples.join("dashboard.html"), "q=tok:words");
    assert_eq!(summary["search"]["results"], serde_json::json!([0]));
    let view = &summary["view"][0];
    assert_eq!(view["feature"], 0);
    assert!(strings(&view["marked_tokens"])
        .iter()
        .all(|t| t.trim() == "words"));
    assert!(view["histogram_bars"].as_u64().unwrap() > 0);
}

/// A synthetic 16,384-feature folder: every feature listed, searches answer, and the file
/// stays within the budget of 3 KiB per feature. Its timings under the test's virtual clock
/// mean little; docs/benchmarks.md has wall-clock ones.
#[test]
fn sixteen_thousand_features_fit_the_budget_and_every_view_works() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    write_synthetic_folder(&samples, SyntheticSpec::sixteen_k(150_000)).unwrap();
    let output = dashboard(&[s(&samples)]);
    assert_ok(&output);
    let html = samples.join("dashboard.html");
    let bytes = std::fs::metadata(&html).unwrap().len();
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        bytes <= 16_384 * 3 * 1024,
        "{bytes} bytes: {} per feature",
        bytes / 16_384
    );
    let summary = browser::selftest(&html, "f=16000&q=max>3");
    eprintln!("16k timings (virtual clock): {}", summary["timings"]);
    assert_eq!(summary["d_sae"], 16_384);
    assert_eq!(summary["chips"]["all"], 16_384);
    assert_eq!(summary["view"][0]["feature"], 16_000);
    let results = summary["search"]["result_count"].as_u64().unwrap();
    assert!(
        results > 100 && results < 16_384,
        "{results} features with max > 3"
    );
    assert!(
        summary["list_rows"].as_u64().unwrap() < 100,
        "the list is virtualised"
    );

    // The split layout: shards in sibling files, loaded from file:// with <script src>.
    let split = dir.path().join("split.html");
    assert_ok(&dashboard(&[s(&samples), "-o", s(&split), "--split"]));
    assert!(std::fs::metadata(&split).unwrap().len() < 2 << 20);
    assert_eq!(
        std::fs::read_dir(dir.path().join("split.data"))
            .unwrap()
            .count(),
        128
    );
    let summary = browser::selftest(&split, "f=9000&q=text:kaka%20kalo");
    assert!(summary["split"].as_bool().unwrap());
    assert_eq!(summary["view"][0]["feature"], 9000);
    assert!(summary["search"]["result_count"].as_u64().unwrap() > 0);
}

#[test]
fn the_feature_page_screenshot_is_not_blank() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    write_synthetic_folder(
        &samples,
        SyntheticSpec {
            d_sae: 256,
            vocab: 2000,
            tokens: 40_000,
            seq_len: 64,
            seed: 7,
        },
    )
    .unwrap();
    assert_ok(&dashboard(&[s(&samples)]));
    let png = dir.path().join("f7.png");
    browser::screenshot(&samples.join("dashboard.html"), "f=7", &png);
    let share = png::non_white_share(&std::fs::read(&png).unwrap());
    // A blank or error page is almost all white; the feature page has shaded panels, bars
    // and coloured tokens.
    assert!(
        share > 0.05,
        "only {:.1}% of the pixels are not white",
        share * 100.0
    );
    let keep = std::env::var_os("SAECTL_KEEP_SCREENSHOTS").map(std::path::PathBuf::from);
    if let Some(keep) = keep {
        std::fs::copy(&png, keep.join("dashboard-f7.png")).unwrap();
    }
}

#[test]
fn labels_exported_from_the_page_show_in_the_report_with_links() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples");
    hostile_folder(&samples);
    assert_ok(&dashboard(&[s(&samples)]));
    let labels = dir.path().join("labels.json");
    std::fs::write(
        &labels,
        r#"{"format": "saectl-labels", "version": 1, "labels": {"0": "markup *tags*", "7": "the word plain"}}"#,
    )
    .unwrap();
    let output = Saectl::new(["report", s(&samples), "--labels", s(&labels)]).run();
    assert_ok(&output);
    let report = std::fs::read_to_string(samples.join("interpretability_report.md")).unwrap();
    assert!(report.contains("**Label:** markup \\*tags\\*"), "{report}");
    assert!(report.contains("**Label:** the word plain"));
    assert!(report.contains("[Open in the dashboard](dashboard.html#f=0)"));

    std::fs::write(&labels, r#"{"labels": {"x": "no"}}"#).unwrap();
    let output = Saectl::new(["report", s(&samples), "--labels", s(&labels)]).run();
    assert_one_line_error(&output, "is not a feature index");
}

#[test]
fn bad_input_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert_one_line_error(&dashboard(&[s(&missing)]), "does not exist");
    let samples = dir.path().join("samples");
    hostile_folder(&samples);
    assert_one_line_error(
        &dashboard(&[s(&samples), "-o", s(&dir.path().join("page.txt"))]),
        "must name an .html file",
    );
    assert_one_line_error(
        &dashboard(&[s(&samples), "--tokenizer", s(&dir.path().join("none.json"))]),
        "--tokenizer",
    );
    assert_one_line_error(
        &dashboard(&[s(&samples), "-o", s(&dir.path().join("no/such/d.html"))]),
        "does not exist",
    );
    std::fs::remove_file(samples.join(saectl::samples::STATE_FILE_NAME)).unwrap();
    assert_one_line_error(&dashboard(&[s(&samples)]), "collector_state.safetensors");
}

/// A folder from a real `collect` run on the tiny model, with its checkpoint: the tokenizer
/// comes from what the collection recorded, and decoder-cosine neighbours are listed.
#[test]
fn a_collected_folder_with_its_checkpoint_lists_decoder_neighbours() {
    use super::util::{collect, live_args, write_sae, D_SAE};
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("sae");
    write_sae(&checkpoint, 64);
    let samples = dir.path().join("samples");
    let args = live_args(400);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_ok(&collect(&checkpoint, &samples, &args));
    assert_ok(&dashboard(&[s(&samples), "--checkpoint", s(&checkpoint)]));
    let summary = browser::selftest(&samples.join("dashboard.html"), "f=1");
    assert_eq!(summary["d_sae"], D_SAE);
    let similar = summary["view"][0]["similar"].as_array().unwrap();
    assert_eq!(
        similar.len(),
        3,
        "same tokens, same passages, decoder cosine"
    );
    assert_eq!(similar[2].as_array().unwrap().len(), 10);
    assert!(!similar[2].as_array().unwrap().contains(&1.into()));

    // A checkpoint of another width is refused.
    let other = dir.path().join("other");
    let mut config = saectl::sae::SaeConfig::new(saectl::sae::SaeKind::TopK, 64, 32, Some(4));
    config.hook_name = None;
    let weights = saectl::sae::SaeWeights::init(&config, 1, &candle_core::Device::Cpu).unwrap();
    let sae = saectl::sae::Sae::new(config.clone(), weights).unwrap();
    saectl::sae::checkpoint::save(
        &other,
        &sae,
        &saectl::sae::checkpoint::CheckpointMeta::new(config),
    )
    .unwrap();
    assert_one_line_error(
        &dashboard(&[s(&samples), "--checkpoint", s(&other)]),
        "features but the samples folder",
    );
}

/// `--prompts`: the page's prompt view holds what `saectl inspect` computes on the same texts —
/// the same strongest features per text, and, coloured by one feature, exactly the tokens it
/// fires on; the model is the one the collection recorded.
#[test]
fn the_prompt_view_shows_what_inspect_computes() {
    use super::util::{collect, fixture, live_args, write_sae};
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("sae");
    write_sae(&checkpoint, 64);
    let samples = dir.path().join("samples");
    let args = live_args(200);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_ok(&collect(&checkpoint, &samples, &args));
    let texts = [
        "The river ran low in the late summer.",
        "Stones showed white <b>&amp;</b> the water was clear.",
    ];
    let prompts = dir.path().join("prompts.txt");
    std::fs::write(&prompts, texts.join("\n\n") + "\n").unwrap();
    let output = dashboard(&[
        s(&samples),
        "--checkpoint",
        s(&checkpoint),
        "--prompts",
        s(&prompts),
        "--device",
        "cpu",
    ]);
    assert_ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the model the collection recorded") && stderr.contains("#prompts"),
        "{stderr}"
    );

    let inspected = Saectl::new(["inspect", "--checkpoint", s(&checkpoint)])
        .args(["--model", &fixture("tiny-gemma2")])
        .args(["--tokenizer", &fixture("tokenizer/tokenizer.json")])
        .args(["--device", "cpu", "--file", s(&prompts), "--json"])
        .args(["--top-per-token", "1000", "--top-features", "20"])
        .run();
    assert_ok(&inspected);
    let inspected: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let page = samples.join("dashboard.html");
    let summary = browser::selftest(&page, "prompts");
    let shown = summary["prompts"]
        .as_array()
        .expect("the prompt view is shown");
    assert_eq!(shown.len(), texts.len());
    for (view, report) in shown.iter().zip(inspected["texts"].as_array().unwrap()) {
        let top: Vec<u64> = (report["top_features"].as_array().unwrap().iter())
            .map(|f| f["feature"].as_u64().unwrap())
            .collect();
        let listed: Vec<u64> = (view["top"].as_array().unwrap().iter())
            .map(|f| f.as_u64().unwrap())
            .collect();
        assert_eq!(listed, top);
        assert_eq!(view["tokens"], report["tokens"].as_array().unwrap().len());
        assert_eq!(view["coloured_by"], top[0]);
    }

    // Coloured by one feature: exactly the tokens it fires on, in every text.
    let feature = inspected["texts"][1]["top_features"][0]["feature"]
        .as_u64()
        .unwrap();
    let summary = browser::selftest(&page, &format!("prompts&pf={feature}"));
    for (view, report) in summary["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(inspected["texts"].as_array().unwrap())
    {
        let fires = (report["tokens"].as_array().unwrap().iter())
            .filter(|t| {
                (t["features"].as_array().unwrap().iter())
                    .any(|a| a["feature"] == feature && a["activation"].as_f64().unwrap() > 0.0)
            })
            .count();
        assert_eq!(view["coloured_by"], feature);
        assert_eq!(view["coloured_tokens"], fires);
    }

    // A feature page of the same page still works, and the prompt view needs the SAE.
    let summary = browser::selftest(&page, &format!("f={feature}"));
    assert_eq!(summary["view"][0]["feature"], feature);
    assert!(summary["prompts"].is_null());
    assert_one_line_error(
        &Saectl::new(["dashboard", s(&samples), "--prompts", s(&prompts)]).run(),
        "--checkpoint",
    );
}
