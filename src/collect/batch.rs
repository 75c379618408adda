//! What producers push into the collector: tokens and the feature activations computed on them.
//!
//! Activations come dense (`[tokens, d_sae]`, e.g. a ReLU or JumpReLU SAE) or sparse in CSR
//! form (per token a run of `(feature, value)` pairs — the natural output of TopK and
//! BatchTopK encoders, whose cost should follow the non-zeros, not `d_sae`).

use anyhow::{bail, Result};

use crate::sae::SparseActs;

/// Token ids of a batch of sequences, row-major `[batch, seq_len]`.
#[derive(Clone, Copy, Debug)]
pub struct TokenBatch<'a> {
    pub tokens: &'a [u32],
    pub batch: usize,
    pub seq_len: usize,
    /// Index of the first row in the whole token stream. Shards of one corpus must use
    /// disjoint ranges: the index identifies a sample and breaks ties (earlier wins).
    pub first_sequence: u64,
}

impl<'a> TokenBatch<'a> {
    pub fn new(
        tokens: &'a [u32],
        batch: usize,
        seq_len: usize,
        first_sequence: u64,
    ) -> Result<Self> {
        if tokens.len() != batch * seq_len {
            bail!(
                "token batch has {} ids but its shape is [{batch}, {seq_len}]",
                tokens.len()
            );
        }
        Ok(Self {
            tokens,
            batch,
            seq_len,
            first_sequence,
        })
    }

    pub fn num_tokens(&self) -> usize {
        self.batch * self.seq_len
    }

    pub fn row(&self, row: usize) -> &'a [u32] {
        &self.tokens[row * self.seq_len..(row + 1) * self.seq_len]
    }
}

/// Feature activations for every token of a [`TokenBatch`], in the same token order.
#[derive(Clone, Copy, Debug)]
pub enum FeatureActivations<'a> {
    /// Row-major `[num_tokens, d_sae]`.
    Dense { values: &'a [f32], d_sae: usize },
    /// CSR: token `t` has the pairs `indices[offsets[t]..offsets[t+1]]`, `values[..]`.
    Sparse {
        offsets: &'a [usize],
        indices: &'a [u32],
        values: &'a [f32],
        d_sae: usize,
    },
}

impl<'a> FeatureActivations<'a> {
    pub fn d_sae(&self) -> usize {
        match *self {
            Self::Dense { d_sae, .. } | Self::Sparse { d_sae, .. } => d_sae,
        }
    }

    /// Tokens covered (as the layout says; [`check`](Self::check) validates it).
    pub fn num_tokens(&self) -> usize {
        match *self {
            Self::Dense { values, d_sae } => values.len().checked_div(d_sae).unwrap_or(0),
            Self::Sparse { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    /// Values stored: every one when dense, the non-zero ones when sparse.
    pub fn stored_values(&self) -> usize {
        match *self {
            Self::Dense { values, .. } | Self::Sparse { values, .. } => values.len(),
        }
    }

    /// Checks the shapes against `num_tokens` and the collector's `d_sae`.
    pub(crate) fn check(&self, num_tokens: usize, d_sae: usize) -> Result<()> {
        if self.d_sae() != d_sae {
            bail!(
                "activations have d_sae {} but the collector was made for {d_sae}",
                self.d_sae()
            );
        }
        match *self {
            Self::Dense { values, .. } => {
                if values.len() != num_tokens * d_sae {
                    bail!(
                        "dense activations have {} values, expected [{num_tokens}, {d_sae}] = {}",
                        values.len(),
                        num_tokens * d_sae
                    );
                }
            }
            Self::Sparse {
                offsets,
                indices,
                values,
                ..
            } => {
                if offsets.len() != num_tokens + 1 {
                    bail!(
                        "sparse activations have {} offsets for {num_tokens} tokens",
                        offsets.len()
                    );
                }
                if indices.len() != values.len() || offsets[num_tokens] != values.len() {
                    bail!(
                        "sparse activations: {} indices, {} values, last offset {}",
                        indices.len(),
                        values.len(),
                        offsets[num_tokens]
                    );
                }
                if offsets.windows(2).any(|pair| pair[0] > pair[1]) {
                    bail!("sparse activations: offsets are not non-decreasing");
                }
                // Chunks tested branch-free (vectorised), the culprit looked up only on failure.
                let out_of_range = |chunk: &[u32]| {
                    chunk
                        .iter()
                        .fold(false, |bad, &index| bad | (index as usize >= d_sae))
                };
                let bad = if indices.chunks(256).any(out_of_range) {
                    indices.iter().find(|&&index| index as usize >= d_sae)
                } else {
                    None
                };
                if let Some(bad) = bad {
                    bail!(
                        "sparse activations: feature index {bad} is out of range for d_sae {d_sae}"
                    );
                }
            }
        }
        Ok(())
    }
}

/// The SAE's sparse encoding, as the collector reads it (the SAE does not know its consumer).
impl<'a> From<&'a SparseActs> for FeatureActivations<'a> {
    fn from(acts: &'a SparseActs) -> Self {
        Self::Sparse {
            offsets: &acts.offsets,
            indices: &acts.indices,
            values: &acts.values,
            d_sae: acts.d_sae,
        }
    }
}

/// Offsets of a fixed-`k` sparse layout (TopK: every token has exactly `k` pairs).
pub fn fixed_k_offsets(num_tokens: usize, k: usize) -> Vec<usize> {
    (0..=num_tokens).map(|token| token * k).collect()
}
