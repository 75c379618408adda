//! `saectl inspect`: which features fire on a text — per token, and over the whole text —
//! with each feature's top tokens and label from a samples folder and a labels file.
//! The work is `probe::inspect`; this file parses, validates and prints.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::output::print_stdout;
use super::probe_args::ProbeArgs;
use super::progress::count_bar;
use crate::probe::{inspect::inspect_with_progress, read_labels, FeatureContext, InspectConfig};
use crate::samples::SamplesFolder;

const EXAMPLES: &str = "\
Examples (without --model: the embedded demo model):
  saectl inspect --checkpoint saectl-demo/run \"alice saw a brown fox near the river .\"
  saectl inspect --checkpoint saectl-demo/run --samples saectl-demo/samples --file texts.txt
  saectl inspect --checkpoint gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz \\
    --model google/gemma-2-2b --labels labels.json --json \"The Eiffel Tower is in Paris.\"

--labels reads what the dashboard exports: {\"<feature index>\": \"label\", ...}.
See docs/probe.md for the ranking and how long texts are windowed.";

#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct InspectArgs {
    /// A samples folder of this SAE (`collect`, `train`): each feature's top tokens beside it.
    #[arg(long, value_name = "DIR")]
    pub samples: Option<PathBuf>,

    /// Feature labels, as the dashboard exports them: {"<feature index>": "label", ...}.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Features listed per token.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top_per_token: usize,

    /// Features listed over each text (ranked by the sum of their activations).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top_features: usize,

    /// Top tokens listed per feature from --samples.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub tokens_per_feature: usize,

    /// Tokens per forward pass; longer texts run in windows that re-read a quarter of one.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub window: usize,

    /// Report the activations on special tokens (the BOS…) too.
    #[arg(long)]
    pub include_special_tokens: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// A validated `inspect` invocation, before anything is loaded.
struct InspectRun {
    texts: Vec<String>,
    config: InspectConfig,
    context: FeatureContext,
}

impl InspectArgs {
    fn resolve(&self) -> Result<InspectRun> {
        if self.top_per_token == 0 && self.top_features == 0 {
            bail!("--top-per-token and --top-features are both 0: nothing to show");
        }
        let config = InspectConfig {
            top_per_token: self.top_per_token,
            top_features: self.top_features,
            window: self.window,
            include_special_tokens: self.include_special_tokens,
        };
        config.validate()?;
        let samples = self
            .samples
            .as_deref()
            .map(SamplesFolder::load)
            .transpose()?;
        let labels = match &self.labels {
            Some(path) => read_labels(path)?,
            None => Default::default(),
        };
        Ok(InspectRun {
            texts: self.probe.texts()?,
            config,
            context: FeatureContext::new(samples, labels, self.tokens_per_feature),
        })
    }
}

pub fn run(args: InspectArgs) -> Result<()> {
    let run = args.resolve()?;
    let probe = args.probe.open(false)?;
    let bar = count_bar(run.texts.len() as u64, "inspect", "texts");
    let result = inspect_with_progress(&probe, &run.texts, &run.config, &run.context, &mut |_| {
        bar.inc(1)
    })?;
    bar.finish_and_clear();
    let output = if args.probe.json {
        serde_json::to_string_pretty(&result)? + "\n"
    } else {
        result.render_text()
    };
    print_stdout(&output)
}
