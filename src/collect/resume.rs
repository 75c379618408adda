//! Opening a collection in its folder: a fresh collector, or the one saved there when it was
//! made from the same source with the same settings, and the sequence it continues from.

use std::ops::Range;

use anyhow::{bail, Context, Result};

use super::collector::Collector;
use super::run::{Activations, CollectEvent, Stage};
use super::shard::resume_point;
use crate::samples::CollectionSource;

impl Stage<'_> {
    /// What every collection records: the SAE, the shard and the `--tokenizer` given.
    pub(super) fn base_source(&self) -> CollectionSource {
        let sae = self.sae.config();
        let tokenizer = match &self.source.activations {
            Activations::Cache { tokenizer, .. } => tokenizer.as_ref(),
            Activations::Live { model, .. } => model.tokenizer.as_ref(),
        };
        CollectionSource {
            // Provenance, and a resume with another --shard is refused; `merge` drops it.
            shard: (!self.shard().is_whole()).then(|| self.shard().to_string()),
            // `merge` decodes with it again.
            tokenizer: tokenizer.map(|path| {
                let path = path.canonicalize().unwrap_or_else(|_| path.clone());
                path.display().to_string()
            }),
            checkpoint: Some(self.source.checkpoint.clone()),
            sae_kind: Some(sae.kind.to_string()),
            d_sae: Some(sae.d_sae as u64),
            ..CollectionSource::default()
        }
    }

    /// A fresh collector, or the one saved in the folder when it was made from the same
    /// source with the same settings.
    pub(super) fn open_collector(
        &self,
        specials: &[u32],
        source: &CollectionSource,
    ) -> Result<Collector> {
        let (config, d_sae) = (&self.config.collector, self.sae.config().d_sae);
        let state = self.out.state();
        // Sharded by feature across the spare cores; the output does not depend on it.
        let threads = super::default_threads(d_sae);
        if !state.exists() {
            let mut collector = Collector::new(config.clone(), d_sae, specials)?;
            collector.set_threads(threads);
            return Ok(collector);
        }
        let mut collector = Collector::load_state(&state)?;
        // No summary beside the state: the first save was cut short between the two (the
        // state goes first); the settings and the sequence ranges are still checked.
        let earlier = self.out.read_summary().ok().flatten().map(|s| s.source);
        if collector.config() != config
            || collector.d_sae() != d_sae
            || earlier.is_some_and(|earlier| &earlier != source)
        {
            bail!(
                "{} holds a collection made from another source or with other settings; use another --out",
                self.out.root().display()
            );
        }
        collector.set_threads(threads);
        Ok(collector)
    }

    /// The first sequence still to collect in `range` (this run's shard): its start, or where
    /// the collection saved in the folder stopped.
    pub(super) fn resume_at(&mut self, collector: &Collector, range: &Range<u64>) -> Result<u64> {
        let what = match self.config.shard {
            Some(shard) if !shard.is_whole() => format!("shard {shard}"),
            _ => "this collection".to_string(),
        };
        let start = resume_point(collector.sequence_ranges(), range, &what).with_context(|| {
            format!(
                "cannot continue the collection in {}",
                self.out.root().display()
            )
        })?;
        if start > range.start {
            (self.on_progress)(CollectEvent::Resuming {
                sequences: start - range.start,
            });
        }
        Ok(start)
    }
}
