//! The sweep: token batches → (model to the hook, or an activation cache) → SAE encode in
//! inference mode on flattened tokens → the collector.
//!
//! Encoding is always the SAE's inference mode on `[tokens, d_in]` (DESIGN §4: the original
//! applied training-mode BatchTopK to `[batch, seq, d]` and kept ~k/seq latents per token), and
//! the SAE hands the collector a sparse CSR batch, so only the active latents leave the device.
//! A sweep covers a range of global sequence indices (a shard of the corpus, or the rest of
//! one when resuming): sweeps are in stream order.
//!
//! The stages overlap ([`crate::util::pipeline`]): reading text and tokenizing (live) or
//! reading the cache run on one thread, the model and the encoder on a second, and the
//! collector with the periodic saves on the caller's, each at most a batch or two ahead of the
//! next. Batches reach the collector in stream order and the NaN screen's count travels with
//! each batch, so the collector, the saves and their resumption points are the serial ones
//! exactly; the wall time approaches the slowest stage instead of the sum. The cost is memory:
//! up to two more batches of dense activations are held than in series.

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
use crate::sae::{Sae, SparseActs};
use crate::stream::{hooked_activations, StreamOrder};
use crate::util::pipeline::{self, StageTime};

/// Where a sweep's time went, stage by stage: *text* (live: reading and tokenizing), *source*
/// (the model's forward pass, or reading the cache), *encode* (the SAE, including the copy of
/// the sparse result to the host, which waits for the device; on a GPU, work queued by the
/// forward pass may finish — and be counted — here) and *collect* (the collector and the
/// periodic saves). The stages overlap, so their busy times add up to more than `wall`; the
/// slowest sets the pace, and the others wait for it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    pub text: StageTime,
    pub source: StageTime,
    pub encode: StageTime,
    pub collect: StageTime,
    pub wall: Duration,
}

impl StageTimes {
    /// "wall 12.30 s; busy: source 8.10 s, encode 2.00 s, collector 3.10 s (source sets the
    /// pace); collector waited 9.10 s for encode" — waits under 1% of the wall time left out.
    pub fn summary(&self) -> String {
        let all = [
            ("text", &self.text),
            ("source", &self.source),
            ("encode", &self.encode),
            ("collector", &self.collect),
        ];
        // A cache has no text stage.
        let live = !self.text.busy.is_zero();
        let stages: Vec<_> = all
            .into_iter()
            .filter(|(name, _)| live || *name != "text")
            .collect();
        let busy: Vec<String> = stages
            .iter()
            .map(|(name, t)| format!("{name} {}", seconds(t.busy)))
            .collect();
        let slowest = stages
            .iter()
            .max_by_key(|(_, t)| t.busy)
            .map_or("", |(name, _)| name);
        let worth = |d: Duration| !d.is_zero() && d.as_secs_f64() >= 0.01 * self.wall.as_secs_f64();
        let mut waits = Vec::new();
        for (i, (name, t)) in stages.iter().enumerate() {
            if let Some((before, _)) = i.checked_sub(1).map(|j| stages[j]) {
                if worth(t.input_wait) {
                    waits.push(format!(
                        "{name} waited {} for {before}",
                        seconds(t.input_wait)
                    ));
                }
            }
            if let Some((after, _)) = stages.get(i + 1) {
                if worth(t.output_wait) {
                    waits.push(format!(
                        "{name} waited {} for {after}",
                        seconds(t.output_wait)
                    ));
                }
            }
        }
        let waits = if waits.is_empty() {
            String::new()
        } else {
            format!("; {}", waits.join(", "))
        };
        format!(
            "wall {}; busy: {} ({slowest} sets the pace){waits}",
            seconds(self.wall),
            busy.join(", ")
        )
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// One batch on its way to the collector: its tokens, its screened encoding, and the NaN
/// screen as it stood after it (the count a save made after this batch must record).
pub struct Encoded {
    tokens: Vec<u32>,
    rows: usize,
    seq_len: usize,
    first_sequence: u64,
    acts: SparseActs,
    guard: NonFiniteGuard,
    /// The forward pass that made it (live), for the time split.
    forward: Duration,
}

impl Encoded {
    /// Feeds the batch to `collector`; returns its number of tokens.
    pub fn ingest_into(self, collector: &mut Collector) -> Result<u64> {
        ingest_group(std::slice::from_ref(&self), collector)
    }

    /// Whether `next` starts where this batch ends (same row length, the next sequence), so
    /// that both can be fed to the collector as one.
    fn continues_into(&self, next: &Encoded) -> bool {
        self.seq_len == next.seq_len
            && self.first_sequence + self.rows as u64 == next.first_sequence
    }
}

/// Feeds consecutive batches (each [`Encoded::continues_into`] the next) to `collector` as one;
/// returns their number of tokens.
fn ingest_group(group: &[Encoded], collector: &mut Collector) -> Result<u64> {
    let Some(first) = group.first() else {
        return Ok(0);
    };
    let gathered: Vec<u32>;
    let tokens: &[u32] = if group.len() == 1 {
        &first.tokens
    } else {
        gathered = group
            .iter()
            .flat_map(|b| b.tokens.iter().copied())
            .collect();
        &gathered
    };
    let rows = group.iter().map(|b| b.rows).sum();
    let batch = TokenBatch::new(tokens, rows, first.seq_len, first.first_sequence)?;
    let parts: Vec<FeatureActivations<'_>> = group
        .iter()
        .map(|b| FeatureActivations::from(&b.acts))
        .collect();
    collector.ingest_parts(&batch, &parts)?;
    Ok((rows * first.seq_len) as u64)
}

/// The SAE's sparse encoding of `[rows, seq_len, d_in]` activations (tokens flattened),
/// screened by `guard` (which may skip and count NaN and ±∞ instead of stopping).
fn encode(
    sae: &Sae,
    activations: &Tensor,
    first_sequence: u64,
    guard: &mut NonFiniteGuard,
) -> Result<SparseActs> {
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
    guard.screen(&xs, sae.encode_sparse(&xs)?, first_sequence, seq_len)
}

/// [`encode`] for a collector elsewhere (the pipeline's last stage, training's collector
/// thread): the batch with its tokens and the screen's count after it.
pub fn encode_batch(
    sae: &Sae,
    tokens: Vec<u32>,
    activations: &Tensor,
    first_sequence: u64,
    guard: &mut NonFiniteGuard,
) -> Result<Encoded> {
    let (rows, seq_len, _) = activations.dims3()?;
    let acts = encode(sae, activations, first_sequence, guard)?;
    Ok(Encoded {
        tokens,
        rows,
        seq_len,
        first_sequence,
        acts,
        guard: guard.clone(),
        forward: Duration::ZERO,
    })
}

/// Batches ahead of the stage that takes them: one for dense activations (each can be
/// hundreds of MB at a real model's width), two for token ids and sparse encodings.
const DENSE_AHEAD: usize = 1;
const SPARSE_AHEAD: usize = 2;

/// Sweeps sequences `sequences` of an activation cache (global indices: a shard, or what is
/// left of one), `rows_per_batch` at a time, screened by `guard`; `on_batch(tokens,
/// collector, guard)` runs after each batch (progress, periodic saves). Reading, encoding and
/// collecting overlap (module doc).
pub fn sweep_cache(
    cache: &ActivationCache,
    sae: &Sae,
    collector: &mut Collector,
    guard: &mut NonFiniteGuard,
    rows_per_batch: usize,
    sequences: Range<u64>,
    mut on_batch: impl FnMut(u64, &Collector, &NonFiniteGuard) -> Result<()>,
) -> Result<StageTimes> {
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
    let seq_len = spec.seq_len;
    let started = Instant::now();
    let context = |shard: usize| {
        let dir = cache.dir().display();
        format!("collecting shard {shard} of {dir}")
    };
    // Each cache file's rows, cut into batches: (shard, tokens, activations, first sequence).
    let batches = cache.rows(sequences).flat_map(move |chunk| {
        let pieces: Vec<Result<_>> = match chunk {
            Err(err) => vec![Err(err)],
            Ok(chunk) => {
                let rows = match chunk.activations.dim(0) {
                    Ok(rows) => rows,
                    Err(err) => return vec![Err(err.into())],
                };
                (0..rows)
                    .step_by(rows_per_batch.max(1))
                    .map(|row| {
                        let stop = (row + rows_per_batch).min(rows);
                        let activations = chunk.activations.narrow(0, row, stop - row)?;
                        let tokens = chunk.tokens[row * seq_len..stop * seq_len].to_vec();
                        Ok((
                            chunk.shard,
                            tokens,
                            activations,
                            chunk.first_sequence + row as u64,
                        ))
                    })
                    .collect()
            }
        };
        pieces
    });
    let mut encode_guard = guard.clone();
    let mut times = std::thread::scope(|scope| -> Result<StageTimes> {
        let (read, reader) = pipeline::source(scope, DENSE_AHEAD, batches);
        let (encoded, encoder) = pipeline::map(scope, SPARSE_AHEAD, read, |batch| {
            let (shard, tokens, activations, first) = batch;
            encode_batch(sae, tokens, &activations, first, &mut encode_guard)
                .with_context(|| context(shard))
        });
        let collected = drain(encoded, collector, guard, &mut on_batch);
        // Join before returning the error: the stages have stopped once the queue is gone.
        let source = reader.join();
        let encode = encoder.join();
        Ok(StageTimes {
            source,
            encode,
            collect: collected?.0,
            ..StageTimes::default()
        })
    })?;
    times.wall = started.elapsed();
    Ok(times)
}

/// Sweeps text live: `model` to `hook` over `windows` (which must start at sequence `start`:
/// where a shard begins, or where `collector` stopped), encode, screen with `guard`, collect.
/// Text and tokenizing, the model and the encoder, and the collector overlap (module doc).
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
    D: Iterator<Item = Result<Document>> + Send,
{
    let started = Instant::now();
    let mut order = StreamOrder::new(start);
    let mut encode_guard = guard.clone();
    let mut times = std::thread::scope(|scope| -> Result<StageTimes> {
        let (batches, text) = pipeline::source(scope, SPARSE_AHEAD, windows.by_ref());
        let (encoded, device) = pipeline::map(scope, SPARSE_AHEAD, batches, |batch| {
            order.check(&batch)?;
            let started = Instant::now();
            let activations = hooked_activations(model, hook, &batch)?;
            let forward = started.elapsed();
            let first = batch.first_sequence;
            let encoded = encode_batch(sae, batch.tokens, &activations, first, &mut encode_guard);
            encoded.map(|encoded| Encoded { forward, ..encoded })
        });
        let collected = drain(encoded, collector, guard, &mut on_batch);
        let text = text.join();
        let device = device.join();
        let (collect, forward) = collected?;
        Ok(StageTimes {
            text,
            // One thread runs the model and the encoder: it waited for text before the
            // forward pass and for the collector after the encoder.
            source: StageTime {
                busy: forward,
                input_wait: device.input_wait,
                output_wait: Duration::ZERO,
            },
            encode: StageTime {
                busy: device.busy.saturating_sub(forward),
                input_wait: Duration::ZERO,
                output_wait: device.output_wait,
            },
            collect,
            ..StageTimes::default()
        })
    })?;
    times.wall = started.elapsed();
    Ok(times)
}

/// The last stage, on the caller's thread: every encoded batch into `collector`, in order,
/// then `on_batch`; stops at the first error from any stage. Returns its time and the
/// forward passes' total. Consecutive batches are gathered until they hold
/// [`Collector::ingest_hits_hint`] values and fed at once (fed one by one, 4096-token batches
/// take ~1.9× the collector's CPU time of a cold fill); `on_batch` then sees the gathered
/// tokens, so saves fall between gatherings (at most one gathering, ~128k tokens of a 16k TopK
/// k=32 SAE, after they are due), and a failing batch still lets those before it be collected
/// and saved.
fn drain(
    mut encoded: pipeline::Queue<Encoded>,
    collector: &mut Collector,
    guard: &mut NonFiniteGuard,
    on_batch: &mut impl FnMut(u64, &Collector, &NonFiniteGuard) -> Result<()>,
) -> Result<(StageTime, Duration)> {
    let (mut busy, mut forward) = (Duration::ZERO, Duration::ZERO);
    let hint = collector.ingest_hits_hint();
    let mut group: Vec<Encoded> = Vec::new();
    let mut values = 0;
    let mut feed = |group: &mut Vec<Encoded>, collector: &mut Collector| -> Result<()> {
        let Some(last) = group.last() else {
            return Ok(());
        };
        // The screen's count as it stood after these batches: what a save now must record.
        *guard = last.guard.clone();
        let tokens = ingest_group(group, collector)?;
        group.clear();
        on_batch(tokens, collector, guard)
    };
    for batch in encoded.by_ref() {
        let batch = match batch {
            Ok(batch) => batch,
            Err(err) => {
                // What was gathered before the failure is collected (and saved if due).
                feed(&mut group, collector)?;
                return Err(err);
            }
        };
        let started = Instant::now();
        forward += batch.forward;
        if group
            .last()
            .is_some_and(|last| !last.continues_into(&batch))
        {
            feed(&mut group, collector)?;
            values = 0;
        }
        values += batch.acts.values.len();
        group.push(batch);
        if values >= hint {
            feed(&mut group, collector)?;
            values = 0;
        }
        busy += started.elapsed();
    }
    let started = Instant::now();
    feed(&mut group, collector)?;
    busy += started.elapsed();
    let time = StageTime {
        busy,
        input_wait: encoded.waited(),
        output_wait: Duration::ZERO,
    };
    Ok((time, forward))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(busy: u64, input_wait: u64, output_wait: u64) -> StageTime {
        StageTime {
            busy: Duration::from_millis(busy),
            input_wait: Duration::from_millis(input_wait),
            output_wait: Duration::from_millis(output_wait),
        }
    }

    #[test]
    fn the_summary_names_the_slowest_stage_and_who_waited_for_whom() {
        let times = StageTimes {
            text: StageTime::default(),
            source: time(1000, 0, 8000),
            encode: time(9000, 1, 500),
            collect: time(3000, 6500, 0),
            wall: Duration::from_millis(10_000),
        };
        assert_eq!(
            times.summary(),
            "wall 10.00 s; busy: source 1.00 s, encode 9.00 s, collector 3.00 s (encode sets \
             the pace); source waited 8.00 s for encode, encode waited 0.50 s for collector, \
             collector waited 6.50 s for encode"
        );
        let live = StageTimes {
            text: time(200, 0, 9000),
            ..times
        };
        assert!(live.summary().contains("busy: text 0.20 s, source 1.00 s"));
        assert!(live.summary().contains("text waited 9.00 s for source"));
    }
}
