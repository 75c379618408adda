//! `saectl analyze DIR`: placeholder until the analysis views land.

use anyhow::bail;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The samples folder.
    pub dir: PathBuf,
}

pub fn run(_args: AnalyzeArgs) -> anyhow::Result<()> {
    bail!("`saectl analyze` is not available yet")
}
