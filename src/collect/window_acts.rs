//! Context activations: for every candidate sample of a batch, the feature's activation on
//! each token of its context window where it fires.
//!
//! Looking each window up in the input would cost a search of every window token's CSR row
//! (dense: a load 64 KiB apart per token) for each candidate. Instead one pass walks the
//! batch's firing values in token order: a feature without candidates costs one lookup of its
//! group; otherwise a per-feature cursor over its candidates (in token order too) finds the
//! windows that hold the token. What each window collects is then grouped per candidate with
//! a counting sort. Work: O(firing values + window hits), whatever the number of candidates.

use super::batch::FeatureActivations;
use super::block::{kinds, FeatureBlock, Params};
use super::collector::BatchView;

impl FeatureBlock {
    /// Fills `acts_start`/`acts` for every grouped pending entry that may become a sample.
    pub(super) fn gather_context_acts(&mut self, params: &Params, batch: &BatchView<'_>) {
        let scratch = &mut self.scratch;
        scratch.window_hits.clear();
        scratch
            .cursor
            .copy_from_slice(&scratch.group_start[..self.state.len()]);
        let (offsets, features, values): (&[usize], &[u32], &[f32]) = match *batch.activations {
            FeatureActivations::Sparse {
                offsets,
                indices,
                values,
                ..
            } => (offsets, indices, values),
            FeatureActivations::Dense { .. } => (
                &scratch.dense_offsets,
                &scratch.dense_features,
                &scratch.dense_values,
            ),
        };
        let seq_len = batch.tokens.seq_len as u64;
        let half = params.half as u64;
        let (base, len) = (self.base, self.state.len() as u32);
        for token in 0..offsets.len().saturating_sub(1) {
            let t = token as u64;
            let row = t / seq_len;
            for i in offsets[token]..offsets[token + 1] {
                let local = features[i].wrapping_sub(base);
                let value = values[i];
                // Only firing values are shown (a non-finite one stopped the scan already).
                if local >= len || value <= 0.0 {
                    continue;
                }
                let f = local as usize;
                let end = scratch.group_start[f + 1] as usize;
                let mut first = scratch.cursor[f] as usize;
                // Candidates whose window ended before this token are done.
                while first < end && u64::from(scratch.grouped[first].token) + half < t {
                    first += 1;
                }
                scratch.cursor[f] = first as u32;
                for j in first..end {
                    let candidate = scratch.grouped[j];
                    let c = u64::from(candidate.token);
                    if c > t + half {
                        break;
                    }
                    if candidate.kinds & kinds::SAMPLE != 0 && c / seq_len == row {
                        scratch.window_hits.push((j as u32, token as u32, value));
                    }
                }
            }
        }
        group_window_hits(scratch, seq_len, half);
    }
}

/// Counting sort of the window hits by candidate into `acts` (`(index into the window, value)`,
/// by index, since the pass went in token order).
fn group_window_hits(scratch: &mut super::block::Scratch, seq_len: u64, half: u64) {
    let n = scratch.grouped.len();
    scratch.acts_start.clear();
    scratch.acts_start.resize(n + 1, 0);
    for &(j, _, _) in &scratch.window_hits {
        scratch.acts_start[j as usize + 1] += 1;
    }
    for j in 0..n {
        scratch.acts_start[j + 1] += scratch.acts_start[j];
    }
    scratch.acts.clear();
    scratch.acts.resize(scratch.window_hits.len(), (0, 0.0));
    // `cursor` is free again: reuse it as the fill position per candidate.
    let mut fill: Vec<u32> = std::mem::take(&mut scratch.cursor);
    fill.clear();
    fill.extend_from_slice(&scratch.acts_start[..n]);
    for &(j, token, value) in &scratch.window_hits {
        let candidate = u64::from(scratch.grouped[j as usize].token);
        // The window starts `half` tokens before the candidate, or at its row's start.
        let row_start = candidate / seq_len * seq_len;
        let window_start = candidate.saturating_sub(half).max(row_start);
        let slot = &mut fill[j as usize];
        scratch.acts[*slot as usize] = ((u64::from(token) - window_start) as u32, value);
        *slot += 1;
    }
    scratch.cursor = fill;
}
