//! JSON Lines files: one JSON object per line, the text in one string field.
//!
//! Blank lines are allowed (many files end with one). A `null` text is an empty document —
//! counted and skipped downstream — because real datasets contain the odd null row and one
//! should not stop a long run; a missing field or a non-string value is an error, since it
//! almost always means the wrong `--text-field`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use serde_json::Value;

use super::document::{Locator, RawDocument};
use super::lines::LineReader;

/// Documents of one `.jsonl` file, read lazily.
pub(crate) struct JsonlReader {
    lines: LineReader,
    file: Arc<str>,
    text_field: Arc<str>,
}

impl JsonlReader {
    pub fn open(path: &Path, file: Arc<str>, text_field: Arc<str>) -> Result<Self> {
        Ok(Self {
            lines: LineReader::open(path, file.clone())?,
            file,
            text_field,
        })
    }

    fn next_document(&mut self) -> Result<Option<RawDocument>> {
        while let Some(line) = self.lines.next_line()? {
            if line.text.trim().is_empty() {
                continue;
            }
            let text = self.text_of(line.number, &line.text)?;
            return Ok(Some((Locator::Line(line.number), text)));
        }
        Ok(None)
    }

    /// The text field of one line; `None` for a JSON `null`.
    fn text_of(&self, number: u64, line: &str) -> Result<Option<String>> {
        let (file, field) = (&self.file, &self.text_field);
        let value: Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(err) => bail!("{file}:{number}: malformed JSON: {err}"),
        };
        let Value::Object(mut object) = value else {
            bail!(
                "{file}:{number}: expected a JSON object, found {}",
                kind(&value)
            );
        };
        match object.remove(&**field) {
            Some(Value::String(text)) => Ok(Some(text)),
            Some(Value::Null) => Ok(None),
            Some(other) => bail!(
                "{file}:{number}: field `{field}` is {}, expected a string",
                kind(&other)
            ),
            None => {
                let fields: Vec<&str> = object.keys().map(String::as_str).collect();
                bail!(
                    "{file}:{number}: no field `{field}` (fields on this line: {}); choose \
                     the text field with --text-field",
                    if fields.is_empty() {
                        "none".to_owned()
                    } else {
                        fields.join(", ")
                    }
                )
            }
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Iterator for JsonlReader {
    type Item = Result<RawDocument>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_document().transpose()
    }
}
