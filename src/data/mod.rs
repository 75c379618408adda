//! Text in, token windows and activations out: text sources, tokenization and packing, and the
//! activation cache.

pub mod cache;
