//! Training batches live from the model: the original's shuffling buffer, made resumable.
//!
//! The buffer holds `num_batches_in_buffer` model batches of `model_batch_size` windows: the
//! model runs to the hook point(s) on them, their `T` tokens' activations are stacked and
//! permuted with a seed drawn from `(seed, buffer index)`, and training batches are
//! consecutive `batch_size` slices of the buffers' permuted tokens, one buffer after the other
//! (a batch may span two buffers). The original refilled the same way but let its DataLoader
//! emit a short batch at each buffer's end; here every step gets `batch_size` tokens.
//!
//! Buffer `b` holds training windows `b·N .. b·N + n_b` of the [`WindowCursor`]
//! (`N = num_batches_in_buffer · model_batch_size`), where the last buffer of a run keeps only
//! the windows its remaining tokens need. The stream is therefore a pure function of the
//! seed, the config and the text, and a resumed run needs only the tokens consumed: the
//! buffer holding that position is read and run through the model again, and on the CPU it
//! comes out bit for bit the same (same windows, same model batches).
//!
//! Text runs ahead of the model: once a buffer is filled, the next buffer's windows are read
//! and tokenized on a thread of their own ([`Reader`]) while training consumes this one. The
//! cursor reads the same windows in the same order as in series, and what a checkpoint records
//! of it (the corpus's size, once learnt) is taken as it stood when the buffer being trained
//! on was filled, so checkpoints are the serial ones byte for byte.

use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use super::cache_batches::{mix, permutation};
use super::corpus::WindowCursor;
use crate::model::{Gemma2, HookPoint};

/// The epoch slot of [`mix`] used for live buffers (cache runs use the epoch number).
const LIVE_STREAM: u64 = u64::MAX - 1;

/// Shape of the live stream, from the training config.
#[derive(Clone, Copy, Debug)]
pub struct LiveLayout {
    pub seed: u64,
    pub batch_size: usize,
    pub model_batch_size: usize,
    /// Windows per full buffer (`num_batches_in_buffer · model_batch_size`).
    pub buffer_windows: u64,
    /// Tokens the run consumes in all (`total_steps · batch_size`).
    pub total_tokens: u64,
}

/// Batches of activations at one hook (an SAE) or two (a transcoder's input and target).
pub struct LiveStream {
    reader: Reader,
    /// The corpus's size as the cursor knew it when the current buffer was filled.
    corpus_windows: Option<u64>,
    seq_len: usize,
    model: Gemma2,
    hooks: Vec<HookPoint>,
    layout: LiveLayout,
    /// Tokens of the stream consumed so far.
    offset: u64,
    buffer: Option<Buffer>,
}

/// One filled buffer: activations `[T, d_model]` per hook (model dtype, model device) and
/// their permutation.
struct Buffer {
    index: u64,
    acts: Vec<Tensor>,
    order: Vec<u32>,
}

impl LiveStream {
    /// A stream positioned after `offset` tokens, reading `hooks` (`[input]` or
    /// `[input, target]`).
    pub fn new(
        cursor: WindowCursor,
        model: Gemma2,
        hooks: Vec<HookPoint>,
        layout: LiveLayout,
        offset: u64,
    ) -> Self {
        Self {
            corpus_windows: cursor.corpus_windows(),
            seq_len: cursor.seq_len(),
            reader: Reader::Idle(Box::new(cursor)),
            model,
            hooks,
            layout,
            offset,
            buffer: None,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Complete windows in the corpus, once known (saved in checkpoints).
    pub fn corpus_windows(&self) -> Option<u64> {
        self.corpus_windows
    }

    /// The next batch: inputs `[batch_size, d_model]` and, for a transcoder, targets of the
    /// same shape, f32 on `device`.
    pub fn next_batch(&mut self, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
        let mut pieces: Vec<Vec<Tensor>> = vec![Vec::new(); self.hooks.len()];
        let mut needed = self.layout.batch_size;
        let buffer_tokens = self.layout.buffer_windows * self.seq_len as u64;
        while needed > 0 {
            let index = self.offset / buffer_tokens;
            let position = (self.offset % buffer_tokens) as usize;
            let buffer = self.load(index)?;
            let take = needed.min(buffer.order.len() - position);
            let rows = &buffer.order[position..position + take];
            let ids = Tensor::from_slice(rows, take, buffer.acts[0].device())?;
            for (piece, acts) in pieces.iter_mut().zip(&buffer.acts) {
                piece.push(acts.index_select(&ids, 0)?);
            }
            self.offset += take as u64;
            needed -= take;
        }
        let mut batches = pieces.into_iter().map(|piece| -> Result<Tensor> {
            let batch = Tensor::cat(&piece, 0)?; // [batch_size, d_model]
            Ok(batch.to_dtype(DType::F32)?.to_device(device)?)
        });
        let input = batches.next().expect("at least one hook")?;
        let target = batches.next().transpose()?;
        Ok((input, target))
    }

    /// Buffer `index`, filled by the model if it is not the one in memory.
    fn load(&mut self, index: u64) -> Result<&Buffer> {
        if self.buffer.as_ref().is_none_or(|b| b.index != index) {
            self.buffer = None; // free the old one before the model runs
            self.buffer = Some(self.fill(index)?);
        }
        Ok(self.buffer.as_ref().expect("just filled"))
    }

    /// The windows of buffer `index`: `(first window, window count)`, none past the run's end.
    fn windows_of(&self, index: u64) -> Option<(u64, usize)> {
        let layout = self.layout;
        let seq_len = self.seq_len as u64;
        let start = index * layout.buffer_windows * seq_len;
        let remaining = layout.total_tokens.checked_sub(start).filter(|&r| r > 0)?;
        // The run's last buffer keeps only the windows its remaining steps read.
        let windows = layout.buffer_windows.min(remaining.div_ceil(seq_len));
        Some((index * layout.buffer_windows, windows as usize))
    }

    fn fill(&mut self, index: u64) -> Result<Buffer> {
        let (seq_len, layout) = (self.seq_len, self.layout);
        let Some((first, windows)) = self.windows_of(index) else {
            bail!(
                "internal: buffer {index} lies past the run's {} tokens",
                layout.total_tokens
            );
        };
        let tokens = self.reader.take(first, windows)?;
        self.corpus_windows = self.reader.corpus_windows()?;
        if let Some((next, count)) = self.windows_of(index + 1) {
            self.reader.start(next, count)?;
        }
        let mut parts: Vec<Vec<Tensor>> = vec![Vec::new(); self.hooks.len()];
        for chunk in (0..windows).step_by(layout.model_batch_size) {
            let rows = layout.model_batch_size.min(windows - chunk);
            let ids = tokens[chunk * seq_len..(chunk + rows) * seq_len].to_vec();
            let ids = Tensor::from_vec(ids, (rows, seq_len), self.model.device())?;
            let acts = self
                .model
                .forward_to_hooks(&ids, &self.hooks)
                .with_context(|| {
                    format!(
                        "forward pass failed at training window {}",
                        first + chunk as u64
                    )
                })?;
            for (part, act) in parts.iter_mut().zip(acts) {
                let d_model = act.dim(2)?;
                part.push(act.reshape((rows * seq_len, d_model))?); // [rows·seq, d_model]
            }
        }
        let acts = parts
            .iter()
            .map(|part| Tensor::cat(part, 0))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let order = permutation(windows * seq_len, mix(layout.seed, LIVE_STREAM, index));
        Ok(Buffer { index, acts, order })
    }
}

/// The cursor, in hand or reading the next buffer's windows on its own thread.
enum Reader {
    Idle(Box<WindowCursor>),
    /// Reading windows `first..first + count`.
    Reading {
        first: u64,
        count: usize,
        handle: JoinHandle<(Box<WindowCursor>, Result<Vec<u32>>)>,
    },
    /// Only while switching between the two.
    Gone,
}

impl Reader {
    /// Starts reading windows `first..first + count` ahead.
    fn start(&mut self, first: u64, count: usize) -> Result<()> {
        let mut cursor = self.cursor()?;
        let handle = std::thread::Builder::new()
            .name("text-reader".into())
            .spawn(move || {
                let rows = cursor.rows(first, count);
                (cursor, rows)
            })
            .context("cannot start the text reader's thread")?;
        *self = Reader::Reading {
            first,
            count,
            handle,
        };
        Ok(())
    }

    /// Windows `first..first + count`: the ones read ahead when they are these, else read now.
    fn take(&mut self, first: u64, count: usize) -> Result<Vec<u32>> {
        if let Reader::Reading {
            first: ahead,
            count: n,
            ..
        } = *self
        {
            if (ahead, n) == (first, count) {
                let Reader::Reading { handle, .. } = std::mem::replace(self, Reader::Gone) else {
                    unreachable!("matched above")
                };
                let (cursor, rows) = join(handle);
                *self = Reader::Idle(cursor);
                return rows;
            }
        }
        let mut cursor = self.cursor()?;
        let rows = cursor.rows(first, count);
        *self = Reader::Idle(cursor);
        rows
    }

    /// The corpus's size as the cursor knows it now.
    fn corpus_windows(&mut self) -> Result<Option<u64>> {
        let cursor = self.cursor()?;
        let windows = cursor.corpus_windows();
        *self = Reader::Idle(cursor);
        Ok(windows)
    }

    /// The cursor, once a read ahead has finished (its windows, unwanted, are dropped: a
    /// resumed position or an error read again from the cursor).
    fn cursor(&mut self) -> Result<Box<WindowCursor>> {
        match std::mem::replace(self, Reader::Gone) {
            Reader::Idle(cursor) => Ok(cursor),
            Reader::Reading { handle, .. } => Ok(join(handle).0),
            Reader::Gone => bail!("internal: the text reader was lost after an error"),
        }
    }
}

fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
