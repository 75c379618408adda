//! Small pieces shared by every stage: atomic file writes, the output folder's run lock, where
//! an output may go relative to the inputs, stages on threads with bounded queues between them,
//! a seeded random generator.

pub mod atomic;
pub mod lock;
pub mod paths;
pub mod pipeline;
pub mod rng;
