//! A histogram drawn as a standalone SVG file, by hand (no plotting crate): bars, axes with
//! "nice" tick labels (1, 2 or 5 × 10ᵏ steps), a title, axis labels, and vertical marker
//! lines (mean, max) with a legend.
//!
//! Bins of unequal widths must not be drawn as raw counts, or a wide bin looks tall for being
//! wide: on a [`XScale::Log`] axis (for the collector's log-spaced bins) a bar's height is its
//! count per octave of activation, so that its area is its count; on a linear axis (equal bins)
//! it is the count.
//!
//! The output is a pure function of its input, every number printed with a fixed number of
//! decimals, so the same histogram always gives the same bytes (golden-testable).

use std::fmt::Write as _;

use super::histogram::Histogram;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
/// Plot area: left, right, top, bottom.
const PLOT: (f64, f64, f64, f64) = (80.0, 700.0, 60.0, 350.0);
const BAR_FILL: &str = "#4c72b0";
/// Share of the data range added as room on each side of the x axis.
const X_PADDING: f64 = 0.03;
/// Ticks aimed for on each axis.
const TARGET_TICKS: f64 = 5.0;

/// Words on the picture.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotText {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
}

/// How the x axis maps activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XScale {
    /// Linear; bars are counts (the bins should be of equal width).
    Linear,
    /// Logarithmic (every edge and marker must be positive); bars are counts per octave.
    Log,
}

/// A vertical line at `value`, named in the legend.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub label: String,
    pub value: f64,
    pub color: &'static str,
    pub dashed: bool,
}

/// The SVG document. The x axis spans the bins and every marker.
pub fn histogram_svg(
    histogram: &Histogram,
    text: &PlotText,
    markers: &[Marker],
    x_scale: XScale,
) -> String {
    let heights = bar_heights(histogram, x_scale);
    let scale = Scale::new(histogram, &heights, markers, x_scale);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{:.2}" y="26" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        xml_escape(&text.title)
    );
    draw_bars(&mut svg, histogram, &heights, &scale);
    draw_axes(&mut svg, &scale, text);
    draw_markers(&mut svg, markers, &scale);
    svg.push_str("</svg>\n");
    svg
}

/// Each bar's height: its count, or on a log axis its count per octave (`count / log2(hi/lo)`).
fn bar_heights(histogram: &Histogram, x_scale: XScale) -> Vec<f64> {
    let edges = &histogram.edges;
    histogram
        .counts
        .iter()
        .enumerate()
        .map(|(k, &count)| match x_scale {
            XScale::Linear => count as f64,
            XScale::Log => count as f64 / (edges[k + 1] / edges[k]).log2(),
        })
        .collect()
}

/// Data range → pixel mapping; x is kept in axis units (the value, or its log10).
struct Scale {
    x_scale: XScale,
    x_min: f64,
    x_max: f64,
    y_step: f64,
    y_max: f64,
}

impl Scale {
    /// x spans the bins and every marker, with a little room on both sides (so a marker on
    /// the last edge is not lost in the frame); y runs from 0 to a whole number of steps.
    fn new(histogram: &Histogram, heights: &[f64], markers: &[Marker], x_scale: XScale) -> Self {
        let unit = |v: f64| axis_unit(v, x_scale);
        let edges = &histogram.edges;
        let values = markers.iter().map(|m| m.value).filter(|v| v.is_finite());
        let low = values.clone().map(unit).fold(unit(edges[0]), f64::min);
        let high = values
            .map(unit)
            .fold(unit(edges[edges.len() - 1]), f64::max);
        let pad = (high - low) * X_PADDING;
        let top = heights.iter().copied().fold(0.0, f64::max);
        let y_step = nice_step(top / TARGET_TICKS);
        Self {
            x_scale,
            x_min: low - pad,
            x_max: high + pad,
            y_step,
            y_max: ((top / y_step).ceil() * y_step).max(y_step),
        }
    }

    fn x(&self, value: f64) -> f64 {
        let span = (self.x_max - self.x_min).max(f64::MIN_POSITIVE);
        PLOT.0 + (axis_unit(value, self.x_scale) - self.x_min) / span * (PLOT.1 - PLOT.0)
    }

    /// The x ticks, as values: multiples of a nice step, or on a log axis 1, 2 and 5 × 10ᵏ
    /// (all nine digits when the range is too narrow for those).
    fn x_ticks(&self) -> Vec<(f64, String)> {
        if self.x_scale == XScale::Linear {
            let step = nice_step((self.x_max - self.x_min) / TARGET_TICKS);
            return ticks(self.x_min, self.x_max, step)
                .into_iter()
                .map(|t| (t, tick_label(t, step)))
                .collect();
        }
        for mantissas in [
            &[1.0, 2.0, 5.0][..],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        ] {
            let found = log_ticks(self.x_min, self.x_max, mantissas);
            if found.len() >= 2 {
                return found.into_iter().map(|t| (t, format!("{t}"))).collect();
            }
        }
        // Narrower than a digit step: linear ticks of the values, placed on the log axis.
        let (lo, hi) = (10f64.powf(self.x_min), 10f64.powf(self.x_max));
        let step = nice_step((hi - lo) / TARGET_TICKS);
        ticks(lo, hi, step)
            .into_iter()
            .map(|t| (t, tick_label(t, step)))
            .collect()
    }

    fn y(&self, count: f64) -> f64 {
        PLOT.3 - count / self.y_max * (PLOT.3 - PLOT.2)
    }
}

/// A value in axis units: itself, or its log10.
fn axis_unit(value: f64, x_scale: XScale) -> f64 {
    match x_scale {
        XScale::Linear => value,
        XScale::Log => value.log10(),
    }
}

/// `m × 10ᵏ` for the given mantissas, within `[10^lo, 10^hi]` (`lo`, `hi` in log10 units).
fn log_ticks(lo: f64, hi: f64, mantissas: &[f64]) -> Vec<f64> {
    let mut found = Vec::new();
    for k in (lo.floor() as i32)..=(hi.ceil() as i32) {
        for &m in mantissas {
            // m / 10^-k rather than m · 10^k: the nearest double to the decimal (0.2, 0.05).
            let value = if k < 0 {
                m / 10f64.powi(-k)
            } else {
                m * 10f64.powi(k)
            };
            let unit = value.log10();
            if unit >= lo - 1e-12 && unit <= hi + 1e-12 {
                found.push(value);
            }
        }
    }
    found
}

fn draw_bars(svg: &mut String, histogram: &Histogram, heights: &[f64], scale: &Scale) {
    let _ = writeln!(
        svg,
        r#"<g fill="{BAR_FILL}" stroke="white" stroke-width="0.5">"#
    );
    for (k, &height) in heights.iter().enumerate() {
        let (left, right) = (scale.x(histogram.edges[k]), scale.x(histogram.edges[k + 1]));
        let top = scale.y(height);
        let _ = writeln!(
            svg,
            r#"<rect x="{left:.2}" y="{top:.2}" width="{:.2}" height="{:.2}"/>"#,
            right - left,
            PLOT.3 - top
        );
    }
    svg.push_str("</g>\n");
}

fn draw_axes(svg: &mut String, scale: &Scale, text: &PlotText) {
    let (left, right, top, bottom) = PLOT;
    let _ = writeln!(
        svg,
        r#"<path d="M{left:.2},{top:.2} V{bottom:.2} H{right:.2}" fill="none" stroke="black"/>"#
    );
    for (tick, label) in scale.x_ticks() {
        let x = scale.x(tick);
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.2}" y1="{bottom:.2}" x2="{x:.2}" y2="{:.2}" stroke="black"/><text x="{x:.2}" y="{:.2}" text-anchor="middle">{}</text>"#,
            bottom + 5.0,
            bottom + 19.0,
            label
        );
    }
    for tick in ticks(0.0, scale.y_max, scale.y_step) {
        let y = scale.y(tick);
        let _ = writeln!(
            svg,
            r#"<line x1="{:.2}" y1="{y:.2}" x2="{left:.2}" y2="{y:.2}" stroke="black"/><text x="{:.2}" y="{:.2}" text-anchor="end">{}</text>"#,
            left - 5.0,
            left - 8.0,
            y + 4.0,
            tick_label(tick, scale.y_step)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.2}" y="{:.2}" text-anchor="middle">{}</text>"#,
        (left + right) / 2.0,
        bottom + 45.0,
        xml_escape(&text.x_label)
    );
    let (label_x, label_y) = (24.0, (top + bottom) / 2.0);
    let _ = writeln!(
        svg,
        r#"<text x="{label_x:.2}" y="{label_y:.2}" text-anchor="middle" transform="rotate(-90 {label_x:.2} {label_y:.2})">{}</text>"#,
        xml_escape(&text.y_label)
    );
}

fn draw_markers(svg: &mut String, markers: &[Marker], scale: &Scale) {
    let (_, _, top, bottom) = PLOT;
    let mut legend_x = PLOT.0;
    for marker in markers.iter().filter(|m| m.value.is_finite()) {
        let dash = if marker.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let x = scale.x(marker.value);
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.2}" y1="{top:.2}" x2="{x:.2}" y2="{bottom:.2}" stroke="{}" stroke-width="2"{dash}/>"#,
            marker.color
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x:.2}" y1="44" x2="{:.2}" y2="44" stroke="{}" stroke-width="2"{dash}/><text x="{:.2}" y="48">{}</text>"#,
            legend_x + 24.0,
            marker.color,
            legend_x + 30.0,
            xml_escape(&marker.label)
        );
        // Legend entries advance by a width estimated from the label (~7 px per character).
        legend_x += 50.0 + 7.0 * marker.label.chars().count() as f64;
    }
}

/// 1, 2 or 5 × 10ᵏ, the smallest such step ≥ `raw` (1 for a non-positive `raw`).
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Multiples of `step` within `[lo, hi]` (with a little slack for rounding).
fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick value with as many decimals as the step needs.
fn tick_label(value: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let value = if value.abs() < step * 1e-9 {
        0.0
    } else {
        value
    };
    format!("{value:.decimals$}")
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_and_ticks() {
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(ticks(0.0, 10.0, 5.0), vec![0.0, 5.0, 10.0]);
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(-1e-17, 0.1), "0.0");
        assert_eq!(tick_label(20.0, 5.0), "20");
    }

    /// The `(x, width, height)` of every bar of a document.
    fn bars(svg: &str) -> Vec<(f64, f64, f64)> {
        let attr = |line: &str, name: &str| -> f64 {
            let start = line.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            line[start..].split('"').next().unwrap().parse().unwrap()
        };
        svg.lines()
            .filter(|l| l.starts_with("<rect x="))
            .map(|l| (attr(l, "x"), attr(l, "width"), attr(l, "height")))
            .collect()
    }

    #[test]
    fn log_spaced_bins_are_drawn_as_densities_on_a_log_axis() {
        // One octave as one bin and its next octave as two: the same count per octave.
        let h = Histogram::new(vec![1.0, 2.0, 3.0, 4.0], vec![8, 4, 4]).unwrap();
        let text = PlotText {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
        };
        let svg = histogram_svg(&h, &text, &[], XScale::Log);
        let drawn = bars(&svg);
        // Equal octaves, equal widths; 8 per octave, and 4 over log2(3/2) or log2(4/3).
        assert!(
            (drawn[0].1 - (drawn[1].1 + drawn[2].1)).abs() < 0.02,
            "{drawn:?}"
        );
        let per_octave = [8.0, 4.0 / 1.5f64.log2(), 4.0 / (4.0f64 / 3.0).log2()];
        for (bar, density) in drawn.iter().zip(per_octave) {
            assert!(
                (bar.2 / drawn[0].2 - density / 8.0).abs() < 0.01,
                "{drawn:?}"
            );
        }
        // Raw counts on the same bins would draw the wide first bin twice as tall.
        assert!(
            svg.contains(">1</text>") && svg.contains(">2</text>"),
            "{svg}"
        );
        assert_eq!(
            log_ticks(-1.31, 0.5, &[1.0, 2.0, 5.0]),
            [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
        );
    }

    #[test]
    fn draws_a_deterministic_document() {
        let h = Histogram::new(vec![0.5, 0.75, 1.0], vec![3, 1]).unwrap();
        let text = PlotText {
            title: "Feature <7> & co".to_string(),
            x_label: "activation".to_string(),
            y_label: "samples".to_string(),
        };
        let markers = [Marker {
            label: "mean 0.2000".to_string(),
            value: 0.2,
            color: "#dd8452",
            dashed: true,
        }];
        let svg = histogram_svg(&h, &text, &markers, XScale::Linear);
        assert_eq!(svg, histogram_svg(&h, &text, &markers, XScale::Linear));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains("Feature &lt;7&gt; &amp; co"));
        assert_eq!(svg.matches("<rect x=").count(), 2);
        // The mean lies left of the bins: the axis reaches it, with 3% room (x = 80 + 0.03/1.06 · 620).
        assert!(
            svg.contains(r##"<line x1="97.55" y1="60.00" x2="97.55" y2="350.00" stroke="#dd8452"##),
            "{svg}"
        );
    }
}
