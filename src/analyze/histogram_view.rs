//! `--histogram F`: how a feature's activations are spread, as terminal bars and as an SVG
//! picture.
//!
//! Folders written by saectl with the feature view hold a histogram of **every** activation
//! above the threshold in fixed log-spaced bins; the view shows it, adjacent bins merged until
//! at most `--bins` bars remain (default 24). Older folders (and the Python original's) hold
//! only each feature's top samples: the view then bins those, which is the upper tail of the
//! distribution, not all of it. Either way the mean over every activation (from the
//! statistics) and the max are drawn as markers.

use anyhow::Result;
use serde::Serialize;

use super::feature_view::{activation_histogram, DEFAULT_MAX_BARS};
use super::histogram::{sturges_bins, Histogram};
use super::stats::{feature_with_samples, FeatureStats, StatsScope};
use super::svg::{histogram_svg, Marker, PlotText, XScale};
use crate::samples::SamplesFolder;

/// What a feature histogram bins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistogramSource {
    /// Every activation above the threshold (the folder's fixed-bin histogram).
    AllActivations,
    /// Only the stored top samples (folders without the feature view).
    StoredSamples,
}

/// The histogram of one feature's activations.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureHistogram {
    pub stats: FeatureStats,
    pub source: HistogramSource,
    /// Activations binned.
    pub samples: usize,
    pub histogram: Histogram,
}

/// The histogram of `feature`: every activation, in at most `bins` bars (default 24), when
/// the folder recorded it; else its stored samples in `bins` equal bins (default: Sturges).
pub fn feature_histogram(
    folder: &SamplesFolder,
    feature: u32,
    bins: Option<usize>,
) -> Result<FeatureHistogram> {
    let file = feature_with_samples(folder, feature)?;
    let stats = FeatureStats::new(file, folder.summary.as_ref());
    if let Some(histogram) = activation_histogram(file, bins.unwrap_or(DEFAULT_MAX_BARS)) {
        return Ok(FeatureHistogram {
            stats,
            source: HistogramSource::AllActivations,
            samples: histogram.total() as usize,
            histogram,
        });
    }
    let values: Vec<f64> = file
        .top_samples
        .iter()
        .map(|s| f64::from(s.activation_value))
        .collect();
    let bins = bins.unwrap_or_else(|| sturges_bins(values.len()));
    Ok(FeatureHistogram {
        stats,
        source: HistogramSource::StoredSamples,
        samples: values.len(),
        histogram: Histogram::of_values(&values, bins)?,
    })
}

impl FeatureHistogram {
    fn title(&self) -> String {
        match self.source {
            HistogramSource::AllActivations => format!(
                "Feature {}: all {} activations above the threshold",
                self.stats.feature, self.samples
            ),
            HistogramSource::StoredSamples => format!(
                "Feature {}: activations of its {} stored samples",
                self.stats.feature, self.samples
            ),
        }
    }

    pub fn render_text(&self) -> String {
        let note = match self.source {
            HistogramSource::AllActivations => "log-spaced bins",
            HistogramSource::StoredSamples => "the top of its distribution, not all of it",
        };
        format!(
            "{} ({note})\n  {}: {:.4}, max: {:.4}\n{}",
            self.title(),
            self.mean_label(),
            self.stats.mean_activation,
            self.stats.max_activation,
            self.histogram.render_bars()
        )
    }

    /// What the folder's mean is over: every activation (saectl), or the stored samples (the
    /// original's statistics).
    fn mean_label(&self) -> String {
        match self.stats.scope {
            StatsScope::AllActivations => {
                format!("mean over all {} activations", self.stats.activation_count)
            }
            StatsScope::StoredSamples => {
                format!("mean of the {} stored samples", self.stats.samples_stored)
            }
        }
    }

    /// The SVG picture, with the mean and the max as marker lines. The collector's bins are
    /// log-spaced: they are drawn on a log axis as activations per octave, so that a wide bin
    /// does not look tall for being wide; stored samples are binned equally and drawn as counts.
    pub fn to_svg(&self) -> String {
        let positive = self.histogram.edges[0] > 0.0 && self.stats.mean_activation > 0.0;
        let (x_scale, x_label, y_label) = match self.source {
            HistogramSource::AllActivations if positive => (
                XScale::Log,
                "activation (log scale)",
                "activations per octave (bar area = count)",
            ),
            HistogramSource::AllActivations => {
                (XScale::Linear, "activation", "activations per bin")
            }
            HistogramSource::StoredSamples => (XScale::Linear, "activation", "stored samples"),
        };
        let text = PlotText {
            title: self.title(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
        };
        let markers = [
            Marker {
                label: format!("{} {:.4}", self.mean_label(), self.stats.mean_activation),
                value: self.stats.mean_activation,
                color: "#dd8452",
                dashed: true,
            },
            Marker {
                label: format!("max {:.4}", self.stats.max_activation),
                value: self.stats.max_activation,
                color: "#c44e52",
                dashed: false,
            },
        ];
        histogram_svg(&self.histogram, &text, &markers, x_scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::test_support::{file_with, folder_with};

    #[test]
    fn bins_the_stored_samples() {
        let folder = folder_with(vec![file_with(
            3,
            &[(1, "a", 1.0), (1, "a", 0.9), (2, "b", 0.25)],
        )]);
        let view = feature_histogram(&folder, 3, Some(3)).unwrap();
        assert_eq!(view.source, HistogramSource::StoredSamples);
        assert_eq!(view.samples, 3);
        assert_eq!(view.histogram.counts, vec![1, 0, 2]);
        assert!(view
            .render_text()
            .contains("activations of its 3 stored samples"));
        assert!(view.to_svg().contains("max 1.0000"));
        assert!(feature_histogram(&folder, 4, None).is_err());
    }

    #[test]
    fn shows_every_activation_when_the_folder_recorded_them() {
        use crate::samples::bins::bin_lower;
        use crate::samples::format::ActivationHistogram;
        let mut file = file_with(3, &[(1, "a", 1.0)]);
        file.activation_histogram = Some(ActivationHistogram {
            first_bin: 65,
            edges: (65..=68).map(bin_lower).collect(),
            counts: vec![4, 0, 6],
        });
        let folder = folder_with(vec![file]);
        let view = feature_histogram(&folder, 3, None).unwrap();
        assert_eq!(
            (view.source, view.samples, view.histogram.counts.clone()),
            (HistogramSource::AllActivations, 10, vec![4, 0, 6])
        );
        assert!(view
            .render_text()
            .contains("all 10 activations above the threshold"));
        assert!(view.to_svg().contains("activations per octave"));
        // At most 2 bars: bins merge in aligned pairs, (65, 66) and (67, 68).
        let view = feature_histogram(&folder, 3, Some(2)).unwrap();
        assert_eq!(view.histogram.counts, vec![4, 6]);
    }
}
