//! `saectl analyze DIR`: study a samples folder in the terminal.
//!
//! One view per run, chosen by a flag (a clap `ArgGroup` keeps them exclusive): the overview
//! table by default, or one feature, a comparison, a feature's neighbours, clusters, or a
//! histogram. Every view prints text for people, or with `--json` the same data as JSON for
//! programs; both go to stdout. The histogram view also writes an SVG file and says where on
//! stderr.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{ArgGroup, Args};
use serde::Serialize;

use crate::analyze;
use crate::analyze::decoder::DecoderDirections;
use crate::samples::SamplesFolder;
use crate::util::atomic::write_atomic;

use super::output::print_stdout;

const EXAMPLES: &str = "\
Examples:
  saectl analyze runs/samples                      # the 20 most active features
  saectl analyze runs/samples --top 50 --json      # the same, as JSON
  saectl analyze runs/samples --feature 42 -n 10   # one feature, its 10 best examples
  saectl analyze runs/samples --compare 42 1337    # two features side by side
  saectl analyze runs/samples --similar 42 --top-k 10
  saectl analyze runs/samples --clusters --min-similarity 0.4
  saectl analyze runs/samples --histogram 42 --plot-out f42.svg

  saectl analyze runs/samples --similar 42 --checkpoint runs/l12/final   # + decoder cosine

Similarity between features is measured from the stored samples: activating-token overlap
(weighted Jaccard), context overlap (TF-IDF cosine of context tokens), with --checkpoint the
cosine of the features' decoder directions, and their mean; see docs/analysis.md.";

#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
#[command(group(
    ArgGroup::new("view").args(["feature", "compare", "similar", "clusters", "histogram"])
))]
#[command(group(ArgGroup::new("with_examples").args(["feature", "compare"])))]
#[command(group(ArgGroup::new("with_similarity").args(["compare", "similar", "clusters"]).multiple(true)))]
pub struct AnalyzeArgs {
    /// The samples folder (written by `saectl collect` or `saectl train`, or by the Python
    /// original).
    pub dir: PathBuf,

    /// Overview (the default view): how many of the most active features to list.
    #[arg(long, value_name = "N", default_value_t = 20, conflicts_with = "view")]
    pub top: usize,

    /// Report one feature: statistics and its best examples, the activating token marked.
    #[arg(long, value_name = "F")]
    pub feature: Option<u32>,

    /// Examples shown per feature with --feature or --compare [default: 5].
    #[arg(
        short = 'n',
        long = "examples",
        value_name = "N",
        requires = "with_examples"
    )]
    pub examples: Option<usize>,

    /// Compare two features: statistics, examples, shared tokens and similarity measures.
    #[arg(long, num_args = 2, value_names = ["F1", "F2"])]
    pub compare: Option<Vec<u32>>,

    /// List the features most similar to F (combined similarity, highest first).
    #[arg(long, value_name = "F")]
    pub similar: Option<u32>,

    /// How many neighbours --similar lists.
    #[arg(long, value_name = "K", default_value_t = 5, requires = "similar")]
    pub top_k: usize,

    /// Group similar features (average-linkage clustering on the combined similarity).
    #[arg(long)]
    pub clusters: bool,

    /// Clusters merge only while their average similarity is at least this (0 to 1).
    #[arg(long, value_name = "X", default_value_t = 0.3, requires = "clusters")]
    pub min_similarity: f64,

    /// Histogram of feature F's stored activations: bars here, and an SVG file.
    #[arg(long, value_name = "F")]
    pub histogram: Option<u32>,

    /// Number of histogram bins (default: Sturges' rule on the number of samples).
    #[arg(long, value_name = "N", requires = "histogram")]
    pub bins: Option<usize>,

    /// Where to write the histogram's SVG (default: DIR/feature_XXXXX_histogram.svg).
    #[arg(long, value_name = "FILE", requires = "histogram")]
    pub plot_out: Option<PathBuf>,

    /// The SAE the folder was collected with (saectl, SAELens or Gemma Scope): adds the
    /// decoder-direction cosine to --compare, --similar and --clusters.
    #[arg(long, value_name = "PATH", requires = "with_similarity")]
    pub checkpoint: Option<PathBuf>,

    /// Print the view as JSON (machine-readable) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The view to show, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum View {
    Overview {
        top: usize,
    },
    Feature {
        feature: u32,
        examples: usize,
    },
    Compare {
        first: u32,
        second: u32,
        examples: usize,
    },
    Similar {
        feature: u32,
        top_k: usize,
    },
    Clusters {
        min_similarity: f64,
    },
    Histogram {
        feature: u32,
        bins: Option<usize>,
        plot_out: PathBuf,
    },
}

/// A validated `analyze` invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyzeConfig {
    pub dir: PathBuf,
    pub view: View,
    pub json: bool,
    pub checkpoint: Option<PathBuf>,
}

/// Examples per feature unless `-n` says otherwise.
const DEFAULT_EXAMPLES: usize = 5;

impl AnalyzeArgs {
    /// Checks the numbers and picks the view.
    pub fn resolve(self) -> Result<AnalyzeConfig> {
        let examples = at_least_one(self.examples.unwrap_or(DEFAULT_EXAMPLES), "-n/--examples")?;
        let view = if let Some(feature) = self.feature {
            View::Feature { feature, examples }
        } else if let Some(pair) = self.compare {
            View::Compare {
                first: pair[0],
                second: pair[1],
                examples,
            }
        } else if let Some(feature) = self.similar {
            View::Similar {
                feature,
                top_k: at_least_one(self.top_k, "--top-k")?,
            }
        } else if self.clusters {
            if !(0.0..=1.0).contains(&self.min_similarity) {
                bail!(
                    "--min-similarity must be between 0 and 1, got {}",
                    self.min_similarity
                );
            }
            View::Clusters {
                min_similarity: self.min_similarity,
            }
        } else if let Some(feature) = self.histogram {
            let bins = self.bins.map(|b| at_least_one(b, "--bins")).transpose()?;
            let plot_out = self
                .plot_out
                .unwrap_or_else(|| default_plot_path(&self.dir, feature));
            View::Histogram {
                feature,
                bins,
                plot_out,
            }
        } else {
            View::Overview {
                top: at_least_one(self.top, "--top")?,
            }
        };
        Ok(AnalyzeConfig {
            dir: self.dir,
            view,
            json: self.json,
            checkpoint: self.checkpoint,
        })
    }
}

fn at_least_one(value: usize, flag: &str) -> Result<usize> {
    if value == 0 {
        bail!("{flag} must be at least 1");
    }
    Ok(value)
}

/// `DIR/feature_XXXXX_histogram.svg`, numbered like the feature files.
fn default_plot_path(dir: &Path, feature: u32) -> PathBuf {
    dir.join(format!("feature_{feature:05}_histogram.svg"))
}

pub fn run(args: AnalyzeArgs) -> Result<()> {
    let config = args.resolve()?;
    let folder = SamplesFolder::load(&config.dir)?;
    analyze::ensure_has_samples(&folder)?;
    let json = config.json;
    let decoder = match &config.checkpoint {
        Some(path) => {
            let directions = DecoderDirections::load(path)?;
            directions.check_width(folder.summary.as_ref().map(|s| s.d_sae), path)?;
            Some(directions)
        }
        None => None,
    };
    let decoder = decoder.as_ref();
    match config.view {
        View::Overview { top } => show(&analyze::overview(&folder, top), json, |v| v.render_text()),
        View::Feature { feature, examples } => {
            let view = analyze::feature_report(&folder, feature, examples)?;
            show(&view, json, |v| v.render_text())
        }
        View::Compare {
            first,
            second,
            examples,
        } => {
            let view = analyze::compare(&folder, first, second, examples, decoder)?;
            show(&view, json, |v| v.render_text())
        }
        View::Similar { feature, top_k } => show(
            &analyze::similar(&folder, feature, top_k, decoder)?,
            json,
            |v| v.render_text(),
        ),
        View::Clusters { min_similarity } => show(
            &analyze::clusters(&folder, min_similarity, decoder),
            json,
            |v| v.render_text(),
        ),
        View::Histogram {
            feature,
            bins,
            plot_out,
        } => run_histogram(&folder, feature, bins, &plot_out, json),
    }
}

/// The histogram view: SVG to its file, then the view (with the file's path) to stdout.
fn run_histogram(
    folder: &SamplesFolder,
    feature: u32,
    bins: Option<usize>,
    plot_out: &Path,
    json: bool,
) -> Result<()> {
    let view = analyze::feature_histogram(folder, feature, bins)?;
    // No folder sync: the plot is redrawn from the samples folder at will.
    write_atomic(plot_out, view.to_svg().as_bytes())?;
    eprintln!("wrote {}", plot_out.display());
    #[derive(Serialize)]
    struct WithPlot<'a> {
        #[serde(flatten)]
        view: &'a analyze::FeatureHistogram,
        svg: String,
    }
    let with_plot = WithPlot {
        view: &view,
        svg: plot_out.display().to_string(),
    };
    show(&with_plot, json, |v| v.view.render_text())
}

/// Prints `view` as pretty JSON or as its text rendering.
fn show<T: Serialize>(view: &T, json: bool, text: impl Fn(&T) -> String) -> Result<()> {
    let out = if json {
        let mut out = serde_json::to_string_pretty(view)?;
        out.push('\n');
        out
    } else {
        text(view)
    };
    print_stdout(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: AnalyzeArgs,
    }

    fn parse(line: &[&str]) -> Result<AnalyzeConfig, String> {
        let argv = std::iter::once("analyze").chain(line.iter().copied());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.kind().to_string())?;
        cli.args.resolve().map_err(|e| e.to_string())
    }

    #[test]
    fn picks_one_view() {
        assert_eq!(parse(&["d"]).unwrap().view, View::Overview { top: 20 });
        assert_eq!(
            parse(&["d", "--compare", "3", "4", "-n", "2"])
                .unwrap()
                .view,
            View::Compare {
                first: 3,
                second: 4,
                examples: 2
            }
        );
        assert_eq!(
            parse(&["d", "--histogram", "7"]).unwrap().view,
            View::Histogram {
                feature: 7,
                bins: None,
                plot_out: PathBuf::from("d/feature_00007_histogram.svg")
            }
        );
    }

    #[test]
    fn refuses_mixed_or_stray_flags() {
        assert!(parse(&["d", "--feature", "1", "--clusters"]).is_err());
        assert!(parse(&["d", "--top", "5", "--feature", "1"]).is_err());
        assert!(parse(&["d", "-n", "3"]).is_err());
        assert!(parse(&["d", "--top-k", "3"]).is_err());
        assert!(parse(&["d", "--bins", "3"]).is_err());
        assert!(parse(&["d", "--compare", "3"]).is_err());
        assert!(parse(&["d", "--top", "0"]).is_err());
        assert!(parse(&["d", "--feature", "1", "-n", "0"]).is_err());
        assert!(parse(&["d", "--similar", "1", "--top-k", "0"]).is_err());
        assert!(parse(&["d", "--clusters", "--min-similarity", "1.5"]).is_err());
    }
}
