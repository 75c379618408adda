//! Text in, token windows out: sources, tokenization, and packing into `[batch, seq_len]`.
//!
//! A [`DataSource`] resolves `--dataset` (a `.txt`, `.jsonl` or `.parquet` file, a folder of
//! them, or a Hugging Face dataset repo) to an ordered list of files and streams their
//! [`Document`]s lazily.

mod document;
mod files;
mod hub;
mod jsonl;
mod lines;
mod parquet;
mod source;
mod split;
mod txt;

pub use document::{Document, DocumentOrigin, Locator};
pub use files::{list_folder, FolderListing, Format, SUPPORTED_EXTENSIONS};
pub use hub::HubOptions;
pub use source::{DataSource, DocumentStream, SourceFile, SourceOptions, SourceSummary};
pub use split::{glob_match, select_shards, ShardSelection};
pub use txt::TxtDocuments;
