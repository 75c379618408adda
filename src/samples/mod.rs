//! The samples folder: the contract between the stages that collect (`collect`, `train`,
//! `merge`) and those that read (`analyze`, `report`, and whatever comes next).
//!
//! ```text
//! <samples>/collection_summary.json        totals, settings, provenance, every feature's density
//! <samples>/feature_00042_samples.json     one saved feature: statistics, samples, feature view
//! <samples>/logit_effects.json             every feature's promoted / suppressed tokens (with a model)
//! <samples>/collector_state.safetensors    the collector's whole state (resume, merge)
//! <samples>/interpretability_report.md     written by `saectl report`
//! ```
//!
//! [`SamplesDir`] owns those names and reads and writes the JSON files; [`format`] holds the
//! records (the Python original's keys, plus saectl's), [`settings`] the collector settings a
//! folder records, [`CollectionSource`] its provenance, [`bins`] the fixed bin layout its
//! histograms index into. Readers depend on this module only, never on how the collector
//! computed what it wrote; the collector state is the one file whose format is the collector's
//! own (`collect::Collector::save_state`).

pub mod bins;
mod dir;
pub mod format;
mod logit_effects;
mod read;
pub mod settings;
mod source;
pub mod token_names;

pub use dir::{
    SamplesDir, LOGIT_EFFECTS_FILE_NAME, REPORT_FILE_NAME, STATE_FILE_NAME, SUMMARY_FILE_NAME,
};
pub use format::{CollectionSummary, FeatureFile};
pub use logit_effects::{
    FeatureLogitEffects, LogitConvention, LogitEffects, LogitEffectsHeader, TokenEffect,
    LOGIT_EFFECTS_FORMAT, LOGIT_EFFECTS_FORMULA, LOGIT_TOKENS,
};
pub use read::SamplesFolder;
pub use settings::{CollectionSettings, CollectorConfig, FlagConfig, SaveConfig, MAX_INTERVALS};
pub use source::CollectionSource;
