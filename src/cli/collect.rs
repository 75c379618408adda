//! `saectl collect`: run an SAE checkpoint over text (live through the model, or from an
//! activation cache) and write a samples folder with every feature's top activations.
//!
//! The collector's whole state is saved beside the folder every `--save-every-tokens`, so an
//! interrupted collection resumes where it stopped when run again with the same `--out`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::collector_args::CollectorArgs;
use super::data_args::DataArgs;
use super::model_args::{special_token_ids, ModelArgs};
use super::progress::token_bar;
use crate::collect::{
    sweep_cache, sweep_model, write_samples_folder, Collector, CollectorConfig, SamplesFolder,
    SaveConfig, StageTimes, TokenizerDecoder, STATE_FILE_NAME,
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
    let mut session = Session::new(args, &tokenizer, source, cache.index().num_tokens)?;
    let times = sweep_cache(
        &cache,
        sae,
        &mut collector,
        args.batch_sequences.max(1),
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
    let pack = args.data.pack_config(collector.sequences_seen())?;
    let total = pack.window_limit().unwrap_or(0) * args.data.seq_len as u64;
    let mut windows = TokenWindows::new(source_files.documents(), hooked.tokenizer.clone(), pack)
        .with_context(|| format!("cannot read text from {dataset}"))?;
    let mut session = Session::new(
        args,
        &hooked.tokenizer_path,
        source,
        total.min(num_tokens.next_multiple_of(args.data.seq_len as u64)),
    )?;
    let times = sweep_model(
        model,
        &hooked.hook,
        &mut windows,
        sae,
        &mut collector,
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

fn base_source(args: &CollectArgs, sae: &Sae) -> Source {
    let mut source = Source::new();
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
    let earlier = SamplesFolder::load(out)
        .ok()
        .and_then(|folder| folder.summary)
        .map(|summary| summary.source);
    if collector.config() != &config
        || collector.d_sae() != d_sae
        || earlier.as_ref() != Some(source)
    {
        bail!("{} holds a collection made from another source or with other settings; use another --out", out.display());
    }
    eprintln!(
        "resuming {} after {} sequences",
        out.display(),
        collector.sequences_seen()
    );
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
            bail!("no tokens were collected (empty cache or corpus)");
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
