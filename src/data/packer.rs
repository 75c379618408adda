//! The packing state machine: documents' token ids in, batches of windows out.
//!
//! Pure and synchronous — no tokenizer, no I/O — so every rule of docs/data.md (one BOS per
//! document, windows across document boundaries, dropped tails, the token budget, resuming)
//! is tested here with hand-written ids.

use std::collections::VecDeque;

use anyhow::Result;

use super::document::DocumentOrigin;
use super::pack::{BatchEnd, PackConfig, PackCounts, WindowBatch, WindowOrigin};

pub(crate) struct Packer {
    config: PackConfig,
    bos: Option<u32>,
    window_limit: Option<u64>,
    counts: PackCounts,
    /// The window being filled and where it starts.
    row: Vec<u32>,
    row_origin: Option<WindowOrigin>,
    /// Windows of the batch being filled, skipped ones included.
    rows_in_batch: usize,
    batch: Option<WindowBatch>,
    ready: VecDeque<WindowBatch>,
}

impl Packer {
    pub fn new(config: PackConfig, bos: Option<u32>) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            window_limit: config.window_limit(),
            row: Vec::with_capacity(config.seq_len),
            config,
            bos,
            counts: PackCounts::default(),
            row_origin: None,
            rows_in_batch: 0,
            batch: None,
            ready: VecDeque::new(),
        })
    }

    pub fn counts(&self) -> &PackCounts {
        &self.counts
    }

    /// Whether the token budget is spent: no further document can add a window.
    pub fn budget_reached(&self) -> bool {
        self.window_limit
            .is_some_and(|limit| self.windows_total() >= limit)
    }

    fn windows_total(&self) -> u64 {
        self.counts.windows + self.counts.windows_skipped
    }

    pub fn pop_batch(&mut self) -> Option<WindowBatch> {
        self.ready.pop_front()
    }

    /// Packs one document: BOS (if any) and `ids`. Empty documents are only counted.
    pub fn push_document(&mut self, index: u64, origin: &DocumentOrigin, ids: Vec<u32>) {
        self.counts.documents_read += 1;
        if ids.is_empty() {
            self.counts.documents_empty += 1;
            return;
        }
        let mut tokens = Vec::with_capacity(ids.len() + 1);
        tokens.extend(self.bos);
        tokens.extend(ids);
        self.counts.tokens_read += tokens.len() as u64;
        if let Some(max) = self
            .config
            .max_document_tokens
            .filter(|&m| tokens.len() > m)
        {
            self.counts.documents_truncated += 1;
            self.counts.tokens_truncated += (tokens.len() - max) as u64;
            tokens.truncate(max);
        }
        self.pack(index, origin, &tokens);
    }

    fn pack(&mut self, index: u64, origin: &DocumentOrigin, tokens: &[u32]) {
        let seq_len = self.config.seq_len;
        let mut offset = 0;
        while offset < tokens.len() {
            let left = (tokens.len() - offset) as u64;
            if self.budget_reached() {
                self.counts.tokens_unused += left;
                return;
            }
            let start = self.row_origin.get_or_insert_with(|| WindowOrigin {
                document: index,
                origin: origin.clone(),
                token_offset: offset as u64,
                documents: 0,
            });
            start.documents += 1;
            let take = (seq_len - self.row.len()).min(tokens.len() - offset);
            self.row.extend_from_slice(&tokens[offset..offset + take]);
            offset += take;
            self.counts.tokens_pending = self.row.len() as u64;
            if self.row.len() == seq_len && self.complete_row() {
                let left = (tokens.len() - offset) as u64;
                if self.config.batch_end == BatchEnd::DropDocumentTail && left > 0 {
                    self.counts.tokens_dropped += left;
                    return;
                }
            }
        }
    }

    /// Moves the full row into the batch; `true` when that completes the batch.
    fn complete_row(&mut self) -> bool {
        let seq_len = self.config.seq_len as u64;
        let origin = self.row_origin.take();
        self.counts.tokens_pending = 0;
        if self.windows_total() < self.config.start_window {
            self.counts.windows_skipped += 1;
            self.counts.tokens_skipped += seq_len;
            self.row.clear();
            let boundary = self.count_row_in_batch();
            if self.windows_total() == self.config.start_window {
                // Emitted batches start right after the skipped windows.
                self.rows_in_batch = 0;
                return true;
            }
            return boundary;
        }
        let first_sequence = self.windows_total();
        let (batch_size, row_len) = (self.config.batch_size, self.config.seq_len);
        let batch = self.batch.get_or_insert_with(|| WindowBatch {
            tokens: Vec::with_capacity(batch_size * row_len),
            rows: 0,
            seq_len: row_len,
            first_sequence,
            origins: Vec::with_capacity(batch_size),
        });
        batch.tokens.append(&mut self.row);
        batch.rows += 1;
        batch.origins.extend(origin);
        self.counts.windows += 1;
        self.counts.tokens_packed += seq_len;
        let full = self.count_row_in_batch();
        if full {
            self.flush_batch();
        }
        full
    }

    fn count_row_in_batch(&mut self) -> bool {
        self.rows_in_batch += 1;
        if self.rows_in_batch == self.config.batch_size {
            self.rows_in_batch = 0;
            return true;
        }
        false
    }

    fn flush_batch(&mut self) {
        if let Some(batch) = self.batch.take() {
            self.counts.batches += 1;
            self.ready.push_back(batch);
        }
    }

    /// Ends the stream: the partial batch is emitted, the partial window counted unused.
    pub fn finish(&mut self) {
        self.counts.tokens_unused += self.row.len() as u64;
        self.counts.tokens_pending = 0;
        self.row.clear();
        self.row_origin = None;
        self.flush_batch();
    }
}
