//! The report's feature-view sections: the histogram of every activation and the interval
//! samples (only for folders that recorded them).

use crate::analyze::feature_view::{activation_histogram, IntervalExamples, DEFAULT_MAX_BARS};
use crate::collect::format::FeatureFile;

use super::sections::example_line;

/// `**Activation histogram**` and the terminal bars in a text block.
pub fn histogram(file: &FeatureFile) -> String {
    let Some(histogram) = activation_histogram(file, DEFAULT_MAX_BARS) else {
        return String::new();
    };
    format!(
        "**Activation histogram** (all {} activations above the threshold, log-spaced bins):\n\n```text\n{}```\n\n",
        histogram.total(),
        histogram.render_bars()
    )
}

/// `**Interval samples**`: per interval, strongest first, its range and up to `examples`
/// uniform samples.
pub fn intervals(file: &FeatureFile, examples: usize) -> String {
    let Some(intervals) = file.interval_samples.as_ref().filter(|i| !i.is_empty()) else {
        return String::new();
    };
    if examples == 0 {
        return String::new();
    }
    let mut out = String::from("**Interval samples** (drawn uniformly within each interval):\n\n");
    for interval in intervals.iter().rev() {
        out += &format!("*{}*\n\n", IntervalExamples::new(interval, 0).heading());
        let shown: Vec<_> = interval.samples.iter().take(examples).collect();
        for (i, sample) in shown.iter().enumerate() {
            out += &example_line(i + 1, sample);
        }
        if !shown.is_empty() {
            out.push('\n');
        }
    }
    out
}
