//! Reading a collector back from its state file (format 3, [`super::state`]).
//!
//! The file may be damaged or hostile (`saectl merge` reads files from other machines), so
//! every size is checked against the file before it sizes an allocation — the SAE width
//! against a per-feature column, every count against the columns it counts — and the
//! restored collector is checked for agreement (histograms and position counts add up to the
//! activations, every stored sample was kept). Any disagreement is an error naming it.

use anyhow::{bail, Result};

use super::bins::{priority, row_key, ACTIVATION_BINS, POSITION_BINS};
use super::block::FeatureBlock;
use super::collector::Collector;
use super::exact_sum::FeatureMoments;
use super::ranges::SequenceRanges;
use super::state::StateHeader;
use super::state_columns::ColumnReader;
use super::state_pieces::Pieces;
use super::token_sample::TOKEN_SAMPLE_SIZE;
use super::top_samples::StoredSample;
use crate::samples::format::ExactSum;

/// The collector a state file describes.
pub(super) fn restore(header: StateHeader, bytes: &[u8]) -> Result<Collector> {
    let columns = ColumnReader::new(bytes)?;
    // The header's d_sae sizes every per-feature array made below; `counts` holds two numbers
    // per feature of this very file, so a d_sae it matches is one the file can back.
    let d = header.d_sae;
    let counts_shape = columns.shape("counts")?;
    if counts_shape != [d, 2] {
        bail!("the header says d_sae {d} but tensor counts is {counts_shape:?}");
    }
    let mut collector = Collector::new(header.config, d, &header.special_tokens)?;
    collector.tokens_seen = header.tokens_seen;
    collector.sequences_seen = header.sequences_seen;
    collector.special_tokens_excluded = header.special_tokens_excluded;
    collector.sequences = SequenceRanges::from_pairs(&header.sequence_ranges)?;
    collector.position_tokens = header.position_tokens;
    let params = collector.params;
    let block = &mut collector.blocks[0];
    restore_statistics(block, &columns, d)?;
    restore_token_samples(block, &columns, d)?;
    for f in 0..d {
        if block.state[f].moments.count > 0 {
            let max = block.state[f].moments.max;
            block.intervals[f].set_max(&params.shape, max, &mut block.records);
        }
    }
    restore_samples(&mut collector, &columns)?;
    check_counts(&collector)?;
    Ok(collector)
}

fn restore_statistics(
    block: &mut FeatureBlock,
    columns: &ColumnReader<'_>,
    d: usize,
) -> Result<()> {
    let counts = columns.uints("counts", &[d, 2], u64::MAX)?;
    let sums = columns.f64s("sums", &[d, 4])?;
    let extrema = columns.f32s("extrema", &[d, 2])?;
    let positions = columns.uints("positions", &[d, POSITION_BINS], u64::MAX)?;
    block.special_activations = columns.uints("special", &[d], u64::MAX)?;
    let spans = columns.uints("histogram_span", &[d, 2], ACTIVATION_BINS as u64)?;
    let h = columns.len("histogram_counts")?;
    let histogram = columns.uints("histogram_counts", &[h], u64::MAX)?;
    let mut next = 0usize;
    for f in 0..d {
        let state = &mut block.state[f];
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
        if state.moments.count > 0
            && !(state.moments.min.is_finite() && state.moments.max.is_finite())
        {
            bail!("feature {f} has a non-finite min or max");
        }
        state
            .positions
            .copy_from_slice(&positions[f * POSITION_BINS..(f + 1) * POSITION_BINS]);
        let (first, len) = (spans[2 * f] as usize, spans[2 * f + 1] as usize);
        if first + len > ACTIVATION_BINS || next + len > h {
            bail!("the histogram of feature {f} does not fit (bins {first}+{len})");
        }
        for (bin, &count) in histogram[next..next + len].iter().enumerate() {
            block.set_bin_count(f * ACTIVATION_BINS + first + bin, count);
        }
        next += len;
    }
    if next != h {
        bail!("the histograms hold {next} counts, but {h} are stored");
    }
    Ok(())
}

fn restore_token_samples(
    block: &mut FeatureBlock,
    columns: &ColumnReader<'_>,
    d: usize,
) -> Result<()> {
    let lens = columns.uints("token_sample_len", &[d], TOKEN_SAMPLE_SIZE as u64)?;
    let m = columns.len("token_sample_token")?;
    let priority = columns.u32s("token_sample_priority", &[m], u32::MAX)?;
    let token = columns.u32s("token_sample_token", &[m], u32::MAX)?;
    let mut next = 0usize;
    for (f, &len) in lens.iter().enumerate() {
        let len = len as usize;
        if next + len > m {
            bail!("the token samples hold {m} entries, fewer than their lengths say");
        }
        for i in next..next + len {
            block.token_samples[f].offer(u64::from(priority[i]) << 32, token[i]);
        }
        next += len;
    }
    if next != m {
        bail!("the token samples hold {m} entries, more than their lengths say");
    }
    Ok(())
}

/// The samples' columns, read and checked against each other.
struct SampleColumns {
    counts: Vec<u64>,
    activation: Vec<f32>,
    piece: Vec<u32>,
    position: Vec<u32>,
    context_len: Vec<u32>,
    acts_len: Vec<u32>,
    acts_index: Vec<u32>,
    acts_value: Vec<f32>,
    pieces: Pieces,
}

impl SampleColumns {
    fn read(columns: &ColumnReader<'_>, d: usize) -> Result<Self> {
        let n = columns.len("sample_activation")?;
        let a = columns.len("acts_index")?;
        let p = columns.len("piece_sequence")?;
        let t = columns.len("piece_tokens")?;
        let pieces = Pieces::from_columns(
            columns.uints("piece_sequence", &[p], u64::MAX)?,
            columns.u32s("piece_start", &[p], u32::MAX)?,
            columns.u32s("piece_len", &[p], u32::MAX)?,
            columns.u32s("piece_tokens", &[t], u32::MAX)?,
        )?;
        let sample = Self {
            counts: columns.uints("sample_count", &[d, 2], n as u64)?,
            activation: columns.f32s("sample_activation", &[n])?,
            piece: columns.u32s("sample_piece", &[n], u32::MAX)?,
            position: columns.u32s("sample_position", &[n], u32::MAX)?,
            context_len: columns.u32s("sample_context_len", &[n], u32::MAX)?,
            acts_len: columns.u32s("sample_acts_len", &[n], u32::MAX)?,
            acts_index: columns.u32s("acts_index", &[a], u32::MAX)?,
            acts_value: columns.f32s("acts_value", &[a])?,
            pieces,
        };
        let total: u64 = sample.counts.iter().sum();
        let acts: u64 = sample.acts_len.iter().map(|&l| u64::from(l)).sum();
        if total != n as u64 || acts != a as u64 {
            bail!("the sample counts ({total} samples, {acts} context activations) do not match the {n} samples and {a} activations stored");
        }
        Ok(sample)
    }

    /// Sample `i` (whose context activations start at `acts`), checked.
    fn sample(&self, i: usize, acts: usize, half: u32) -> Result<(u64, StoredSample)> {
        let (position, len) = (self.position[i], self.context_len[i]);
        let piece = self.piece[i] as usize;
        let context_position = position.min(half);
        let window_start = u64::from(position - context_position);
        let context = self.pieces.slice(piece, window_start, u64::from(len))?;
        let previous = match position.checked_sub(1) {
            Some(before) => Some(self.pieces.slice(piece, u64::from(before), 1)?[0]),
            None => None,
        };
        let activation = self.activation[i];
        if context_position >= len || !activation.is_finite() {
            bail!("sample {i} is inconsistent (activation {activation}, context length {len}, position in context {context_position})");
        }
        let acts_end = acts + self.acts_len[i] as usize;
        let mut context_activations = Vec::with_capacity(acts_end - acts);
        for j in acts..acts_end {
            let (index, value) = (self.acts_index[j], self.acts_value[j]);
            let ordered = context_activations
                .last()
                .is_none_or(|&(last, _)| last < index);
            if index >= len || !ordered || !(value > 0.0 && value.is_finite()) {
                bail!("context activation {j} of sample {i} is inconsistent (index {index}, value {value})");
            }
            context_activations.push((index, value));
        }
        let sequence_idx = self.pieces.sequence[piece];
        Ok((
            sequence_idx,
            StoredSample {
                activation,
                sequence_idx,
                position,
                previous_token: previous,
                context_tokens: context.to_vec(),
                context_position,
                context_activations,
            },
        ))
    }
}

/// Offers every stored sample to its store; each must be kept.
fn restore_samples(collector: &mut Collector, columns: &ColumnReader<'_>) -> Result<()> {
    let d = collector.d_sae;
    let samples = SampleColumns::read(columns, d)?;
    let params = collector.params;
    let half = params.half as u32;
    let block = &mut collector.blocks[0];
    let (mut i, mut acts) = (0usize, 0usize);
    for f in 0..d {
        let (tops, intervals) = (
            samples.counts[2 * f] as usize,
            samples.counts[2 * f + 1] as usize,
        );
        for _ in 0..tops {
            let (_, sample) = samples.sample(i, acts, half)?;
            block.offer_top_sample(&params, f, &sample);
            acts += samples.acts_len[i] as usize;
            i += 1;
        }
        for _ in 0..intervals {
            let (sequence, sample) = samples.sample(i, acts, half)?;
            let key = priority(row_key(sequence), sample.position, f as u32);
            block.offer_interval_sample(&params, f, key, &sample);
            acts += samples.acts_len[i] as usize;
            i += 1;
        }
        if block.top[f].len(params.capacity) != tops || block.intervals[f].all().len() != intervals
        {
            bail!("the samples of feature {f} are inconsistent (duplicates, or more than the settings keep)");
        }
        block.refresh_all_floors(&params, f);
    }
    Ok(())
}

/// The counters a collector keeps agree with each other; a state whose counters do not is
/// damaged, and its numbers would overflow the sums of readouts and merges. Every per-feature
/// count is at most the tokens seen, and the histograms and position counts account for
/// exactly the activations above the threshold.
fn check_counts(collector: &Collector) -> Result<()> {
    let tokens = collector.tokens_seen;
    if checked_sum(collector.position_tokens.iter().copied()) != Some(tokens) {
        bail!("position_tokens do not add up to tokens_seen {tokens}");
    }
    let all_tokens = tokens.checked_add(collector.special_tokens_excluded);
    let block = &collector.blocks[0];
    for (f, state) in block.state.iter().enumerate() {
        let m = &state.moments;
        let bins = f * ACTIVATION_BINS..(f + 1) * ACTIVATION_BINS;
        if m.count > tokens
            || m.firing > tokens
            || all_tokens.is_none_or(|all| block.special_activations[f] > all)
            || checked_sum(state.positions.iter().copied()) != Some(m.count)
            || checked_sum(bins.map(|i| block.bin_count(i))) != Some(m.count)
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

/// The sum, or `None` when it overflows.
fn checked_sum(mut values: impl Iterator<Item = u64>) -> Option<u64> {
    values.try_fold(0u64, u64::checked_add)
}
