//! Small pieces shared by every stage: atomic file writes, the output folder's run lock, where
//! an output may go relative to the inputs, a seeded random generator, an ordered parallel map.

pub mod atomic;
pub mod lock;
pub mod parallel;
pub mod paths;
pub mod rng;
