//! `saectl collect`: run an SAE checkpoint over text (live through the model, or from an
//! activation cache) and write a samples folder with every feature's top activations.
//!
//! The collector's whole state is saved beside the folder every `--save-every-tokens`, so an
//! interrupted collection resumes where it stopped when run again with the same `--out`.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::collector_args::CollectorArgs;
use super::data_args::DataArgs;
use super::model_args::{special_token_ids, ModelArgs};
use super::progress::token_bar;
use crate::collect::{
    read_summary, resume_point, sweep_cache, sweep_model, write_samples_folder, Collector,
    CollectorConfig, SaveConfig, Shard, StageTimes, TokenizerDecoder, STATE_FILE_NAME,
};
use crate::data::cache::ActivationCache;
use crate::data::{DataSource, TokenWindows};
use crate::hub::HubSettings;
use crate::model::resolve_device;
use crate::sae::hub_path::resolve_checkpoint;
use crate::sae::import::load_any;
use crate::sae::Sae;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  saectl collect --checkpoint runs/l12/final --activations caches/gemma-l12 --out samples/l12\n  saectl collect --checkpoint gemma-scope/layer_12/width_16k/average_l0_82/params.npz \\\n    --model google/gemma-2-2b --hook blocks.12.hook_resid_post --dataset data/corpus.jsonl \\\n    --num-tokens 2000000 --out samples/scope-l12"
)]
pub struct CollectArgs {
    /// The SAE: a saectl checkpoint folder, a SAELens folder (cfg.json + sae_weights.safetensors)
    /// or a Gemma Scope params.npz — on disk, or on the Hugging Face Hub as org/name/path, e.g.
    /// google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,

    /// Read activations from this cache (`saectl cache`) instead of running the model.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "dataset", "num_tokens"])]
    pub activations: Option<PathBuf>,

    /// Hook point to read [default: the checkpoint's].
    #[arg(long, value_name = "HOOK")]
    pub hook: Option<String>,

    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub data: DataArgs,

    /// The samples folder to write (an earlier collection there is resumed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Sequences encoded per batch when reading a cache.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub batch_sequences: usize,

    /// Save the folder and the collector state every N tokens (the resumption points).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub save_every_tokens: u64,

    /// Collect only shard I of N (0-based) of the sequences: a contiguous range, numbered as
    /// in one run over everything, so `saectl merge` of all N folders equals that run.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,

    #[command(flatten)]
    pub collector: CollectorArgs,
}

/// What a collection reads, recorded in the summary and checked on resume.
type Source = serde_json::Map<String, serde_json::Value>;

pub fn run(args: CollectArgs) -> Result<()> {
    let config = args.collector.collector_config()?;
    let device = resolve_device(args.model.device)?;
    if let Some(note) = &device.note {
        eprintln!("note: {note}");
    }
    let checkpoint =
        resolve_checkpoint(&args.checkpoint.to_string_lossy(), &HubSettings::from_env())?;
    let sae = load_any(&checkpoint, &device.device)
        .with_context(|| format!("failed to load the SAE {}", args.checkpoint.display()))?;
    match &args.activations {
        Some(cache_dir) => collect_from_cache(&args, &sae, config, cache_dir),
        None => collect_live(&args, &sae, config),
    }
}

fn collect_from_cache(
    args: &CollectArgs,
    sae: &Sae,
    config: CollectorConfig,
    cache_dir: &Path,
) -> Result<()> {
    let cache = ActivationCache::open(cache_dir)?;
    let spec = &cache.index().spec;
    check_hook(
        args.hook.as_deref(),
        sae,
        &spec.hook_point,
        &format!("the cache {}", cache_dir.display()),
    )?;
    let tokenizer = match (args.model.tokenizer.clone(), cache.tokenizer_path()) {
        (Some(path), _) | (None, Some(path)) => path,
        (None, None) => bail!(
            "the cache {} has no tokenizer.json; give one with --tokenizer",
            cache_dir.display()
        ),
    };
    let mut source = base_source(args, sae);
    source.insert("activations".into(), cache_dir.display().to_string().into());
    source.insert("model".into(), spec.model.clone().into());
    source.insert("hook_point".into(), spec.hook_point.clone().into());
    let mut collector = open_collector(
        &args.out,
        config,
        sae.config().d_sae,
        &spec.special_token_ids,
        &source,
    )?;
    let range = shard(args).range(cache.index().num_sequences as u64);
    let start = resume_at(args, &collector, &range)?;
    let todo = (range.end - start) * spec.seq_len as u64;
    let mut session = Session::new(args, &tokenizer, source, todo)?;
    let times = sweep_cache(
        &cache,
        sae,
        &mut collector,
        args.batch_sequences.max(1),
        start..range.end,
        |tokens, c| session.after_batch(tokens, c),
    )?;
    session.finish(&collector, times)
}

fn collect_live(args: &CollectArgs, sae: &Sae, config: CollectorConfig) -> Result<()> {
    args.model
        .require_model("collect (without --activations)")?;
    let (dataset, num_tokens) = args.data.require("collect (without --activations)")?;
    let hook = match (&args.hook, &sae.config().hook_name) {
        (Some(hook), _) | (None, Some(hook)) => hook.clone(),
        (None, None) => bail!("the checkpoint names no hook point; give one with --hook"),
    };
    check_hook(Some(&hook), sae, &hook, "")?;
    let hooked = args.model.load_for_hook(&hook)?;
    let model = &hooked.loaded.model;
    if model.d_model() != sae.config().d_in {
        bail!(
            "the SAE reads d_in {} but the model's d_model is {} ({})",
            sae.config().d_in,
            model.d_model(),
            hook
        );
    }
    let source_files = DataSource::resolve(
        dataset,
        &args.data.source_options(),
        &args.data.hub_settings(),
    )?;
    let mut source = base_source(args, sae);
    for (key, value) in [
        ("model", args.model.model.clone().unwrap_or_default()),
        ("hook_point", hooked.hook.to_string()),
        ("dataset", dataset.to_string()),
        ("text_field", args.data.text_field.clone()),
    ] {
        source.insert(key.into(), value.into());
    }
    source.insert("seq_len".into(), args.data.seq_len.into());
    let specials = special_token_ids(&hooked.tokenizer);
    let mut collector = open_collector(&args.out, config, sae.config().d_sae, &specials, &source)?;
    let seq_len = args.data.seq_len as u64;
    // Every window the token budget allows, split into shards.
    let range = shard(args).range(num_tokens.div_ceil(seq_len));
    let start = resume_at(args, &collector, &range)?;
    let mut session = Session::new(
        args,
        &hooked.tokenizer_path,
        source,
        (range.end - start) * seq_len,
    )?;
    if start == range.end {
        // Nothing left to do (a finished or empty shard): only rewrite the folder.
        return session.finish(&collector, StageTimes::default());
    }
    let pack = crate::data::PackConfig {
        // The packer stops at the shard's last window.
        num_tokens: Some(range.end * seq_len),
        ..args.data.pack_config(start)?
    };
    let mut windows = TokenWindows::new(source_files.documents(), hooked.tokenizer.clone(), pack)
        .with_context(|| format!("cannot read text from {dataset}"))?;
    let times = sweep_model(
        model,
        &hooked.hook,
        &mut windows,
        sae,
        &mut collector,
        start,
        |tokens, c| session.after_batch(tokens, c),
    )?;
    session.finish(&collector, times)
}

/// Refuses a hook that disagrees with the SAE's own or with where the activations come from.
fn check_hook(asked: Option<&str>, sae: &Sae, available: &str, place: &str) -> Result<()> {
    if let Some(asked) = asked {
        if asked != available {
            bail!("--hook {asked} but {place} holds {available}");
        }
        return Ok(());
    }
    match &sae.config().hook_name {
        Some(trained) if trained != available => bail!(
            "the SAE was trained at {trained} but {place} holds {available}; pass --hook {available} to use it anyway"
        ),
        _ => Ok(()),
    }
}

fn shard(args: &CollectArgs) -> Shard {
    args.shard.unwrap_or(Shard::WHOLE)
}

/// The first sequence still to collect in `range` (this run's shard): its start, or where the
/// collection saved in `--out` stopped.
fn resume_at(args: &CollectArgs, collector: &Collector, range: &Range<u64>) -> Result<u64> {
    let what = match args.shard {
        Some(shard) if !shard.is_whole() => format!("shard {shard}"),
        _ => "this collection".to_string(),
    };
    let start = resume_point(collector.sequence_ranges(), range, &what)
        .with_context(|| format!("cannot continue the collection in {}", args.out.display()))?;
    if start > range.start {
        eprintln!(
            "resuming {} after {} sequences",
            args.out.display(),
            start - range.start
        );
    }
    Ok(start)
}

fn base_source(args: &CollectArgs, sae: &Sae) -> Source {
    let mut source = Source::new();
    if let Some(shard) = args.shard.filter(|s| !s.is_whole()) {
        // Provenance, and a resume with another --shard is refused; `merge` drops it.
        source.insert("shard".into(), shard.to_string().into());
    }
    if let Some(tokenizer) = &args.model.tokenizer {
        // `merge` decodes with it again.
        let path = tokenizer
            .canonicalize()
            .unwrap_or_else(|_| tokenizer.clone());
        source.insert("tokenizer".into(), path.display().to_string().into());
    }
    source.insert(
        "checkpoint".into(),
        args.checkpoint.display().to_string().into(),
    );
    source.insert("sae_kind".into(), sae.config().kind.to_string().into());
    source.insert("d_sae".into(), sae.config().d_sae.into());
    source
}

/// A fresh collector, or the one saved in `out` when it was made from the same source with
/// the same settings.
fn open_collector(
    out: &Path,
    config: CollectorConfig,
    d_sae: usize,
    specials: &[u32],
    source: &Source,
) -> Result<Collector> {
    let state = out.join(STATE_FILE_NAME);
    if !state.exists() {
        return Collector::new(config, d_sae, specials);
    }
    let collector = Collector::load_state(&state)?;
    let earlier = read_summary(out)
        .ok()
        .flatten()
        .map(|summary| summary.source);
    if collector.config() != &config
        || collector.d_sae() != d_sae
        || earlier.as_ref() != Some(source)
    {
        bail!("{} holds a collection made from another source or with other settings; use another --out", out.display());
    }
    Ok(collector)
}

/// Progress, periodic saves and the final report of one collection.
struct Session {
    out: PathBuf,
    decoder: TokenizerDecoder,
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
    fn new(
        args: &CollectArgs,
        tokenizer: &Path,
        source: Source,
        total_tokens: u64,
    ) -> Result<Self> {
        let tokenizer = tokenizers::Tokenizer::from_file(tokenizer).map_err(|err| {
            anyhow::anyhow!("failed to load tokenizer {}: {err}", tokenizer.display())
        })?;
        Ok(Self {
            out: args.out.clone(),
            decoder: TokenizerDecoder(tokenizer),
            save: args.collector.save_config(),
            source,
            save_every: args.save_every_tokens.max(1),
            since_save: 0,
            bar: token_bar(total_tokens, "collecting"),
            started: Instant::now(),
            tokens: 0,
            shard: args.shard,
        })
    }

    fn after_batch(&mut self, tokens: u64, collector: &Collector) -> Result<()> {
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

    fn finish(self, collector: &Collector, times: StageTimes) -> Result<()> {
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
