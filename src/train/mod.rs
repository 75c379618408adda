//! Training SAEs: the loop read top to bottom, the optimizer, schedules and metrics.
//!
//! [`run::train`] reads shuffled token batches from an activation cache ([`data`]), calls
//! [`step::Trainer::step`] until `num_tokens`, writes metrics lines ([`metrics`]) and
//! checkpoints (`sae::checkpoint` plus the trainer state), and [`run::resume`] continues a run
//! exactly. The math of one step is in [`step`]'s docs and `docs/train.md`.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod jumprelu;
pub mod loss;
pub mod metrics;
pub mod optimizer;
pub mod run;
pub mod samples;
pub mod schedule;
mod sparse_decode;
mod sparse_encode;
pub mod step;

pub use config::{ScheduleKind, TrainConfig};
pub use run::{resume, train, RunDir, RunSummary, StepReport};
pub use step::{StepStats, Trainer};

#[cfg(test)]
mod tests;
