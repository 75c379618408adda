//! Parquet files, read with the `parquet` crate's column readers (no Arrow).
//!
//! Only the text column is decoded, a few hundred rows at a time, row group after row group:
//! a multi-gigabyte shard streams in bounded memory. The column must be a top-level string
//! (BYTE_ARRAY) column, which is how Hugging Face datasets store text; nulls become empty
//! documents, as in the JSON Lines reader.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use parquet::basic::Type as PhysicalType;
use parquet::column::reader::{get_typed_column_reader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};

use super::document::{Locator, RawDocument};

/// Rows decoded per read: large enough to amortize the call, small enough to stay in cache.
const ROWS_PER_READ: usize = 256;

/// Documents of one `.parquet` file, read lazily.
pub(crate) struct ParquetReader {
    reader: SerializedFileReader<Bounded>,
    file: Arc<str>,
    text_field: Arc<str>,
    column: usize,
    /// Whether the column can hold nulls (it has definition levels).
    nullable: bool,
    next_row_group: usize,
    column_reader: Option<ColumnReaderImpl<ByteArrayType>>,
    pending: VecDeque<Option<ByteArray>>,
    /// Row index (in the file) of the front of `pending`.
    row: u64,
    values: Vec<ByteArray>,
    levels: Vec<i16>,
}

impl ParquetReader {
    pub fn open(path: &Path, file: Arc<str>, text_field: Arc<str>) -> Result<Self> {
        let handle = File::open(path).with_context(|| format!("failed to open {file}"))?;
        let length = handle
            .metadata()
            .with_context(|| format!("failed to read {file}"))?
            .len();
        let reader = SerializedFileReader::new(Bounded {
            file: handle,
            length,
        })
        .with_context(|| format!("failed to read {file} as a parquet file"))?;
        check_column_chunks(&reader, &file, length)?;
        let (column, nullable) = find_text_column(&reader, &file, &text_field)?;
        Ok(Self {
            reader,
            file,
            text_field,
            column,
            nullable,
            next_row_group: 0,
            column_reader: None,
            pending: VecDeque::new(),
            row: 0,
            values: Vec::new(),
            levels: Vec::new(),
        })
    }

    fn next_document(&mut self) -> Result<Option<RawDocument>> {
        while self.pending.is_empty() {
            // The parquet crate asserts on some damaged pages instead of failing (fuzzing
            // found a dictionary page shorter than its header says): that panic is an error.
            let filled = crate::util::panic::catch(|| self.fill()).map_err(|panic| {
                anyhow!(
                    "{}: column `{}` is damaged (row group {}): {panic}",
                    self.file,
                    self.text_field,
                    self.next_row_group.saturating_sub(1)
                )
            })??;
            if !filled {
                return Ok(None);
            }
        }
        let row = self.row;
        self.row += 1;
        let value = self.pending.pop_front().flatten();
        let text = match value {
            None => None,
            Some(bytes) => Some(self.decode(row, bytes)?),
        };
        Ok(Some((Locator::Row(row), text)))
    }

    fn decode(&self, row: u64, bytes: ByteArray) -> Result<String> {
        String::from_utf8(bytes.data().to_vec()).map_err(|err| {
            let offset = err.utf8_error().valid_up_to();
            anyhow!(
                "{}: row {row}: column `{}` is not valid UTF-8 at byte offset {offset} of the \
                 value (byte 0x{:02x})",
                self.file,
                self.text_field,
                err.as_bytes()[offset]
            )
        })
    }

    /// Decodes the next rows into `pending`; `false` once every row group is read.
    fn fill(&mut self) -> Result<bool> {
        loop {
            if self.column_reader.is_none() && !self.open_next_row_group()? {
                return Ok(false);
            }
            let Some(column_reader) = self.column_reader.as_mut() else {
                return Ok(false);
            };
            self.values.clear();
            self.levels.clear();
            let (rows, _, _) = column_reader
                .read_records(
                    ROWS_PER_READ,
                    Some(&mut self.levels),
                    None,
                    &mut self.values,
                )
                .with_context(|| {
                    format!(
                        "failed to read column `{}` of {} (row group {})",
                        self.text_field,
                        self.file,
                        self.next_row_group - 1
                    )
                })?;
            if rows == 0 {
                self.column_reader = None;
                continue;
            }
            self.queue_rows(rows);
            return Ok(true);
        }
    }

    /// Pairs decoded values with definition levels: a level below the maximum is a null.
    fn queue_rows(&mut self, rows: usize) {
        let mut values = self.values.drain(..);
        if self.nullable {
            for &level in &self.levels[..rows] {
                self.pending
                    .push_back(if level > 0 { values.next() } else { None });
            }
        } else {
            self.pending.extend(values.take(rows).map(Some));
        }
    }

    fn open_next_row_group(&mut self) -> Result<bool> {
        let index = self.next_row_group;
        if index >= self.reader.num_row_groups() {
            return Ok(false);
        }
        self.next_row_group += 1;
        let column_reader = self
            .reader
            .get_row_group(index)
            .and_then(|group| group.get_column_reader(self.column))
            .with_context(|| format!("failed to read row group {index} of {}", self.file))?;
        self.column_reader = Some(get_typed_column_reader::<ByteArrayType>(column_reader));
        Ok(true)
    }
}

/// The leaf column named `field`, and whether it is nullable; errors list what exists.
fn find_text_column(
    reader: &SerializedFileReader<Bounded>,
    file: &str,
    field: &str,
) -> Result<(usize, bool)> {
    let schema = reader.metadata().file_metadata().schema_descr();
    let found = (0..schema.num_columns()).find(|&i| schema.column(i).path().parts() == [field]);
    let Some(index) = found else {
        let columns: Vec<String> = (0..schema.num_columns())
            .map(|i| schema.column(i).path().string())
            .collect();
        bail!(
            "{file} has no column `{field}`; its columns are: {}. Choose the text column with \
             --text-field",
            columns.join(", ")
        );
    };
    let column = schema.column(index);
    if column.max_rep_level() > 0 {
        bail!("{file}: column `{field}` is a list; expected a string column");
    }
    if column.physical_type() != PhysicalType::BYTE_ARRAY {
        bail!(
            "{file}: column `{field}` holds {}, expected strings (BYTE_ARRAY)",
            column.physical_type()
        );
    }
    Ok((index, column.max_def_level() > 0))
}

/// Every column chunk the footer names lies inside the file. The parquet crate asserts it
/// (a panic) on a negative offset or length, and would seek past the end on a large one.
fn check_column_chunks(
    reader: &SerializedFileReader<Bounded>,
    file: &str,
    length: u64,
) -> Result<()> {
    for (group, row_group) in reader.metadata().row_groups().iter().enumerate() {
        for (index, column) in row_group.columns().iter().enumerate() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let size = column.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(size).ok())
                .and_then(|(start, size)| start.checked_add(size))
                .is_some_and(|end| end <= length);
            if !inside {
                bail!(
                    "{file} is damaged: column {index} of row group {group} lies outside the file \
                     (offset {start}, {size} bytes; the file has {length})"
                );
            }
        }
    }
    Ok(())
}

/// A parquet file whose readers stop at its end with an error. The crate's page-header parser
/// skips unknown fields by copying "up to n bytes" to nowhere, which succeeds at the end of a
/// file: a damaged header declaring millions of such fields made it issue millions of empty
/// reads (14 s on a 3 KB file, found by fuzzing). An honest page never reaches the end of
/// the file (the footer follows the last page), so a read there is damage.
struct Bounded {
    file: File,
    length: u64,
}

impl Length for Bounded {
    fn len(&self) -> u64 {
        self.length
    }
}

impl ChunkReader for Bounded {
    type T = BufReader<EndIsError>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(start))?;
        Ok(BufReader::new(EndIsError(file)))
    }

    /// Checks the range against the file's length before allocating: a page header can claim
    /// 2 GB of data.
    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let end = start.checked_add(length as u64);
        if end.is_none_or(|end| end > self.length) {
            return Err(ParquetError::EOF(format!(
                "a page of {length} bytes at offset {start} runs past the end of the file \
                 ({} bytes)",
                self.length
            )));
        }
        self.file.get_bytes(start, length)
    }
}

/// A reader for which the end of the file is an error rather than a zero-length read.
struct EndIsError(File);

impl Read for EndIsError {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.0.read(buf)?;
        if read == 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a page runs past the end of the file",
            ));
        }
        Ok(read)
    }
}

impl Iterator for ParquetReader {
    type Item = Result<RawDocument>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_document().transpose()
    }
}
