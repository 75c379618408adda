//! A collection's samples folder, saved every `save_every_tokens` and at the end: the
//! collector's state first (what a resume trusts), then the readable folder rewritten from it.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::collector::Collector;
use super::folder_write::write_samples_folder;
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
}

impl FolderSaver {
    pub(super) fn new(
        folder: SamplesDir,
        decoder: TokenizerDecoder,
        save: SaveConfig,
        source: CollectionSource,
        every: u64,
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
        on_progress: &mut dyn FnMut(CollectEvent),
    ) -> Result<()> {
        on_progress(CollectEvent::Batch { tokens });
        self.tokens += tokens;
        self.since_save += tokens;
        if self.since_save >= self.every {
            self.since_save = 0;
            self.save(collector)?;
        }
        Ok(())
    }

    /// State first: it is what a resume trusts; the folder is rewritten from it.
    pub(super) fn save(&self, collector: &Collector) -> Result<()> {
        self.folder.create()?;
        collector.save_state(&self.folder.state())?;
        write_samples_folder(
            &self.folder,
            collector,
            &self.decoder,
            &self.save,
            self.source.clone(),
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
