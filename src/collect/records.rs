//! Where kept samples keep what they show: one append-only arena of records per feature block.
//!
//! A record is a sample's previous token, its context tokens and the feature's activation on
//! each token of that context where it fires (sparse: `(index into the context, value)`). Stores
//! (top samples, interval strata) keep only small fixed-size entries that point at their record,
//! so moving a sample between strata moves 40 bytes, and admitting one appends to the end of the
//! arena — sequential writes, where copying into per-feature slots wrote two cold cache lines
//! per admission (that copy dominated the cold fill).
//!
//! Most samples admitted while the stores fill are pushed out again soon, so a record written
//! during a batch does not copy its context: it points into the **token log**, where each
//! batch that admitted something left its tokens once (a *lazy* record: two words and the
//! activations instead of ~24 words). Only when the log outweighs what copying the contexts of
//! the live lazy records would cost are they made whole and the log dropped.
//!
//! Most windows hold one activation of the feature, the sample's own (a feature rarely fires
//! twice within a few tokens of one row): such a lazy record lives entirely in its 16-byte
//! handle — the log index, the context position and the activation's value — and takes no
//! arena words at all (an *inline* record). Admitting a sample then writes nothing but the
//! store's entry.
//!
//! A replaced sample's record becomes garbage; when garbage outweighs live data the block
//! compacts its arena (every live record copied once, in feature order), so memory stays within
//! twice the live records and the work per admission stays constant on average; the chunks it
//! empties are kept for the arena to grow into. Two stores may point at one record (a hit kept
//! as a top sample and as an interval sample): live words are counted per reference, so each
//! releases it on its own.

/// A sample's record: where it starts in the arena and how long its parts are, or, inline,
/// all of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// [`LAZY`] (top bit), chunk index (the rest of the high 32 bits) and word index in the
    /// chunk (low 32 bits). Inline ([`INLINE`] too): the context position and
    /// [`INLINE_PREVIOUS`] in the high bits, the log index of the activating token in the low
    /// 32 bits.
    offset: u64,
    pub context_len: u32,
    /// Activations in the record; inline: the bits of its one activation's value.
    acts: u32,
}

/// Marks "no previous token" (position 0).
pub const NO_TOKEN: u32 = u32::MAX;

/// A record whose context is in the token log: its words are the log index of the activating
/// token, then the index of that token in the context with [`HAS_PREVIOUS`], then the
/// activations.
const LAZY: u64 = 1 << 63;
/// In a lazy record's second word: the activating token is not the first of its row.
const HAS_PREVIOUS: u32 = 1 << 31;
/// A lazy record with no arena words: its one activation is the activating token's.
const INLINE: u64 = 1 << 62;
/// In an inline record's offset: the activating token is not the first of its row.
const INLINE_PREVIOUS: u64 = 1 << 61;
/// Context positions an inline record can hold (the bits between the flags and the index).
const INLINE_POSITIONS: u32 = 1 << 29;

/// Words per chunk of a grown arena (4 MiB): chunks are never reallocated, so a growing arena
/// never copies what it holds (a single doubling `Vec` spent more copying than writing).
const CHUNK_WORDS: usize = 1 << 20;

impl Record {
    /// Words it occupies in the arena: whole, the previous token, the context and two per
    /// activation; lazy, two and two per activation; inline, none.
    pub fn words(&self) -> usize {
        if self.is_inline() {
            0
        } else if self.is_lazy() {
            2 + 2 * self.acts as usize
        } else {
            Record::whole_words(self.context_len as usize, self.acts as usize)
        }
    }

    /// Activations in the record.
    pub fn acts_len(&self) -> u32 {
        if self.is_inline() {
            1
        } else {
            self.acts
        }
    }

    fn is_lazy(&self) -> bool {
        self.offset & LAZY != 0
    }

    fn is_inline(&self) -> bool {
        self.offset & INLINE != 0
    }

    /// Words that making it whole would add.
    fn lazy_extra(&self) -> usize {
        if self.is_inline() {
            Record::whole_words(self.context_len as usize, 1)
        } else if self.is_lazy() {
            (self.context_len as usize).saturating_sub(1)
        } else {
            0
        }
    }

    /// Words of a whole record: the previous token, the context, two per activation.
    fn whole_words(context_len: usize, acts_len: usize) -> usize {
        1 + context_len + 2 * acts_len
    }

    fn chunk(&self) -> usize {
        ((self.offset & !LAZY) >> 32) as usize
    }

    fn start(&self) -> usize {
        self.offset as u32 as usize
    }
}

/// The arena: records back to back in chunks of `u32` words (an activation's value as its
/// bits); a record never straddles two chunks.
#[derive(Debug, Default)]
pub struct Records {
    chunks: Vec<Vec<u32>>,
    /// Words written, live or not.
    used: usize,
    /// Words of records still referenced by a store.
    live: usize,
    /// Emptied full-size chunks of the arena before the last compaction, reused as it grows
    /// again: a fresh chunk is fresh memory, and the kernel zeroing its pages on first touch
    /// was 15% of a cold fill.
    spare: Vec<Vec<u32>>,
    /// The tokens of every batch that wrote a lazy record since the log was last dropped.
    log: Vec<u32>,
    /// Words that making every live lazy record whole would add (per reference, like `live`).
    lazy_extra: usize,
}

impl Clone for Records {
    /// The records only: a copy needs no spare chunks.
    fn clone(&self) -> Self {
        Self {
            chunks: self.chunks.clone(),
            used: self.used,
            live: self.live,
            spare: Vec::new(),
            log: self.log.clone(),
            lazy_extra: self.lazy_extra,
        }
    }
}

/// A record read back.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub previous: Option<u32>,
    pub context: &'a [u32],
    acts: Acts<'a>,
}

/// A record's activations as `[index, value bits]` pairs: in the arena, or the one an inline
/// record holds.
#[derive(Clone, Copy, Debug)]
enum Acts<'a> {
    Words(&'a [u32]),
    One([u32; 2]),
}

impl RecordView<'_> {
    /// The context activations, `(index into the context, value)`, by index.
    pub fn acts(&self) -> impl ExactSizeIterator<Item = (u32, f32)> + '_ {
        let words = match &self.acts {
            Acts::Words(words) => words,
            Acts::One(pair) => &pair[..],
        };
        words
            .chunks_exact(2)
            .map(|pair| (pair[0], f32::from_bits(pair[1])))
    }

    pub fn acts_vec(&self) -> Vec<(u32, f32)> {
        self.acts().collect()
    }
}

impl Records {
    /// The chunk a record of `words` words goes to (a new one when the last is full).
    fn chunk_for(&mut self, words: usize) -> usize {
        let room = self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.capacity() - chunk.len() >= words);
        if !room {
            // Small arenas stay small: chunks double from 4 KiB up to the full size.
            let last = self.chunks.last().map_or(0, Vec::capacity);
            let size = (2 * last).clamp(1 << 10, CHUNK_WORDS).max(words);
            let chunk = match self.spare.pop() {
                Some(chunk) if chunk.capacity() >= size => chunk,
                _ => Vec::with_capacity(size),
            };
            self.chunks.push(chunk);
        }
        self.chunks.len() - 1
    }

    /// Appends a record: `acts` are `(index into context, value)` pairs.
    pub fn push(
        &mut self,
        previous: Option<u32>,
        context: &[u32],
        acts: impl ExactSizeIterator<Item = (u32, f32)>,
    ) -> Record {
        let (context_len, acts_len) = (context.len() as u32, acts.len() as u32);
        let words = Record::whole_words(context.len(), acts.len());
        let index = self.chunk_for(words);
        let chunk = &mut self.chunks[index];
        let record = Record {
            offset: (index as u64) << 32 | chunk.len() as u64,
            context_len,
            acts: acts_len,
        };
        chunk.push(previous.unwrap_or(NO_TOKEN));
        chunk.extend_from_slice(context);
        for (position, value) in acts {
            chunk.extend([position, value.to_bits()]);
        }
        self.used += words;
        self.live += words;
        record
    }

    /// Appends `tokens` (a batch) to the token log; lazy records of it add this offset to
    /// their token's index in the batch. `None` when the log cannot index them (records are
    /// then written whole).
    pub fn log_batch(&mut self, tokens: &[u32]) -> Option<u32> {
        let base = self.log.len();
        if base + tokens.len() >= u32::MAX as usize {
            return None;
        }
        self.log.extend_from_slice(tokens);
        Some(base as u32)
    }

    /// Appends a lazy record: the activating token is `log[token]`, at index `context_position`
    /// of a context of `context_len` tokens; `has_previous` when it is not first in its row.
    pub fn push_lazy(
        &mut self,
        token: u32,
        context_position: u32,
        context_len: u32,
        has_previous: bool,
        acts: impl ExactSizeIterator<Item = (u32, f32)>,
    ) -> Record {
        debug_assert!(context_position < context_len && context_position < HAS_PREVIOUS);
        debug_assert!((token as usize) < self.log.len());
        let acts_len = acts.len() as u32;
        let words = 2 + 2 * acts.len();
        let index = self.chunk_for(words);
        let chunk = &mut self.chunks[index];
        let record = Record {
            offset: LAZY | (index as u64) << 32 | chunk.len() as u64,
            context_len,
            acts: acts_len,
        };
        chunk.push(token);
        chunk.push(context_position | if has_previous { HAS_PREVIOUS } else { 0 });
        for (position, value) in acts {
            chunk.extend([position, value.to_bits()]);
        }
        self.used += words;
        self.live += words;
        self.lazy_extra += record.lazy_extra();
        record
    }

    /// A lazy record whose one activation, `value`, is the activating token's (`log[token]`,
    /// at `context_position` of its context): held entirely in the handle, when the position
    /// fits (else an ordinary lazy record).
    #[inline(always)]
    pub fn push_inline(
        &mut self,
        token: u32,
        context_position: u32,
        context_len: u32,
        has_previous: bool,
        value: f32,
    ) -> Record {
        debug_assert!(context_position < context_len && (token as usize) < self.log.len());
        if context_position >= INLINE_POSITIONS {
            let act = (context_position, value);
            return self.push_lazy(
                token,
                context_position,
                context_len,
                has_previous,
                std::iter::once(act),
            );
        }
        let previous = if has_previous { INLINE_PREVIOUS } else { 0 };
        let record = Record {
            offset: LAZY | INLINE | previous | u64::from(context_position) << 32 | u64::from(token),
            context_len,
            acts: value.to_bits(),
        };
        self.lazy_extra += record.lazy_extra();
        record
    }

    /// Copies a record of another arena here.
    pub fn copy_from(&mut self, other: &Records, record: Record) -> Record {
        let view = other.view(record);
        self.push(view.previous, view.context, view.acts())
    }

    /// A second store keeps `record` too. Words are counted per reference, so each store
    /// releases it on its own and a compaction gives each its own copy.
    #[inline]
    pub fn share(&mut self, record: Record) {
        self.live += record.words();
        self.lazy_extra += record.lazy_extra();
    }

    /// A store let go of `record`: its words are garbage until the next compaction.
    pub fn release(&mut self, record: Record) {
        self.live -= record.words();
        self.lazy_extra -= record.lazy_extra();
    }

    pub fn view(&self, record: Record) -> RecordView<'_> {
        view(&self.chunks, &self.log, record)
    }

    /// Words of records still referenced by a store.
    #[cfg(test)]
    pub fn live_words(&self) -> usize {
        self.live
    }

    /// Whether garbage outweighs the live records (and a compaction is worth a pass).
    pub fn wants_compaction(&self) -> bool {
        self.used > 2 * self.live + CHUNK_WORDS
    }

    /// Whether the token log holds more words than the lazy records it serves save (with
    /// slack, an eighth of the live records, so that a long collection whose few young samples
    /// stay lazy pays for a pass rarely), or nears the limit of its indices: time to make them
    /// whole ([`make_whole`](Self::make_whole) every record, then
    /// [`drop_log`](Self::drop_log)).
    pub fn wants_log_dropped(&self) -> bool {
        let slack = CHUNK_WORDS.max(self.live / 8);
        self.log.len() > self.lazy_extra + slack || self.log.len() > (u32::MAX / 2) as usize
    }

    /// Copies a lazy record whole to the end of the arena (the lazy one becomes garbage) and
    /// points `record` there; a whole record is left as it is.
    pub fn make_whole(&mut self, record: &mut Record) {
        if !record.is_lazy() {
            return;
        }
        let view = view(&self.chunks, &self.log, *record);
        let (previous, context) = (view.previous, view.context.to_vec());
        let acts = view.acts_vec();
        self.release(*record);
        *record = self.push(previous, &context, acts.into_iter());
    }

    /// Forgets the token log, once no live record is lazy.
    pub fn drop_log(&mut self) {
        debug_assert_eq!(self.lazy_extra, 0, "a lazy record outlived the log");
        self.log.clear();
    }

    /// Starts a compaction: the live records are copied into a fresh arena one by one with
    /// [`Compaction::keep`] (lazy ones stay lazy), then [`Compaction::finish`] drops the old
    /// one.
    pub fn compaction(&mut self) -> Compaction<'_> {
        let old = std::mem::take(&mut self.chunks);
        self.used = 0;
        Compaction { old, arena: self }
    }
}

/// A record's words in `chunks`, its context in `log` when it is lazy.
fn view<'a>(chunks: &'a [Vec<u32>], log: &'a [u32], record: Record) -> RecordView<'a> {
    // A lazy or inline record's context: `context_len` tokens of the log around `token`.
    let from_log = |token: usize, context_position: usize, has_previous: bool, acts| {
        let start = token - context_position;
        RecordView {
            previous: has_previous.then(|| log[token - 1]),
            context: &log[start..start + record.context_len as usize],
            acts,
        }
    };
    if record.is_inline() {
        let context_position = (record.offset >> 32) as u32 & (INLINE_POSITIONS - 1);
        return from_log(
            record.offset as u32 as usize,
            context_position as usize,
            record.offset & INLINE_PREVIOUS != 0,
            Acts::One([context_position, record.acts]),
        );
    }
    let words = &chunks[record.chunk()][record.start()..record.start() + record.words()];
    if record.is_lazy() {
        let (token, meta) = (words[0] as usize, words[1]);
        from_log(
            token,
            (meta & !HAS_PREVIOUS) as usize,
            meta & HAS_PREVIOUS != 0,
            Acts::Words(&words[2..]),
        )
    } else {
        let (previous, rest) = (words[0], &words[1..]);
        let (context, acts) = rest.split_at(record.context_len as usize);
        RecordView {
            previous: (previous != NO_TOKEN).then_some(previous),
            context,
            acts: Acts::Words(acts),
        }
    }
}

/// A compaction in progress (see [`Records::compaction`]).
pub struct Compaction<'a> {
    old: Vec<Vec<u32>>,
    arena: &'a mut Records,
}

impl Compaction<'_> {
    /// Moves one live record into the new arena and points `record` at its new place.
    pub fn keep(&mut self, record: &mut Record) {
        if record.is_inline() {
            // Nothing in the arena to move.
            return;
        }
        let words = &self.old[record.chunk()][record.start()..record.start() + record.words()];
        let index = self.arena.chunk_for(words.len());
        let chunk = &mut self.arena.chunks[index];
        record.offset = record.offset & LAZY | (index as u64) << 32 | chunk.len() as u64;
        chunk.extend_from_slice(words);
        self.arena.used += words.len();
    }

    pub fn finish(self) {
        debug_assert_eq!(self.arena.used, self.arena.live);
        // Spares not used this time stay too: the arena is growing, and will need them.
        self.arena.spare.extend(
            self.old
                .into_iter()
                .filter(|chunk| chunk.capacity() == CHUNK_WORDS)
                .map(|mut chunk| {
                    chunk.clear();
                    chunk
                }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_release_and_compaction() {
        let mut arena = Records::default();
        let a = arena.push(None, &[1, 2, 3], [(1, 0.5f32)].into_iter());
        let b = arena.push(Some(9), &[4], std::iter::empty());
        let mut c = arena.push(Some(7), &[5, 6], [(0, 1.0f32), (1, 2.5)].into_iter());
        arena.release(a);
        let mut b = b;
        let mut compaction = arena.compaction();
        compaction.keep(&mut c);
        compaction.keep(&mut b);
        compaction.finish();
        let view = arena.view(c);
        assert_eq!(view.previous, Some(7));
        assert_eq!(view.context, &[5, 6]);
        assert_eq!(view.acts_vec(), vec![(0, 1.0), (1, 2.5)]);
        assert_eq!(c.offset, 0);
        // A record larger than a chunk gets a chunk of its own.
        let big = arena.push(None, &vec![5; CHUNK_WORDS + 3], std::iter::empty());
        assert_eq!(arena.view(big).context.len(), CHUNK_WORDS + 3);
        assert_eq!(arena.view(c).context, &[5, 6]);
        let view = arena.view(b);
        assert_eq!((view.previous, view.context), (Some(9), &[4][..]));
        assert!(view.acts_vec().is_empty());
    }

    #[test]
    fn inline_records_take_no_words_and_read_like_lazy_ones() {
        let mut arena = Records::default();
        let base = arena.log_batch(&[10, 11, 12, 13, 14]).unwrap();
        // Token 13 at index 2 of the context [11, 12, 13, 14], firing alone in it.
        let mut a = arena.push_inline(base + 3, 2, 4, true, 0.75);
        let mut b = arena.push_inline(base, 0, 2, false, 2.5);
        assert_eq!((a.words(), arena.live_words(), arena.used), (0, 0, 0));
        assert_eq!(
            (a.acts_len(), arena.lazy_extra),
            (1, (1 + 4 + 2) + (1 + 2 + 2))
        );
        let view = arena.view(a);
        assert_eq!(
            (view.previous, view.context),
            (Some(12), &[11, 12, 13, 14][..])
        );
        assert_eq!(view.acts_vec(), vec![(2, 0.75)]);
        assert_eq!(arena.view(b).previous, None);
        // A compaction leaves them be; making them whole moves them into the arena.
        let mut compaction = arena.compaction();
        compaction.keep(&mut a);
        compaction.keep(&mut b);
        compaction.finish();
        assert!(a.is_inline() && arena.view(a).context == [11, 12, 13, 14]);
        arena.make_whole(&mut a);
        arena.make_whole(&mut b);
        arena.drop_log();
        assert!(!a.is_lazy() && !a.is_inline() && arena.lazy_extra == 0);
        assert_eq!(arena.live_words(), a.words() + b.words());
        let view = arena.view(a);
        assert_eq!(
            (view.previous, view.context),
            (Some(12), &[11, 12, 13, 14][..])
        );
        assert_eq!((view.acts_vec(), a.acts_len()), (vec![(2, 0.75)], 1));
        assert_eq!(arena.view(b).acts_vec(), vec![(0, 2.5)]);
    }

    #[test]
    fn lazy_records_read_from_the_log_and_are_made_whole_when_it_goes() {
        let mut arena = Records::default();
        let base = arena.log_batch(&[10, 11, 12, 13, 14]).unwrap();
        // Token 12 at index 1 of the context [11, 12, 13]; token 10 first in its row.
        let mut a = arena.push_lazy(base + 2, 1, 3, true, [(1, 0.5f32)].into_iter());
        let mut b = arena.push_lazy(base, 0, 2, false, std::iter::empty());
        let whole = arena.push(Some(1), &[2, 3], std::iter::empty());
        assert_eq!(a.words(), 4);
        for (record, previous, context) in [(a, Some(11), &[11, 12, 13][..]), (b, None, &[10, 11])]
        {
            let view = arena.view(record);
            assert_eq!((view.previous, view.context), (previous, context));
        }
        assert_eq!(arena.view(a).acts_vec(), vec![(1, 0.5)]);
        arena.release(whole);
        // A compaction keeps them lazy, and a small log stays while they save more than it
        // holds...
        let mut compaction = arena.compaction();
        compaction.keep(&mut a);
        compaction.keep(&mut b);
        compaction.finish();
        assert!(a.is_lazy() && arena.view(a).context == [11, 12, 13]);
        assert!(!arena.wants_log_dropped());
        // ...and is dropped, the records made whole, once it outweighs them.
        arena.log.extend(std::iter::repeat_n(0, CHUNK_WORDS));
        assert!(arena.wants_log_dropped());
        arena.make_whole(&mut a);
        arena.make_whole(&mut b);
        arena.drop_log();
        assert!(arena.log.is_empty() && !a.is_lazy() && !b.is_lazy());
        assert_eq!(arena.live_words(), a.words() + b.words());
        let view = arena.view(a);
        assert_eq!((view.previous, view.context), (Some(11), &[11, 12, 13][..]));
        assert_eq!(view.acts_vec(), vec![(1, 0.5)]);
        assert_eq!(arena.view(b).previous, None);
    }
}
