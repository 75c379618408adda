//! `saectl collect`: run an SAE checkpoint over text and write a samples folder
//! (arrives with the model and checkpoint issues).
//!
//! The collector itself is finished (`crate::collect`); what is missing is the model forward
//! pass and the checkpoint readers that feed it. Until they land the command says so.

use anyhow::bail;
use clap::Args;

use super::collector_args::CollectorArgs;

#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub collector: CollectorArgs,
}

pub fn run(args: CollectArgs) -> anyhow::Result<()> {
    args.collector.collector_config()?;
    bail!(
        "`saectl collect` is not available yet in this build: the model forward pass and \
         checkpoint readers have not landed"
    )
}
