//! splitmix64 (Steele, Lea & Flood 2014): a tiny seeded generator for weight initialisation,
//! synthetic data, fixtures and benchmarks.
//!
//! candle's CPU device cannot be seeded (DESIGN §6.4), and results must not depend on a
//! crate's choice of algorithm across versions: the same seed gives the same numbers forever.

/// splitmix64's output function: a bijection of `u64` that mixes every input bit into every
/// output bit. Also used alone, as a hash of a key (the collector's sampling priorities).
#[inline(always)]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator; the field is its state (the seed to start).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)` from the top 24 bits (exact in f32).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[-1, 1)`.
    pub fn uniform_sym(&mut self) -> f32 {
        2.0 * self.next_f32() - 1.0
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible for the small n used here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A uniformly chosen element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sequence_and_ranges() {
        // Reference values of splitmix64 seeded with 0 (the published test vector).
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut rng = SplitMix64(49);
        for _ in 0..1000 {
            let (u, s, b) = (rng.next_f32(), rng.uniform_sym(), rng.below(7));
            assert!((0.0..1.0).contains(&u) && (-1.0..1.0).contains(&s) && b < 7);
        }
    }
}
