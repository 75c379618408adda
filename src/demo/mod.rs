//! The embedded default: a planted-concept corpus, a tiny Gemma-2 trained on it, and the
//! `saectl demo` pipeline that shows saectl's whole job on them in under two minutes.
//!
//! - [`concepts`]: the word lists (animals, colours, numbers, …) every content word belongs to.
//! - [`grammar`]: the seeded generator of documents built from sentence frames.
//! - [`vocab`]: the word-level `tokenizer.json`.
//! - [`lm`]: training the tiny language model (run by `examples/train_demo_model.rs`).
//!
//! See docs/demo.md.

pub mod concepts;
pub mod corpus_file;
pub mod embedded;
pub mod grammar;
pub mod lm;
pub mod purity;
pub mod vocab;

pub use concepts::Concept;
pub use grammar::CorpusGenerator;
