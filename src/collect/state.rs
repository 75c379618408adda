//! The collector's whole state on disk (`collector_state.safetensors`), so a collection can be
//! resumed and shards collected elsewhere merged exactly.
//!
//! A samples folder holds only the top features' best samples; merging two folders could not
//! recover a feature that was in neither's top list but is in the union's. The state file holds
//! everything the collector knows — every feature's statistics, histograms, every kept sample
//! (top and interval) with its context and context activations, and the token samples — in
//! safetensors (numbers stay binary and exact; the settings ride in the header's metadata).
//! Loading it gives back a collector equal to the one saved. Everything is listed in a
//! canonical order (features ascending; top samples best first, interval samples by key), so
//! equal collectors write equal bytes, whatever their thread count.
//!
//! Format 3 is compact: integer columns in their narrowest type ([`super::state_columns`]),
//! histograms as the span of non-empty bins, context tokens stored once per sequence run
//! ([`super::state_pieces`]), and nothing that can be recomputed (a sample's sequence comes
//! from its piece, its context position from the settings, an interval sample's priority from
//! its place). Formats 1 and 2 are refused with a line naming them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::bins::POSITION_BINS;
use super::block::FeatureBlock;
use super::collector::Collector;
use super::records::Record;
use super::state_columns::ColumnWriter;
use super::state_pieces::{Pieces, Span};
use super::state_restore::restore;
use crate::samples::CollectorConfig;
use crate::util::atomic::{sync_parent, write_atomic};

/// 3: compact columns, context pieces, context activations. 2: the feature view joined the
/// state. 1: samples and statistics only.
pub(super) const STATE_FORMAT_VERSION: u32 = 3;
const HEADER_KEY: &str = "saectl_collector";

/// Everything that is not an array: settings and counters.
#[derive(Serialize, Deserialize)]
pub(super) struct StateHeader {
    pub(super) format_version: u32,
    pub(super) d_sae: usize,
    #[serde(flatten)]
    pub(super) config: CollectorConfig,
    pub(super) special_tokens: Vec<u32>,
    pub(super) tokens_seen: u64,
    pub(super) sequences_seen: u64,
    pub(super) special_tokens_excluded: u64,
    /// `[start, end)` of the sequences seen.
    pub(super) sequence_ranges: Vec<[u64; 2]>,
    pub(super) position_tokens: [u64; POSITION_BINS],
}

/// Only the version, read first so that older files get a clear refusal.
#[derive(Deserialize)]
struct VersionOnly {
    format_version: u32,
}

impl Collector {
    /// Writes the whole state to `path` atomically.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let file = self.state_bytes().with_context(|| {
            format!(
                "failed to serialize the collector state for {}",
                path.display()
            )
        })?;
        write_atomic(path, &file)?;
        // The state is what a resume trusts: its rename must survive a power loss too.
        sync_parent(path)
    }

    /// The bytes of the state file.
    pub fn state_bytes(&self) -> Result<Vec<u8>> {
        let mut columns = ColumnWriter::default();
        self.write_statistics(&mut columns);
        self.write_samples(&mut columns);
        let header = serde_json::to_string(&self.header())?;
        columns.serialize(HashMap::from([(HEADER_KEY.to_string(), header)]))
    }

    /// Reads a state written by [`save_state`](Self::save_state).
    pub fn load_state(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("failed to read collector state {}", path.display()))?;
        Self::from_state_bytes(&bytes)
            .with_context(|| format!("{} is not a valid collector state", path.display()))
    }

    /// A collector from the bytes of a state file (what [`load_state`](Self::load_state)
    /// reads; hostile bytes give an error, never a panic or an allocation the file does not
    /// back).
    pub fn from_state_bytes(bytes: &[u8]) -> Result<Self> {
        let (_, metadata) = SafeTensors::read_metadata(bytes)?;
        let header_json = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(HEADER_KEY))
            .context("no saectl collector header in the file")?;
        let version: VersionOnly = serde_json::from_str(header_json)?;
        if version.format_version != STATE_FORMAT_VERSION {
            bail!(
                "collector state format {} is not supported: this saectl reads format {STATE_FORMAT_VERSION} \
                 (format 2 and older were written before samples kept their context activations; collect again)",
                version.format_version
            );
        }
        restore(serde_json::from_str(header_json)?, bytes)
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
            sequence_ranges: self.sequences.to_pairs(),
            position_tokens: self.position_tokens,
        }
    }

    /// Per feature: counts, sums, extrema, positions, special counts, the histogram's
    /// non-empty span and the token sample.
    fn write_statistics(&self, columns: &mut ColumnWriter) {
        let d = self.d_sae;
        let (mut counts, mut sums, mut extrema, mut positions) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut special, mut spans, mut histogram) = (Vec::new(), Vec::new(), Vec::new());
        let (mut token_len, mut token_priority, mut token_token) =
            (Vec::new(), Vec::new(), Vec::new());
        for block in &self.blocks {
            for f in 0..block.len() {
                let (state, m) = (&block.state[f], &block.state[f].moments);
                counts.extend([m.count, m.firing]);
                sums.extend([m.sum.hi, m.sum.lo, m.sum_squares.hi, m.sum_squares.lo]);
                extrema.extend([m.min, m.max]);
                positions.extend(state.positions);
                special.push(block.special_activations[f]);
                let bins = block.histogram(f);
                let first = bins.iter().position(|&c| c > 0).unwrap_or(0);
                let end = bins
                    .iter()
                    .rposition(|&c| c > 0)
                    .map_or(first, |last| last + 1);
                spans.extend([first as u64, (end - first) as u64]);
                histogram.extend_from_slice(&bins[first..end]);
                let sample = block.token_samples[f].sorted();
                token_len.push(sample.len() as u64);
                for (priority, token) in sample {
                    token_priority.push((priority >> 32) as u32);
                    token_token.push(token);
                }
            }
        }
        columns.uints("counts", vec![d, 2], &counts);
        columns.f64s("sums", vec![d, 4], &sums);
        columns.f32s("extrema", vec![d, 2], &extrema);
        columns.uints("positions", vec![d, POSITION_BINS], &positions);
        columns.uints("special", vec![d], &special);
        columns.uints("histogram_span", vec![d, 2], &spans);
        columns.uints("histogram_counts", vec![histogram.len()], &histogram);
        columns.uints("token_sample_len", vec![d], &token_len);
        let m = token_token.len();
        columns.u32s("token_sample_priority", vec![m], &token_priority);
        columns.u32s("token_sample_token", vec![m], &token_token);
    }

    /// Every kept sample: per feature its top samples (best first), then its interval samples
    /// (by key); their contexts as pieces.
    fn write_samples(&self, columns: &mut ColumnWriter) {
        let half = self.params.half as u32;
        let mut counts = Vec::new();
        let mut kept: Vec<(&FeatureBlock, f32, u64, u32, Record)> = Vec::new();
        for block in &self.blocks {
            for f in 0..block.len() {
                let top = block.top[f].sorted(self.params.capacity);
                let intervals = block.intervals[f].all();
                counts.extend([top.len() as u64, intervals.len() as u64]);
                kept.extend(top.iter().map(|e| {
                    (
                        block,
                        e.activation(),
                        e.sequence_idx(),
                        e.position(),
                        e.record,
                    )
                }));
                kept.extend(
                    intervals
                        .iter()
                        .map(|e| (block, e.activation, e.sequence_idx, e.position, e.record)),
                );
            }
        }
        let spans: Vec<Span<'_>> = kept
            .iter()
            .map(|&(block, _, sequence, position, record)| {
                let view = block.records.view(record);
                let window_start = position - position.min(half);
                // The span starts at the previous token when the window does not hold it.
                match view.previous {
                    Some(previous) if window_start == position => Span {
                        sequence,
                        start: position - 1,
                        tokens: Cow::Owned([&[previous][..], view.context].concat()),
                    },
                    _ => Span {
                        sequence,
                        start: window_start,
                        tokens: Cow::Borrowed(view.context),
                    },
                }
            })
            .collect();
        let (pieces, piece_of) = Pieces::build(&spans);
        let n = kept.len();
        let mut acts_len = Vec::with_capacity(n);
        let (mut acts_index, mut acts_value) = (Vec::new(), Vec::new());
        for &(block, _, _, _, record) in &kept {
            let view = block.records.view(record);
            acts_len.push(u64::from(record.acts_len()));
            for (index, value) in view.acts() {
                acts_index.push(index);
                acts_value.push(value);
            }
        }
        let d = self.d_sae;
        columns.uints("sample_count", vec![d, 2], &counts);
        let activation: Vec<f32> = kept.iter().map(|k| k.1).collect();
        columns.f32s("sample_activation", vec![n], &activation);
        columns.u32s("sample_piece", vec![n], &piece_of);
        let position: Vec<u32> = kept.iter().map(|k| k.3).collect();
        columns.u32s("sample_position", vec![n], &position);
        let context_len: Vec<u32> = kept.iter().map(|k| k.4.context_len).collect();
        columns.u32s("sample_context_len", vec![n], &context_len);
        columns.uints("sample_acts_len", vec![n], &acts_len);
        let a = acts_index.len();
        columns.u32s("acts_index", vec![a], &acts_index);
        columns.f32s("acts_value", vec![a], &acts_value);
        let p = pieces.len.len();
        columns.uints("piece_sequence", vec![p], &pieces.sequence);
        columns.u32s("piece_start", vec![p], &pieces.start);
        columns.u32s("piece_len", vec![p], &pieces.len);
        columns.u32s("piece_tokens", vec![pieces.tokens.len()], &pieces.tokens);
    }
}

impl FeatureBlock {
    /// Local feature `f`'s histogram over every bin.
    pub(super) fn histogram(&self, f: usize) -> Vec<u64> {
        let bins = super::bins::ACTIVATION_BINS;
        (f * bins..(f + 1) * bins)
            .map(|i| self.bin_count(i))
            .collect()
    }
}
