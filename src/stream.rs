//! The producer of the model-driven stages: run the model to a hook point over packed token
//! windows and hand each batch, with its activations, to a sink (`cache` writes it to disk,
//! `collect` encodes it with the SAE; `train` reads its windows by index instead, see
//! `train::live`).
//!
//! It joins two layers that know nothing of each other — [`crate::data`] makes token windows,
//! [`crate::model`] takes token ids — so it sits above both, as candle's examples put the
//! text-to-model loop outside the model.

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use crate::data::{Document, TokenWindows, WindowBatch};
use crate::model::{Gemma2, HookPoint};

/// Runs `model` to `hook` over every batch of `windows` and calls `sink(batch, activations)`
/// with activations `[rows, seq_len, d_model]`. `start` is the sequence the stream must start
/// at (a resumed run): a stream that is not contiguous from there is an error, since tokens and
/// activations would no longer line up with what the sink already holds.
pub fn for_each_hooked_batch<D>(
    model: &Gemma2,
    hook: &HookPoint,
    windows: &mut TokenWindows<D>,
    start: u64,
    mut sink: impl FnMut(&WindowBatch, &Tensor) -> Result<()>,
) -> Result<()>
where
    D: Iterator<Item = Result<Document>>,
{
    let mut order = StreamOrder::new(start);
    for batch in windows {
        let batch = batch?;
        order.check(&batch)?;
        let activations = hooked_activations(model, hook, &batch)?;
        sink(&batch, &activations)?;
    }
    Ok(())
}

/// Checks that batches arrive contiguous from a start sequence.
pub struct StreamOrder {
    next: u64,
}

impl StreamOrder {
    pub fn new(start: u64) -> Self {
        Self { next: start }
    }

    /// Refuses `batch` unless it continues the stream; then expects the one after it.
    pub fn check(&mut self, batch: &WindowBatch) -> Result<()> {
        if batch.first_sequence != self.next {
            bail!(
                "internal: the token stream is at sequence {} but {} was expected",
                batch.first_sequence,
                self.next
            );
        }
        self.next += batch.rows as u64;
        Ok(())
    }
}

/// `model`'s activations at `hook` for one batch of windows: `[rows, seq_len, d_model]`.
pub fn hooked_activations(model: &Gemma2, hook: &HookPoint, batch: &WindowBatch) -> Result<Tensor> {
    let ids = Tensor::from_vec(
        batch.tokens.clone(),
        (batch.rows, batch.seq_len),
        model.device(),
    )?;
    model
        .forward_to_hook(&ids, hook)
        .with_context(|| format!("forward pass failed at sequence {}", batch.first_sequence))
}
