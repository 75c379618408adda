//! Model tests on CPU fixtures: parity with Hugging Face on the tiny Gemma-2, early stopping
//! and splicing, loading from a directory and from a fake (offline) Hugging Face cache, and
//! the published Gemma-2 configs.

mod common;
mod configs;
mod kv_cache;
mod loading;
mod parity;
mod steering_reference;
