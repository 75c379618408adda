//! The dashboard's size and build-time benchmark on a synthetic folder (docs/benchmarks.md).
//!
//! `cargo run --release --example dashboard_synthetic -- OUT [TOKENS] [D_SAE]` writes a
//! synthetic samples folder from a fixed seed (16,384 features and 2M tokens by default) to
//! `OUT/samples`, then
//! 1. builds `OUT/samples/dashboard.html` through `saectl::dashboard::run`, as the command
//!    does (with the per-token activations the collector recorded), and
//! 2. builds `OUT/with-token-activations.html` from the same folder with every example's
//!    per-token activations recomputed from the generating rule instead — a cross-check: the
//!    two files should be the same size.
//!
//! It prints the time and the bytes per feature of both, then, when `chromium` is on the
//! PATH, opens both pages in headless Chromium on the wall clock and prints the timings the
//! page measures itself (index decoded, first feature on screen, feature switch, search
//! keystroke, text search).

mod dashboard_browser;

// The allocator `saectl` itself runs on (src/main.rs), so the build time measured here is the
// command's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Instant;

use saectl::dashboard::encode::{encode, Neighbours};
use saectl::dashboard::synthetic::{write_synthetic_folder, SyntheticRule, SyntheticSpec};
use saectl::dashboard::{html, run, DashboardConfig, SplitMode};
use saectl::features::input::FolderInput;
use saectl::features::model::{attach_context_activations, ExampleCounts, FeatureSet};
use saectl::features::similar;
use saectl::features::tokenizer::{token_texts, TokenizerSource};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/dashboard-bench".into()),
    );
    let tokens: usize = args.next().map_or(Ok(2_000_000), |t| t.parse())?;
    let d_sae: usize = args.next().map_or(Ok(16_384), |t| t.parse())?;
    let spec = SyntheticSpec {
        d_sae,
        ..SyntheticSpec::sixteen_k(tokens)
    };
    let samples = out.join("samples");
    if !samples.join("collection_summary.json").exists() {
        let started = Instant::now();
        write_synthetic_folder(&samples, spec)?;
        eprintln!(
            "synthetic folder: {d_sae} features, {tokens} tokens, {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    let config = DashboardConfig {
        samples: samples.clone(),
        out: samples.join("dashboard.html"),
        checkpoint: None,
        tokenizer: None,
        counts: ExampleCounts { top: 20 },
        split: SplitMode::Auto,
        prompts: None,
    };
    let stages = Instant::now();
    let outcome = run(&config, &mut |stage| {
        eprintln!("  {:6.2} s  {stage}", stages.elapsed().as_secs_f64())
    })?;
    println!(
        "as collected: {} features, {} examples, {} bytes ({:.0} B/feature), built in {:.2} s",
        outcome.features,
        outcome.examples,
        outcome.files.total_bytes,
        outcome.files.total_bytes as f64 / outcome.features as f64,
        outcome.seconds
    );

    let started = Instant::now();
    let input = FolderInput::load(&samples)?;
    let mut model = FeatureSet::from_collector(
        &input.collector,
        &input.flag_config(),
        ExampleCounts { top: 20 },
        input.logit_effects.as_ref().map(|l| l.features.as_slice()),
    );
    let recorded = SyntheticRule::new(spec).context_activations(&model);
    let attached = attach_context_activations(&mut model, &recorded);
    let nonzero: usize = model
        .features
        .iter()
        .flat_map(|f| f.groups.iter().flat_map(|g| &g.examples))
        .filter_map(|e| e.token_activations.as_ref().map(Vec::len))
        .sum();
    let neighbours = Neighbours {
        tokens: similar::token_overlap(&model),
        contexts: similar::context_overlap(&model, 21),
        decoder: None,
    };
    let tokenizer = TokenizerSource::resolve(None, &input.summary)?.load()?;
    let provenance = saectl::dashboard::encode::Provenance {
        title: format!("synthetic · {d_sae} features · per-token activations"),
        label_key: "synthetic".into(),
        source: input.summary.source.to_map(),
    };
    let encoded = encode(&model, &neighbours, &provenance, |ids| {
        token_texts(&tokenizer, ids)
    });
    let written = html::write(
        &out.join("with-token-activations.html"),
        &provenance.title,
        &encoded,
        SplitMode::Auto,
    )?;
    println!(
        "with per-token activations ({attached} examples, {:.2} non-zero tokens each): {} bytes ({:.0} B/feature), built in {:.2} s",
        nonzero as f64 / attached.max(1) as f64,
        written.total_bytes,
        written.total_bytes as f64 / model.features.len() as f64,
        started.elapsed().as_secs_f64()
    );
    for html in [
        samples.join("dashboard.html"),
        out.join("with-token-activations.html"),
    ] {
        browser_timings(&html)?;
    }
    Ok(())
}

fn browser_timings(html: &std::path::Path) -> anyhow::Result<()> {
    let Some(chromium) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    }) else {
        eprintln!("no chromium on the PATH: no browser timings");
        return Ok(());
    };
    let summary = dashboard_browser::selftest_wall_clock(
        &chromium,
        html,
        "selftest&f=12345&q=tok:kaka&frames",
    )?;
    println!(
        "{} in Chromium (wall clock, ms): {}; problems {}",
        html.display(),
        summary["timings"],
        summary["problems"]
    );
    Ok(())
}
