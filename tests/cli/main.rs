//! The one integration binary: the real `saectl` driven as a user would, on tiny CPU fixtures
//! the project makes itself (no network, no Python), through one harness ([`util`]); and the
//! model against its Hugging Face reference ([`model`]).
//!
//! One module per stage or concern: `architecture` (the layers hold), `basics` (help,
//! version, usage errors), `cache`,
//! `collect`, `golden` (what `collect` writes, byte for byte), `merge`, `logit_effects`,
//! `export` (Neuronpedia's formats, loaded into a real PostgreSQL),
//! `train`, `train_jumprelu`, `analyze_report`, `demo`, `docs` (docs/cli.md is `--help`),
//! `original` (the Python original's configs and checkpoints),
//! `model`.

mod analyze_report;
mod architecture;
mod bad_input;
mod basics;
mod cache;
mod collect;
mod dashboard;
mod demo;
mod disk_full;
mod docs;
mod export;
mod golden;
mod logit_effects;
#[path = "../support/logit_reference.rs"]
mod logit_reference;
mod merge;
mod model;
mod nonfinite;
mod original;
mod probe;
mod reliability;
mod small_fs;
mod steer_demo;
mod train;
mod train_jumprelu;
mod util;
