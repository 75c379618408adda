//! Plain-text files: what a document is is a choice ([`TxtDocuments`]), paragraphs by default.
//!
//! Paragraphs (runs of non-blank lines) are the default because a text corpus usually
//! separates its units with blank lines, and because they stream: only one paragraph is in
//! memory at a time. Whole-file documents suit a folder of books or articles; one document per
//! line suits files that already hold one sample per line.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::document::{Locator, RawDocument};
use super::lines::{decode_utf8, LineReader};

/// How a `.txt` file is split into documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxtDocuments {
    /// Blank-line-separated paragraphs; lines of a paragraph are joined with `\n`.
    #[default]
    Paragraph,
    /// Every non-blank line is a document.
    Line,
    /// The whole file, exactly as written (minus a byte-order mark), is one document.
    File,
}

impl std::str::FromStr for TxtDocuments {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "paragraph" => Ok(Self::Paragraph),
            "line" => Ok(Self::Line),
            "file" => Ok(Self::File),
            _ => anyhow::bail!("unknown text document mode `{name}` (use paragraph, line or file)"),
        }
    }
}

/// Documents of one `.txt` file, read lazily.
pub(crate) struct TxtReader {
    mode: TxtDocuments,
    lines: Option<LineReader>,
    /// Whole-file mode: the path, consumed on the first call.
    whole_file: Option<(std::path::PathBuf, Arc<str>)>,
}

impl TxtReader {
    pub fn open(path: &Path, file: Arc<str>, mode: TxtDocuments) -> Result<Self> {
        if mode == TxtDocuments::File {
            // Opened on the first read: checking now keeps "cannot open" errors early.
            std::fs::metadata(path).with_context(|| format!("failed to open {file}"))?;
            return Ok(Self {
                mode,
                lines: None,
                whole_file: Some((path.to_path_buf(), file)),
            });
        }
        Ok(Self {
            mode,
            lines: Some(LineReader::open(path, file)?),
            whole_file: None,
        })
    }

    fn next_document(&mut self) -> Result<Option<RawDocument>> {
        if let Some((path, file)) = self.whole_file.take() {
            let bytes = std::fs::read(&path).with_context(|| format!("failed to read {file}"))?;
            return Ok(Some((Locator::WholeFile, Some(decode_utf8(&file, bytes)?))));
        }
        let Some(lines) = self.lines.as_mut() else {
            return Ok(None);
        };
        match self.mode {
            TxtDocuments::Line => next_line_document(lines),
            _ => next_paragraph(lines),
        }
    }
}

fn next_line_document(lines: &mut LineReader) -> Result<Option<RawDocument>> {
    while let Some(line) = lines.next_line()? {
        if !line.text.trim().is_empty() {
            return Ok(Some((Locator::Line(line.number), Some(line.text))));
        }
    }
    Ok(None)
}

fn next_paragraph(lines: &mut LineReader) -> Result<Option<RawDocument>> {
    let mut paragraph: Option<(u64, String)> = None;
    while let Some(line) = lines.next_line()? {
        let blank = line.text.trim().is_empty();
        match (&mut paragraph, blank) {
            (None, true) => {}
            (None, false) => paragraph = Some((line.number, line.text)),
            (Some(_), true) => break,
            (Some((_, text)), false) => {
                text.push('\n');
                text.push_str(&line.text);
            }
        }
    }
    Ok(paragraph.map(|(number, text)| (Locator::Line(number), Some(text))))
}

impl Iterator for TxtReader {
    type Item = Result<RawDocument>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_document().transpose()
    }
}
