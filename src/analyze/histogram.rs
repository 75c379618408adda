//! Histograms: bin edges and counts, binning of values, and the compact terminal picture.
//!
//! A [`Histogram`] is only `(edges, counts)`, whatever was binned: the full-activation
//! histogram the collector records (regrouped by [`super::feature_view`]) and, for folders
//! without one, the stored samples binned here, are drawn by the same code, here and in
//! [`super::svg`].

use anyhow::{bail, Result};
use serde::Serialize;

/// Bars of the terminal picture are at most this many characters long.
pub const TEXT_BAR_WIDTH: usize = 40;

/// Eighth blocks for the partial end of a bar: index `k` is `k/8` of a cell.
const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// Bin `k` counts values in `[edges[k], edges[k + 1])`; the last bin is closed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
}

impl Histogram {
    /// A histogram from given edges (finite, strictly increasing) and one count per bin.
    pub fn new(edges: Vec<f64>, counts: Vec<u64>) -> Result<Self> {
        if counts.is_empty() || edges.len() != counts.len() + 1 {
            bail!(
                "a histogram needs at least one bin and one more edge than bins (got {} edges, {} counts)",
                edges.len(),
                counts.len()
            );
        }
        if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
            bail!("histogram edges must be finite and strictly increasing");
        }
        Ok(Self { edges, counts })
    }

    /// `bins` equal-width bins from the smallest to the largest value. When every value is
    /// the same there is nothing to spread: one bin, `v ± 5%` wide (`± 0.5` around zero).
    pub fn of_values(values: &[f64], bins: usize) -> Result<Self> {
        if values.is_empty() {
            bail!("no values to bin");
        }
        if bins == 0 {
            bail!("a histogram needs at least one bin");
        }
        if values.iter().any(|v| !v.is_finite()) {
            bail!("cannot bin a NaN or infinite value");
        }
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo == hi {
            let half = if lo == 0.0 { 0.5 } else { lo.abs() * 0.05 };
            return Self::new(vec![lo - half, lo + half], vec![values.len() as u64]);
        }
        let mut edges: Vec<f64> = (0..bins)
            .map(|k| lo + (hi - lo) * k as f64 / bins as f64)
            .collect();
        edges.push(hi);
        let mut counts = vec![0u64; bins];
        for &v in values {
            counts[bin_of(&edges, v)] += 1;
        }
        Self::new(edges, counts)
    }

    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// One line per bin: its range, a bar in eighth-block resolution, and the count.
    pub fn render_bars(&self) -> String {
        let max = self.counts.iter().copied().max().unwrap_or(0).max(1);
        let ranges: Vec<String> = (0..self.bins())
            .map(|k| format!("{:.4} – {:.4}", self.edges[k], self.edges[k + 1]))
            .collect();
        let range_width = ranges.iter().map(|r| r.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (range, &count) in ranges.iter().zip(&self.counts) {
            out += &format!(
                "  {range:>range_width$} │{:<bar_width$} {count}\n",
                bar(count, max, TEXT_BAR_WIDTH),
                bar_width = TEXT_BAR_WIDTH
            );
        }
        out
    }
}

/// The bin of `v` (within `[edges[0], edges[last]]`): computed arithmetically, then nudged so
/// that it agrees with the stored edges despite rounding.
fn bin_of(edges: &[f64], v: f64) -> usize {
    let bins = edges.len() - 1;
    let (lo, hi) = (edges[0], edges[bins]);
    let mut k = (((v - lo) / (hi - lo)) * bins as f64) as usize;
    k = k.min(bins - 1);
    while k > 0 && v < edges[k] {
        k -= 1;
    }
    while k + 1 < bins && v >= edges[k + 1] {
        k += 1;
    }
    k
}

/// A bar of `count / max · width` cells, in eighths; a non-zero count shows at least `▏`.
fn bar(count: u64, max: u64, width: usize) -> String {
    let eighths = (count as u128 * width as u128 * 8 / max as u128) as usize;
    let eighths = if count > 0 { eighths.max(1) } else { 0 };
    let mut out = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        out.push(EIGHTHS[eighths % 8]);
    }
    out
}

/// Sturges' rule, `⌈log₂ n⌉ + 1`, kept within 1..=30: few stored samples, few bins.
pub fn sturges_bins(n: usize) -> usize {
    let log2 = usize::BITS - n.max(1).saturating_sub(1).leading_zeros();
    (log2 as usize + 1).clamp(1, 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_values_with_a_closed_last_bin() {
        let h = Histogram::of_values(&[0.0, 0.25, 0.5, 0.75, 1.0], 4).unwrap();
        assert_eq!(h.edges, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(h.counts, vec![1, 1, 1, 2]);
        assert_eq!(h.total(), 5);
    }

    #[test]
    fn a_single_value_gets_one_bin_around_it() {
        let h = Histogram::of_values(&[2.0], 10).unwrap();
        assert_eq!(h.edges, vec![1.9, 2.1]);
        assert_eq!(h.counts, vec![1]);
        let zero = Histogram::of_values(&[0.0, 0.0], 3).unwrap();
        assert_eq!(zero.edges, vec![-0.5, 0.5]);
        assert_eq!(zero.counts, vec![2]);
    }

    #[test]
    fn all_equal_values_share_one_bin() {
        let h = Histogram::of_values(&[0.7; 6], 5).unwrap();
        assert_eq!(h.counts, vec![6]);
        assert!(h.edges[0] < 0.7 && 0.7 < h.edges[1]);
    }

    #[test]
    fn rounding_never_puts_a_value_outside_its_edges() {
        let values: Vec<f64> = (0..1000).map(|i| 0.1 + i as f64 * 0.0007).collect();
        let h = Histogram::of_values(&values, 7).unwrap();
        for &v in &values {
            let k = bin_of(&h.edges, v);
            assert!(h.edges[k] <= v && (v < h.edges[k + 1] || k == 6));
        }
        assert_eq!(h.total(), 1000);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Histogram::of_values(&[], 3).is_err());
        assert!(Histogram::of_values(&[1.0], 0).is_err());
        assert!(Histogram::of_values(&[f64::NAN], 3).is_err());
        assert!(Histogram::new(vec![0.0, 1.0], vec![1, 2]).is_err());
        assert!(Histogram::new(vec![1.0, 1.0], vec![1]).is_err());
    }

    #[test]
    fn bars_use_eighth_blocks() {
        assert_eq!(bar(8, 8, 2), "██");
        assert_eq!(bar(1, 16, 2), "▏");
        assert_eq!(bar(3, 8, 2), "▊");
        assert_eq!(bar(0, 8, 2), "");
        let h = Histogram::new(vec![0.0, 0.5, 1.0], vec![2, 1]).unwrap();
        let text = h.render_bars();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().next().unwrap().ends_with(" 2"));
    }

    #[test]
    fn sturges_rule() {
        assert_eq!(sturges_bins(0), 1);
        assert_eq!(sturges_bins(1), 1);
        assert_eq!(sturges_bins(2), 2);
        assert_eq!(sturges_bins(10), 5);
        assert_eq!(sturges_bins(100), 8);
    }
}
