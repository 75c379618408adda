//! `saectl report DIR`: write the Markdown interpretability report of a samples folder.
//!
//! The report goes to `DIR/interpretability_report.md` unless `--out` says otherwise; it is
//! written atomically, and its path is printed on stderr (stdout stays free for data).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::analyze::ensure_has_samples;
use crate::dashboard::DASHBOARD_FILE_NAME;
use crate::report::{render_report, ReportOptions};
use crate::samples::{SamplesDir, SamplesFolder};
use crate::util::atomic::write_atomic;

const EXAMPLES: &str = "\
Examples:
  saectl report runs/samples                          # runs/samples/interpretability_report.md
  saectl report runs/samples --out report.md --top-k-features 10 --examples-per-feature 5
  saectl report runs/samples --labels labels.json     # labels exported from the dashboard

Each feature links to its page in a dashboard.html beside the report, when there is one.

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
    #[arg(long, value_name = "N", default_value_t = ReportOptions::default().top_k_features)]
    pub top_k_features: usize,

    /// Examples shown per feature.
    #[arg(long, value_name = "N", default_value_t = ReportOptions::default().examples_per_feature)]
    pub examples_per_feature: usize,

    /// Uniform samples shown per activation interval (0: leave the intervals out).
    #[arg(long, value_name = "N", default_value_t = ReportOptions::default().interval_examples)]
    pub interval_examples: usize,

    /// Labels exported from the dashboard (its "Export labels" button), shown per feature.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
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
        let out = self
            .out
            .unwrap_or_else(|| SamplesDir::new(&self.dir).report());
        let labels = match &self.labels {
            Some(path) => crate::features::read_labels(path)?,
            None => Default::default(),
        };
        // Relative to the report, so the pair can be moved together.
        let dashboard_link =
            crate::dashboard::beside(&out).map(|_| DASHBOARD_FILE_NAME.to_string());
        Ok(ReportConfig {
            dir: self.dir,
            out,
            options: ReportOptions {
                top_k_features: self.top_k_features,
                examples_per_feature: self.examples_per_feature,
                interval_examples: self.interval_examples,
                labels,
                dashboard_link,
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
