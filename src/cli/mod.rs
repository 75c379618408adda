//! The command line: one file per subcommand, each with an `XArgs` struct and a `run`.
//!
//! `main` parses, dispatches, and maps any error to a single `error: …` line on stderr and
//! exit code 1 (clap's own usage errors exit with 2). Progress bars live here and only here.

// The one layer that talks to the terminal (the library's lint is in lib.rs).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod analyze;
pub mod cache;
pub mod collect;
pub mod collector_args;
pub mod dashboard;
pub mod data_args;
pub mod demo;
pub mod embedded_default;
pub mod export;
pub mod inspect;
pub mod merge;
pub mod model_args;
pub mod output;
mod overlay;
pub mod probe_args;
pub mod progress;
pub mod report;
pub mod steer;
pub mod train;

#[cfg(test)]
mod defaults;

/// Sparse-autoencoder interpretability: train SAEs on a language model's residual stream,
/// collect the text that makes each feature fire, and turn it into reports.
#[derive(Debug, Parser)]
#[command(
    name = "saectl",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "New here? `saectl demo` runs the whole pipeline on the embedded model in about a minute."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole pipeline on the embedded tiny model and a planted-concept corpus, in a minute.
    Demo(demo::DemoArgs),
    /// Train a sparse autoencoder (or transcoder) on a model's residual stream.
    Train(Box<train::TrainArgs>),
    /// Run an SAE checkpoint over text and keep each feature's top-activating samples.
    Collect(Box<collect::CollectArgs>),
    /// Study a samples folder in the terminal: overview, one feature, comparisons, clusters.
    Analyze(analyze::AnalyzeArgs),
    /// Write the Markdown interpretability report of a samples folder.
    Report(report::ReportArgs),
    /// Every feature in one HTML file that opens offline: search, filters, labels, compare.
    Dashboard(dashboard::DashboardArgs),
    /// Every feature for Neuronpedia: its bulk import layout or its upload API's payloads.
    Export(export::ExportArgs),
    /// Run the model to a hook point over a corpus and store the activations for reuse.
    Cache(cache::CacheArgs),
    /// Merge samples folders collected on disjoint shards (`collect --shard`) into one.
    Merge(merge::MergeArgs),
    /// Which features fire on a text: per token, and over the whole text.
    Inspect(Box<inspect::InspectArgs>),
    /// What a feature does: generation with the feature pushed, beside the unsteered text.
    Steer(Box<steer::SteerArgs>),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` joins the context chain on one line: "failed to read X: No such file".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(mut args) => {
            embedded_default::apply_train(&mut args)?;
            train::run(*args)
        }
        Command::Collect(mut args) => {
            if args.list_releases {
                return collect::list_releases();
            }
            if args.activations.is_none() {
                embedded_default::apply(&mut args.model, &mut args.data)?;
            }
            collect::run(*args)
        }
        Command::Analyze(args) => analyze::run(args),
        Command::Report(args) => report::run(args),
        Command::Dashboard(args) => dashboard::run(args),
        Command::Export(args) => export::run(args),
        Command::Cache(mut args) => {
            embedded_default::apply(&mut args.model, &mut args.data)?;
            cache::run(args)
        }
        Command::Merge(args) => merge::run(args),
        Command::Inspect(mut args) => {
            embedded_default::apply_model(&mut args.probe.model)?;
            inspect::run(*args)
        }
        Command::Steer(mut args) => {
            embedded_default::apply_model(&mut args.probe.model)?;
            steer::run(*args)
        }
        Command::Demo(args) => demo::run(args),
    }
}
