//! The Neuronpedia export's time and size on a synthetic folder (docs/benchmarks.md).
//!
//! `cargo run --release --example export_synthetic -- OUT [TOKENS] [D_SAE]` writes (or reuses)
//! the dashboard benchmark's synthetic samples folder (16,384 features and 2M tokens by
//! default, fixed seed) in `OUT/samples`, then exports it through `saectl::export::run` as
//! `saectl export neuronpedia` does — the bulk layout, then the API payloads — and validates
//! the bulk layout with `export::check::check`. It prints each one's time, files and bytes.
//! The folder records no decoder and no per-token activations, so the neighbours, alignments
//! and the other tokens' values are not part of the timing.

use std::path::PathBuf;
use std::time::Instant;

use saectl::dashboard::synthetic::{write_synthetic_folder, SyntheticSpec};
use saectl::export::{check::check, run, ExportConfig, ExportMode, Target, DEFAULT_CREATOR_ID};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "target/export-bench".into()));
    let tokens: usize = args.next().map_or(Ok(2_000_000), |t| t.parse())?;
    let d_sae: usize = args.next().map_or(Ok(16_384), |t| t.parse())?;
    let samples = out.join("samples");
    if !samples.join("collection_summary.json").exists() {
        let started = Instant::now();
        let spec = SyntheticSpec {
            d_sae,
            ..SyntheticSpec::sixteen_k(tokens)
        };
        write_synthetic_folder(&samples, spec)?;
        eprintln!(
            "synthetic folder: {d_sae} features, {tokens} tokens, {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    for mode in [ExportMode::Bulk, ExportMode::Api] {
        let config = ExportConfig {
            samples: samples.clone(),
            out: out.join(mode.name()),
            mode,
            target: Target {
                model_id: "gemma-2-2b".into(),
                source_set: "synthetic-16k".into(),
                layer: Some(12),
                creator_id: DEFAULT_CREATOR_ID.into(),
                creator_name: "saectl".into(),
            },
            checkpoint: None,
            tokenizer: None,
            labels: None,
            top_examples: 20,
            model_layers: Some(26),
        };
        let stages = Instant::now();
        let outcome = run(&config, &mut |stage| {
            eprintln!("  {:6.2} s  {stage}", stages.elapsed().as_secs_f64())
        })?;
        println!(
            "{}: {} features ({} listed apart), {} activations; {} files, {:.1} MiB ({:.0} B/feature), in {:.2} s",
            mode.name(),
            outcome.features,
            outcome.skipped,
            outcome.activations,
            outcome.files,
            outcome.bytes as f64 / (1 << 20) as f64,
            outcome.bytes as f64 / outcome.features as f64,
            outcome.seconds
        );
        if mode == ExportMode::Bulk {
            let started = Instant::now();
            let report = check(&out.join("bulk"))?;
            println!(
                "--check: {} features, {} activations, {} problems, in {:.2} s",
                report.features,
                report.activations,
                report.problems.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
