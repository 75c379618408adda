//! Line-by-line reading with positions, shared by the `.txt` and `.jsonl` readers.
//!
//! Lines are read as bytes and validated as UTF-8 one at a time, so a bad byte is reported
//! with its file, line and byte offset instead of as an anonymous "stream did not contain
//! valid UTF-8", and a corpus is never held in memory whole.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};

/// A line without its terminator (`\n` or `\r\n`), with its 1-based number.
pub(crate) struct Line {
    pub number: u64,
    pub text: String,
}

pub(crate) struct LineReader {
    reader: BufReader<File>,
    file: Arc<str>,
    /// Number of the last line returned.
    number: u64,
    /// Byte offset in the file of the next line's first byte.
    offset: u64,
    buffer: Vec<u8>,
}

impl LineReader {
    pub fn open(path: &Path, file: Arc<str>) -> Result<Self> {
        let handle =
            File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
        Ok(Self {
            reader: BufReader::with_capacity(1 << 16, handle),
            file,
            number: 0,
            offset: 0,
            buffer: Vec::new(),
        })
    }

    /// The next line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<Line>> {
        self.buffer.clear();
        let read = self
            .reader
            .read_until(b'\n', &mut self.buffer)
            .with_context(|| format!("failed to read {}", self.file))?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        let start = self.offset;
        self.offset += read as u64;
        // A byte-order mark is an encoding marker, not text.
        let bom = if start == 0 { bom_len(&self.buffer) } else { 0 };
        let bytes = trim_line_end(&self.buffer[bom..]);
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some(Line {
                number: self.number,
                text: text.to_owned(),
            })),
            Err(err) => Err(utf8_error(
                &self.file,
                self.number,
                start + (bom + err.valid_up_to()) as u64,
                bytes[err.valid_up_to()],
            )),
        }
    }
}

fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn bom_len(bytes: &[u8]) -> usize {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    }
}

fn utf8_error(file: &str, line: u64, offset: u64, byte: u8) -> anyhow::Error {
    anyhow!(
        "{file}: invalid UTF-8 on line {line} at byte offset {offset} (byte 0x{byte:02x}); \
         saectl reads UTF-8 text only"
    )
}

/// Decodes a whole file's bytes, naming the line and byte offset of the first bad byte.
pub(crate) fn decode_utf8(file: &str, mut bytes: Vec<u8>) -> Result<String> {
    // Offsets count from the start of the file, byte-order mark included.
    let bom = bom_len(&bytes);
    bytes.drain(..bom);
    String::from_utf8(bytes).map_err(|err| {
        let offset = err.utf8_error().valid_up_to();
        let bytes = err.as_bytes();
        let line = 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count() as u64;
        utf8_error(file, line, (bom + offset) as u64, bytes[offset])
    })
}
