//! Text in, token windows out: sources, tokenization and packing into `[batch, seq_len]`.
//!
//! A [`DataSource`] resolves `--dataset` (a `.txt`, `.jsonl` or `.parquet` file, a folder of
//! them, or a Hugging Face dataset repo) to an ordered list of files and streams their
//! [`Document`]s lazily. [`TokenWindows`] tokenizes each document with one BOS in front
//! ([`DocumentTokenizer`]), packs the token stream into windows as the Python original does,
//! and yields [`WindowBatch`]es with per-window provenance and running [`PackCounts`].
//! docs/data.md describes the rules; [`fixtures`] builds the tiny test tokenizer and corpora.
//! Nothing here knows the model: [`crate::stream`] runs it over these windows.

mod decode;
mod document;
mod files;
pub mod fixtures;
mod jsonl;
mod lines;
mod pack;
mod packer;
mod parquet;
mod source;
mod split;
mod tokenize;
mod txt;
mod windows;

#[cfg(test)]
mod tests;

pub use decode::{decode_marked, IdDecoder, MarkedText, TokenDecoder, TokenizerDecoder};
pub use document::{Document, DocumentOrigin, Locator};
pub use files::{list_folder, FolderListing, Format, SUPPORTED_EXTENSIONS};
pub use pack::{BatchEnd, PackConfig, PackCounts, WindowBatch, WindowOrigin};
pub use source::{DataSource, DocumentStream, SourceFile, SourceOptions, SourceSummary, TextSpec};
pub use split::{glob_match, select_shards, ShardSelection};
pub use tokenize::{load_tokenizer, Bos, DocumentTokenizer};
pub use txt::TxtDocuments;
pub use windows::TokenWindows;
