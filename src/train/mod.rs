//! Training SAEs: the loop read top to bottom, the optimizer, schedules and metrics.
//!
//! [`run::train_from`] reads shuffled token batches from an activation cache
//! ([`cache_batches`]) or live from the model over text ([`live`], [`corpus`]) — for a
//! transcoder, inputs at one hook point and targets at another — calls [`step::Trainer::step_to`] until `num_tokens`, writes
//! metrics lines ([`metrics`]), runs the loss-recovered evaluation ([`eval`]) and writes
//! checkpoints (`sae::checkpoint` plus the trainer state); [`run::resume`] continues a run
//! exactly. What a run reads is opened by [`source`]. The math of one step is in [`step`]'s
//! docs and `docs/train.md`.

pub mod cache_batches;
pub mod checkpoint;
pub mod config;
pub mod corpus;
pub mod eval;
pub mod jumprelu;
pub mod live;
pub mod loss;
pub mod metrics;
pub mod optimizer;
mod original_config;
pub mod run;
mod run_dir;
pub mod samples;
pub mod schedule;
pub mod source;
mod sparse_decode;
mod sparse_encode;
mod spec;
pub mod step;

pub use config::{ScheduleKind, TrainConfig};
pub use eval::LossRecovered;
pub use run::{resume, train, train_from, RunDir, RunSummary, StepReport};
pub use spec::RunSource;
pub use step::{StepStats, Trainer};

#[cfg(test)]
mod tests;
