//! Streaming statistics of one feature, merge-exact.
//!
//! Sums are accumulated as double-double values (an f64 pair `hi + lo` updated with error-free
//! transformations), which carry ~106 bits: summing f32 activations this way gives the
//! correctly rounded f64 sum in all but astronomically rare cases, whatever the order. That is
//! what makes a collector merged from shards write the same bytes as one fed the whole stream
//! (plain f64 sums differ in the last bits with the order of addition).

use crate::samples::format::ExactSum;

/// `a + b` as `(s, e)` with `s = fl(a + b)` and `s + e = a + b` exactly (Knuth's TwoSum).
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

impl ExactSum {
    #[inline(always)]
    pub fn add(&mut self, x: f64) {
        let (s, e) = two_sum(self.hi, x);
        let (hi, lo) = two_sum(s, e + self.lo);
        self.hi = hi;
        self.lo = lo;
    }

    pub fn merge(&mut self, other: &ExactSum) {
        let (s, e) = two_sum(self.hi, other.hi);
        let (hi, lo) = two_sum(s, e + self.lo + other.lo);
        self.hi = hi;
        self.lo = lo;
    }

    pub fn value(&self) -> f64 {
        self.hi + self.lo
    }
}

/// Independent double-double chains a run's sums are split over (see [`RunMoments`]).
const LANES: usize = 4;

/// [`LANES`] double-double sums, lane by lane (structure of arrays, so that one operation on
/// every lane compiles to packed instructions).
#[derive(Clone, Copy, Debug, Default)]
struct Lanes {
    hi: [f64; LANES],
    lo: [f64; LANES],
}

impl Lanes {
    /// [`ExactSum::add`] on every lane.
    #[inline(always)]
    fn add(&mut self, x: [f64; LANES]) {
        let (s, e) = two_sum_lanes(self.hi, x);
        let mut e_lo = [0.0; LANES];
        for lane in 0..LANES {
            e_lo[lane] = e[lane] + self.lo[lane];
        }
        (self.hi, self.lo) = two_sum_lanes(s, e_lo);
    }

    /// Adds every lane to `sum`.
    fn fold_into(&self, sum: &mut ExactSum) {
        for lane in 0..LANES {
            sum.merge(&ExactSum {
                hi: self.hi[lane],
                lo: self.lo[lane],
            });
        }
    }
}

/// [`two_sum`] lane by lane.
#[inline(always)]
fn two_sum_lanes(a: [f64; LANES], b: [f64; LANES]) -> ([f64; LANES], [f64; LANES]) {
    let (mut s, mut e) = ([0.0; LANES], [0.0; LANES]);
    for lane in 0..LANES {
        s[lane] = a[lane] + b[lane];
    }
    let mut bb = [0.0; LANES];
    for lane in 0..LANES {
        bb[lane] = s[lane] - a[lane];
    }
    for lane in 0..LANES {
        e[lane] = (a[lane] - (s[lane] - bb[lane])) + (b[lane] - bb[lane]);
    }
    (s, e)
}

/// The statistics of a run of one feature's values (one visit), gathered in a pass of their
/// own and folded into its moments at the end. The pass reads [`LANES`] values at a time and
/// keeps one double-double chain per lane: each addition waits on the one before in its chain
/// (a dozen dependent floating-point operations), so independent chains overlap, and the same
/// operation on neighbouring lanes compiles to packed instructions. Apart from it, the loop
/// that needs each value's place (bins, priority, which stores it may enter) has registers
/// enough. The folded sums are the same, as every order of addition gives the same sums
/// ([`ExactSum`]).
#[derive(Clone, Copy, Debug)]
pub struct RunMoments {
    /// Values above the threshold, and their bounds lane by lane (±∞ while there are none).
    pub count: u64,
    min: [f32; LANES],
    max: [f32; LANES],
    /// Values above 0.
    pub firing: u64,
    sum: Lanes,
    squares: Lanes,
}

impl RunMoments {
    /// The statistics of `items`, whose values `value_of` reads (NaN: an item neither observed
    /// nor firing, as NaN passes no comparison): counted where above `threshold` (with bounds
    /// and sums) and where above 0 (firing).
    #[inline(always)]
    pub fn of<T>(items: &[T], threshold: f32, value_of: impl Fn(&T) -> f32) -> Self {
        let mut run = Self {
            count: 0,
            min: [f32::INFINITY; LANES],
            max: [f32::NEG_INFINITY; LANES],
            firing: 0,
            sum: Lanes::default(),
            squares: Lanes::default(),
        };
        let mut chunks = items.chunks_exact(LANES);
        for chunk in &mut chunks {
            run.add(
                threshold,
                std::array::from_fn(|lane| value_of(&chunk[lane])),
            );
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            run.add(
                threshold,
                std::array::from_fn(|lane| rest.get(lane).map_or(f32::NAN, &value_of)),
            );
        }
        run
    }

    /// One value per lane (NaN: none). Branch-free: NaN fails every comparison, and a
    /// comparison-select with NaN on the left keeps the right (`minss`/`maxss`).
    #[inline(always)]
    fn add(&mut self, threshold: f32, v: [f32; LANES]) {
        let kept: [f32; LANES] = v.map(|v| if v > threshold { v } else { f32::NAN });
        self.firing += v.iter().map(|&v| u64::from(v > 0.0)).sum::<u64>();
        self.count += kept.iter().map(|&v| u64::from(!v.is_nan())).sum::<u64>();
        for ((&k, min), max) in kept.iter().zip(&mut self.min).zip(&mut self.max) {
            *min = if k < *min { k } else { *min };
            *max = if k > *max { k } else { *max };
        }
        // +0 where not kept: it changes no double-double sum.
        let x = kept.map(|k| if k.is_nan() { 0.0 } else { f64::from(k) });
        self.sum.add(x);
        // An f32 squared is exact in f64 (24-bit mantissa squared fits in 53 bits).
        self.squares.add(x.map(|x| x * x));
    }

    /// The largest value above the threshold (-∞: none).
    pub fn max(&self) -> f32 {
        self.max.into_iter().fold(f32::NEG_INFINITY, f32::max)
    }

    /// Adds the run to `moments` (as a merge: [`FeatureMoments::merge`] owns how bounds,
    /// counts and sums combine).
    pub fn fold_into(self, moments: &mut FeatureMoments) {
        let mut run = FeatureMoments {
            count: self.count,
            firing: self.firing,
            min: self.min.into_iter().fold(f32::INFINITY, f32::min),
            max: self.max(),
            ..FeatureMoments::default()
        };
        self.sum.fold_into(&mut run.sum);
        self.squares.fold_into(&mut run.sum_squares);
        moments.merge(&run);
    }
}

/// Constant-size statistics of one feature.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureMoments {
    /// Activations strictly above the threshold.
    pub count: u64,
    /// Tokens where the activation is > 0.
    pub firing: u64,
    pub sum: ExactSum,
    pub sum_squares: ExactSum,
    /// Min and max over activations above the threshold (meaningless while `count == 0`).
    pub min: f32,
    pub max: f32,
}

impl FeatureMoments {
    /// Records one activation above the threshold (the collector keeps its run's bounds in
    /// locals and adds its sums in lanes: this is the reference it must agree with).
    #[cfg(test)]
    pub fn record(&mut self, value: f32) {
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
        let x = f64::from(value);
        self.sum.add(x);
        // An f32 squared is exact in f64 (24-bit mantissa squared fits in 53 bits).
        self.sum_squares.add(x * x);
    }

    pub fn merge(&mut self, other: &FeatureMoments) {
        if other.count > 0 {
            if self.count == 0 {
                self.min = other.min;
                self.max = other.max;
            } else {
                self.min = self.min.min(other.min);
                self.max = self.max.max(other.max);
            }
        }
        self.count += other.count;
        self.firing += other.firing;
        self.sum.merge(&other.sum);
        self.sum_squares.merge(&other.sum_squares);
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum.value() / self.count as f64
        }
    }

    /// Population standard deviation (numpy's default, as the original used).
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as f64;
        // E[x²] − E[x]² loses digits when the spread is tiny next to the mean. Both sums are
        // exact to ~1e-32 relative, so form n·Σx² − (Σx)² in double-double before dividing.
        let (sum, squares) = (self.sum, self.sum_squares);
        let mut numerator = ExactSum::default();
        let (q, q_err) = two_prod(n, squares.hi);
        numerator.add(q);
        numerator.add(q_err);
        numerator.add(n * squares.lo);
        let (p, p_err) = two_prod(sum.hi, sum.hi);
        numerator.add(-p);
        numerator.add(-p_err);
        numerator.add(-(2.0 * sum.hi * sum.lo + sum.lo * sum.lo));
        let variance = numerator.value() / (n * n);
        variance.max(0.0).sqrt()
    }
}

/// `a · b` as `(p, e)` with `p + e = a · b` exactly (fused multiply-add).
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_is_order_independent() {
        let values: Vec<f32> = (0..10_000)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.001_37 + 0.1)
            .collect();
        let mut forward = FeatureMoments::default();
        values.iter().for_each(|&v| forward.record(v));
        let mut backward = FeatureMoments::default();
        values.iter().rev().for_each(|&v| backward.record(v));
        let mut left = FeatureMoments::default();
        let mut right = FeatureMoments::default();
        values[..3333].iter().for_each(|&v| left.record(v));
        values[3333..].iter().for_each(|&v| right.record(v));
        left.merge(&right);
        assert_eq!(
            forward.sum.value().to_bits(),
            backward.sum.value().to_bits()
        );
        assert_eq!(forward.sum.value().to_bits(), left.sum.value().to_bits());
        assert_eq!(forward.std().to_bits(), left.std().to_bits());
        assert_eq!(forward.mean().to_bits(), left.mean().to_bits());
    }

    #[test]
    fn run_moments_equal_one_value_at_a_time() {
        // Runs shorter than a chunk, across chunk edges and long ones; some values below the
        // threshold (0.05), some not observed (None), some at or below 0.
        for len in [0usize, 1, 3, 4, 5, 63, 64, 65, 129, 300] {
            let items: Vec<Option<f32>> = (0..len)
                .map(|i| match (i * 7919 + len) % 997 {
                    r if r % 11 == 0 => None,
                    r if r % 13 == 0 => Some(-(r as f32) * 0.01),
                    r if r % 17 == 0 => Some(0.0),
                    r => Some(r as f32 * 0.013 + 1e-3),
                })
                .collect();
            let value_of = |v: &Option<f32>| v.unwrap_or(f32::NAN);
            let mut reference = FeatureMoments::default();
            for v in items.iter().flatten() {
                reference.firing += u64::from(*v > 0.0);
                if *v > 0.05 {
                    reference.record(*v);
                }
            }
            let mut moments = FeatureMoments::default();
            RunMoments::of(&items, 0.05, value_of).fold_into(&mut moments);
            assert_eq!(moments, reference, "{len} values");
            // Folded into moments that already hold values.
            let mut twice = reference.clone();
            twice.merge(&reference);
            RunMoments::of(&items, 0.05, value_of).fold_into(&mut moments);
            assert_eq!(moments.count, twice.count, "{len} values");
            assert_eq!((moments.min, moments.max), (twice.min, twice.max));
            assert_eq!(moments.firing, twice.firing);
            assert_eq!(moments.sum.value(), twice.sum.value(), "{len} values");
        }
    }

    #[test]
    fn mean_and_std_match_two_pass_reference() {
        let values = [0.5f32, 0.7, 0.3, 0.9];
        let mut moments = FeatureMoments::default();
        values.iter().for_each(|&v| moments.record(v));
        let n = values.len() as f64;
        let mean: f64 = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var: f64 = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!((moments.mean() - mean).abs() < 1e-15);
        assert!((moments.std() - var.sqrt()).abs() < 1e-15);
        assert_eq!((moments.min, moments.max, moments.count), (0.3, 0.9, 4));
    }

    #[test]
    fn std_of_nearly_constant_values_keeps_its_digits() {
        // Spread 1e-4 around 1000: a plain E[x²] − E[x]² in f64 would lose most digits.
        let values: Vec<f32> = (0..1000)
            .map(|i| {
                1000.0
                    + if i % 2 == 0 {
                        0.000_061_035_156
                    } else {
                        -0.000_061_035_156
                    }
            })
            .collect();
        let mut moments = FeatureMoments::default();
        values.iter().for_each(|&v| moments.record(v));
        let n = values.len() as f64;
        let mean: f64 = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var: f64 = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            (moments.std() - var.sqrt()).abs() <= 1e-9 * var.sqrt(),
            "{} vs {}",
            moments.std(),
            var.sqrt()
        );
    }
}
