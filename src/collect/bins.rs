//! A value's place in the fixed bins of the samples folder ([`crate::samples::bins`], re-exported
//! here for the collector's stores), and the sampling priority of an activation.
//!
//! Shards collected apart must merge by adding counts, so bin edges cannot depend on the data:
//! - **Activation bins**: the edges `2^e · (1 + j/8)` are exactly the f32 values whose exponent
//!   and top 3 mantissa bits agree, so a value's bin is a shift of its bits (no `log`).
//! - **Position bins**: a position's bin is its bit length, capped.
//! - **Priority**: a hash of (feature, sequence, position) — the random number of a uniform
//!   sample that stays the same whichever shard or batch the activation arrives in. Keeping the
//!   lowest priorities of a set (bottom-k) is a uniform sample of it without replacement, and
//!   the bottom-k of a union is the bottom-k of the parts' bottom-k: samples merge exactly.

pub use crate::samples::bins::{
    bin_lower, bin_mid, bin_upper, ACTIVATION_BINS, BINS_PER_OCTAVE, MANTISSA_BITS_KEPT,
    MAX_EXPONENT, MIN_EXPONENT, POSITION_BINS, POSITION_BIN_STARTS,
};
use crate::util::rng::mix64;

/// `bits >> 20` of `2^MIN_EXPONENT`: the key of bin 1.
const FIRST_KEY: i32 = (127 + MIN_EXPONENT) << MANTISSA_BITS_KEPT;

/// The activation bin of a finite `v`: a shift and a clamp of its bits. Negative values have
/// the sign bit set, so as `i32` they shift to a negative key and land in bin 0.
#[inline(always)]
pub fn activation_bin(v: f32) -> usize {
    let key = (v.to_bits() as i32) >> (23 - MANTISSA_BITS_KEPT);
    (key - FIRST_KEY + 1).clamp(0, ACTIVATION_BINS as i32 - 1) as usize
}

/// The position bin of `position`: its bit length, capped.
#[inline(always)]
pub fn position_bin(position: u32) -> usize {
    ((u32::BITS - position.leading_zeros()) as usize).min(POSITION_BINS - 1)
}

/// The part of an activation's key that depends only on its sequence: computed once per row.
#[inline(always)]
pub fn row_key(sequence_idx: u64) -> u64 {
    sequence_idx << 24
}

/// The sampling priority of the activation of `feature` at (`row_key`'s sequence, `position`).
/// Within one feature it is a bijection of `(sequence, position)` while sequences stay below
/// 2^40 and positions below 2^24 (no two activations tie); beyond, ties are broken by the
/// stores' full keys, so results stay exact either way.
#[inline(always)]
pub fn priority(row_key: u64, position: u32, feature: u32) -> u64 {
    mix64(row_key ^ u64::from(position) ^ u64::from(feature).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bin by search over the edges: the reference for the bit trick.
    fn bin_by_edges(v: f32) -> usize {
        let v = f64::from(v);
        (0..ACTIVATION_BINS)
            .find(|&b| bin_lower(b) <= v && v < bin_upper(b))
            .unwrap()
    }

    #[test]
    fn the_bit_trick_agrees_with_the_edges() {
        assert_eq!(ACTIVATION_BINS, 162);
        let mut values = vec![0.0f32, -0.0, -1.0, -1e30, 1e-30, f32::MIN_POSITIVE, 1e30];
        for b in 1..ACTIVATION_BINS {
            let edge = bin_lower(b) as f32;
            values.extend([edge, f32::from_bits(edge.to_bits() - 1), edge * 1.01]);
        }
        let mut rng = crate::util::rng::SplitMix64(5);
        values.extend((0..10_000).map(|_| (rng.uniform_sym() * 30.0).exp2() * 0.7));
        for v in values {
            assert_eq!(activation_bin(v), bin_by_edges(v), "{v}");
        }
        assert_eq!(activation_bin(0.1), bin_by_edges(0.1));
        assert_eq!(bin_lower(1), 2f64.powi(-8));
        assert_eq!(bin_lower(ACTIVATION_BINS - 1), 4096.0);
        assert_eq!(bin_lower(10), 2f64.powi(-7) * 1.125);
        for b in 1..ACTIVATION_BINS {
            let k = (b - 1) as i32;
            let expected = 2f64.powi(MIN_EXPONENT + k / 8) * (1.0 + f64::from(k % 8) / 8.0);
            assert_eq!(bin_lower(b), expected, "bin {b}");
        }
    }

    #[test]
    fn positions_fall_in_log_bins() {
        let bins: Vec<usize> = [0, 1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 1000, u32::MAX]
            .iter()
            .map(|&p| position_bin(p))
            .collect();
        assert_eq!(bins, vec![0, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 7, 7]);
        for (b, &start) in POSITION_BIN_STARTS.iter().enumerate() {
            assert_eq!(position_bin(start), b);
        }
    }

    #[test]
    fn priorities_do_not_tie_within_a_feature() {
        let mut seen = std::collections::HashSet::new();
        for sequence in [0u64, 1, 2, 1 << 39] {
            for position in [0u32, 1, 2, 127, (1 << 24) - 1] {
                assert!(seen.insert(priority(row_key(sequence), position, 7)));
            }
        }
        assert_ne!(priority(0, 0, 1), priority(0, 0, 2));
    }
}
