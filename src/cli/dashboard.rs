//! `saectl dashboard DIR`: every feature of the SAE in one HTML file that opens from disk,
//! with no server and no network (see docs/dashboard.md).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::dashboard::prompts::PromptsConfig;
use crate::dashboard::{run as build, DashboardConfig, SplitMode, DASHBOARD_FILE_NAME};
use crate::features::model::ExampleCounts;
use crate::model::DeviceChoice;
use crate::probe::read_texts;

const EXAMPLES: &str = "\
Examples:
  saectl dashboard runs/samples                       # runs/samples/dashboard.html
  saectl dashboard runs/samples --checkpoint runs/l12 -o l12.html
  saectl dashboard saectl-demo/samples -o saectl-demo/dashboard.html
  saectl dashboard saectl-demo/samples --checkpoint saectl-demo/run --prompts texts.txt

Open the file in a browser. Search: tok:Paris, logit:def, text:\"Eiffel Tower\", #123,
density<1e-5, max>10. Labels written on the page export as JSON for `saectl report --labels`.";

#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct DashboardArgs {
    /// The samples folder (from `collect`, or a training run's activation_samples).
    pub dir: PathBuf,

    /// Where to write the page [default: DIR/dashboard.html].
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// The SAE checkpoint, for decoder-cosine neighbours (anything `collect --checkpoint` reads).
    #[arg(long, value_name = "SAE")]
    pub checkpoint: Option<PathBuf>,

    /// tokenizer.json to decode the samples with [default: the one the collection recorded].
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,

    /// Top examples per feature (the collector keeps up to --max-samples-per-feature).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top_examples: usize,

    /// Always put the data in sibling files (`<page>.data/` beside the page); by default only
    /// above 64 MiB.
    #[arg(long)]
    pub split: bool,

    /// Texts for the prompt view, one per line (`-`: standard input): the model and the SAE
    /// (--checkpoint) run on each, as `saectl inspect` does, and the page shows which features
    /// fire on every token.
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,

    /// The model for --prompts [default: the one the collection recorded]: a Hugging Face
    /// repo id or a local folder.
    #[arg(long, value_name = "REPO|DIR")]
    pub model: Option<String>,

    /// Device for --prompts: auto, cpu, cuda[:N], metal[:N].
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    pub device: DeviceChoice,
}

impl DashboardArgs {
    pub fn resolve(self) -> Result<DashboardConfig> {
        if self.top_examples == 0 {
            bail!("--top-examples must be at least 1");
        }
        let out = self
            .out
            .unwrap_or_else(|| self.dir.join(DASHBOARD_FILE_NAME));
        if out.extension().is_none_or(|e| e != "html") {
            bail!("-o {} must name an .html file", out.display());
        }
        if self.prompts.is_some() && self.checkpoint.is_none() {
            bail!("--prompts runs the SAE on the texts: give it with --checkpoint");
        }
        if self.prompts.is_none() && self.model.is_some() {
            bail!("--model is only read with --prompts (the samples need no model)");
        }
        let prompts = match &self.prompts {
            Some(path) => Some(PromptsConfig {
                texts: read_texts(path)?,
                model: self.model,
                device: self.device,
            }),
            None => None,
        };
        Ok(DashboardConfig {
            samples: self.dir,
            out,
            checkpoint: self.checkpoint,
            tokenizer: self.tokenizer,
            counts: ExampleCounts {
                top: self.top_examples,
            },
            split: if self.split {
                SplitMode::Always
            } else {
                SplitMode::Auto
            },
            prompts,
        })
    }
}

pub fn run(args: DashboardArgs) -> Result<()> {
    let config = args.resolve()?;
    let spinner = ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        spinner.set_draw_target(ProgressDrawTarget::hidden());
    }
    spinner.set_style(
        ProgressStyle::with_template("dashboard {spinner} {msg} [{elapsed}]")
            .expect("progress template is valid"),
    );
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let outcome = build(&config, &mut |stage| spinner.set_message(stage.to_string()));
    spinner.finish_and_clear();
    let outcome = outcome?;
    for note in &outcome.notes {
        eprintln!("note: {note}");
    }
    let files = &outcome.files;
    let split = if files.data_files.is_empty() {
        String::new()
    } else {
        format!(" + {} data files", files.data_files.len())
    };
    eprintln!(
        "wrote {}{split}: {} features, {} examples, {:.1} MiB ({:.0} B per feature), in {:.1} s; tokens decoded with {}",
        files.html.display(),
        outcome.features,
        outcome.examples,
        files.total_bytes as f64 / (1 << 20) as f64,
        files.total_bytes as f64 / outcome.features.max(1) as f64,
        outcome.seconds,
        outcome.tokenizer,
    );
    if outcome.prompts > 0 {
        eprintln!(
            "the prompt view holds {} texts: file://{}#prompts",
            outcome.prompts,
            absolute(&files.html).display()
        );
    }
    eprintln!(
        "open it in a browser: file://{}",
        absolute(&files.html).display()
    );
    Ok(())
}

fn absolute(path: &std::path::Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}
