//! What every text source yields: a document's text and where it came from.
//!
//! A [`Document`] carries its position in the whole stream (so token windows can point back
//! at it) and a [`DocumentOrigin`] precise enough to find it again by hand: the file and the
//! line (text, JSON lines) or row (parquet) it starts on.

use std::fmt;
use std::sync::Arc;

/// One document of a corpus, in reading order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// 0-based position among all documents read from the source, empty ones included.
    pub index: u64,
    pub origin: DocumentOrigin,
    pub text: String,
}

/// Where a document starts: its file and the place inside it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DocumentOrigin {
    /// The local path, or for a Hugging Face dataset `org/name:path/in/repo`.
    pub file: Arc<str>,
    pub locator: Locator,
}

/// The place of a document inside its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locator {
    /// The whole file is one document.
    WholeFile,
    /// 1-based line on which the document starts (a text line, paragraph or JSON line).
    Line(u64),
    /// 0-based row of a parquet file.
    Row(u64),
}

impl fmt::Display for DocumentOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.locator {
            Locator::WholeFile => write!(f, "{}", self.file),
            Locator::Line(line) => write!(f, "{}:{line}", self.file),
            Locator::Row(row) => write!(f, "{} row {row}", self.file),
        }
    }
}

/// What a format reader yields before the stream numbers it: the locator and the text.
/// `None` text stands for a null value (JSON `null`, a parquet null): it becomes an empty
/// document, which is counted and skipped rather than silently dropped.
pub(crate) type RawDocument = (Locator, Option<String>);
