//! The shared collector: per-feature top-k samples, streaming statistics and the full
//! feature view.
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

mod batch;
pub mod bins;
mod collector;
mod collector_merge;
mod config;
mod exact_sum;
pub mod flags;
mod folder_read;
mod folder_write;
pub mod format;
mod interval_samples;
mod logit_effects;
mod merge;
mod offers;
mod ranges;
mod readout;
mod scan;
mod shard;
mod state;
mod sweep;
mod token_sample;
mod top_samples;

pub use batch::{fixed_k_offsets, FeatureActivations, TokenBatch};
pub use collector::Collector;
pub use config::{CollectorConfig, SaveConfig, MAX_INTERVALS};
pub use flags::FlagConfig;
pub use folder_read::{read_summary, SamplesFolder};
pub use folder_write::{write_samples_folder, TokenDecoder};
pub use interval_samples::PrioritizedSample;
pub use logit_effects::{
    FeatureLogitEffects, LogitEffects, LogitEffectsHeader, TokenEffect, LOGIT_EFFECTS_FILE_NAME,
    LOGIT_TOKENS,
};
pub use merge::{merge_folders, write_merged, MergedFolders};
pub use ranges::SequenceRanges;
pub use readout::{FeatureSummary, IntervalView};
pub use shard::{resume_point, Shard};
pub use state::STATE_FILE_NAME;
pub use sweep::{
    collect_batch, collect_batch_timed, sweep_cache, sweep_model, StageTimes, TokenizerDecoder,
};
pub use token_sample::{TopToken, TOKEN_SAMPLE_SIZE};
pub use top_samples::StoredSample;

#[cfg(test)]
mod tests;
