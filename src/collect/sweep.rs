//! The sweep: token batches → (model to the hook, or an activation cache) → SAE encode in
//! inference mode on flattened tokens → the collector.
//!
//! Encoding is always the SAE's inference mode on `[tokens, d_in]` (DESIGN §4: the original
//! applied training-mode BatchTopK to `[batch, seq, d]` and kept ~k/seq latents per token), and
//! the SAE hands the collector a sparse CSR batch, so only the active latents leave the device.
//! A sweep resumes after `collector.sequences_seen()` sequences: sweeps are in stream order.

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use super::batch::TokenBatch;
use super::collector::Collector;
use super::folder_write::TokenDecoder;
use crate::data::cache::ActivationCache;
use crate::data::{Document, TokenWindows};
use crate::model::{for_each_hooked_batch, Gemma2, HookPoint};
use crate::sae::Sae;

/// Encodes `[rows, seq_len, d_in]` activations and feeds them, with their tokens, to `collector`.
pub fn collect_batch(
    sae: &Sae,
    collector: &mut Collector,
    tokens: &[u32],
    activations: &Tensor,
    first_sequence: u64,
) -> Result<()> {
    let (rows, seq_len, d_in) = activations.dims3()?;
    if d_in != sae.config().d_in {
        bail!(
            "the SAE reads d_in {} but the activations have d_in {d_in}",
            sae.config().d_in
        );
    }
    let device = sae.weights().w_enc.device();
    // [rows·seq_len, d_in], in the SAE's dtype, on its device
    let xs = activations
        .to_device(device)?
        .to_dtype(sae.weights().w_enc.dtype())?
        .reshape((rows * seq_len, d_in))?;
    let acts = sae.encode_sparse(&xs)?;
    let batch = TokenBatch::new(tokens, rows, seq_len, first_sequence)?;
    collector.ingest(&batch, &acts.as_feature_activations())
}

/// Sweeps an activation cache from where `collector` stopped, `rows_per_batch` sequences at a
/// time; `on_batch(tokens, collector)` runs after each batch (progress, periodic saves).
pub fn sweep_cache(
    cache: &ActivationCache,
    sae: &Sae,
    collector: &mut Collector,
    rows_per_batch: usize,
    mut on_batch: impl FnMut(u64, &Collector) -> Result<()>,
) -> Result<()> {
    let spec = &cache.index().spec;
    if spec.d_in != sae.config().d_in {
        bail!(
            "the SAE reads d_in {} but the cache {} holds d_in {} ({} at {})",
            sae.config().d_in,
            cache.dir().display(),
            spec.d_in,
            spec.model,
            spec.hook_point
        );
    }
    let mut shard_start = 0usize;
    for shard_index in 0..cache.num_shards() {
        let shard_len = cache.index().shards[shard_index].num_sequences;
        let done = collector.sequences_seen() as usize;
        if shard_start + shard_len <= done {
            shard_start += shard_len;
            continue;
        }
        let shard = cache.load_shard(shard_index)?;
        let mut row = done.saturating_sub(shard_start);
        while row < shard_len {
            let end = (row + rows_per_batch).min(shard_len);
            let activations = shard.activations.narrow(0, row, end - row)?;
            let tokens = &shard.tokens[row * spec.seq_len..end * spec.seq_len];
            collect_batch(
                sae,
                collector,
                tokens,
                &activations,
                (shard_start + row) as u64,
            )
            .with_context(|| {
                format!(
                    "collecting shard {} of {}",
                    shard_index,
                    cache.dir().display()
                )
            })?;
            on_batch(((end - row) * spec.seq_len) as u64, collector)?;
            row = end;
        }
        shard_start += shard_len;
    }
    Ok(())
}

/// Sweeps text live: `model` to `hook` over `windows` (which must start where `collector`
/// stopped), encode, collect.
pub fn sweep_model<D>(
    model: &Gemma2,
    hook: &HookPoint,
    windows: &mut TokenWindows<D>,
    sae: &Sae,
    collector: &mut Collector,
    mut on_batch: impl FnMut(u64, &Collector) -> Result<()>,
) -> Result<()>
where
    D: Iterator<Item = Result<Document>>,
{
    let start = collector.sequences_seen();
    for_each_hooked_batch(model, hook, windows, start, |batch, activations| {
        collect_batch(
            sae,
            collector,
            &batch.tokens,
            activations,
            batch.first_sequence,
        )?;
        on_batch((batch.rows * batch.seq_len) as u64, collector)
    })
}

/// Decodes with a Hugging Face tokenizer, special tokens shown (BOS in a context is real text
/// position information); a failure shows as a marker instead of losing the collection.
pub struct TokenizerDecoder(pub tokenizers::Tokenizer);

impl TokenDecoder for TokenizerDecoder {
    fn decode(&self, ids: &[u32]) -> String {
        self.0
            .decode(ids, false)
            .unwrap_or_else(|err| format!("<decode error: {err}>"))
    }
}
