//! The text of a live run as addressable token windows: the evaluation sequences first, then
//! an endless training stream.
//!
//! Windows are the ones `saectl cache` stores for the same corpus and `seq_len` (one BOS per
//! document, documents packed across rows, the tail of a document carried into the next row,
//! no truncation), numbered from 0 in corpus order. The first `held_out` of them are the
//! evaluation sequences; training window `j` is corpus window `held_out + j mod (W − held_out)`,
//! where `W` is the number of complete windows in the corpus, so a run longer than the corpus
//! reads it again from the first training window (as a cache run repeats its cache). `W` is
//! learnt when a pass first reaches the end of the text and is saved in checkpoints.
//!
//! Reading is sequential: the cursor keeps one packed stream open and moves forward on it.
//! Going back (a new epoch, or a resumed run) reopens the text and packs — without running the
//! model — up to the wanted window, so resuming costs a re-read of the text before it.

use std::collections::VecDeque;

use anyhow::{bail, Result};

use crate::data::{DataSource, DocumentStream, DocumentTokenizer, PackConfig, TokenWindows};

/// Windows per packing batch. Any value gives the same windows (tails are carried over).
const READ_ROWS: usize = 64;

/// Token windows of one corpus, read by index.
pub struct WindowCursor {
    source: DataSource,
    tokenizer: DocumentTokenizer,
    seq_len: usize,
    /// Corpus windows held out at the start (the evaluation sequences).
    held_out: u64,
    /// Complete windows in the corpus, once known.
    corpus_windows: Option<u64>,
    open: Option<OpenStream>,
}

/// The packed stream being read and the windows it has produced but not handed out.
struct OpenStream {
    windows: TokenWindows<DocumentStream>,
    /// Corpus index of the front of `pending`.
    next: u64,
    pending: VecDeque<Vec<u32>>,
}

impl WindowCursor {
    /// A cursor over `source`; `corpus_windows` is `W` when a checkpoint already knows it.
    pub fn new(
        source: DataSource,
        tokenizer: DocumentTokenizer,
        seq_len: usize,
        held_out: u64,
        corpus_windows: Option<u64>,
    ) -> Self {
        Self {
            source,
            tokenizer,
            seq_len,
            held_out,
            corpus_windows,
            open: None,
        }
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Complete windows in the corpus, once a pass has reached its end.
    pub fn corpus_windows(&self) -> Option<u64> {
        self.corpus_windows
    }

    /// The held-out evaluation windows, `[held_out · seq_len]` tokens row-major.
    pub fn held_out_rows(&mut self) -> Result<Vec<u32>> {
        let mut tokens = Vec::with_capacity(self.held_out as usize * self.seq_len);
        for c in 0..self.held_out {
            match self.corpus_row(c)? {
                Some(row) => tokens.extend_from_slice(&row),
                None => self.too_short()?,
            }
        }
        Ok(tokens)
    }

    /// Training windows `index..index + count`, `[count · seq_len]` tokens row-major.
    pub fn rows(&mut self, index: u64, count: usize) -> Result<Vec<u32>> {
        let mut tokens = Vec::with_capacity(count * self.seq_len);
        for j in index..index + count as u64 {
            tokens.extend_from_slice(&self.training_row(j)?);
        }
        Ok(tokens)
    }

    /// Training windows from `index` on, at most `count` and never one window twice: when the
    /// corpus has fewer training windows than `count`, each of them once (a batch of sample
    /// collection must not see one sentence several times). Returns the tokens, row-major,
    /// and the number of windows.
    pub fn distinct_rows(&mut self, index: u64, count: usize) -> Result<(Vec<u32>, usize)> {
        let mut tokens = Vec::with_capacity(count * self.seq_len);
        let mut rows = 0;
        for j in index..index + count as u64 {
            let row = self.training_row(j)?;
            // Checked after reading: the read may be what taught the corpus's size.
            if let Some(w) = self.corpus_windows {
                if j - index >= w.saturating_sub(self.held_out) {
                    break;
                }
            }
            tokens.extend_from_slice(&row);
            rows += 1;
        }
        Ok((tokens, rows))
    }

    fn training_row(&mut self, j: u64) -> Result<Vec<u32>> {
        loop {
            let c = match self.corpus_windows {
                Some(w) if w <= self.held_out => return self.too_short(),
                Some(w) => self.held_out + j % (w - self.held_out),
                None => self.held_out + j,
            };
            // `None` means the corpus ended before `c`: W is known now, map again.
            if let Some(row) = self.corpus_row(c)? {
                return Ok(row);
            }
        }
    }

    /// Corpus window `c`, or `None` (with `corpus_windows` set) when the corpus has fewer.
    fn corpus_row(&mut self, c: u64) -> Result<Option<Vec<u32>>> {
        if self.corpus_windows.is_some_and(|w| c >= w) {
            return Ok(None);
        }
        if self.open.as_ref().is_none_or(|open| open.next > c) {
            self.open = Some(self.open_at(c)?);
        }
        let open = self.open.as_mut().expect("just opened");
        loop {
            if open.pending.is_empty() {
                match open.windows.next() {
                    Some(batch) => {
                        let batch = batch?;
                        open.pending
                            .extend(batch.tokens.chunks(batch.seq_len).map(<[u32]>::to_vec));
                    }
                    None => {
                        let counts = open.windows.counts();
                        self.corpus_windows = Some(counts.windows + counts.windows_skipped);
                        self.open = None;
                        return Ok(None);
                    }
                }
                continue;
            }
            let row = open.pending.pop_front().expect("not empty");
            open.next += 1;
            if open.next - 1 == c {
                return Ok(Some(row));
            }
        }
    }

    /// A packed stream whose first emitted window is corpus window `c`.
    fn open_at(&self, c: u64) -> Result<OpenStream> {
        let config = PackConfig {
            start_window: c,
            ..PackConfig::new(READ_ROWS, self.seq_len)
        };
        let windows = TokenWindows::new(self.source.documents(), self.tokenizer.clone(), config)?;
        Ok(OpenStream {
            windows,
            next: c,
            pending: VecDeque::new(),
        })
    }

    fn too_short<T>(&self) -> Result<T> {
        let w = self.corpus_windows.unwrap_or(0);
        bail!(
            "the corpus holds {w} windows of {} tokens, and eval_sequences holds out {} of \
             them for the loss-recovered evaluation: nothing is left to train on (lower \
             eval_sequences or give more text)",
            self.seq_len,
            self.held_out
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::fixture_text;

    fn cursor(held_out: u64) -> WindowCursor {
        let (source, tokenizer) = fixture_text();
        WindowCursor::new(source, tokenizer, 16, held_out, None)
    }

    /// Every window of the fixture corpus at `seq_len` 16, read in one pass.
    fn all_windows() -> Vec<Vec<u32>> {
        let (source, tokenizer) = fixture_text();
        let windows =
            TokenWindows::new(source.documents(), tokenizer, PackConfig::new(5, 16)).unwrap();
        windows
            .flat_map(|batch| {
                let batch = batch.unwrap();
                batch
                    .tokens
                    .chunks(16)
                    .map(<[u32]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn training_windows_skip_the_held_out_ones_and_wrap() {
        let all = all_windows();
        let w = all.len() as u64;
        assert!(w > 10, "the fixture corpus has {w} windows");
        let mut cursor = cursor(3);
        assert_eq!(cursor.held_out_rows().unwrap(), all[..3].concat());
        // Across the end of the corpus: training window j is corpus window 3 + j mod (W − 3).
        let span = (w - 3) as usize;
        let rows = cursor.rows(0, span + 4).unwrap();
        let expected: Vec<u32> = (0..span + 4)
            .flat_map(|j| all[3 + j % span].clone())
            .collect();
        assert_eq!(rows, expected);
        assert_eq!(cursor.corpus_windows(), Some(w));
        // Going back reopens the text; a fresh cursor far past the end learns W and wraps.
        assert_eq!(cursor.rows(1, 1).unwrap(), all[4]);
        let mut fresh = self::cursor(3);
        assert_eq!(fresh.rows(2 * span as u64 + 1, 1).unwrap(), all[4]);
        assert_eq!(fresh.corpus_windows(), Some(w));
    }

    #[test]
    fn distinct_rows_never_repeat_a_window() {
        let all = all_windows();
        let span = all.len() - 3;
        // Far more than the corpus holds, from the middle: each training window once, in order.
        let mut cursor = cursor(3);
        let (rows, count) = cursor.distinct_rows(5, 10 * span).unwrap();
        assert_eq!(count, span);
        let expected: Vec<u32> = (5..5 + span)
            .flat_map(|j| all[3 + j % span].clone())
            .collect();
        assert_eq!(rows, expected);
        // From 0, learning the size on the way; and fewer than the corpus holds.
        let (rows, count) = self::cursor(3).distinct_rows(0, span + 1).unwrap();
        assert_eq!((count, rows), (span, all[3..].concat()));
        assert_eq!(cursor.distinct_rows(2, 2).unwrap(), (all[5..7].concat(), 2));
    }

    #[test]
    fn a_corpus_entirely_held_out_is_an_error() {
        let w = all_windows().len() as u64;
        let err = cursor(w).rows(0, 1).unwrap_err().to_string();
        assert!(err.contains("nothing is left to train on"), "{err}");
        let err = cursor(w + 2).held_out_rows().unwrap_err().to_string();
        assert!(err.contains("eval_sequences"), "{err}");
    }
}
