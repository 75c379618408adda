//! Analysis of a samples folder: pure functions over a loaded [`SamplesFolder`].
//!
//! Each view of `saectl analyze` is one module here that turns the folder into a plain,
//! serializable value (what `--json` prints) and renders it as terminal text (what a person
//! reads). Nothing here prints or writes files: the command line decides where text goes.
//! The measures between features — activating-token overlap and context overlap, see
//! [`similarity`] — use only the stored samples, so they work on folders written by the
//! Python original too; given the SAE checkpoint, the cosine of the decoder directions
//! ([`decoder`]) joins them.
//!
//! [`SamplesFolder`]: crate::samples::SamplesFolder

pub mod clusters;
pub mod compare;
pub mod decoder;
mod example;
pub mod feature_report;
pub mod feature_view;
pub mod histogram;
pub mod histogram_view;
mod linkage;
pub mod logits;
pub mod overview;
pub mod similar;
pub mod similarity;
pub mod stats;
pub mod svg;
#[cfg(test)]
mod test_support;
pub mod text;
pub mod tokens;

pub use clusters::{clusters, Clusters};
pub use compare::{compare, Comparison};
pub use feature_report::{feature_report, FeatureReport};
pub use histogram::Histogram;
pub use histogram_view::{feature_histogram, FeatureHistogram};
pub use overview::{overview, Overview};
pub use similar::{similar, SimilarFeatures};
pub use similarity::{ContextIdf, FeatureProfile, Similarity};
pub use stats::{ensure_has_samples, ranked_features, FeatureStats, FolderInfo, StatsScope};

/// The rule drawn under a terminal report's title, as wide as the original's.
pub(crate) const RULE_WIDTH: usize = 80;
