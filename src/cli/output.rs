//! Writing a command's data to stdout.
//!
//! `println!` panics when stdout is a closed pipe (`saectl analyze … | head`); a reader that
//! has seen enough is not an error, so a broken pipe ends the output quietly.

use std::io::{ErrorKind, Write};

use anyhow::{Context, Result};

/// Writes `text` to stdout and flushes; a closed pipe is not an error.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other.context("failed to write to stdout"),
    }
}
