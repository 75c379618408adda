//! [`TokenWindows`]: documents in, tokenized and packed batches of windows out.
//!
//! This is what `saectl cache`, `train` and `collect` consume: an iterator of
//! [`WindowBatch`]es with running [`PackCounts`]. It pulls one document at a time from any
//! document iterator (a [`DocumentStream`](super::DocumentStream), or a `Vec` in tests), so
//! memory stays bounded by one document plus one batch. It stops at the token budget or at
//! the end of the documents, and a corpus that yields no window at all is an error, not an
//! empty stream.

use anyhow::{bail, Context, Result};

use super::document::Document;
use super::pack::{PackConfig, PackCounts, WindowBatch};
use super::packer::Packer;
use super::tokenize::DocumentTokenizer;

/// Batches of token windows from a stream of documents.
pub struct TokenWindows<D> {
    documents: D,
    tokenizer: DocumentTokenizer,
    config: PackConfig,
    packer: Packer,
    /// The documents are exhausted or the budget is spent.
    done: bool,
    /// An error was returned: the stream is over.
    failed: bool,
}

impl<D: Iterator<Item = Result<Document>>> TokenWindows<D> {
    pub fn new(documents: D, tokenizer: DocumentTokenizer, config: PackConfig) -> Result<Self> {
        let packer = Packer::new(config.clone(), tokenizer.bos_id())?;
        Ok(Self {
            documents,
            tokenizer,
            config,
            packer,
            done: false,
            failed: false,
        })
    }

    /// Counts so far; final once the iterator has returned `None`.
    pub fn counts(&self) -> &PackCounts {
        self.packer.counts()
    }

    pub fn config(&self) -> &PackConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &DocumentTokenizer {
        &self.tokenizer
    }

    /// The document source, e.g. to ask a `DocumentStream` which file it is reading.
    pub fn documents(&self) -> &D {
        &self.documents
    }

    fn next_batch(&mut self) -> Result<Option<WindowBatch>> {
        loop {
            if let Some(batch) = self.packer.pop_batch() {
                return Ok(Some(batch));
            }
            if self.done {
                return Ok(None);
            }
            if self.packer.budget_reached() {
                self.finish()?;
                continue;
            }
            match self.documents.next() {
                None => self.finish()?,
                Some(document) => self.pack(document?)?,
            }
        }
    }

    fn pack(&mut self, document: Document) -> Result<()> {
        let ids = self.tokenizer.encode(&document.text).with_context(|| {
            format!(
                "failed to tokenize document {} ({})",
                document.index, document.origin
            )
        })?;
        self.packer
            .push_document(document.index, &document.origin, ids);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.done = true;
        self.packer.finish();
        let counts = self.packer.counts();
        if counts.windows + counts.windows_skipped > 0 {
            return Ok(());
        }
        if counts.documents_read == 0 {
            bail!("the corpus has no documents");
        }
        if counts.documents_read == counts.documents_empty {
            bail!(
                "all {} documents of the corpus are empty",
                counts.documents_read
            );
        }
        bail!(
            "the corpus has {} tokens (one BOS per document included) in {} non-empty \
             documents: not enough for one window of {} tokens",
            counts.tokens_read - counts.tokens_truncated,
            counts.documents_read - counts.documents_empty,
            self.config.seq_len
        )
    }
}

impl<D: Iterator<Item = Result<Document>>> Iterator for TokenWindows<D> {
    type Item = Result<WindowBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_batch().transpose();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}
