//! saectl: sparse-autoencoder interpretability in one native binary.
//!
//! The stages communicate through folders on disk (DESIGN.md §3): `train` writes an SAE
//! checkpoint, `collect` (and `train`, while it trains) writes a samples folder through the
//! shared [`collect`] module, and [`analyze`] and [`report`] read that folder back. The
//! command-line layer in [`cli`] only parses, validates and shows progress; everything it
//! calls lives in the library so that tests drive the same code.

pub mod analyze;
pub mod cli;
pub mod collect;
pub mod dashboard;
pub mod data;
pub mod demo;
pub mod hub;
pub mod model;
pub mod report;
pub mod sae;
pub mod train;
pub mod util;
