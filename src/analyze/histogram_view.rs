//! `--histogram F`: how a feature's stored activations are spread, as terminal bars and as
//! an SVG picture.
//!
//! A samples folder holds only each feature's top samples, so this is the upper tail of the
//! feature's distribution, not all of it; the mean over every activation (from the
//! statistics) is drawn as a marker, and usually lies left of the bars.

use anyhow::Result;
use serde::Serialize;

use super::histogram::{sturges_bins, Histogram};
use super::stats::{feature_with_samples, FeatureStats};
use super::svg::{histogram_svg, Marker, PlotText};
use crate::collect::SamplesFolder;

/// The histogram of one feature's stored activations.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureHistogram {
    pub stats: FeatureStats,
    /// Stored samples binned.
    pub samples: usize,
    pub histogram: Histogram,
}

/// Bins the stored activations of `feature` into `bins` bins (default: Sturges' rule).
pub fn feature_histogram(
    folder: &SamplesFolder,
    feature: u32,
    bins: Option<usize>,
) -> Result<FeatureHistogram> {
    let file = feature_with_samples(folder, feature)?;
    let values: Vec<f64> = file
        .top_samples
        .iter()
        .map(|s| f64::from(s.activation_value))
        .collect();
    let bins = bins.unwrap_or_else(|| sturges_bins(values.len()));
    Ok(FeatureHistogram {
        stats: FeatureStats::new(file, folder.summary.as_ref()),
        samples: values.len(),
        histogram: Histogram::of_values(&values, bins)?,
    })
}

impl FeatureHistogram {
    fn title(&self) -> String {
        format!(
            "Feature {}: activations of its {} stored samples",
            self.stats.feature, self.samples
        )
    }

    pub fn render_text(&self) -> String {
        format!(
            "{} (the top of its distribution, not all of it)\n  mean over all {} activations: {:.4}, max: {:.4}\n{}",
            self.title(),
            self.stats.activation_count,
            self.stats.mean_activation,
            self.stats.max_activation,
            self.histogram.render_bars()
        )
    }

    /// The SVG picture, with the mean over all activations and the max as marker lines.
    pub fn to_svg(&self) -> String {
        let text = PlotText {
            title: self.title(),
            x_label: "activation".to_string(),
            y_label: "stored samples".to_string(),
        };
        let markers = [
            Marker {
                label: format!("mean of all activations {:.4}", self.stats.mean_activation),
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
        histogram_svg(&self.histogram, &text, &markers)
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
        assert_eq!(view.samples, 3);
        assert_eq!(view.histogram.counts, vec![1, 0, 2]);
        assert!(view
            .render_text()
            .contains("activations of its 3 stored samples"));
        assert!(view.to_svg().contains("max 1.0000"));
        assert!(feature_histogram(&folder, 4, None).is_err());
    }
}
