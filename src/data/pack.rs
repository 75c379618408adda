//! Packing settings and what packing produces: windows of `seq_len` tokens grouped into
//! batches, each window with its provenance, and counts of everything read and not used.
//!
//! Packing follows the original (docs/data.md): every non-empty document becomes BOS + its
//! tokens, documents are concatenated into one stream, and the stream is cut into rows of
//! `seq_len` tokens that run across document boundaries, with no padding. Where the original
//! throws away the rest of the document that overflows a batch, saectl by default carries it
//! into the next batch ([`BatchEnd::Carry`]): the rows then do not depend on the batch size,
//! so a cache written with one batch size resumes with another. [`BatchEnd::DropDocumentTail`]
//! restores the original behaviour.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::document::DocumentOrigin;

/// What happens to a document still running when a batch fills up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchEnd {
    /// Its remaining tokens start the next batch.
    #[default]
    Carry,
    /// Its remaining tokens are dropped (and counted) and the next batch starts with the next
    /// document, as the original's `get_batch_tokens` does.
    DropDocumentTail,
}

/// How documents are packed into windows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackConfig {
    /// Tokens per window (row).
    pub seq_len: usize,
    /// Windows per batch; the last batch of a stream may have fewer.
    pub batch_size: usize,
    /// Stop after `ceil(num_tokens / seq_len)` windows (`--num-tokens`), skipped ones included.
    pub num_tokens: Option<u64>,
    pub batch_end: BatchEnd,
    /// Cut each document (BOS included) to this many tokens, as the original's
    /// `to_tokens(truncate=True)` cuts at the model's context length. `None`: no cut.
    pub max_document_tokens: Option<usize>,
    /// Pack but do not emit the first windows (resuming): emitted batches start after them.
    pub start_window: u64,
}

impl PackConfig {
    /// Windows of `seq_len` in batches of `batch_size`, everything else at its default.
    pub fn new(batch_size: usize, seq_len: usize) -> Self {
        Self {
            seq_len,
            batch_size,
            num_tokens: None,
            batch_end: BatchEnd::default(),
            max_document_tokens: None,
            start_window: 0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.seq_len == 0 || self.batch_size == 0 {
            bail!("seq_len and batch size must be at least 1");
        }
        if self.num_tokens == Some(0) {
            bail!("--num-tokens must be at least 1");
        }
        if self.max_document_tokens == Some(0) {
            bail!("the document length limit must be at least 1 token");
        }
        if self.batch_end == BatchEnd::DropDocumentTail
            && self.start_window % self.batch_size as u64 != 0
        {
            bail!(
                "with dropped document tails a resumed stream must start on a batch boundary \
                 (start window {} is not a multiple of the batch size {})",
                self.start_window,
                self.batch_size
            );
        }
        Ok(())
    }

    /// The number of windows the token budget allows, if there is one.
    pub fn window_limit(&self) -> Option<u64> {
        self.num_tokens.map(|n| n.div_ceil(self.seq_len as u64))
    }
}

/// Running counts of a packed stream. At every point
/// `tokens_read = tokens_packed + tokens_skipped + tokens_truncated + tokens_dropped +
/// tokens_unused + tokens_pending`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackCounts {
    /// Documents taken from the source, empty ones included.
    pub documents_read: u64,
    /// Documents with no tokens (empty or null text): skipped, no BOS emitted.
    pub documents_empty: u64,
    /// Documents cut to `max_document_tokens`.
    pub documents_truncated: u64,
    /// Tokens of the documents read, one BOS each included.
    pub tokens_read: u64,
    /// Tokens in complete windows (emitted, or in the batch being filled).
    pub tokens_packed: u64,
    /// Tokens in windows skipped by `start_window`.
    pub tokens_skipped: u64,
    /// Tokens cut by `max_document_tokens`.
    pub tokens_truncated: u64,
    /// Document tails dropped at batch ends ([`BatchEnd::DropDocumentTail`]).
    pub tokens_dropped: u64,
    /// Tokens read but never placed in a window because the stream stopped: the final partial
    /// window at the end of the corpus, or the rest of the current document when the token
    /// budget was reached.
    pub tokens_unused: u64,
    /// Tokens in the window being filled (0 once the stream has ended).
    pub tokens_pending: u64,
    /// Complete windows (emitted, or in the batch being filled), skipped ones excluded.
    pub windows: u64,
    /// Windows skipped by `start_window`.
    pub windows_skipped: u64,
    /// Batches emitted.
    pub batches: u64,
}

/// Where a window starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowOrigin {
    /// Index of the document holding the window's first token.
    pub document: u64,
    /// That document's file and line or row.
    #[serde(serialize_with = "display")]
    pub origin: DocumentOrigin,
    /// Offset of the window's first token in that document's tokens (0 is its BOS).
    pub token_offset: u64,
    /// Number of documents with tokens in the window.
    pub documents: u32,
}

fn display<S: serde::Serializer>(
    origin: &DocumentOrigin,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(origin)
}

/// Windows `[rows, seq_len]`, row-major, and where each starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowBatch {
    pub tokens: Vec<u32>,
    pub rows: usize,
    pub seq_len: usize,
    /// Index of the first row among all windows of the stream (skipped ones included), the
    /// collector's `first_sequence`.
    pub first_sequence: u64,
    pub origins: Vec<WindowOrigin>,
}

impl WindowBatch {
    pub fn row(&self, row: usize) -> &[u32] {
        &self.tokens[row * self.seq_len..(row + 1) * self.seq_len]
    }
}
