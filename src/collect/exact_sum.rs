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

/// The sums of a run of activations in two lanes, folded into a feature's moments at its end:
/// each double-double addition waits on the one before in its chain (a dozen dependent
/// floating-point operations), so two chains take half the time of one. The folded sums are
/// the same, as every order of addition gives the same sums ([`ExactSum`]). The lanes take
/// turns by swapping places rather than by an index, so that a run's sums stay in registers.
#[derive(Clone, Copy, Debug, Default)]
pub struct LaneSums {
    /// `(sum, sum of squares)` per lane; the next value goes to lane 0.
    lanes: [(ExactSum, ExactSum); 2],
    added: usize,
}

impl LaneSums {
    #[inline(always)]
    pub fn add(&mut self, value: f32) {
        let x = f64::from(value);
        let [mut next, other] = self.lanes;
        next.0.add(x);
        next.1.add(x * x);
        self.lanes = [other, next];
        self.added += 1;
    }

    /// Adds the lanes to `moments` (only those that were used: a fold costs an addition).
    #[inline]
    pub fn fold_into(&self, moments: &mut FeatureMoments) {
        // After each addition the lanes swap: a single value sits in lane 1.
        let used = match self.added {
            0 => &self.lanes[..0],
            1 => &self.lanes[1..],
            _ => &self.lanes[..],
        };
        for (sum, squares) in used {
            moments.sum.merge(sum);
            moments.sum_squares.merge(squares);
        }
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
