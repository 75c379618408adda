//! Small pieces shared by every stage: the allocator's settings, atomic file writes, the
//! output folder's run lock, where an output may go relative to the inputs, third-party panics
//! on damaged files turned into errors, an ordered parallel map, stages on threads with bounded
//! queues between them, a seeded random generator.

pub mod alloc;
pub mod atomic;
pub mod lock;
pub mod panic;
pub mod parallel;
pub mod paths;
pub mod pipeline;
pub mod rng;
