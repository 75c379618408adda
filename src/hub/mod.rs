//! The Hugging Face Hub, for model and dataset repositories alike.
//!
//! [`HubSettings`] is resolved from the environment as Python's `huggingface_hub` resolves it
//! (cache folder, token, `HF_HUB_OFFLINE`, `HF_ENDPOINT`) and never fails, so commands that
//! read only local files need none of it. [`HubRepo`] is one repository at one revision:
//! files from the local cache first (the layout the Python tools share, so their downloads
//! are reused), downloads only when online, listings from the Hub API or, offline, from the
//! cached snapshot. `src/model/loading.rs` uses it for `--model`, `src/data/source.rs` for
//! `--dataset`. docs/model.md ("Hugging Face Hub") describes the rules.

mod cache;
pub mod fixtures;
mod repo;
mod settings;

#[cfg(test)]
pub(crate) mod tests;

pub use repo::{HubRepo, RepoKind, RepoListing};
pub use settings::{HubSettings, DEFAULT_ENDPOINT};
