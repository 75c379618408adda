//! The full feature view of a saved feature, as the views show it: its activation histogram
//! over every activation, its interval samples, its position histogram and its flags.
//!
//! Folders written before the feature view (and the Python original's) have none of it: every
//! part here is optional and the views leave out what the folder did not record.

use serde::Serialize;

use super::example::{examples_of, Example};
use super::histogram::Histogram;
use super::text::{fmt_density, visible_token};
use crate::samples::bins::{ACTIVATION_BINS, POSITION_BIN_STARTS};
use crate::samples::format::{
    ActivationHistogram, ActivationInterval, FeatureFile, FeatureFlags, PositionHistogram,
};

/// Bars a histogram is regrouped to at most, unless a view asks otherwise.
pub const DEFAULT_MAX_BARS: usize = 24;

/// The activation histogram of a feature file, adjacent fixed bins merged (in groups of 1,
/// 2, 4 or 8 — an octave — aligned on the fixed layout) until at most `max_bars` remain.
/// Merging bins only adds counts, so the picture stays exact.
pub fn activation_histogram(file: &FeatureFile, max_bars: usize) -> Option<Histogram> {
    let recorded = file.activation_histogram.as_ref()?;
    regroup(recorded, max_bars.max(1))
}

fn regroup(recorded: &ActivationHistogram, max_bars: usize) -> Option<Histogram> {
    let first = recorded.first_bin as usize;
    let group_of = |bin: usize, size: usize| match bin {
        0 => 0,
        b if b == ACTIVATION_BINS - 1 => usize::MAX,
        b => 1 + (b - 1) / size,
    };
    let mut size = 1;
    loop {
        let bins = first..first + recorded.counts.len();
        let groups = bins.clone().map(|b| group_of(b, size));
        let mut edges = vec![recorded.edges[0]];
        let mut counts: Vec<u64> = Vec::new();
        let mut previous = None;
        for (k, group) in groups.enumerate() {
            if previous == Some(group) {
                *counts.last_mut()? += recorded.counts[k];
                *edges.last_mut()? = recorded.edges[k + 1];
            } else {
                counts.push(recorded.counts[k]);
                edges.push(recorded.edges[k + 1]);
            }
            previous = Some(group);
        }
        if counts.len() <= max_bars || size >= 1 << 20 {
            return Histogram::new(edges, counts).ok();
        }
        size *= 2;
    }
}

/// One interval with its samples as the views show them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IntervalExamples {
    /// 1-based.
    pub number: usize,
    pub min_fraction: f64,
    pub max_fraction: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub activation_count: u64,
    pub examples: Vec<Example>,
}

impl IntervalExamples {
    pub fn new(interval: &ActivationInterval, examples: usize) -> Self {
        Self {
            number: interval.interval as usize + 1,
            min_fraction: interval.min_fraction,
            max_fraction: interval.max_fraction,
            lower: interval.lower,
            upper: interval.upper,
            activation_count: interval.activation_count,
            examples: examples_of(interval.samples.iter().take(examples)),
        }
    }

    /// `Interval 2 (0.2–0.4 of max: 0.1953–0.3906, 120 activations)`.
    pub fn heading(&self) -> String {
        let range = match (self.lower, self.upper) {
            (Some(lower), Some(upper)) => format!("{lower:.4}–{upper:.4}"),
            _ => "no activation bin".to_string(),
        };
        format!(
            "Interval {} ({:.2}–{:.2} of max: {range}, {} activations)",
            self.number, self.min_fraction, self.max_fraction, self.activation_count
        )
    }
}

/// The feature's intervals, up to `examples` samples each (empty when not recorded).
pub fn interval_examples(file: &FeatureFile, examples: usize) -> Vec<IntervalExamples> {
    file.interval_samples
        .iter()
        .flatten()
        .map(|interval| IntervalExamples::new(interval, examples))
        .collect()
}

/// `0`, `1`, `2–3`, …, `64+`: the positions of position bin `bin`.
pub fn position_range(bin: usize) -> String {
    let starts = POSITION_BIN_STARTS;
    match (starts.get(bin), starts.get(bin + 1)) {
        (Some(&start), Some(&next)) if next == start + 1 => start.to_string(),
        (Some(&start), Some(&next)) => format!("{start}–{}", next - 1),
        (Some(&start), None) => format!("{start}+"),
        _ => "?".to_string(),
    }
}

/// `0: 0 · 1: 10 · 2–3: 1 · …`: activations per position bin, on one line.
pub fn render_positions(positions: &PositionHistogram) -> String {
    let parts: Vec<String> = positions
        .counts
        .iter()
        .enumerate()
        .map(|(bin, count)| format!("{}: {count}", position_range(bin)))
        .collect();
    parts.join(" · ")
}

/// The flags a feature carries, each with its evidence, e.g.
/// `single-token (␣cat, 84% of 64 sampled activations)`.
pub fn flag_labels(flags: &FeatureFlags, density: Option<f64>) -> Vec<String> {
    let mut labels = Vec::new();
    if flags.dead {
        labels.push("dead".to_string());
    }
    if flags.ultra_rare {
        labels.push(format!("ultra-rare (density {})", fmt_density(density)));
    }
    if flags.single_token {
        let token = flags
            .top_token_text
            .as_deref()
            .map(visible_token)
            .or(flags.top_token.map(|t| format!("token {t}")))
            .unwrap_or_default();
        labels.push(format!(
            "single-token ({token}, {:.0}% of {} sampled activations)",
            100.0 * flags.top_token_share,
            flags.token_sample_size
        ));
    }
    if flags.position_dominated {
        let range = flags
            .top_position_bin
            .map_or("?".to_string(), |bin| position_range(bin as usize));
        let noun = if range.contains(['–', '+']) {
            "positions"
        } else {
            "position"
        };
        labels.push(format!(
            "position-dominated ({noun} {range}: {:.0}%)",
            100.0 * flags.top_position_share
        ));
    }
    if flags.bos_dominated {
        labels.push(format!(
            "BOS-dominated (special tokens: {:.0}% of {} activations there)",
            100.0 * flags.special_token_share,
            flags.special_token_activations
        ));
    }
    labels
}

/// Short names of a feature's flags, for table cells (`single-token, BOS`).
pub fn flag_names(flags: Option<&FeatureFlags>) -> String {
    let Some(flags) = flags else {
        return String::new();
    };
    let names: Vec<&str> = [
        (flags.dead, "dead"),
        (flags.ultra_rare, "ultra-rare"),
        (flags.single_token, "single-token"),
        (flags.position_dominated, "position"),
        (flags.bos_dominated, "BOS"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|&(_, name)| name)
    .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::test_support::file_with;
    use crate::samples::bins::bin_lower;

    fn recorded(first_bin: u32, counts: Vec<u64>) -> ActivationHistogram {
        let first = first_bin as usize;
        let edges = (first..=first + counts.len()).map(bin_lower).collect();
        ActivationHistogram {
            first_bin,
            edges,
            counts,
        }
    }

    #[test]
    fn regrouping_adds_aligned_neighbours() {
        // Bins 7..=12: the end of one octave (bins 1-8 are the first) and the start of the next.
        let h = recorded(7, vec![1, 2, 3, 4, 5, 6]);
        let same = regroup(&h, 10).unwrap();
        assert_eq!(same.counts, h.counts);
        let pairs = regroup(&h, 4).unwrap();
        // Pairs (7,8) (9,10) (11,12).
        assert_eq!(pairs.counts, vec![3, 7, 11]);
        assert_eq!(
            pairs.edges,
            vec![bin_lower(7), bin_lower(9), bin_lower(11), bin_lower(13)]
        );
        let octaves = regroup(&h, 2).unwrap();
        assert_eq!(octaves.counts, vec![3, 18]);
        assert_eq!(regroup(&h, 1).unwrap().total(), 21);
    }

    #[test]
    fn labels_carry_their_evidence() {
        let flags = FeatureFlags {
            single_token: true,
            top_token: Some(5),
            top_token_text: Some(" cat".into()),
            top_token_share: 0.84375,
            token_sample_size: 64,
            position_dominated: true,
            top_position_bin: Some(2),
            top_position_share: 0.5,
            ..FeatureFlags::default()
        };
        assert_eq!(
            flag_labels(&flags, None),
            vec![
                "single-token (␣cat, 84% of 64 sampled activations)",
                "position-dominated (positions 2–3: 50%)"
            ]
        );
        assert_eq!(flag_names(Some(&flags)), "single-token, position");
        assert_eq!(position_range(0), "0");
        assert_eq!(position_range(7), "64+");
        assert!(activation_histogram(&file_with(1, &[(1, "a", 1.0)]), 5).is_none());
    }
}
