//! `saectl train`: fit an SAE on a model's residual stream (arrives with the training issue).
//!
//! The flags that exist today are the ones already settled: the original's sample-collection
//! keys. Until the trainer lands the command says so and exits non-zero rather than pretend.

use anyhow::bail;
use clap::Args;

use super::collector_args::CollectorArgs;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Collect top-activating samples while training (the original's `save_activation_samples`).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub save_activation_samples: bool,

    /// Collect samples every N training steps (step 0 included).
    #[arg(long, default_value_t = 1000, value_name = "STEPS")]
    pub sample_collection_freq: u64,

    #[command(flatten)]
    pub collector: CollectorArgs,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    args.collector.collector_config()?;
    bail!("`saectl train` is not available yet in this build: the SAE trainer has not landed")
}
