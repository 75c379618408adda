//! `saectl export neuronpedia DIR`: a samples folder's features in the formats Neuronpedia
//! imports (docs/export.md); `--check OUT` validates a written layout.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::export::check::check;
use crate::export::{run as export, ExportConfig, ExportMode, Target, DEFAULT_CREATOR_ID};

const EXAMPLES: &str = "\
Examples:
  saectl export neuronpedia runs/samples --model-id gemma-2-2b --source-set saectl-res-16k --layer 12
  saectl export neuronpedia runs/samples --model-id gemma-2-2b --source-set saectl-res-16k \\
    --checkpoint runs/l12 --labels labels.json --mode api -o np-upload
  saectl export neuronpedia --check runs/samples/neuronpedia

The bulk layout goes to OUT/{model}/{layer}-{set}/ (Neuronpedia's own); --mode api writes the
bodies of its upload API instead, to send with an API key. Nothing is sent. See docs/export.md.";

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub target: ExportTarget,
}

#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// Every feature for Neuronpedia: its bulk layout, or its upload API's payloads.
    Neuronpedia(NeuronpediaArgs),
}

/// The import route the files are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Neuronpedia's bulk layout (JSON lines, gzipped), for its admin import.
    Bulk,
    /// The JSON bodies of its public API (model/new, source-set/new, feature/upload-batch).
    Api,
}

#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct NeuronpediaArgs {
    /// The samples folder (from `collect`, or a training run's activation_samples).
    #[arg(required_unless_present = "check")]
    pub dir: Option<PathBuf>,

    /// The model's id on Neuronpedia, e.g. gemma-2-2b.
    #[arg(long, value_name = "ID", required_unless_present = "check")]
    pub model_id: Option<String>,

    /// The source set (the SAE family) on Neuronpedia, e.g. saectl-res-16k; the source is
    /// LAYER-NAME.
    #[arg(long, value_name = "NAME", required_unless_present = "check")]
    pub source_set: Option<String>,

    /// The layer [default: the collection's hook's].
    #[arg(long, value_name = "L")]
    pub layer: Option<usize>,

    /// Where to write [default: DIR/neuronpedia]; the files go to OUT/MODEL/LAYER-SET/.
    #[arg(short, long, value_name = "OUT")]
    pub out: Option<PathBuf>,

    #[arg(long, value_enum, default_value_t = ModeArg::Bulk)]
    pub mode: ModeArg,

    /// The SAE, for decoder-cosine neighbours and alignments [default: the one the
    /// collection recorded, when it is on disk].
    #[arg(long, value_name = "SAE")]
    pub checkpoint: Option<PathBuf>,

    /// tokenizer.json to decode the samples with [default: the one the collection recorded].
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,

    /// Labels exported from the dashboard, written as explanations.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Top examples per feature (the collector keeps up to --max-samples-per-feature).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top_examples: usize,

    /// The model's number of layers, when its config.json is not at hand.
    #[arg(long, value_name = "N")]
    pub model_layers: Option<usize>,

    /// Neuronpedia user id the rows are created by [default: its local seed user].
    #[arg(long, value_name = "ID", default_value = DEFAULT_CREATOR_ID)]
    pub creator_id: String,

    /// The name shown as the source set's creator.
    #[arg(long, value_name = "NAME", default_value = "saectl")]
    pub creator_name: String,

    /// Validate an export instead of writing one: every problem on its own line.
    #[arg(long, value_name = "OUT", conflicts_with_all = ["dir", "model_id", "source_set"])]
    pub check: Option<PathBuf>,
}

impl NeuronpediaArgs {
    pub fn resolve(self) -> Result<ExportConfig> {
        let (Some(dir), Some(model_id), Some(source_set)) =
            (self.dir, self.model_id, self.source_set)
        else {
            bail!("give the samples folder, --model-id and --source-set");
        };
        let mode = match self.mode {
            ModeArg::Bulk => ExportMode::Bulk,
            ModeArg::Api => ExportMode::Api,
        };
        let target = Target {
            model_id,
            source_set,
            layer: self.layer,
            creator_id: self.creator_id,
            creator_name: self.creator_name,
        };
        target.validate(mode)?;
        if self.top_examples == 0 {
            bail!("--top-examples must be at least 1");
        }
        Ok(ExportConfig {
            out: self.out.unwrap_or_else(|| dir.join("neuronpedia")),
            samples: dir,
            mode,
            target,
            checkpoint: self.checkpoint,
            tokenizer: self.tokenizer,
            labels: self.labels,
            top_examples: self.top_examples,
            model_layers: self.model_layers,
        })
    }
}

pub fn run(args: ExportArgs) -> Result<()> {
    let ExportTarget::Neuronpedia(args) = args.target;
    if let Some(dir) = &args.check {
        return run_check(dir);
    }
    let config = args.resolve()?;
    let spinner = ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        spinner.set_draw_target(ProgressDrawTarget::hidden());
    }
    spinner.set_style(
        ProgressStyle::with_template("export {spinner} {msg} [{elapsed}]")
            .expect("progress template is valid"),
    );
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let outcome = export(&config, &mut |stage| spinner.set_message(stage.to_string()));
    spinner.finish_and_clear();
    let outcome = outcome?;
    for note in &outcome.notes {
        eprintln!("note: {note}");
    }
    let skipped = match outcome.mode {
        ExportMode::Bulk => "dead, listed in skipped_indexes.json",
        ExportMode::Api => "without examples, listed in skipped_indexes.json",
    };
    eprintln!(
        "wrote {} ({}): {} features ({} {skipped}), {} activations, {} explanations; {} files, {:.1} MiB, in {:.1} s",
        outcome.dir.display(),
        outcome.mode.name(),
        outcome.features,
        outcome.skipped,
        outcome.activations,
        outcome.explanations,
        outcome.files,
        outcome.bytes as f64 / (1 << 20) as f64,
        outcome.seconds
    );
    eprintln!(
        "check it: saectl export neuronpedia --check {}",
        outcome.dir.display()
    );
    Ok(())
}

/// `--check`: problems on stdout, one per line; an error when there is any.
fn run_check(dir: &std::path::Path) -> Result<()> {
    let report = check(dir)?;
    for problem in &report.problems {
        println!("{problem}");
    }
    let what = format!(
        "{} source folder(s): {} features, {} activations, {} explanations, {} API batches",
        report.sources.len(),
        report.features,
        report.activations,
        report.explanations,
        report.api_batches
    );
    if !report.problems.is_empty() {
        bail!(
            "{} problems in {} ({what})",
            report.problems.len(),
            dir.display()
        );
    }
    eprintln!("{}: no problems in {what}", dir.display());
    Ok(())
}
