//! Context tokens in the state file, each stored once: "pieces" of sequences.
//!
//! Samples of many features come from the same sequences, and windows overlap (the demo's
//! 65,000 samples need 1.4 M context tokens but cover only 100,000 distinct ones). So the file
//! stores, per sequence, the maximal runs of tokens that some sample needs — its context, and
//! the token before the activating one — and each sample names its piece. A sample's context
//! is then the slice of its piece from the window's start; nothing about it is stored twice.
//! Pieces are built from the samples themselves: should two samples disagree about a token
//! (the same sequence index fed twice with different tokens), the second starts a piece of its
//! own, so the file never changes a sample.

use anyhow::{bail, Result};

/// The tokens one sample needs: positions `start..start + tokens.len()` of `sequence`.
pub(super) struct Span<'a> {
    pub(super) sequence: u64,
    pub(super) start: u32,
    pub(super) tokens: std::borrow::Cow<'a, [u32]>,
}

/// Runs of sequences' tokens, back to back.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Pieces {
    pub(super) sequence: Vec<u64>,
    pub(super) start: Vec<u32>,
    pub(super) len: Vec<u32>,
    pub(super) tokens: Vec<u32>,
    /// Where each piece's tokens begin in `tokens`.
    pub(super) offset: Vec<usize>,
}

impl Pieces {
    /// Pieces covering every span, and the piece of each span.
    pub(super) fn build(spans: &[Span<'_>]) -> (Self, Vec<u32>) {
        let mut order: Vec<usize> = (0..spans.len()).collect();
        order.sort_by_key(|&i| (spans[i].sequence, spans[i].start));
        let mut pieces = Self::default();
        let mut piece_of = vec![0u32; spans.len()];
        for i in order {
            let span = &spans[i];
            if !pieces.extend_last(span) {
                pieces.sequence.push(span.sequence);
                pieces.start.push(span.start);
                pieces.len.push(span.tokens.len() as u32);
                pieces.offset.push(pieces.tokens.len());
                pieces.tokens.extend_from_slice(&span.tokens);
            }
            piece_of[i] = (pieces.len.len() - 1) as u32;
        }
        (pieces, piece_of)
    }

    /// Grows the last piece to cover `span` when they touch and agree; false otherwise.
    fn extend_last(&mut self, span: &Span<'_>) -> bool {
        let Some(last) = self.len.len().checked_sub(1) else {
            return false;
        };
        let (start, len) = (u64::from(self.start[last]), u64::from(self.len[last]));
        let span_start = u64::from(span.start);
        if self.sequence[last] != span.sequence || span_start > start + len {
            return false;
        }
        // The span starts inside (or right after) the piece: the overlap must agree.
        let overlap = (start + len - span_start).min(span.tokens.len() as u64) as usize;
        let from = self.offset[last] + (span_start - start) as usize;
        if self.tokens[from..from + overlap] != span.tokens[..overlap] {
            return false;
        }
        self.tokens.extend_from_slice(&span.tokens[overlap..]);
        self.len[last] += (span.tokens.len() - overlap) as u32;
        true
    }

    /// Pieces read from a file, checked: lengths add up to the tokens.
    pub(super) fn from_columns(
        sequence: Vec<u64>,
        start: Vec<u32>,
        len: Vec<u32>,
        tokens: Vec<u32>,
    ) -> Result<Self> {
        let mut offset = Vec::with_capacity(len.len());
        let mut total = 0usize;
        for (i, &n) in len.iter().enumerate() {
            offset.push(total);
            total += n as usize;
            if u64::from(start[i]) + u64::from(n) > u64::from(u32::MAX) + 1 {
                bail!("piece {i} runs past the largest position");
            }
        }
        if total != tokens.len() {
            bail!(
                "the pieces' lengths add up to {total} tokens, but {} are stored",
                tokens.len()
            );
        }
        Ok(Self {
            sequence,
            start,
            len,
            tokens,
            offset,
        })
    }

    /// Positions `start..start + len` of piece `piece`, or an error when the piece does not
    /// hold them.
    pub(super) fn slice(&self, piece: usize, start: u64, len: u64) -> Result<&[u32]> {
        let Some(&piece_start) = self.start.get(piece) else {
            bail!("piece {piece} does not exist ({} pieces)", self.len.len());
        };
        let (piece_start, piece_len) = (u64::from(piece_start), u64::from(self.len[piece]));
        if start < piece_start || start + len > piece_start + piece_len {
            bail!(
                "positions {start}..{} lie outside piece {piece} ({piece_start}..{})",
                start + len,
                piece_start + piece_len
            );
        }
        let from = self.offset[piece] + (start - piece_start) as usize;
        Ok(&self.tokens[from..from + len as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn span(sequence: u64, start: u32, tokens: &[u32]) -> Span<'static> {
        Span {
            sequence,
            start,
            tokens: Cow::Owned(tokens.to_vec()),
        }
    }

    #[test]
    fn overlapping_spans_share_a_piece_and_conflicts_get_their_own() {
        let spans = [
            span(3, 4, &[14, 15, 16]),
            span(1, 0, &[10, 11]),
            span(3, 2, &[12, 13, 14]),
            span(3, 7, &[17]),
            span(3, 9, &[19]),
            span(3, 5, &[99]),
        ];
        let (pieces, piece_of) = Pieces::build(&spans);
        // Sequence 1; sequence 3 from 2 to 6; the conflicting 99 at 5 starts a piece, which
        // 17 at 7 does not touch; 19 at 9 after a gap.
        assert_eq!(pieces.sequence, vec![1, 3, 3, 3, 3]);
        assert_eq!(pieces.start, vec![0, 2, 5, 7, 9]);
        assert_eq!(pieces.tokens, vec![10, 11, 12, 13, 14, 15, 16, 99, 17, 19]);
        for (span, &piece) in spans.iter().zip(&piece_of) {
            let got = pieces
                .slice(
                    piece as usize,
                    u64::from(span.start),
                    span.tokens.len() as u64,
                )
                .unwrap();
            assert_eq!(got, &span.tokens[..]);
            assert_eq!(pieces.sequence[piece as usize], span.sequence);
        }
        assert!(pieces.slice(1, 1, 2).is_err());
        assert!(pieces.slice(9, 0, 1).is_err());
    }
}
