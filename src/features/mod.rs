//! Every feature of an SAE as one collection saw it: the view that `saectl dashboard` draws and
//! `saectl export` writes out, read once here so that both show the same numbers.
//!
//! [`input`] loads a samples folder with its collector state (all features, not only those
//! saved as JSON), the logit effects and any per-token activations; [`model`] reads each
//! feature's statistics, histogram, flags, top examples and interval groups out of the
//! collector into a [`model::FeatureSet`]; [`tokenizer`] finds the tokenizer that turns the
//! collection's token ids back into text; [`similar`] computes neighbours (token overlap,
//! context overlap, decoder cosine); [`labels`] reads the labels people wrote on the dashboard.

pub mod input;
pub mod labels;
pub mod model;
pub mod similar;
pub mod tokenizer;

pub use labels::read_labels;
