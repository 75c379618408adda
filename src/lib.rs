//! saectl: sparse-autoencoder interpretability in one native binary.
//!
//! The stages communicate through folders on disk (DESIGN.md §3): `cache` writes activations,
//! `train` writes an SAE checkpoint, `collect` (and `train`, while it trains) writes a samples
//! folder through the shared [`collect`] module, and [`analyze`] and [`report`] read that
//! folder back through [`samples`]; [`dashboard`] and [`export`] (Neuronpedia) draw and write
//! out the per-feature view [`features`] reads from it. Each stage has a library entry
//! (`cache::run`, `train::train_from`, `collect::run`, `report::render_report`, the `analyze`
//! views, `dashboard::run`, `export::run`); the
//! command-line layer in [`cli`] only parses, validates and shows progress, so tests drive the
//! same code. docs/architecture.md draws the layers.

// Library code does not print: stdout is data, stderr is for people, and only the command line
// knows which is which (DESIGN §2). `cli` opts out; unit tests may print what they measured.
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

pub mod analyze;
pub mod cache;
pub mod cli;
pub mod collect;
pub mod dashboard;
pub mod data;
pub mod demo;
pub mod export;
pub mod features;
pub mod hub;
pub mod model;
pub mod probe;
pub mod report;
pub mod sae;
pub mod samples;
pub mod stream;
pub mod train;
pub mod util;
