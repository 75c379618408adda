//! `saectl demo`: saectl's whole job on the embedded model in about a minute, with no GPU,
//! download or token.
//!
//! It writes two synthetic corpora with planted concepts, then runs the very commands a user
//! would — `train` live from the model (BatchTopK, with sample collection and the
//! loss-recovered evaluation), `collect` on held-out text, `analyze`, `dashboard` and `report` — printing each command line before it runs, so the demo doubles as
//! a tour of the CLI. No `--model` is passed: the embedded model is every command's default.
//! At the end it prints how well the report's features match the planted concepts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser};

use super::output::print_stdout;
use super::{run as run_command, Cli};
use crate::demo::corpus_file::{write_corpus, HELD_OUT_SEED, SAE_TRAIN_SEED};
use crate::demo::embedded::DEMO_HOOK;
use crate::demo::purity::report_purity;
use crate::model::DeviceChoice;
use crate::samples::SamplesFolder;
use crate::util::atomic::write_atomic;

#[derive(Debug, Clone, Args)]
#[command(after_help = "Example:\n  saectl demo --out saectl-demo")]
pub struct DemoArgs {
    /// Folder for everything the demo writes (must not exist yet, or be empty).
    #[arg(long, default_value = "saectl-demo", value_name = "DIR")]
    pub out: PathBuf,

    /// Tokens of activations the SAE trains on.
    #[arg(long, default_value_t = 400_000, value_name = "N")]
    pub train_tokens: u64,

    /// Held-out tokens `collect` reads.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub collect_tokens: u64,

    /// Latents of the SAE.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub dict_size: usize,

    /// Active latents per token (BatchTopK).
    #[arg(long, default_value_t = 8, value_name = "K")]
    pub top_k: usize,

    /// Seed of the SAE's initialisation and batch order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// auto, cpu, cuda[:N], metal[:N].
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: DeviceChoice,
}

/// Tokens per sequence and sequences per forward pass: short documents, a small model.
const SEQ_LEN: &str = "64";
const MODEL_BATCH: &str = "64";
/// Average tokens per generated document (measured: 35.6), to size the corpora.
const TOKENS_PER_DOCUMENT: u64 = 35;
/// Held-out texts in the dashboard's prompt view.
const PROMPTS: usize = 4;

pub fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    prepare_out(&args.out)?;
    let out = |name: &str| args.out.join(name).display().to_string();
    let corpus = args.out.join("corpus");
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("cannot create {}", corpus.display()))?;
    // 20% more documents than tokens asked for, so packing never runs dry.
    let documents = |tokens: u64| (tokens * 6 / 5 / TOKENS_PER_DOCUMENT + 1) as usize;
    write_corpus(
        &corpus.join("train.jsonl"),
        SAE_TRAIN_SEED,
        documents(args.train_tokens),
    )?;
    write_corpus(
        &corpus.join("held-out.jsonl"),
        HELD_OUT_SEED,
        documents(args.collect_tokens),
    )?;
    write_prompts(
        &corpus.join("held-out.jsonl"),
        &args.out.join("prompts.txt"),
    )?;
    print_stdout(&format!(
        "saectl demo: planted-concept corpora written to {} (animals, colours, numbers, places, \
         names, verbs of motion, food, feelings, weather, times)\n",
        corpus.display()
    ))?;

    let train_tokens = args.train_tokens.to_string();
    let collect_tokens = args.collect_tokens.to_string();
    let (dict_size, top_k, seed, device) = (
        args.dict_size.to_string(),
        args.top_k.to_string(),
        args.seed.to_string(),
        args.device.to_string(),
    );
    #[rustfmt::skip]
    let steps: Vec<Vec<String>> = vec![
        strings(&[
            "train", "--hook", DEMO_HOOK, "--dataset", &out("corpus/train.jsonl"),
            "--seq-len", SEQ_LEN, "--model-batch-size", MODEL_BATCH, "--out", &out("run"),
            "--sae-type", "batchtopk", "--dict-size", &dict_size, "--top-k", &top_k,
            "--top-k-aux", "128", "--batch-size", "1024", "--num-tokens", &train_tokens,
            "--lr", "2e-3", "--log-freq", "25", "--seed", &seed, "--device", &device,
            "--save-activation-samples", "true", "--sample-collection-freq", "50",
        ]),
        strings(&[
            "collect", "--checkpoint", &out("run"), "--dataset", &out("corpus/held-out.jsonl"),
            "--num-tokens", &collect_tokens, "--seq-len", SEQ_LEN,
            "--model-batch-size", MODEL_BATCH, "--device", &device, "--out", &out("samples"),
        ]),
        strings(&["analyze", &out("samples"), "--top", "10"]),
        strings(&[
            "dashboard", &out("samples"), "-o", &out("dashboard.html"), "--checkpoint", &out("run"),
            "--prompts", &out("prompts.txt"), "--device", &device,
        ]),
        strings(&["report", &out("samples"), "--out", &out("report.md")]),
    ];
    for step in steps {
        print_stdout(&format!("\n$ saectl {}\n", step.join(" ")))?;
        let cli = Cli::try_parse_from(std::iter::once("saectl".to_string()).chain(step.clone()))
            .with_context(|| {
                format!("internal error: the demo built a bad command line: {step:?}")
            })?;
        run_command(cli).with_context(|| format!("`saectl {}` failed", step[0]))?;
    }

    print_purity(&args.out.join("samples"))?;
    print_stdout(&format!(
        "\nDone in {:.0} s. Open {} in a browser to explore every feature (search, filters, \
         labels, and the features of a few held-out texts under Prompts; it works offline). The report is {}; the training run (metrics, checkpoints, \
         samples collected while training) is {}.\n",
        started.elapsed().as_secs_f64(),
        out("dashboard.html"),
        out("report.md"),
        out("run")
    ))?;
    Ok(())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Refuses a folder with anything in it: the demo never overwrites a user's files.
fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out)
            .with_context(|| format!("--out {} is not a readable folder", out.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} already exists and is not empty; remove it or choose another --out",
                out.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

/// How well the report's features match the planted concepts.
fn print_purity(samples: &Path) -> Result<()> {
    let folder = SamplesFolder::load(samples)?;
    let purity = report_purity(&folder, 50);
    if purity.is_empty() {
        return Ok(());
    }
    let pure = purity.iter().filter(|p| p.purity >= 0.9).count();
    let glue = purity
        .iter()
        .filter(|p| p.concept.is_none() || p.purity < 0.5)
        .count();
    let mut text = format!(
        "\nThe report's {} features against the planted concepts: {pure} are at least 90% one \
         concept, {glue} fire mostly on one function word. The first 10:\n",
        purity.len()
    );
    for p in purity.iter().take(10) {
        let examples: Vec<u32> = folder.features[&p.feature]
            .top_samples
            .iter()
            .filter_map(|s| s.tokens.last().copied())
            .collect();
        text += &format!("  feature {:>5}: {}\n", p.feature, p.describe(&examples));
    }
    print_stdout(&text)
}

/// Texts for the dashboard's prompt view: the first sentences of the held-out corpus's first
/// documents, one per line.
fn write_prompts(corpus: &Path, out: &Path) -> Result<()> {
    let content = std::fs::read_to_string(corpus)
        .with_context(|| format!("cannot read {}", corpus.display()))?;
    let mut prompts = String::new();
    for line in content.lines().take(PROMPTS) {
        let document: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("internal error: a bad line in {}", corpus.display()))?;
        let text = document["text"].as_str().unwrap_or_default();
        // Two sentences: long enough to show several concepts, short enough to read at once.
        let end = text
            .match_indices(" .")
            .nth(1)
            .map_or(text.len(), |(i, _)| i + 2);
        prompts += &text[..end];
        prompts.push('\n');
    }
    write_atomic(out, prompts.as_bytes())
}
