//! Filling a cache: run the model to the hook over packed token windows, append each batch.

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use super::writer::CacheWriter;
use crate::data::{Document, TokenWindows};
use crate::model::{Gemma2, HookPoint};

/// Runs `model` to `hook` over every batch of `windows` and appends the activations to
/// `writer`; `on_batch(tokens)` is called after each batch (progress). Returns the number of
/// sequences written by this call.
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
    let mut written = 0;
    for batch in windows {
        let batch = batch?;
        // The stream and the cache must agree on where we are, or a resume would misalign
        // tokens and activations.
        if batch.first_sequence != writer.sequences_done() as u64 {
            bail!(
                "internal: the token stream is at sequence {} but the cache holds {}",
                batch.first_sequence,
                writer.sequences_done()
            );
        }
        let ids = Tensor::from_vec(
            batch.tokens.clone(),
            (batch.rows, batch.seq_len),
            model.device(),
        )?;
        // [rows, seq_len, d_model]
        let activations = model
            .forward_to_hook(&ids, hook)
            .with_context(|| format!("forward pass failed at sequence {}", batch.first_sequence))?;
        writer.push(&batch.tokens, &activations)?;
        written += batch.rows;
        on_batch((batch.rows * batch.seq_len) as u64);
    }
    Ok(written)
}
