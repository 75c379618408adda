//! The fixed bins a samples folder's histograms index into (`activation_histogram.first_bin`,
//! `position_histogram.starts`): the same for every collection, so folders collected apart
//! merge by adding counts, bin by bin.
//!
//! - **Activation bins** split each octave `[2^e, 2^(e+1))` from `2^-8` to `2^12` into 8 bins of
//!   equal width, with edges `2^e · (1 + j/8)`. Bin 0 holds everything below `2^-8` (zero and
//!   negative values included), the last bin everything from `2^12` up. Bins are 6–12% wide
//!   relative to their values, at every scale.
//! - **Position bins**: positions 0, 1, 2–3, 4–7, 8–15, 16–31, 32–63, 64 and beyond.
//!
//! How the collector puts a value in its bin (a shift of its bits) is `collect::bins`.

/// Bins per octave: the mantissa bits a bin index keeps (`2^3`).
pub const MANTISSA_BITS_KEPT: u32 = 3;
pub const BINS_PER_OCTAVE: usize = 1 << MANTISSA_BITS_KEPT;
/// Regular bins span `[2^MIN_EXPONENT, 2^MAX_EXPONENT)`.
pub const MIN_EXPONENT: i32 = -8;
pub const MAX_EXPONENT: i32 = 12;
/// Underflow bin, 8 bins per octave, overflow bin.
pub const ACTIVATION_BINS: usize = (MAX_EXPONENT - MIN_EXPONENT) as usize * BINS_PER_OCTAVE + 2;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mids_increase_and_sit_inside_their_bins() {
        for b in 1..ACTIVATION_BINS - 1 {
            assert!(bin_lower(b) < bin_mid(b) && bin_mid(b) < bin_upper(b));
            assert!(bin_mid(b) < bin_mid(b + 1));
        }
    }
}
