//! One collection's progress bar, periodic saves (state first, then the folder) and final
//! report: what `saectl collect` does around the sweep, whichever source feeds it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::collect::CollectArgs;
use super::progress::token_bar;
use crate::collect::{
    write_samples_folder, Collector, SaveConfig, Shard, StageTimes, TokenizerDecoder,
    STATE_FILE_NAME,
};

/// What a collection reads, recorded in the summary and checked on resume.
pub(super) type Source = serde_json::Map<String, serde_json::Value>;

/// Progress, periodic saves and the final report of one collection.
pub(super) struct Session {
    out: PathBuf,
    pub(super) decoder: TokenizerDecoder,
    save: SaveConfig,
    source: Source,
    save_every: u64,
    since_save: u64,
    bar: indicatif::ProgressBar,
    started: Instant,
    tokens: u64,
    shard: Option<Shard>,
}

impl Session {
    pub(super) fn new(
        args: &CollectArgs,
        tokenizer: &Path,
        source: Source,
        total_tokens: u64,
    ) -> Result<Self> {
        let tokenizer = crate::data::load_tokenizer(tokenizer)?;
        Ok(Self {
            out: args.out.clone(),
            decoder: TokenizerDecoder(tokenizer),
            save: args.settings()?.1,
            source,
            save_every: args.save_every_tokens.max(1),
            since_save: 0,
            bar: token_bar(total_tokens, "collecting"),
            started: Instant::now(),
            tokens: 0,
            shard: args.shard,
        })
    }

    pub(super) fn after_batch(&mut self, tokens: u64, collector: &Collector) -> Result<()> {
        self.bar.inc(tokens);
        self.tokens += tokens;
        self.since_save += tokens;
        if self.since_save >= self.save_every {
            self.since_save = 0;
            self.save(collector)?;
        }
        Ok(())
    }

    /// State first: it is what a resume trusts; the folder is rewritten from it.
    fn save(&self, collector: &Collector) -> Result<()> {
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("failed to create {}", self.out.display()))?;
        collector.save_state(&self.out.join(STATE_FILE_NAME))?;
        write_samples_folder(
            &self.out,
            collector,
            &self.decoder,
            &self.save,
            self.source.clone(),
        )?;
        Ok(())
    }

    pub(super) fn finish(self, collector: &Collector, times: StageTimes) -> Result<()> {
        self.bar.finish_and_clear();
        if collector.sequences_seen() == 0 {
            let Some(shard) = self.shard.filter(|s| !s.is_whole()) else {
                bail!("no tokens were collected (empty cache or corpus)");
            };
            // An empty shard (more shards than sequences, or a corpus shorter than
            // --num-tokens) is still a folder `merge` takes, so a job array does not fail.
            eprintln!("note: shard {shard} holds no sequences (the corpus ends before it)");
        }
        self.save(collector)?;
        let seconds = self.started.elapsed().as_secs_f64();
        let live = collector.features_by_max_activation().len();
        eprintln!(
            "collected {} tokens in {:.1} s ({:.0} tokens/s): {} of {} features have samples, {} special tokens skipped; \
             wrote {} (run `saectl report {}`)",
            self.tokens,
            seconds,
            self.tokens as f64 / seconds.max(1e-9),
            live,
            collector.d_sae(),
            collector.special_tokens_excluded(),
            self.out.display(),
            self.out.display()
        );
        eprintln!("time: {}", times.shares());
        Ok(())
    }
}
