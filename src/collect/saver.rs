//! A collection's samples folder, saved every `save_every_tokens` and at the end: the
//! collector's state first (what a resume trusts; the count of tokens skipped for NaN just
//! before it, [`super::nonfinite`]), then the readable folder rewritten from it.

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::collector::Collector;
use super::folder_write::write_samples_folder_with;
use super::nonfinite::{record_before_save, NonFiniteGuard, SavedCount};
use super::run::CollectEvent;
use crate::data::TokenizerDecoder;
use crate::samples::{CollectionSource, SamplesDir, SaveConfig};

/// Periodic saves of one collection, and its token count and clock.
pub(super) struct FolderSaver {
    folder: SamplesDir,
    decoder: TokenizerDecoder,
    save: SaveConfig,
    source: CollectionSource,
    every: u64,
    since_save: u64,
    tokens: u64,
    started: Instant,
    /// The skipped-token count of the state file on disk (what a crash during the next save
    /// falls back to).
    last_saved: Cell<Option<SavedCount>>,
}

impl FolderSaver {
    pub(super) fn new(
        folder: SamplesDir,
        decoder: TokenizerDecoder,
        save: SaveConfig,
        source: CollectionSource,
        every: u64,
        last_saved: Option<SavedCount>,
    ) -> Self {
        Self {
            folder,
            decoder,
            save,
            source,
            every: every.max(1),
            since_save: 0,
            tokens: 0,
            started: Instant::now(),
            last_saved: Cell::new(last_saved),
        }
    }

    /// The decoder the folder's text is written with.
    pub(super) fn decoder(&self) -> &TokenizerDecoder {
        &self.decoder
    }

    /// Counts a collected batch of `tokens`, reports it, and saves when a save is due.
    pub(super) fn after_batch(
        &mut self,
        tokens: u64,
        collector: &Collector,
        guard: &NonFiniteGuard,
        on_progress: &mut dyn FnMut(CollectEvent),
    ) -> Result<()> {
        on_progress(CollectEvent::Batch { tokens });
        self.tokens += tokens;
        self.since_save += tokens;
        if self.since_save >= self.every {
            self.since_save = 0;
            self.save(collector, guard)?;
        }
        Ok(())
    }

    /// State first: it is what a resume trusts; the folder is rewritten from it.
    pub(super) fn save(&self, collector: &Collector, guard: &NonFiniteGuard) -> Result<()> {
        self.folder.create()?;
        let current = SavedCount {
            sequences_seen: collector.sequences_seen(),
            tokens_skipped: guard.skipped(),
        };
        record_before_save(self.folder.root(), current, self.last_saved.get())?;
        collector.save_state(&self.folder.state())?;
        self.last_saved.set(Some(current));
        write_samples_folder_with(
            &self.folder,
            collector,
            &self.decoder,
            &self.save,
            self.source.clone(),
            guard.counts(),
        )?;
        Ok(())
    }

    /// Tokens collected so far.
    pub(super) fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Time since the collection was set up.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
