//! The collector's whole state on disk (`collector_state.safetensors`), so a collection can be
//! resumed and shards collected elsewhere merged exactly.
//!
//! A samples folder holds only the top features' best samples; merging two folders could not
//! recover a feature that was in neither's top list but is in the union's. The state file holds
//! everything the collector knows — every feature's statistics and every kept sample with its
//! context tokens — in safetensors (numbers stay binary and exact; the settings ride in the
//! header's metadata). Loading it gives back a collector equal to the one saved.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::collector::Collector;
use super::config::CollectorConfig;
use super::exact_sum::FeatureMoments;
use super::format::ExactSum;
use super::ranges::SequenceRanges;
use super::top_samples::StoredSample;
use crate::util::atomic::write_atomic;

pub const STATE_FILE_NAME: &str = "collector_state.safetensors";
const STATE_FORMAT_VERSION: u32 = 1;
const HEADER_KEY: &str = "saectl_collector";
/// Marks "no previous token" (position 0) in `sample_previous`.
const NO_TOKEN: u32 = u32::MAX;

/// Everything that is not an array: settings and counters.
#[derive(Serialize, Deserialize)]
struct StateHeader {
    format_version: u32,
    d_sae: usize,
    max_samples_per_feature: usize,
    sample_context_size: usize,
    sample_activation_threshold: f32,
    exclude_special_tokens: bool,
    dedup_context_windows: bool,
    special_tokens: Vec<u32>,
    tokens_seen: u64,
    sequences_seen: u64,
    special_tokens_excluded: u64,
    /// `[start, end)` of the sequences seen; states written before shards existed lack it
    /// and always started at sequence 0.
    #[serde(default)]
    sequence_ranges: Option<Vec<[u64; 2]>>,
}

/// Column-wise arrays of one collector, ready to serialize.
#[derive(Default)]
struct Columns {
    counts: Vec<u64>,
    sums: Vec<f64>,
    extrema: Vec<f32>,
    sample_feature: Vec<u32>,
    sample_activation: Vec<f32>,
    sample_sequence: Vec<u64>,
    sample_position: Vec<u32>,
    sample_previous: Vec<u32>,
    sample_context_position: Vec<u32>,
    sample_context_len: Vec<u32>,
    /// `[n_samples, max_context]`, zero-padded.
    sample_context: Vec<u32>,
}

impl Collector {
    /// Writes the whole state to `path` atomically.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let max_context = 2 * self.config.context_half_width() + 1;
        let columns = self.columns(max_context);
        let n = columns.sample_feature.len();
        let d = self.d_sae;
        let bytes = [
            ("counts", Dtype::U64, vec![d, 2], le_bytes(&columns.counts)),
            ("sums", Dtype::F64, vec![d, 4], le_bytes(&columns.sums)),
            (
                "extrema",
                Dtype::F32,
                vec![d, 2],
                le_bytes(&columns.extrema),
            ),
            (
                "sample_feature",
                Dtype::U32,
                vec![n],
                le_bytes(&columns.sample_feature),
            ),
            (
                "sample_activation",
                Dtype::F32,
                vec![n],
                le_bytes(&columns.sample_activation),
            ),
            (
                "sample_sequence",
                Dtype::U64,
                vec![n],
                le_bytes(&columns.sample_sequence),
            ),
            (
                "sample_position",
                Dtype::U32,
                vec![n],
                le_bytes(&columns.sample_position),
            ),
            (
                "sample_previous",
                Dtype::U32,
                vec![n],
                le_bytes(&columns.sample_previous),
            ),
            (
                "sample_context_position",
                Dtype::U32,
                vec![n],
                le_bytes(&columns.sample_context_position),
            ),
            (
                "sample_context_len",
                Dtype::U32,
                vec![n],
                le_bytes(&columns.sample_context_len),
            ),
            (
                "sample_context",
                Dtype::U32,
                vec![n, max_context],
                le_bytes(&columns.sample_context),
            ),
        ];
        let views: Vec<(&str, TensorView<'_>)> = bytes
            .iter()
            .map(|(name, dtype, shape, data)| {
                Ok((*name, TensorView::new(*dtype, shape.clone(), data)?))
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
        write_atomic(path, &file)
    }

    /// Reads a state written by [`save_state`](Self::save_state).
    pub fn load_state(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("failed to read collector state {}", path.display()))?;
        load_from_bytes(&bytes)
            .with_context(|| format!("{} is not a valid collector state", path.display()))
    }

    fn header(&self) -> StateHeader {
        StateHeader {
            format_version: STATE_FORMAT_VERSION,
            d_sae: self.d_sae,
            max_samples_per_feature: self.config.max_samples_per_feature,
            sample_context_size: self.config.sample_context_size,
            sample_activation_threshold: self.config.sample_activation_threshold,
            exclude_special_tokens: self.config.exclude_special_tokens,
            dedup_context_windows: self.config.dedup_context_windows,
            special_tokens: self.special_tokens(),
            tokens_seen: self.tokens_seen,
            sequences_seen: self.sequences_seen,
            special_tokens_excluded: self.special_tokens_excluded,
            sequence_ranges: Some(self.sequences.to_pairs()),
        }
    }

    fn columns(&self, max_context: usize) -> Columns {
        let mut c = Columns::default();
        for (feature, state) in self.state.iter().enumerate() {
            let m = &state.moments;
            c.counts.extend([m.count, m.firing]);
            c.sums
                .extend([m.sum.hi, m.sum.lo, m.sum_squares.hi, m.sum_squares.lo]);
            c.extrema.extend([m.min, m.max]);
            for sample in self.top[feature].sorted() {
                c.sample_feature.push(feature as u32);
                c.sample_activation.push(sample.activation);
                c.sample_sequence.push(sample.sequence_idx);
                c.sample_position.push(sample.position);
                c.sample_previous
                    .push(sample.previous_token.unwrap_or(NO_TOKEN));
                c.sample_context_position.push(sample.context_position);
                c.sample_context_len
                    .push(sample.context_tokens.len() as u32);
                let padding = max_context - sample.context_tokens.len();
                c.sample_context.extend(
                    sample
                        .context_tokens
                        .iter()
                        .copied()
                        .chain(std::iter::repeat_n(0, padding)),
                );
            }
        }
        c
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
            "collector state version {} is not supported (this build reads {STATE_FORMAT_VERSION})",
            header.format_version
        );
    }
    let tensors = SafeTensors::deserialize(bytes)?;
    let config = CollectorConfig {
        max_samples_per_feature: header.max_samples_per_feature,
        sample_context_size: header.sample_context_size,
        sample_activation_threshold: header.sample_activation_threshold,
        exclude_special_tokens: header.exclude_special_tokens,
        dedup_context_windows: header.dedup_context_windows,
    };
    let mut collector = Collector::new(config, header.d_sae, &header.special_tokens)?;
    restore_statistics(&mut collector, &tensors)?;
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
    Ok(collector)
}

fn restore_statistics(collector: &mut Collector, tensors: &SafeTensors<'_>) -> Result<()> {
    let d = collector.d_sae;
    let counts: Vec<u64> = read(tensors, "counts", Dtype::U64, &[d, 2])?;
    let sums: Vec<f64> = read(tensors, "sums", Dtype::F64, &[d, 4])?;
    let extrema: Vec<f32> = read(tensors, "extrema", Dtype::F32, &[d, 2])?;
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
    }
    Ok(())
}

fn restore_samples(collector: &mut Collector, tensors: &SafeTensors<'_>) -> Result<()> {
    let n = tensors
        .tensor("sample_feature")?
        .shape()
        .first()
        .copied()
        .unwrap_or(0);
    let max_context = 2 * collector.config.context_half_width() + 1;
    let feature: Vec<u32> = read(tensors, "sample_feature", Dtype::U32, &[n])?;
    let activation: Vec<f32> = read(tensors, "sample_activation", Dtype::F32, &[n])?;
    let sequence: Vec<u64> = read(tensors, "sample_sequence", Dtype::U64, &[n])?;
    let position: Vec<u32> = read(tensors, "sample_position", Dtype::U32, &[n])?;
    let previous: Vec<u32> = read(tensors, "sample_previous", Dtype::U32, &[n])?;
    let context_position: Vec<u32> = read(tensors, "sample_context_position", Dtype::U32, &[n])?;
    let context_len: Vec<u32> = read(tensors, "sample_context_len", Dtype::U32, &[n])?;
    let context: Vec<u32> = read(tensors, "sample_context", Dtype::U32, &[n, max_context])?;
    for i in 0..n {
        let (f, len, at) = (
            feature[i] as usize,
            context_len[i] as usize,
            context_position[i] as usize,
        );
        if f >= collector.d_sae
            || len == 0
            || len > max_context
            || at >= len
            || !activation[i].is_finite()
        {
            bail!("sample {i} is inconsistent (feature {f}, context length {len}, position in context {at})");
        }
        collector.top[f].push(&StoredSample {
            activation: activation[i],
            sequence_idx: sequence[i],
            position: position[i],
            previous_token: (previous[i] != NO_TOKEN).then_some(previous[i]),
            context_tokens: context[i * max_context..i * max_context + len].to_vec(),
            context_position: at as u32,
        });
    }
    for (state, top) in collector.state.iter_mut().zip(&collector.top) {
        state.admit_floor = top.floor();
    }
    Ok(())
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
