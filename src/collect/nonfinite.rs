//! NaN and infinite activations in a collection (docs/reliability.md).
//!
//! A damaged cache or a diverged model can hand `collect` a token whose activations hold NaN
//! or ±∞. A ReLU or TopK encoder drops such a token without a word (`NaN > 0` is false), so the
//! folder would look normal while missing part of its corpus. Every batch is therefore
//! screened before the collector sees it, on the SAE's input (one reduction on the device, one
//! number per token back to the host) and on its sparse output. By default the first such
//! token stops the collection with one line naming it; with `--allow-nonfinite` each one is
//! skipped — it enters the collector as a token on which no feature fires — and counted, and
//! the count goes into `collection_summary.json`.
//!
//! The count is part of what a resume must continue exactly, but the collector's state file
//! belongs to the collector. It is kept in its own small file, [`NONFINITE_FILE_NAME`],
//! written just before each state save with the count of that save and of the save before:
//! whichever of the two the state file holds after a crash, the record has its count.
//! Collections that never skipped anything never write it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::sae::SparseActs;
use crate::samples::format::NonFiniteCounts;
use crate::util::atomic::write_atomic;

/// The record of skipped tokens beside the collector's state.
pub const NONFINITE_FILE_NAME: &str = "nonfinite_state.json";

/// Screens batches for NaN and ±∞, and counts the tokens skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NonFiniteGuard {
    allow: bool,
    skipped: u64,
}

impl NonFiniteGuard {
    /// Stops at the first non-finite token (`collect`'s default, and `train`'s samples).
    pub fn strict() -> Self {
        Self::default()
    }

    /// `allow`: skip and count instead of stopping; `skipped`: the count so far (a resume).
    pub fn new(allow: bool, skipped: u64) -> Self {
        Self { allow, skipped }
    }

    /// Tokens skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// What the summary records: the count, when skipping was allowed or happened.
    pub fn counts(&self) -> Option<NonFiniteCounts> {
        (self.allow || self.skipped > 0).then_some(NonFiniteCounts {
            tokens_skipped: self.skipped,
        })
    }

    /// Screens one batch: `xs` `[tokens, d_in]` is the SAE's input, `acts` its encoding, the
    /// tokens are `seq_len` to a sequence from sequence `first_sequence` on. Returns `acts`
    /// with the skipped tokens emptied, or the error that stops the collection.
    pub fn screen(
        &mut self,
        xs: &Tensor,
        acts: SparseActs,
        first_sequence: u64,
        seq_len: usize,
    ) -> Result<SparseActs> {
        let bad = non_finite_tokens(xs, &acts)?;
        let count = bad.iter().filter(|&&b| b).count();
        let Some(first) = bad.iter().position(|&b| b) else {
            return Ok(acts);
        };
        if !self.allow {
            let seq_len = seq_len.max(1);
            bail!(
                "the activations of sequence {}, position {} are NaN or infinite ({count} of this batch's {} tokens); \
                 pass --allow-nonfinite to skip such tokens and count them",
                first_sequence + (first / seq_len) as u64,
                first % seq_len,
                bad.len()
            );
        }
        self.skipped += count as u64;
        Ok(without_tokens(acts, &bad))
    }
}

/// Per token, whether its input row or its encoded features hold a NaN or ±∞.
fn non_finite_tokens(xs: &Tensor, acts: &SparseActs) -> Result<Vec<bool>> {
    // `x · 0` is 0 for finite `x` and NaN for NaN and ±∞, so a row sums to 0 exactly when
    // all its values are finite: one pass on the device, one number per token to the host.
    let sums: Vec<f32> = (xs * 0.0)?
        .sum(1)?
        .to_dtype(DType::F32)?
        .to_vec1()
        .context("failed to check the activations for NaN")?;
    if sums.len() != acts.num_tokens() {
        bail!(
            "{} input rows but {} encoded tokens",
            sums.len(),
            acts.num_tokens()
        );
    }
    let mut bad: Vec<bool> = sums.iter().map(|&s| s != 0.0).collect();
    for (token, pair) in acts.offsets.windows(2).enumerate() {
        bad[token] |= acts.values[pair[0]..pair[1]].iter().any(|v| !v.is_finite());
    }
    Ok(bad)
}

/// `acts` with the pairs of the `bad` tokens removed (those tokens keep their place, empty).
fn without_tokens(acts: SparseActs, bad: &[bool]) -> SparseActs {
    let mut kept = SparseActs {
        offsets: Vec::with_capacity(acts.offsets.len()),
        indices: Vec::with_capacity(acts.indices.len()),
        values: Vec::with_capacity(acts.values.len()),
        d_sae: acts.d_sae,
    };
    kept.offsets.push(0);
    for (token, pair) in acts.offsets.windows(2).enumerate() {
        if !bad[token] {
            kept.indices
                .extend_from_slice(&acts.indices[pair[0]..pair[1]]);
            kept.values
                .extend_from_slice(&acts.values[pair[0]..pair[1]]);
        }
        kept.offsets.push(kept.indices.len());
    }
    kept
}

/// One state save's count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedCount {
    /// The collector's `sequences_seen` at that save: which state file it belongs to.
    pub(super) sequences_seen: u64,
    pub(super) tokens_skipped: u64,
}

/// The file: the newest save first, then the one before it.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    saves: Vec<SavedCount>,
}

fn record_path(folder: &Path) -> PathBuf {
    folder.join(NONFINITE_FILE_NAME)
}

/// The count that belongs to a state of `sequences_seen` sequences in `folder` (0 without a
/// record: nothing was skipped).
pub(super) fn saved_count(folder: &Path, sequences_seen: u64) -> Result<Option<SavedCount>> {
    let path = record_path(folder);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("failed to read {}", path.display())),
    };
    let record: Record =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))?;
    match record
        .saves
        .into_iter()
        .find(|save| save.sequences_seen == sequences_seen)
    {
        Some(save) => Ok(Some(save)),
        None => bail!(
            "{} does not belong to the collector state beside it (another collection's?)",
            path.display()
        ),
    }
}

/// Records `current` before the state of the same save is written, keeping `previous` (the
/// count of the state file still on disk). Nothing is written while nothing was ever skipped.
pub(super) fn record_before_save(
    folder: &Path,
    current: SavedCount,
    previous: Option<SavedCount>,
) -> Result<()> {
    let path = record_path(folder);
    if current.tokens_skipped == 0 && !path.exists() {
        return Ok(());
    }
    let saves = std::iter::once(current).chain(previous).collect();
    let json = serde_json::to_vec_pretty(&Record { saves })?;
    write_atomic(&path, &json)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn acts() -> SparseActs {
        // Three tokens: token 1 holds an infinite feature value.
        SparseActs {
            offsets: vec![0, 2, 3, 4],
            indices: vec![0, 3, 1, 2],
            values: vec![1.0, 2.0, f32::INFINITY, 0.5],
            d_sae: 4,
        }
    }

    fn xs(rows: &[[f32; 2]; 3]) -> Tensor {
        Tensor::new(rows, &Device::Cpu).unwrap()
    }

    #[test]
    fn finite_batches_pass_unchanged() {
        let clean = SparseActs {
            values: vec![1.0, 2.0, 3.0, 0.5],
            ..acts()
        };
        let mut guard = NonFiniteGuard::strict();
        let out = guard
            .screen(&xs(&[[1.0, 2.0]; 3]), clean.clone(), 0, 3)
            .unwrap();
        assert_eq!((out, guard.skipped(), guard.counts()), (clean, 0, None));
    }

    #[test]
    fn strict_stops_naming_the_first_bad_token() {
        let input = xs(&[[1.0, 2.0], [0.0, 0.0], [f32::NAN, 1.0]]);
        let err = NonFiniteGuard::strict()
            .screen(&input, acts(), 10, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sequence 10, position 1") && err.contains("2 of this batch's 3 tokens"),
            "{err}"
        );
        assert!(
            err.contains("--allow-nonfinite") && !err.contains('\n'),
            "{err}"
        );
    }

    #[test]
    fn allowed_tokens_are_emptied_and_counted() {
        let input = xs(&[[1.0, 2.0], [0.0, 0.0], [f32::NEG_INFINITY, 1.0]]);
        let mut guard = NonFiniteGuard::new(true, 5);
        let out = guard.screen(&input, acts(), 0, 3).unwrap();
        assert_eq!(out.offsets, vec![0, 2, 2, 2]);
        assert_eq!((out.indices, out.values), (vec![0, 3], vec![1.0, 2.0]));
        assert_eq!(guard.skipped(), 7);
        assert_eq!(guard.counts().unwrap().tokens_skipped, 7);
    }

    #[test]
    fn the_record_gives_the_count_of_either_save() {
        let dir = tempfile::tempdir().unwrap();
        let save = |s, n| SavedCount {
            sequences_seen: s,
            tokens_skipped: n,
        };
        // Nothing skipped: no file.
        record_before_save(dir.path(), save(4, 0), None).unwrap();
        assert!(!record_path(dir.path()).exists());
        assert_eq!(saved_count(dir.path(), 4).unwrap(), None);
        record_before_save(dir.path(), save(8, 3), Some(save(4, 0))).unwrap();
        assert_eq!(saved_count(dir.path(), 8).unwrap(), Some(save(8, 3)));
        // A crash before the state of 8 was written: the state still holds 4.
        assert_eq!(saved_count(dir.path(), 4).unwrap(), Some(save(4, 0)));
        let err = saved_count(dir.path(), 6).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
        std::fs::write(record_path(dir.path()), b"{").unwrap();
        let err = saved_count(dir.path(), 8).unwrap_err().to_string();
        assert!(err.contains("is damaged"), "{err}");
    }
}
