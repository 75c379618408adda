//! `saectl cache` and what it writes: one expensive forward pass, stored so that many SAE runs
//! reuse it. [`run`] is the stage (model → hook → disk); the rest is the folder's format.
//!
//! A cache is a folder of safetensors shards — `activations [n_seq, seq_len, d_in]` and the
//! matching `tokens [n_seq, seq_len]` (u32) — plus `cache_index.json` naming the model, hook
//! point, shapes, dtype and text source, and a copy of the tokenizer, so `train` and `collect`
//! can read it instead of running the model (DESIGN.md §3.3; docs/cache.md).
//!
//! Writes are atomic and the index is rewritten after every shard, so an interrupted run
//! resumes after the last complete shard: the token stream is deterministic, and the writer
//! tells the producer how many sequences to skip.

mod index;
mod reader;
mod run;
mod writer;

pub use index::{
    CacheDtype, CacheIndex, CacheSpec, ShardEntry, CACHE_INDEX_FILE, CACHE_TOKENIZER_FILE,
};
pub use reader::{ActivationCache, CacheRows, CacheShard};
pub use run::{run, CacheConfig, CacheEvent, CacheSource, CacheSummary};
pub use writer::CacheWriter;

#[cfg(test)]
mod tests;
