//! Sparse autoencoders: the architectures (math only), their checkpoints, and imports.
//!
//! One closed enum, [`SaeKind`], names the architectures; an [`Sae`] is a validated
//! [`SaeConfig`] plus [`SaeWeights`] under SAELens's tensor names. Encoding is always inference
//! mode ([`Sae::encode`], or [`Sae::encode_sparse`] for the collector's CSR input); top-k never
//! sorts a full row on the device ([`topk`]), and the sparse selections never copy the dense
//! `[n, d_sae]` matrix off it ([`extract`], [`topk_sparse`]). [`checkpoint`] reads and writes
//! saectl's own folders (SAELens-readable), and [`import::load_any`] also reads SAELens folders,
//! Gemma Scope `params.npz` (through [`npz`], which checks every size a file claims before it
//! allocates) and the Python original's torch checkpoints ([`original`]); [`hub_path`] fetches
//! a `--checkpoint` from the Hub, named by its repo path or, through [`releases`], by its
//! SAELens release and id. The exact math and formats are in `docs/sae.md`.

pub mod checkpoint;
mod config;
mod encode;
pub(crate) mod extract;
pub mod hub_path;
pub mod import;
pub mod npz;
pub mod original;
pub mod releases;
mod sparse;
pub mod topk;
pub mod topk_sparse;
mod weights;

pub use config::{dtype_name, Normalization, SaeConfig, SaeKind};
pub use encode::{normalize_tokens, Denorm, Sae};
pub use sparse::SparseActs;
pub use weights::SaeWeights;

#[cfg(test)]
mod tests;
