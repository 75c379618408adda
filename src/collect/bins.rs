//! Fixed bins every collector shares, and the sampling priority of an activation.
//!
//! Shards collected apart must merge by adding counts, so bin edges cannot depend on the data:
//! - **Activation bins** split each octave `[2^e, 2^(e+1))` from `2^-8` to `2^12` into 8 bins of
//!   equal width, with edges `2^e · (1 + j/8)` — exactly the f32 values whose exponent and top 3
//!   mantissa bits agree, so a value's bin is a shift of its bits (no `log`). Bin 0 holds
//!   everything below `2^-8` (zero and negative values included), the last bin everything from
//!   `2^12` up. Bins are 6–12% wide relative to their values, at every scale.
//! - **Position bins**: positions 0, 1, 2–3, 4–7, 8–15, 16–31, 32–63, 64 and beyond.
//! - **Priority**: a hash of (feature, sequence, position) — the random number of a uniform
//!   sample that stays the same whichever shard or batch the activation arrives in. Keeping the
//!   lowest priorities of a set (bottom-k) is a uniform sample of it without replacement, and
//!   the bottom-k of a union is the bottom-k of the parts' bottom-k: samples merge exactly.

use crate::util::rng::mix64;

/// Bins per octave: the mantissa bits a bin index keeps (`2^3`).
const MANTISSA_BITS_KEPT: u32 = 3;
pub const BINS_PER_OCTAVE: usize = 1 << MANTISSA_BITS_KEPT;
/// Regular bins span `[2^MIN_EXPONENT, 2^MAX_EXPONENT)`.
pub const MIN_EXPONENT: i32 = -8;
pub const MAX_EXPONENT: i32 = 12;
/// Underflow bin, 8 bins per octave, overflow bin.
pub const ACTIVATION_BINS: usize = (MAX_EXPONENT - MIN_EXPONENT) as usize * BINS_PER_OCTAVE + 2;
/// `bits >> 20` of `2^MIN_EXPONENT`: the key of bin 1.
const FIRST_KEY: i32 = (127 + MIN_EXPONENT) << MANTISSA_BITS_KEPT;

/// The activation bin of a finite `v`: a shift and a clamp of its bits. Negative values have
/// the sign bit set, so as `i32` they shift to a negative key and land in bin 0.
#[inline(always)]
pub fn activation_bin(v: f32) -> usize {
    let key = (v.to_bits() as i32) >> (23 - MANTISSA_BITS_KEPT);
    (key - FIRST_KEY + 1).clamp(0, ACTIVATION_BINS as i32 - 1) as usize
}

/// Lower edge of bin `b` (−∞ for bin 0). Edges are exact binary fractions: the f64 whose
/// exponent is the bin's octave and whose top mantissa bits are its step in the octave.
pub fn bin_lower(b: usize) -> f64 {
    if b == 0 {
        return f64::NEG_INFINITY;
    }
    let k = (b - 1) as i64;
    let octave = i64::from(MIN_EXPONENT) + k / BINS_PER_OCTAVE as i64;
    let step = (k % BINS_PER_OCTAVE as i64) as u64;
    f64::from_bits(((octave + 1023) as u64) << 52 | step << (52 - MANTISSA_BITS_KEPT))
}

/// Upper edge of bin `b` (+∞ for the last bin).
pub fn bin_upper(b: usize) -> f64 {
    if b + 1 >= ACTIVATION_BINS {
        f64::INFINITY
    } else {
        bin_lower(b + 1)
    }
}

/// The middle of bin `b`, which decides the activation interval the bin belongs to
/// (−∞ for the underflow bin, +∞ for the overflow bin).
pub fn bin_mid(b: usize) -> f64 {
    match b {
        0 => f64::NEG_INFINITY,
        b if b + 1 >= ACTIVATION_BINS => f64::INFINITY,
        b => 0.5 * (bin_lower(b) + bin_upper(b)),
    }
}

/// Position bins: 0, 1, 2–3, 4–7, 8–15, 16–31, 32–63, 64+.
pub const POSITION_BINS: usize = 8;

/// The first position of each position bin.
pub const POSITION_BIN_STARTS: [u32; POSITION_BINS] = [0, 1, 2, 4, 8, 16, 32, 64];

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
    fn mids_increase_and_sit_inside_their_bins() {
        for b in 1..ACTIVATION_BINS - 1 {
            assert!(bin_lower(b) < bin_mid(b) && bin_mid(b) < bin_upper(b));
            assert!(bin_mid(b) < bin_mid(b + 1));
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
