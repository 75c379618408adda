//! The collector's whole state on disk (`collector_state.safetensors`), so a collection can be
//! resumed and shards collected elsewhere merged exactly.
//!
//! A samples folder holds only the top features' best samples; merging two folders could not
//! recover a feature that was in neither's top list but is in the union's. The state file holds
//! everything the collector knows — every feature's statistics, histograms, every kept sample
//! (top and interval) with its context tokens, and the token samples — in safetensors (numbers
//! stay binary and exact; the settings ride in the header's metadata). Loading it gives back a
//! collector equal to the one saved. Samples are listed in a canonical order (top samples best
//! first, interval and token samples by priority), so equal collectors write equal bytes.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::bins::{ACTIVATION_BINS, POSITION_BINS};
use super::collector::Collector;
use super::exact_sum::FeatureMoments;
use super::interval_samples::SampleParts;
use super::ranges::SequenceRanges;
use super::top_samples::StoredSample;
use crate::samples::format::ExactSum;
use crate::samples::CollectorConfig;
use crate::util::atomic::{sync_parent, write_atomic};

/// 2: the feature view (histograms, interval and token samples) joined the state.
const STATE_FORMAT_VERSION: u32 = 2;
const HEADER_KEY: &str = "saectl_collector";
/// Marks "no previous token" (position 0) in `sample_previous`.
const NO_TOKEN: u32 = u32::MAX;

/// Everything that is not an array: settings and counters.
#[derive(Serialize, Deserialize)]
struct StateHeader {
    format_version: u32,
    d_sae: usize,
    #[serde(flatten)]
    config: CollectorConfig,
    special_tokens: Vec<u32>,
    tokens_seen: u64,
    sequences_seen: u64,
    special_tokens_excluded: u64,
    /// `[start, end)` of the sequences seen; states written before shards existed lack it
    /// and always started at sequence 0.
    #[serde(default)]
    sequence_ranges: Option<Vec<[u64; 2]>>,
    position_tokens: [u64; POSITION_BINS],
}

/// One tensor ready to serialize.
struct Column {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn column<T: LeBytes>(name: &str, dtype: Dtype, shape: Vec<usize>, values: &[T]) -> Column {
    Column {
        name: name.to_string(),
        dtype,
        shape,
        bytes: le_bytes(values),
    }
}

/// Samples of many features, column-wise: the top samples (`sample_*`) and the interval
/// samples (`interval_*`, which add `interval_priority`).
#[derive(Default)]
struct SampleColumns {
    feature: Vec<u32>,
    priority: Vec<u64>,
    activation: Vec<f32>,
    sequence: Vec<u64>,
    position: Vec<u32>,
    previous: Vec<u32>,
    context_position: Vec<u32>,
    context_len: Vec<u32>,
    /// `[n, max_context]`, zero-padded.
    context: Vec<u32>,
}

impl SampleColumns {
    fn push(&mut self, feature: usize, sample: &StoredSample, max_context: usize) {
        self.feature.push(feature as u32);
        self.activation.push(sample.activation);
        self.sequence.push(sample.sequence_idx);
        self.position.push(sample.position);
        self.previous
            .push(sample.previous_token.unwrap_or(NO_TOKEN));
        self.context_position.push(sample.context_position);
        self.context_len.push(sample.context_tokens.len() as u32);
        let padding = max_context - sample.context_tokens.len();
        self.context.extend(
            sample
                .context_tokens
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, padding)),
        );
    }

    fn into_columns(self, prefix: &str, max_context: usize, with_priority: bool) -> Vec<Column> {
        let n = self.feature.len();
        let name = |suffix: &str| format!("{prefix}_{suffix}");
        let mut out = vec![
            column(&name("feature"), Dtype::U32, vec![n], &self.feature),
            column(&name("activation"), Dtype::F32, vec![n], &self.activation),
            column(&name("sequence"), Dtype::U64, vec![n], &self.sequence),
            column(&name("position"), Dtype::U32, vec![n], &self.position),
            column(&name("previous"), Dtype::U32, vec![n], &self.previous),
            column(
                &name("context_position"),
                Dtype::U32,
                vec![n],
                &self.context_position,
            ),
            column(&name("context_len"), Dtype::U32, vec![n], &self.context_len),
            column(
                &name("context"),
                Dtype::U32,
                vec![n, max_context],
                &self.context,
            ),
        ];
        if with_priority {
            out.push(column(
                &name("priority"),
                Dtype::U64,
                vec![n],
                &self.priority,
            ));
        }
        out
    }

    /// Reads the `prefix_*` columns back, checking each sample's consistency.
    fn read(
        tensors: &SafeTensors<'_>,
        prefix: &str,
        max_context: usize,
        d_sae: usize,
        with_priority: bool,
    ) -> Result<Vec<(usize, u64, StoredSample)>> {
        let name = |suffix: &str| format!("{prefix}_{suffix}");
        let n = tensors
            .tensor(&name("feature"))
            .with_context(|| format!("tensor {} is missing", name("feature")))?
            .shape()
            .first()
            .copied()
            .unwrap_or(0);
        let feature: Vec<u32> = read(tensors, &name("feature"), Dtype::U32, &[n])?;
        let activation: Vec<f32> = read(tensors, &name("activation"), Dtype::F32, &[n])?;
        let sequence: Vec<u64> = read(tensors, &name("sequence"), Dtype::U64, &[n])?;
        let position: Vec<u32> = read(tensors, &name("position"), Dtype::U32, &[n])?;
        let previous: Vec<u32> = read(tensors, &name("previous"), Dtype::U32, &[n])?;
        let context_position: Vec<u32> =
            read(tensors, &name("context_position"), Dtype::U32, &[n])?;
        let context_len: Vec<u32> = read(tensors, &name("context_len"), Dtype::U32, &[n])?;
        let context: Vec<u32> = read(tensors, &name("context"), Dtype::U32, &[n, max_context])?;
        let priority: Vec<u64> = if with_priority {
            read(tensors, &name("priority"), Dtype::U64, &[n])?
        } else {
            vec![0; n]
        };
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (f, len, at) = (
                feature[i] as usize,
                context_len[i] as usize,
                context_position[i] as usize,
            );
            if f >= d_sae
                || len == 0
                || len > max_context
                || at >= len
                || !activation[i].is_finite()
            {
                bail!("{prefix} sample {i} is inconsistent (feature {f}, context length {len}, position in context {at})");
            }
            let sample = StoredSample {
                activation: activation[i],
                sequence_idx: sequence[i],
                position: position[i],
                previous_token: (previous[i] != NO_TOKEN).then_some(previous[i]),
                context_tokens: context[i * max_context..i * max_context + len].to_vec(),
                context_position: at as u32,
            };
            out.push((f, priority[i], sample));
        }
        Ok(out)
    }
}

impl Collector {
    /// Writes the whole state to `path` atomically.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let columns = self.columns();
        let views: Vec<(&str, TensorView<'_>)> = columns
            .iter()
            .map(|c| {
                Ok((
                    c.name.as_str(),
                    TensorView::new(c.dtype, c.shape.clone(), &c.bytes)?,
                ))
            })
            .collect::<Result<_, safetensors::SafeTensorError>>()?;
        let header = serde_json::to_string(&self.header())?;
        let metadata = HashMap::from([(HEADER_KEY.to_string(), header)]);
        let file = safetensors::serialize(views, Some(metadata)).with_context(|| {
            format!(
                "failed to serialize the collector state for {}",
                path.display()
            )
        })?;
        write_atomic(path, &file)?;
        // The state is what a resume trusts: its rename must survive a power loss too.
        sync_parent(path)
    }

    /// Reads a state written by [`save_state`](Self::save_state).
    pub fn load_state(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("failed to read collector state {}", path.display()))?;
        Self::from_state_bytes(&bytes)
            .with_context(|| format!("{} is not a valid collector state", path.display()))
    }

    /// A collector from the bytes of a state file: the one loader [`load_state`](Self::load_state)
    /// and the fuzz target share.
    pub fn from_state_bytes(bytes: &[u8]) -> Result<Self> {
        load_from_bytes(bytes)
    }

    fn header(&self) -> StateHeader {
        StateHeader {
            format_version: STATE_FORMAT_VERSION,
            d_sae: self.d_sae,
            config: self.config.clone(),
            special_tokens: self.special_tokens(),
            tokens_seen: self.tokens_seen,
            sequences_seen: self.sequences_seen,
            special_tokens_excluded: self.special_tokens_excluded,
            sequence_ranges: Some(self.sequences.to_pairs()),
            position_tokens: self.position_tokens,
        }
    }

    fn columns(&self) -> Vec<Column> {
        let max_context = 2 * self.config.context_half_width() + 1;
        let d = self.d_sae;
        let (mut counts, mut sums, mut extrema, mut positions) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut top, mut intervals) = (SampleColumns::default(), SampleColumns::default());
        let (mut token_feature, mut token_priority, mut token_token) =
            (Vec::new(), Vec::new(), Vec::new());
        for (feature, state) in self.state.iter().enumerate() {
            let m = &state.moments;
            counts.extend([m.count, m.firing]);
            sums.extend([m.sum.hi, m.sum.lo, m.sum_squares.hi, m.sum_squares.lo]);
            extrema.extend([m.min, m.max]);
            positions.extend(state.positions);
            for sample in self.top[feature].sorted() {
                top.push(feature, &sample, max_context);
            }
            for kept in self.interval_store(feature as u32) {
                intervals.push(feature, &kept.sample, max_context);
                intervals.priority.push(kept.priority);
            }
            for (priority, token) in self.token_samples[feature].sorted() {
                token_feature.push(feature as u32);
                token_priority.push(priority);
                token_token.push(token);
            }
        }
        let histogram: Vec<u64> = (0..self.cells.len()).map(|i| self.bin_count(i)).collect();
        let m = token_feature.len();
        let mut columns = vec![
            column("counts", Dtype::U64, vec![d, 2], &counts),
            column("sums", Dtype::F64, vec![d, 4], &sums),
            column("extrema", Dtype::F32, vec![d, 2], &extrema),
            column("positions", Dtype::U64, vec![d, POSITION_BINS], &positions),
            column(
                "histogram",
                Dtype::U64,
                vec![d, ACTIVATION_BINS],
                &histogram,
            ),
            column("special", Dtype::U64, vec![d], &self.special_activations),
            column("token_sample_feature", Dtype::U32, vec![m], &token_feature),
            column(
                "token_sample_priority",
                Dtype::U64,
                vec![m],
                &token_priority,
            ),
            column("token_sample_token", Dtype::U32, vec![m], &token_token),
        ];
        columns.extend(top.into_columns("sample", max_context, false));
        columns.extend(intervals.into_columns("interval", max_context, true));
        columns
    }
}

fn load_from_bytes(bytes: &[u8]) -> Result<Collector> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)?;
    let header_json = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(HEADER_KEY))
        .context("no saectl collector header in the file")?;
    let header: StateHeader = serde_json::from_str(header_json)?;
    if header.format_version != STATE_FORMAT_VERSION {
        bail!(
            "collector state version {} is not supported (this build reads {STATE_FORMAT_VERSION}; version 1 predates the feature view: collect again)",
            header.format_version
        );
    }
    let tensors = SafeTensors::deserialize(bytes)?;
    // The header's d_sae sizes every per-feature array made below; `counts` holds 16 bytes per
    // feature of this very file, so a d_sae it matches is one the file can back.
    let counts_shape = tensors
        .tensor("counts")
        .context("tensor counts is missing")?
        .shape()
        .to_vec();
    if counts_shape != [header.d_sae, 2] {
        bail!(
            "the header says d_sae {} but tensor counts is {counts_shape:?}",
            header.d_sae
        );
    }
    let mut collector = Collector::new(header.config, header.d_sae, &header.special_tokens)?;
    restore_statistics(&mut collector, &tensors)?;
    restore_feature_view(&mut collector, &tensors)?;
    restore_samples(&mut collector, &tensors)?;
    collector.tokens_seen = header.tokens_seen;
    collector.sequences_seen = header.sequences_seen;
    collector.special_tokens_excluded = header.special_tokens_excluded;
    collector.sequences = match &header.sequence_ranges {
        Some(pairs) => SequenceRanges::from_pairs(pairs)?,
        None => SequenceRanges::from_pairs(
            &[[0, header.sequences_seen]][..usize::from(header.sequences_seen > 0)],
        )?,
    };
    collector.position_tokens = header.position_tokens;
    check_counts(&collector)?;
    Ok(collector)
}

/// The counters a collector keeps agree with each other; a state whose counters do not is
/// damaged, and its numbers would overflow the sums of readouts and merges. Every per-feature
/// count is at most the tokens seen, and the histograms account for exactly the activations
/// above the threshold.
fn check_counts(collector: &Collector) -> Result<()> {
    let tokens = collector.tokens_seen;
    if checked_sum(collector.position_tokens.iter().copied()) != Some(tokens) {
        bail!("position_tokens do not add up to tokens_seen {tokens}");
    }
    let all_tokens = tokens.checked_add(collector.special_tokens_excluded);
    for (f, state) in collector.state.iter().enumerate() {
        let m = &state.moments;
        let bins = f * ACTIVATION_BINS..(f + 1) * ACTIVATION_BINS;
        if m.count > tokens
            || m.firing > tokens
            || all_tokens.is_none_or(|all| collector.special_activations[f] > all)
            || checked_sum(state.positions.iter().copied()) != Some(m.count)
            || checked_sum(bins.map(|i| collector.bin_count(i))) != Some(m.count)
        {
            bail!(
                "the counts of feature {f} do not agree (activations {}, firing {}, tokens seen {tokens})",
                m.count,
                m.firing
            );
        }
    }
    Ok(())
}

fn restore_statistics(collector: &mut Collector, tensors: &SafeTensors<'_>) -> Result<()> {
    let d = collector.d_sae;
    let counts: Vec<u64> = read(tensors, "counts", Dtype::U64, &[d, 2])?;
    let sums: Vec<f64> = read(tensors, "sums", Dtype::F64, &[d, 4])?;
    let extrema: Vec<f32> = read(tensors, "extrema", Dtype::F32, &[d, 2])?;
    let positions: Vec<u64> = read(tensors, "positions", Dtype::U64, &[d, POSITION_BINS])?;
    for (f, state) in collector.state.iter_mut().enumerate() {
        state.moments = FeatureMoments {
            count: counts[2 * f],
            firing: counts[2 * f + 1],
            sum: ExactSum {
                hi: sums[4 * f],
                lo: sums[4 * f + 1],
            },
            sum_squares: ExactSum {
                hi: sums[4 * f + 2],
                lo: sums[4 * f + 3],
            },
            min: extrema[2 * f],
            max: extrema[2 * f + 1],
        };
        state
            .positions
            .copy_from_slice(&positions[f * POSITION_BINS..(f + 1) * POSITION_BINS]);
    }
    Ok(())
}

/// Histogram, special-token counts, token samples, and the interval strata folded for each
/// feature's max (samples are offered after, so each lands in its stratum).
fn restore_feature_view(collector: &mut Collector, tensors: &SafeTensors<'_>) -> Result<()> {
    let d = collector.d_sae;
    let histogram: Vec<u64> = read(tensors, "histogram", Dtype::U64, &[d, ACTIVATION_BINS])?;
    for (index, &count) in histogram.iter().enumerate() {
        collector.set_bin_count(index, count);
    }
    collector.special_activations = read(tensors, "special", Dtype::U64, &[d])?;
    let m = tensors
        .tensor("token_sample_feature")
        .context("tensor token_sample_feature is missing")?
        .shape()
        .first()
        .copied()
        .unwrap_or(0);
    let feature: Vec<u32> = read(tensors, "token_sample_feature", Dtype::U32, &[m])?;
    let priority: Vec<u64> = read(tensors, "token_sample_priority", Dtype::U64, &[m])?;
    let token: Vec<u32> = read(tensors, "token_sample_token", Dtype::U32, &[m])?;
    for i in 0..m {
        let f = feature[i] as usize;
        if f >= d {
            bail!("token sample {i} names feature {f}, beyond d_sae {d}");
        }
        collector.token_samples[f].offer(priority[i], token[i]);
    }
    let shape = collector.interval_shape();
    for f in 0..d {
        let max = collector.state[f].moments.max;
        if collector.state[f].moments.count > 0 {
            collector.intervals[f].set_max(&shape, max);
        }
        collector.state[f].token_floor_hi = (collector.token_samples[f].floor() >> 32) as u32;
    }
    Ok(())
}

fn restore_samples(collector: &mut Collector, tensors: &SafeTensors<'_>) -> Result<()> {
    let max_context = 2 * collector.config.context_half_width() + 1;
    let d = collector.d_sae;
    for (f, _, sample) in SampleColumns::read(tensors, "sample", max_context, d, false)? {
        collector.top[f].push(&sample);
    }
    let shape = collector.interval_shape();
    for (f, priority, sample) in SampleColumns::read(tensors, "interval", max_context, d, true)? {
        collector.intervals[f].offer(&shape, priority, &SampleParts::of(&sample));
    }
    for f in 0..d {
        collector.state[f].admit_floor = collector.top[f].floor();
        collector.refresh_floors(f, 0..ACTIVATION_BINS);
    }
    Ok(())
}

/// The sum, or `None` when it overflows.
fn checked_sum(values: impl Iterator<Item = u64>) -> Option<u64> {
    values
        .into_iter()
        .try_fold(0u64, |total, v| total.checked_add(v))
}

/// Plain numbers that travel as little-endian bytes.
trait LeBytes: Sized + Copy {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! le_bytes_impl {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("chunk has the type's size"))
            }
        }
    )*};
}
le_bytes_impl!(u32, u64, f32, f64);

fn le_bytes<T: LeBytes>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * T::SIZE);
    values.iter().for_each(|&v| v.put(&mut out));
    out
}

fn read<T: LeBytes>(
    tensors: &SafeTensors<'_>,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
) -> Result<Vec<T>> {
    let view = tensors
        .tensor(name)
        .with_context(|| format!("tensor {name} is missing"))?;
    if view.dtype() != dtype || view.shape() != shape {
        bail!(
            "tensor {name} is {:?} {:?}, expected {dtype:?} {shape:?}",
            view.dtype(),
            view.shape()
        );
    }
    Ok(view.data().chunks_exact(T::SIZE).map(T::get).collect())
}
