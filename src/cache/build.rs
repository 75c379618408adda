//! Filling a cache: run the model to the hook over packed token windows, append each batch.

use anyhow::Result;

use super::writer::CacheWriter;
use crate::data::{Document, TokenWindows};
use crate::model::{Gemma2, HookPoint};
use crate::stream::for_each_hooked_batch;

/// Runs `model` to `hook` over every batch of `windows` (which must start where the cache
/// stopped) and appends the activations to `writer`; `on_batch(tokens)` is called after each
/// batch (progress). Returns the number of sequences written by this call.
pub fn fill_cache<D>(
    model: &Gemma2,
    hook: &HookPoint,
    windows: &mut TokenWindows<D>,
    writer: &mut CacheWriter,
    mut on_batch: impl FnMut(u64),
) -> Result<usize>
where
    D: Iterator<Item = Result<Document>>,
{
    let start = writer.sequences_done();
    for_each_hooked_batch(model, hook, windows, start as u64, |batch, activations| {
        writer.push(&batch.tokens, activations)?;
        on_batch((batch.rows * batch.seq_len) as u64);
        Ok(())
    })?;
    Ok(writer.sequences_done() - start)
}
