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
    #[cfg(any(test, not(target_arch = "x86_64")))]
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

/// [`LANES`] double-double sums of values and of their squares.
#[derive(Clone, Copy, Debug, Default)]
struct SumLanes {
    sum: Lanes,
    squares: Lanes,
}

impl SumLanes {
    /// Adds one value per lane (+0: none, which changes no double-double sum) and its square
    /// (an f32 squared is exact in f64: a 24-bit mantissa squared fits in 53 bits).
    #[inline(always)]
    fn add(&mut self, x: [f32; LANES]) {
        #[cfg(target_arch = "x86_64")]
        self.add_packed(x);
        #[cfg(not(target_arch = "x86_64"))]
        self.add_lanes(x);
    }

    /// [`add`](Self::add) in portable code.
    #[cfg(any(test, not(target_arch = "x86_64")))]
    #[inline(always)]
    fn add_lanes(&mut self, x: [f32; LANES]) {
        let x = x.map(f64::from);
        self.sum.add(x);
        self.squares.add(x.map(|x| x * x));
    }

    /// [`add`](Self::add) two lanes per instruction (SSE2): the same operations in the same
    /// order, so the same sums as [`add_lanes`](Self::add_lanes). The compiler left the
    /// portable lanes scalar (nothing in them is stored to memory for its vectoriser to start
    /// from), and the sums were half of a visit's statistics pass.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn add_packed(&mut self, x: [f32; LANES]) {
        use std::arch::x86_64::*;
        /// TwoSum on two lanes.
        #[inline(always)]
        fn two_sum_pd(a: __m128d, b: __m128d) -> (__m128d, __m128d) {
            // SAFETY: SSE2 arithmetic, in every x86-64 CPU.
            #[allow(unused_unsafe)]
            unsafe {
                let s = _mm_add_pd(a, b);
                let bb = _mm_sub_pd(s, a);
                let e = _mm_add_pd(_mm_sub_pd(a, _mm_sub_pd(s, bb)), _mm_sub_pd(b, bb));
                (s, e)
            }
        }
        /// [`Lanes::add`] on lanes `2 * half` and `2 * half + 1`.
        #[inline(always)]
        fn add_half(lanes: &mut Lanes, half: usize, x: __m128d) {
            let at = 2 * half;
            assert!(at + 2 <= LANES);
            // SAFETY: unaligned loads and stores of two f64 at `at..at + 2`, in bounds of
            // the arrays (checked above; the check folds away, `half` being a constant).
            unsafe {
                let hi = _mm_loadu_pd(lanes.hi.as_ptr().add(at));
                let lo = _mm_loadu_pd(lanes.lo.as_ptr().add(at));
                let (s, e) = two_sum_pd(hi, x);
                let (hi, lo) = two_sum_pd(s, _mm_add_pd(e, lo));
                _mm_storeu_pd(lanes.hi.as_mut_ptr().add(at), hi);
                _mm_storeu_pd(lanes.lo.as_mut_ptr().add(at), lo);
            }
        }
        // SAFETY: an unaligned load of the four f32 of `x`, then SSE2 arithmetic.
        let halves = unsafe {
            let x = _mm_loadu_ps(x.as_ptr());
            [_mm_cvtps_pd(x), _mm_cvtps_pd(_mm_movehl_ps(x, x))]
        };
        for (half, x) in halves.into_iter().enumerate() {
            add_half(&mut self.sum, half, x);
            // SAFETY: SSE2 arithmetic.
            #[allow(unused_unsafe)]
            let square = unsafe { _mm_mul_pd(x, x) };
            add_half(&mut self.squares, half, square);
        }
    }
}

/// [`two_sum`] lane by lane.
#[cfg(any(test, not(target_arch = "x86_64")))]
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

/// A run's sums in plain f64, which are exact when its values span few binades: each value
/// `v` (an f32) is split into `vh`, its top 12 significant bits, and `vl = v − vh`, the other
/// 12 (both exact), so that `v² = vh² + 2·vh·vl + vl²` is three products of at most 24
/// significant bits, each summed on its own. With `n` values whose binary exponents lie in
/// `e_lo..=e_hi` (`Δ = e_hi − e_lo`):
///
/// - `v` is a multiple of `2^(e_lo−23)` and below `2^(e_hi+1)`; `vh²` a multiple of
///   `2^(2e_lo−22)` below `2^(2e_hi+2)`; `vh·vl` a multiple of `2^(2e_lo−34)` below
///   `2^(2e_hi−10)`; `vl²` a multiple of `2^(2e_lo−46)` below `2^(2e_hi−22)`.
/// - Every partial sum of `n` such terms is a multiple of the unit below `n` times the
///   bound, and f64 holds every multiple of a unit `u` up to `2^53·u` exactly: with
///   `⌈log2 n⌉ + 2Δ ≤ 29` no addition rounds, in any order ([`SPLIT_EXACT`]).
///
/// Then the sum is one f64 and the sum of squares an exact double-double of three: the same
/// normalised pair (`hi` the sum rounded, `lo` the rest) as the double-double lanes give, for
/// ~13 fewer instructions a value. A run outside the bound (values spanning more than ~2^10
/// for a visit's few hundred values) takes the double-double lanes in a second pass.
#[derive(Clone, Copy, Debug, Default)]
struct SplitLanes {
    sum: [f64; LANES],
    /// Σ vh², Σ vh·vl and Σ vl².
    high: [f64; LANES],
    cross: [f64; LANES],
    low: [f64; LANES],
}

/// The largest `⌈log2 n⌉ + 2Δ` for which a run's [`SplitLanes`] are exact.
const SPLIT_EXACT: u32 = 29;

impl SplitLanes {
    /// Adds one value per lane (+0: none).
    #[inline(always)]
    fn add(&mut self, x: [f32; LANES]) {
        for (lane, v) in x.into_iter().enumerate() {
            let vh = f32::from_bits(v.to_bits() & !0xFFF);
            let (v, vh, vl) = (f64::from(v), f64::from(vh), f64::from(v - vh));
            self.sum[lane] += v;
            self.high[lane] += vh * vh;
            self.cross[lane] += vh * vl;
            self.low[lane] += vl * vl;
        }
    }

    /// The exact sums of the values and of their squares, when `count` values in
    /// `[min, max]` (all above 0, normal and finite) keep every addition exact; `None`
    /// otherwise.
    fn exact(&self, count: u64, min: f32, max: f32) -> Option<(ExactSum, ExactSum)> {
        if count == 0 {
            return Some((ExactSum::default(), ExactSum::default()));
        }
        if !(min >= f32::MIN_POSITIVE && max.is_finite()) {
            return None;
        }
        let exponent = |v: f32| (v.to_bits() >> 23) & 0xFF;
        let spread = exponent(max) - exponent(min);
        let log_n = u64::BITS - (count - 1).leading_zeros();
        if log_n + 2 * spread > SPLIT_EXACT {
            return None;
        }
        // Exact too: every partial sum of the lanes is one of the run's.
        let total = |lanes: &[f64; LANES]| lanes.iter().sum::<f64>();
        let sum = ExactSum {
            hi: total(&self.sum),
            lo: 0.0,
        };
        // Three exact terms into one normalised pair: the errors of the first two additions
        // are multiples of the finest unit, far below the sum, so their sum is exact.
        let (s, e) = two_sum(total(&self.high), 2.0 * total(&self.cross));
        let (s, f) = two_sum(s, total(&self.low));
        let (hi, lo) = two_sum(s, e + f);
        Some((sum, ExactSum { hi, lo }))
    }
}

/// Calls `add` with the values of `items` ([`LANES`] at a time; `value_of` reads them), the
/// lanes past the end NaN.
#[inline(always)]
fn for_lanes<T>(items: &[T], value_of: impl Fn(&T) -> f32, mut add: impl FnMut([f32; LANES])) {
    let mut chunks = items.chunks_exact(LANES);
    for chunk in &mut chunks {
        add(std::array::from_fn(|lane| value_of(&chunk[lane])));
    }
    let rest = chunks.remainder();
    if let Some(last) = rest.len().checked_sub(1) {
        // Lanes past the end read the last item and are made NaN (quiet-NaN bits or'ed in:
        // NaN whatever the value), branch-free.
        add(std::array::from_fn(|lane| {
            let nan = u32::from(lane > last).wrapping_neg() & 0x7FC0_0000;
            f32::from_bits(value_of(&rest[lane.min(last)]).to_bits() | nan)
        }));
    }
}

/// The statistics of a run of one feature's values (one visit), gathered in a pass of their
/// own and folded into its moments at the end. The pass reads [`LANES`] values at a time into
/// independent lanes (the same operation on neighbouring lanes compiles to packed
/// instructions), its sums as [`SplitLanes`] — exact for values within a few binades of each
/// other — or, past that bound, as double-double lanes in a second pass. Apart from it, the
/// loop that needs each value's place (bins, priority, which stores it may enter) has
/// registers enough. The folded sums are the same either way, as every order of addition
/// gives the same sums ([`ExactSum`]).
#[derive(Clone, Copy, Debug)]
pub struct RunMoments {
    /// Values above the threshold, and their bounds lane by lane (±∞ while there are none).
    pub count: u64,
    min: [f32; LANES],
    max: [f32; LANES],
    /// Values above 0.
    pub firing: u64,
    split: SplitLanes,
    /// The sums of the values above the threshold and of their squares, once the pass is
    /// done.
    sums: (ExactSum, ExactSum),
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
            split: SplitLanes::default(),
            sums: Default::default(),
        };
        for_lanes(items, &value_of, |v| run.add(threshold, v));
        let (min, max) = (run.min(), run.max());
        run.sums = run.split.exact(run.count, min, max).unwrap_or_else(|| {
            // Values over too many binades for the plain sums: the double-double lanes.
            let mut lanes = SumLanes::default();
            for_lanes(items, &value_of, |v| {
                lanes.add(v.map(|v| if v > threshold { v } else { 0.0 }));
            });
            let mut sums = (ExactSum::default(), ExactSum::default());
            lanes.sum.fold_into(&mut sums.0);
            lanes.squares.fold_into(&mut sums.1);
            sums
        });
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
        // +0 where not kept (selected from `v`: testing `kept` for NaN compiled to a branch
        // per lane).
        self.split
            .add(v.map(|v| if v > threshold { v } else { 0.0 }));
    }

    /// The smallest value above the threshold (+∞: none).
    fn min(&self) -> f32 {
        self.min.into_iter().fold(f32::INFINITY, f32::min)
    }

    /// The largest value above the threshold (-∞: none).
    pub fn max(&self) -> f32 {
        self.max.into_iter().fold(f32::NEG_INFINITY, f32::max)
    }

    /// Adds the run to `moments` (as a merge: [`FeatureMoments::merge`] owns how bounds,
    /// counts and sums combine).
    pub fn fold_into(self, moments: &mut FeatureMoments) {
        let run = FeatureMoments {
            count: self.count,
            firing: self.firing,
            min: self.min(),
            max: self.max(),
            sum: self.sums.0,
            sum_squares: self.sums.1,
        };
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
    fn split_sums_are_exact_up_to_their_bound_and_the_lanes_take_over_past_it() {
        // Runs of n values with full random mantissas whose binary exponents span exactly
        // `spread`, half at each end: `⌈log2 n⌉ + 2·spread` at the bound (split sums), just
        // past it (the double-double lanes) and far past it; every pair of bits as the
        // one-value-at-a-time double-double gives.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as u32
        };
        let mut split_runs = 0;
        for (n, spread) in [
            // At the bound.
            (512usize, 10u32),
            (257, 10),
            (5, 13),
            (2, 14),
            // Past it.
            (513, 10),
            (256, 11),
            (3, 14),
            (64, 40),
            (1, 90),
        ] {
            for _ in 0..20 {
                let values: Vec<f32> = (0..n)
                    .map(|i| {
                        let exponent = 100 + if i % 2 == 0 { 0 } else { spread };
                        f32::from_bits(exponent << 23 | next() & 0x7F_FFFF)
                    })
                    .collect();
                let mut reference = FeatureMoments::default();
                for &v in &values {
                    reference.record(v);
                    reference.firing += 1;
                }
                let run = RunMoments::of(&values, 0.0, |&v| v);
                let bound = u64::BITS - (n as u64 - 1).leading_zeros() + 2 * spread;
                if n > 1 && bound <= SPLIT_EXACT {
                    assert!(run.split.exact(run.count, run.min(), run.max()).is_some());
                    split_runs += 1;
                }
                let mut moments = FeatureMoments::default();
                run.fold_into(&mut moments);
                let bits = |sum: ExactSum| (sum.hi.to_bits(), sum.lo.to_bits());
                assert_eq!(
                    bits(moments.sum),
                    bits(reference.sum),
                    "n {n}, spread {spread}"
                );
                assert_eq!(
                    bits(moments.sum_squares),
                    bits(reference.sum_squares),
                    "n {n}, spread {spread}"
                );
                assert_eq!(moments, reference);
            }
        }
        assert_eq!(
            split_runs,
            4 * 20,
            "the runs at the bound took the split sums"
        );
    }

    #[test]
    fn packed_and_portable_lanes_sum_alike() {
        // Values over many binades (so that the low parts of the sums matter), zeros, and
        // the largest and smallest f32, added four at a time both ways: same bits.
        let (mut packed, mut portable) = (SumLanes::default(), SumLanes::default());
        for i in 0..5_000u32 {
            let x: [f32; LANES] = std::array::from_fn(|lane| {
                let r = (i * 4 + lane as u32).wrapping_mul(2_654_435_761);
                match r % 29 {
                    0 => 0.0,
                    1 => f32::MAX / 8.0,
                    2 => f32::MIN_POSITIVE,
                    _ => f32::from_bits(0x2000_0000 + (r >> 3) % 0x3E00_0000),
                }
            });
            #[cfg(target_arch = "x86_64")]
            packed.add_packed(x);
            #[cfg(not(target_arch = "x86_64"))]
            packed.add(x);
            portable.add_lanes(x);
        }
        for (a, b) in [
            (packed.sum, portable.sum),
            (packed.squares, portable.squares),
        ] {
            assert_eq!(a.hi.map(f64::to_bits), b.hi.map(f64::to_bits));
            assert_eq!(a.lo.map(f64::to_bits), b.lo.map(f64::to_bits));
        }
        assert!(
            portable.sum.lo.iter().any(|&lo| lo != 0.0),
            "the low parts were exercised"
        );
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
