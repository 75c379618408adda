//! `saectl report DIR`: write the Markdown interpretability report of a samples folder.
//!
//! The report goes to `DIR/interpretability_report.md` unless `--out` says otherwise; it is
//! written atomically, and its path is printed on stderr (stdout stays free for data).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::analyze::ensure_has_samples;
use crate::collect::format::REPORT_FILE_NAME;
use crate::collect::SamplesFolder;
use crate::report::{render_report, ReportOptions};
use crate::util::atomic::write_atomic;

const EXAMPLES: &str = "\
Examples:
  saectl report runs/samples                          # runs/samples/interpretability_report.md
  saectl report runs/samples --out report.md --top-k-features 10 --examples-per-feature 5

The same folder always gives the same bytes (no dates, no absolute paths).";

#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct ReportArgs {
    /// The samples folder.
    pub dir: PathBuf,

    /// Where to write the report [default: DIR/interpretability_report.md].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Features reported, the largest max activation first.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub top_k_features: usize,

    /// Examples shown per feature.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub examples_per_feature: usize,

    /// Uniform samples shown per activation interval (0: leave the intervals out).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub interval_examples: usize,
}

/// A validated `report` invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportConfig {
    pub dir: PathBuf,
    pub out: PathBuf,
    pub options: ReportOptions,
}

impl ReportArgs {
    pub fn resolve(self) -> Result<ReportConfig> {
        if self.top_k_features == 0 {
            bail!("--top-k-features must be at least 1");
        }
        if self.examples_per_feature == 0 {
            bail!("--examples-per-feature must be at least 1");
        }
        let out = self.out.unwrap_or_else(|| self.dir.join(REPORT_FILE_NAME));
        Ok(ReportConfig {
            dir: self.dir,
            out,
            options: ReportOptions {
                top_k_features: self.top_k_features,
                examples_per_feature: self.examples_per_feature,
                interval_examples: self.interval_examples,
            },
        })
    }
}

pub fn run(args: ReportArgs) -> Result<()> {
    let config = args.resolve()?;
    let folder = SamplesFolder::load(&config.dir)?;
    ensure_has_samples(&folder)?;
    let report = render_report(&folder, &config.options);
    // No folder sync: a report lost to a power cut is written again from the folder in a second.
    write_atomic(&config.out, report.as_bytes())?;
    eprintln!("wrote {}", config.out.display());
    Ok(())
}
