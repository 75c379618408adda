//! Small pieces shared by every stage: atomic file writes, a seeded random generator.

pub mod atomic;
pub mod rng;
