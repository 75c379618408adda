//! `saectl collect`: run an SAE checkpoint over text (live through the model, or from an
//! activation cache) and write a samples folder with every feature's top activations.
//!
//! The collector's whole state is saved beside the folder every `--save-every-tokens`, so an
//! interrupted collection resumes where it stopped when run again with the same `--out`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::collect_session::Session;
use super::collector_args::CollectorArgs;
use super::data_args::DataArgs;
use super::model_args::{special_token_ids, ModelArgs};
use crate::cache::ActivationCache;
use crate::collect::{
    compute_logit_effects, resume_point, sweep_cache, sweep_model, Collector, Shard, StageTimes,
};
use crate::data::{DataSource, TokenWindows};
use crate::hub::HubSettings;
use crate::model::{
    locate, read_config, resolve_device, HookPoint, HookSite, ModelSource, Unembedding,
};
use crate::sae::hub_path::resolve_checkpoint;
use crate::sae::import::load_any;
use crate::sae::Sae;
use crate::samples::{
    CollectionSource, CollectorConfig, SamplesDir, SaveConfig, LOGIT_EFFECTS_FILE_NAME,
    STATE_FILE_NAME,
};
use crate::train::TrainConfig;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  saectl collect --checkpoint runs/l12/final --activations caches/gemma-l12 --out samples/l12\n  saectl collect --checkpoint gemma-scope/layer_12/width_16k/average_l0_82/params.npz \\\n    --model google/gemma-2-2b --hook blocks.12.hook_resid_post --dataset data/corpus.jsonl \\\n    --num-tokens 2000000 --out samples/scope-l12\n\nOn N machines: add --shard I/N (I = 0..N-1, each its own --out), then\n  saectl merge samples/l12-shard* --out samples/l12   (see docs/collect.md)"
)]
pub struct CollectArgs {
    /// The SAE: a saectl checkpoint folder, a SAELens folder (cfg.json + sae_weights.safetensors)
    /// or a Gemma Scope params.npz — on disk, or on the Hugging Face Hub as org/name/path, e.g.
    /// google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,

    /// Read activations from this cache (`saectl cache`) instead of running the model.
    /// With --model too, the model is used only for the logit effects (its final norm and
    /// unembedding are loaded, no block).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dataset", "num_tokens"])]
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

    /// Do not compute the logit effects (each feature's most promoted and suppressed output
    /// tokens, written to logit_effects.json when the model is at hand).
    #[arg(long)]
    pub no_logit_effects: bool,

    /// JSON file with the sample-collection keys under the original's names (snake_case:
    /// `max_samples_per_feature`, `sample_context_size`, …; the original's whole config file
    /// works, other keys are ignored); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub collector: CollectorArgs,
}

impl CollectArgs {
    /// The collector and save settings: `--config`'s keys, overridden by the flags.
    pub fn settings(&self) -> Result<(CollectorConfig, SaveConfig)> {
        let Some(path) = &self.config else {
            return Ok((
                self.collector.collector_config()?,
                self.collector.save_config(),
            ));
        };
        let (mut cfg, note) = TrainConfig::from_user_file(path)?;
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
        self.collector.overlay(&mut cfg)?;
        let collector = cfg.collector_config();
        collector
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        let flags = cfg.flag_config();
        flags
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        let save = SaveConfig {
            top_features_to_save: cfg.top_features_to_save,
            samples_per_feature_to_save: cfg.samples_per_feature_to_save,
            flags,
        };
        Ok((collector, save))
    }
}

pub fn run(args: CollectArgs) -> Result<()> {
    let (config, _) = args.settings()?;
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
    let source = CollectionSource {
        activations: Some(cache_dir.display().to_string()),
        model: Some(spec.model.clone()),
        hook_point: Some(spec.hook_point.clone()),
        ..base_source(args, sae)
    };
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
    let hook: HookPoint = spec.hook_point.parse()?;
    let fresh = collector.sequences_seen() == 0;
    if let Some(model) = args
        .model
        .model
        .as_deref()
        .filter(|_| wants_logits(args, &hook, fresh))
    {
        if model != spec.model {
            eprintln!(
                "note: the cache was made from {}; the logit effects use {model}",
                spec.model
            );
        }
        let unembed = load_unembedding(model, sae)?;
        write_logit_effects(args, sae, &unembed, &session)?;
    } else {
        remove_stale_logit_effects(args, fresh)?;
    }
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
    let source = CollectionSource {
        model: Some(args.model.model.clone().unwrap_or_default()),
        hook_point: Some(hooked.hook.to_string()),
        dataset: Some(dataset.to_string()),
        text_field: Some(args.data.text.text_field.clone()),
        seq_len: Some(args.data.seq_len as u64),
        ..base_source(args, sae)
    };
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
    let fresh = collector.sequences_seen() == 0;
    if wants_logits(args, &hooked.hook, fresh) {
        let unembed = Unembedding::load(
            &args.model.require_model("collect")?.parse()?,
            model.config(),
            model.device(),
            &HubSettings::from_env(),
            Some(model.embedding_matrix()),
        )?;
        write_logit_effects(args, sae, &unembed, &session)?;
    } else {
        remove_stale_logit_effects(args, fresh)?;
    }
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

fn base_source(args: &CollectArgs, sae: &Sae) -> CollectionSource {
    CollectionSource {
        // Provenance, and a resume with another --shard is refused; `merge` drops it.
        shard: args.shard.filter(|s| !s.is_whole()).map(|s| s.to_string()),
        // `merge` decodes with it again.
        tokenizer: args.model.tokenizer.as_ref().map(|tokenizer| {
            let path = tokenizer
                .canonicalize()
                .unwrap_or_else(|_| tokenizer.clone());
            path.display().to_string()
        }),
        checkpoint: Some(args.checkpoint.display().to_string()),
        sae_kind: Some(sae.config().kind.to_string()),
        d_sae: Some(sae.config().d_sae as u64),
        ..CollectionSource::default()
    }
}

/// A fresh collector, or the one saved in `out` when it was made from the same source with
/// the same settings.
fn open_collector(
    out: &Path,
    config: CollectorConfig,
    d_sae: usize,
    specials: &[u32],
    source: &CollectionSource,
) -> Result<Collector> {
    let state = out.join(STATE_FILE_NAME);
    if !state.exists() {
        return Collector::new(config, d_sae, specials);
    }
    let collector = Collector::load_state(&state)?;
    let earlier = SamplesDir::new(out)
        .read_summary()
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

/// Whether to (re)compute the logit effects: the user did not opt out, the hook writes into
/// the residual stream (the MLP's normalized input does not), and the folder does not already
/// hold this collection's (a resumed collection keeps its own; a fresh one replaces any).
fn wants_logits(args: &CollectArgs, hook: &HookPoint, fresh: bool) -> bool {
    if args.no_logit_effects || args.model.model.is_none() {
        return false;
    }
    if hook.site == HookSite::Ln2Normalized {
        eprintln!("note: no logit effects: {hook} is not in the residual stream");
        return false;
    }
    fresh || !args.out.join(LOGIT_EFFECTS_FILE_NAME).exists()
}

/// The final norm and unembedding of `model` (no block loaded), on the SAE's device.
fn load_unembedding(model: &str, sae: &Sae) -> Result<Unembedding> {
    let source: ModelSource = model.parse()?;
    let hub = HubSettings::from_env();
    let config = read_config(&locate(&source, Some(1), &hub)?.config)?;
    if config.hidden_size != sae.config().d_in {
        bail!(
            "the SAE reads d_in {} but {model} has d_model {}: not the model of these activations",
            sae.config().d_in,
            config.hidden_size
        );
    }
    Unembedding::load(&source, &config, sae.weights().w_dec.device(), &hub, None)
}

fn write_logit_effects(
    args: &CollectArgs,
    sae: &Sae,
    unembed: &Unembedding,
    session: &Session,
) -> Result<()> {
    let model = args.model.model.as_deref().unwrap_or_default();
    let checkpoint = args.checkpoint.display().to_string();
    let effects = compute_logit_effects(sae, unembed, &session.decoder, model, &checkpoint)?;
    let folder = SamplesDir::new(&args.out);
    folder.create()?;
    folder.write_logit_effects(&effects)?;
    eprintln!(
        "wrote the logit effects of {} features to {}",
        effects.features.len(),
        args.out.join(LOGIT_EFFECTS_FILE_NAME).display()
    );
    Ok(())
}

/// A fresh collection without logit effects must not keep another collection's file.
fn remove_stale_logit_effects(args: &CollectArgs, fresh: bool) -> Result<()> {
    let path = args.out.join(LOGIT_EFFECTS_FILE_NAME);
    if fresh && path.exists() {
        std::fs::remove_file(&path)
            .with_context(|| format!("failed to remove stale {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn settings(
        extra: &[&str],
        file: &str,
    ) -> (crate::samples::CollectorConfig, super::SaveConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg.json");
        std::fs::write(&path, file).unwrap();
        let mut argv = vec![
            "saectl",
            "collect",
            "--checkpoint",
            "c",
            "--out",
            "o",
            "--config",
        ];
        let path = path.to_str().unwrap().to_string();
        argv.push(&path);
        argv.extend_from_slice(extra);
        let Command::Collect(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        args.settings().unwrap()
    }

    #[test]
    fn the_config_file_sets_the_seed_keys_and_flags_override_it() {
        // An excerpt of the original's config: unknown keys (lr, model_name) are ignored.
        let file = r#"{"lr": 0.0003, "model_name": "gemma-2-2b", "max_samples_per_feature": 7,
            "sample_context_size": 30, "sample_activation_threshold": 0.5,
            "top_features_to_save": 3, "samples_per_feature_to_save": 2}"#;
        let (collector, save) = settings(&["--sample-context-size", "8"], file);
        assert_eq!(collector.max_samples_per_feature, 7);
        assert_eq!(collector.sample_context_size, 8, "the flag wins");
        assert_eq!(collector.sample_activation_threshold, 0.5);
        assert_eq!(
            (save.top_features_to_save, save.samples_per_feature_to_save),
            (3, 2)
        );
    }
}
