//! The shared collector: per-feature top-k samples with their context activations, streaming
//! statistics and the full feature view.
//!
//! Both `train` (every `sample_collection_freq` steps) and `collect` push batches of feature
//! activations, with the tokens they were computed on, into one [`Collector`]. It keeps, for
//! every feature, the exact top `max_samples_per_feature` activations (ties: the earlier token
//! wins), constant-size statistics, an activation histogram and a position histogram in fixed
//! bins, uniform samples from intervals of its activation range and a uniform sample of its
//! activating tokens (for the flags), so memory is bounded by features × samples × context
//! whatever the number of tokens. Collectors fed disjoint shards [`Collector::merge`] into
//! exactly the collector fed their union. Text is decoded only when a folder is written, and
//! only for the samples written.
//!
//! The stage `saectl collect` is [`run`] (opening, resuming, logit effects, periodic saves); the
//! sweeps ([`sweep_cache`], [`sweep_model`]) push batches into the collector; the collector's
//! interior is `collector` (blocks of features, threads), `block`, `scan`, `offers` and the
//! stores (`top_samples`, `interval_samples`, `token_sample`,
//! `exact_sum`, with their samples' `records`); `folder_write` turns it into a samples folder
//! ([`crate::samples`]), `state` (`state_columns`, `state_pieces`, `state_restore`) into the
//! state file that resumes and merges it, and `folder_merge` merges the folders of
//! `saectl merge`.

mod batch;
pub mod bins;
mod block;
mod collector;
mod collector_merge;
mod exact_sum;
pub mod flags;
mod folder_merge;
mod folder_write;
mod interval_samples;
mod logit_compute;
mod nonfinite;
mod offers;
mod ranges;
mod readout;
mod recorded_tokenizer;
mod records;
mod resume;
mod run;
mod saver;
mod scan;
mod shard;
mod state;
mod state_columns;
mod state_pieces;
mod state_restore;
mod sweep;
mod token_sample;
mod top_samples;

pub use batch::{fixed_k_offsets, FeatureActivations, TokenBatch};
pub use collector::{default_threads, Collector};
pub use folder_merge::{merge_folders, write_merged, MergedFolders};
pub use folder_write::{write_samples_folder, write_samples_folder_with};
pub use logit_compute::compute_logit_effects;
pub use nonfinite::{NonFiniteGuard, NONFINITE_FILE_NAME};
pub use ranges::SequenceRanges;
pub use readout::{FeatureSummary, IntervalView, PrioritizedSample};
pub use recorded_tokenizer::recorded_tokenizer;
pub use run::{run, Activations, CollectConfig, CollectEvent, CollectSource, CollectSummary};
pub use shard::{resume_point, Shard};
pub use sweep::{encode_batch, sweep_cache, sweep_model, Encoded, StageTimes};
pub use token_sample::{TopToken, TOKEN_SAMPLE_SIZE};
pub use top_samples::StoredSample;

#[cfg(test)]
mod tests;
