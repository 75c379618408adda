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

/// Independent double-double chains a run's sums are split over (see [`RunSums`]).
const LANES: usize = 4;
/// Values a run buffers before adding them up (a power of two).
const RUN_BUFFER: usize = 64;

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

/// The sums of a run of activations, folded into a feature's moments at its end. Values are
/// buffered and added in a separate tight loop over [`LANES`] chains: each double-double
/// addition waits on the one before in its chain (a dozen dependent floating-point
/// operations), so independent chains overlap, and the same operation on neighbouring lanes
/// compiles to packed instructions. The folded sums are the same, as every order of addition
/// gives the same sums ([`ExactSum`]).
#[derive(Clone, Copy, Debug)]
pub struct RunSums {
    sum: Lanes,
    squares: Lanes,
    buffer: [f32; RUN_BUFFER],
    buffered: usize,
    /// Whether any value was added (an unused run folds nothing).
    used: bool,
}

impl Default for RunSums {
    fn default() -> Self {
        Self {
            sum: Lanes::default(),
            squares: Lanes::default(),
            buffer: [0.0; RUN_BUFFER],
            buffered: 0,
            used: false,
        }
    }
}

impl RunSums {
    #[inline(always)]
    pub fn add(&mut self, value: f32) {
        // `buffered` is below RUN_BUFFER (a power of two) here; the mask says so to the
        // compiler, which then drops the bounds check.
        self.buffer[self.buffered & (RUN_BUFFER - 1)] = value;
        self.buffered += 1;
        if self.buffered == RUN_BUFFER {
            self.flush();
        }
    }

    /// Adds the buffered values to the lanes; a last partial chunk is padded with zeros
    /// (adding +0 to a double-double changes nothing).
    #[inline(never)]
    fn flush(&mut self) {
        let n = self.buffered;
        self.used |= n > 0;
        // Zeros past the values: every chunk is whole.
        self.buffer[n..n.next_multiple_of(LANES)].fill(0.0);
        for start in (0..n).step_by(LANES) {
            let x: [f64; LANES] = std::array::from_fn(|lane| f64::from(self.buffer[start + lane]));
            self.sum.add(x);
            // An f32 squared is exact in f64 (24-bit mantissa squared fits in 53 bits).
            self.squares.add(x.map(|x| x * x));
        }
        self.buffered = 0;
    }

    /// Adds the run's sums to `moments`.
    #[inline]
    pub fn fold_into(mut self, moments: &mut FeatureMoments) {
        self.flush();
        if self.used {
            self.sum.fold_into(&mut moments.sum);
            self.squares.fold_into(&mut moments.sum_squares);
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
    fn run_sums_equal_one_value_at_a_time() {
        // Runs shorter than a chunk, across the buffer's edge and several buffers long.
        for len in [0usize, 1, 3, 4, 5, 63, 64, 65, 129, 300] {
            let values: Vec<f32> = (0..len)
                .map(|i| ((i * 7919 + len) % 997) as f32 * 0.013 + 1e-3)
                .collect();
            let mut reference = FeatureMoments::default();
            values.iter().for_each(|&v| reference.record(v));
            let mut moments = FeatureMoments::default();
            let mut run = RunSums::default();
            values.iter().for_each(|&v| run.add(v));
            run.fold_into(&mut moments);
            assert_eq!(moments.sum, reference.sum, "{len} values");
            assert_eq!(moments.sum_squares, reference.sum_squares, "{len} values");
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
