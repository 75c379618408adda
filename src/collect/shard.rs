//! `--shard I/N`: which part of a corpus one collection covers, and where it resumes.
//!
//! A shard is a contiguous range of the corpus's sequence (window) indices: shard `i` of `N`
//! over `total` sequences covers `[⌊i·total/N⌋, ⌊(i+1)·total/N⌋)`. Indices stay global, so
//! shards are disjoint by construction and their samples keep the ids (and tie-breaking
//! order) one run over the whole corpus gives them: merged, they equal that run exactly.
//!
//! Contiguous ranges rather than strided windows (`w mod N == i`) because a batch of
//! consecutive windows is what the packer, the forward pass and the collector's `TokenBatch`
//! handle; because a cache shard's files are read by one machine only; and because a
//! resumed shard is a prefix of its range, described by one number. The cost: shard `i` of a
//! live collection tokenizes (without running the model on) the text before its range, which
//! is cheap next to the forward pass.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

use super::ranges::SequenceRanges;

/// Shard `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole corpus: shard 0 of 1.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The sequences this shard covers out of `total`.
    pub fn range(&self, total: u64) -> Range<u64> {
        let bound = |i: u64| (u128::from(i) * u128::from(total) / u128::from(self.count)) as u64;
        bound(self.index)..bound(self.index + 1)
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    /// `I/N` with `0 ≤ I < N`.
    fn from_str(text: &str) -> Result<Self> {
        let parse = || -> Option<(u64, u64)> {
            let (index, count) = text.split_once('/')?;
            Some((index.trim().parse().ok()?, count.trim().parse().ok()?))
        };
        let (index, count) = parse()
            .with_context(|| format!("--shard `{text}` is not I/N (e.g. 0/4: the first of 4)"))?;
        if count == 0 || index >= count {
            bail!(
                "--shard {index}/{count}: I must be between 0 and N-1 (shards are numbered from 0)"
            );
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where a collection over `range` continues, given the sequences already `seen` (a saved
/// state): the start of the range for a fresh one, the end of what was done for a resumed
/// one. Anything else — sequences outside the range, a gap — means the state belongs to
/// another shard or another corpus size, and continuing would not give the shard's result.
pub fn resume_point(seen: &SequenceRanges, range: &Range<u64>, what: &str) -> Result<u64> {
    match seen.as_slice() {
        [] => Ok(range.start),
        [done] if done.start == range.start && done.end <= range.end => Ok(done.end),
        _ => bail!(
            "it holds sequences {seen}, which is not a start of {what} (sequences {}..{}); \
             use another --out, or the --shard/--num-tokens it was collected with",
            range.start,
            range.end
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_corpus() {
        for total in [0u64, 1, 7, 10, 1000] {
            for count in 1..=5u64 {
                let ranges: Vec<_> = (0..count)
                    .map(|index| Shard { index, count }.range(total))
                    .collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[ranges.len() - 1].end, total);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                let sizes: Vec<u64> = ranges.iter().map(|r| r.end - r.start).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(max - min <= 1, "{total}/{count}: {sizes:?}");
            }
        }
        assert_eq!(Shard { index: 1, count: 3 }.range(10), 3..6);
        assert_eq!(Shard::WHOLE.range(10), 0..10);
    }

    #[test]
    fn parses_i_of_n() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert_eq!("2/4".parse::<Shard>().unwrap().to_string(), "2/4");
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let err = "4/4".parse::<Shard>().unwrap_err().to_string();
        assert!(err.contains("numbered from 0"), "{err}");
    }

    #[test]
    fn resumes_only_a_prefix_of_its_range() {
        let mut seen = SequenceRanges::default();
        assert_eq!(resume_point(&seen, &(10..20), "shard 1/2").unwrap(), 10);
        seen.insert(10..14);
        assert_eq!(resume_point(&seen, &(10..20), "shard 1/2").unwrap(), 14);
        assert!(resume_point(&seen, &(0..10), "shard 0/2").is_err());
        assert!(resume_point(&seen, &(10..12), "shard 1/2").is_err());
        seen.insert(16..18);
        let err = resume_point(&seen, &(10..20), "shard 1/2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("10..14, 16..18"), "{err}");
    }
}
