//! `saectl report DIR`: placeholder until the report lands.

use anyhow::bail;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The samples folder.
    pub dir: PathBuf,
}

pub fn run(_args: ReportArgs) -> anyhow::Result<()> {
    bail!("`saectl report` is not available yet")
}
