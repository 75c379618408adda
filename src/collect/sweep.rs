//! The sweep: token batches → (model to the hook, or an activation cache) → SAE encode in
//! inference mode on flattened tokens → the collector.
//!
//! Encoding is always the SAE's inference mode on `[tokens, d_in]` (DESIGN §4: the original
//! applied training-mode BatchTopK to `[batch, seq, d]` and kept ~k/seq latents per token), and
//! the SAE hands the collector a sparse CSR batch, so only the active latents leave the device.
//! A sweep covers a range of global sequence indices (a shard of the corpus, or the rest of
//! one when resuming): sweeps are in stream order.

use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use super::batch::{FeatureActivations, TokenBatch};
use super::collector::Collector;
use super::nonfinite::NonFiniteGuard;
use crate::cache::ActivationCache;
use crate::data::{Document, TokenWindows};
use crate::model::{Gemma2, HookPoint};
use crate::sae::Sae;
use crate::stream::for_each_hooked_batch;

/// Where a sweep's time went: producing activations (the model's forward pass, or reading the
/// cache), SAE encoding (including the copy of the sparse result to the host, which waits for
/// the device), and the collector. On a GPU, work queued by the forward pass may finish — and
/// be counted — in the encode stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    pub source: Duration,
    pub encode: Duration,
    pub collect: Duration,
}

impl StageTimes {
    pub fn total(&self) -> Duration {
        self.source + self.encode + self.collect
    }

    /// "source 80.1%, encode 18.2%, collector 1.7%".
    pub fn shares(&self) -> String {
        let total = self.total().as_secs_f64().max(1e-12);
        let share = |d: Duration| 100.0 * d.as_secs_f64() / total;
        format!(
            "source {:.1}%, encode {:.1}%, collector {:.1}%",
            share(self.source),
            share(self.encode),
            share(self.collect)
        )
    }
}

/// Encodes `[rows, seq_len, d_in]` activations and feeds them, with their tokens, to
/// `collector`; a NaN or infinite activation is an error.
pub fn collect_batch(
    sae: &Sae,
    collector: &mut Collector,
    tokens: &[u32],
    activations: &Tensor,
    first_sequence: u64,
) -> Result<()> {
    collect_batch_timed(
        sae,
        collector,
        tokens,
        activations,
        first_sequence,
        &mut NonFiniteGuard::strict(),
        &mut StageTimes::default(),
    )
}

/// [`collect_batch`], screened by `guard` (which may skip and count NaN and ±∞ instead of
/// stopping), adding its encode and collector time to `times`.
pub fn collect_batch_timed(
    sae: &Sae,
    collector: &mut Collector,
    tokens: &[u32],
    activations: &Tensor,
    first_sequence: u64,
    guard: &mut NonFiniteGuard,
    times: &mut StageTimes,
) -> Result<()> {
    let started = Instant::now();
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
    let acts = guard.screen(&xs, sae.encode_sparse(&xs)?, first_sequence, seq_len)?;
    let encoded = Instant::now();
    times.encode += encoded - started;
    let batch = TokenBatch::new(tokens, rows, seq_len, first_sequence)?;
    collector.ingest(&batch, &FeatureActivations::from(&acts))?;
    times.collect += encoded.elapsed();
    Ok(())
}

/// Sweeps sequences `sequences` of an activation cache (global indices: a shard, or what is
/// left of one), `rows_per_batch` at a time, screened by `guard`; `on_batch(tokens,
/// collector, guard)` runs after each batch (progress, periodic saves).
pub fn sweep_cache(
    cache: &ActivationCache,
    sae: &Sae,
    collector: &mut Collector,
    guard: &mut NonFiniteGuard,
    rows_per_batch: usize,
    sequences: Range<u64>,
    mut on_batch: impl FnMut(u64, &Collector, &NonFiniteGuard) -> Result<()>,
) -> Result<StageTimes> {
    let mut times = StageTimes::default();
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
    let mut chunks = cache.rows(sequences);
    loop {
        let read = Instant::now();
        let Some(chunk) = chunks.next() else {
            break;
        };
        let chunk = chunk?;
        times.source += read.elapsed();
        let rows = chunk.activations.dim(0)?;
        let mut row = 0;
        while row < rows {
            let stop = (row + rows_per_batch).min(rows);
            let activations = chunk.activations.narrow(0, row, stop - row)?;
            let tokens = &chunk.tokens[row * spec.seq_len..stop * spec.seq_len];
            let first = chunk.first_sequence + row as u64;
            collect_batch_timed(
                sae,
                collector,
                tokens,
                &activations,
                first,
                guard,
                &mut times,
            )
            .with_context(|| {
                let dir = cache.dir().display();
                format!("collecting shard {} of {dir}", chunk.shard)
            })?;
            on_batch(((stop - row) * spec.seq_len) as u64, collector, guard)?;
            row = stop;
        }
    }
    Ok(times)
}

/// Sweeps text live: `model` to `hook` over `windows` (which must start at sequence `start`:
/// where a shard begins, or where `collector` stopped), encode, screen with `guard`, collect.
#[allow(clippy::too_many_arguments)] // the sweep's inputs; a struct would only rename them
pub fn sweep_model<D>(
    model: &Gemma2,
    hook: &HookPoint,
    windows: &mut TokenWindows<D>,
    sae: &Sae,
    collector: &mut Collector,
    guard: &mut NonFiniteGuard,
    start: u64,
    mut on_batch: impl FnMut(u64, &Collector, &NonFiniteGuard) -> Result<()>,
) -> Result<StageTimes>
where
    D: Iterator<Item = Result<Document>>,
{
    let mut times = StageTimes::default();
    // Text reading, tokenizing and the forward pass: from the end of one batch's collection
    // to the next batch's arrival.
    let mut since = Instant::now();
    for_each_hooked_batch(model, hook, windows, start, |batch, activations| {
        times.source += since.elapsed();
        collect_batch_timed(
            sae,
            collector,
            &batch.tokens,
            activations,
            batch.first_sequence,
            guard,
            &mut times,
        )?;
        on_batch((batch.rows * batch.seq_len) as u64, collector, guard)?;
        since = Instant::now();
        Ok(())
    })?;
    Ok(times)
}
