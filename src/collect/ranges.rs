//! Which sequences of the token stream a collector has seen: a set of half-open ranges.
//!
//! Sequence indices identify samples and break ties, so shards of one corpus must cover
//! disjoint ranges; the set is what lets `saectl merge` check that, and what a resumed shard
//! continues from. It is kept sorted and coalesced (`[0, 4) ∪ [4, 9)` is stored as `[0, 9)`),
//! so a collector merged from adjacent shards holds the same set — and writes the same state
//! file — as one collector fed the whole stream.

use std::fmt;
use std::ops::Range;

use anyhow::{bail, Result};

/// Sorted, disjoint, non-adjacent, non-empty half-open ranges of sequence indices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SequenceRanges(Vec<Range<u64>>);

impl SequenceRanges {
    /// The set from stored `[start, end)` pairs, checked to be in canonical form.
    pub fn from_pairs(pairs: &[[u64; 2]]) -> Result<Self> {
        let ranges: Vec<Range<u64>> = pairs.iter().map(|&[start, end]| start..end).collect();
        for (i, range) in ranges.iter().enumerate() {
            if range.is_empty() {
                bail!(
                    "sequence range {i} ({}..{}) is empty",
                    range.start,
                    range.end
                );
            }
            if i > 0 && ranges[i - 1].end >= range.start {
                bail!("sequence ranges are not sorted and disjoint at range {i}");
            }
        }
        Ok(Self(ranges))
    }

    /// `[start, end)` pairs, for storage.
    pub fn to_pairs(&self) -> Vec<[u64; 2]> {
        self.0.iter().map(|r| [r.start, r.end]).collect()
    }

    pub fn as_slice(&self) -> &[Range<u64>] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of sequences in the set.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|r| r.end - r.start).sum()
    }

    /// Adds `range` (overlaps with what is there are absorbed).
    pub fn insert(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        // Ranges touching or overlapping `range` are merged into it.
        let first = self.0.partition_point(|r| r.end < range.start);
        let last = self.0.partition_point(|r| r.start <= range.end);
        let merged = match self.0[first..last] {
            [] => range,
            ref touching => {
                touching[0].start.min(range.start)..touching[touching.len() - 1].end.max(range.end)
            }
        };
        self.0.splice(first..last, [merged]);
    }

    /// A range of `self` and one of `other` that share a sequence, if any.
    pub fn first_overlap(&self, other: &Self) -> Option<(Range<u64>, Range<u64>)> {
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (&self.0[i], &other.0[j]);
            if a.start < b.end && b.start < a.end {
                return Some((a.clone(), b.clone()));
            }
            if a.end <= b.start {
                i += 1;
            } else {
                j += 1;
            }
        }
        None
    }

    /// Adds every range of `other`.
    pub fn extend(&mut self, other: &Self) {
        for range in &other.0 {
            self.insert(range.clone());
        }
    }

    /// The gaps between the ranges (not before the first or after the last).
    pub fn gaps(&self) -> Vec<Range<u64>> {
        self.0.windows(2).map(|w| w[0].end..w[1].start).collect()
    }
}

impl fmt::Display for SequenceRanges {
    /// `none`, or `0..12, 40..52`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| format!("{}..{}", r.start, r.end))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-range sets are what the tests mean
mod tests {
    use super::*;

    fn set(ranges: &[Range<u64>]) -> SequenceRanges {
        let mut s = SequenceRanges::default();
        for r in ranges {
            s.insert(r.clone());
        }
        s
    }

    #[test]
    fn inserts_coalesce_in_any_order() {
        let forward = set(&[0..4, 4..9, 12..15]);
        assert_eq!(forward.as_slice(), &[0..9, 12..15]);
        let backward = set(&[12..15, 4..9, 0..4]);
        assert_eq!(backward, forward);
        assert_eq!(set(&[12..15, 0..4, 3..13]).as_slice(), &[0..15]);
        assert_eq!(set(&[5..5]).as_slice(), &[] as &[Range<u64>]);
        assert_eq!(forward.len(), 12);
        assert_eq!(forward.gaps(), vec![9..12]);
        assert_eq!(forward.to_string(), "0..9, 12..15");
    }

    #[test]
    fn overlaps_are_found_and_adjacency_is_not_one() {
        let a = set(&[0..4, 10..20]);
        assert_eq!(a.first_overlap(&set(&[4..10, 20..30])), None);
        assert_eq!(
            a.first_overlap(&set(&[5..6, 19..21])),
            Some((10..20, 19..21))
        );
        assert_eq!(a.first_overlap(&set(&[3..5])), Some((0..4, 3..5)));
    }

    #[test]
    fn stored_pairs_must_be_canonical() {
        let a = set(&[0..4, 10..20]);
        assert_eq!(SequenceRanges::from_pairs(&a.to_pairs()).unwrap(), a);
        assert!(SequenceRanges::from_pairs(&[[0, 4], [4, 8]]).is_err());
        assert!(SequenceRanges::from_pairs(&[[5, 5]]).is_err());
        assert!(SequenceRanges::from_pairs(&[[8, 9], [0, 2]]).is_err());
    }
}
