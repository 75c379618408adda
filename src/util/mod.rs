//! Small pieces shared by every stage: atomic file writes, the output folder's run lock, a
//! seeded random generator.

pub mod atomic;
pub mod lock;
pub mod rng;
