//! Small pieces shared by every stage: atomic file writes.

pub mod atomic;
