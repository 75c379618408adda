//! `saectl collect`: run an SAE checkpoint over text (live through the model, or from an
//! activation cache) and write a samples folder with every feature's top activations.
//!
//! Args → validated [`CollectConfig`] and [`CollectSource`] → [`collect::run`], with a progress
//! bar. The collector's whole state is saved beside the folder every `--save-every-tokens`, so
//! an interrupted collection resumes where it stopped when run again with the same `--out`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;

use super::collector_args::CollectorArgs;
use super::data_args::DataArgs;
use super::model_args::ModelArgs;
use super::progress::token_bar;
use crate::collect::{self, Activations, CollectConfig, CollectEvent, CollectSource, Shard};
use crate::model::resolve_device;
use crate::samples::{CollectionSettings, SamplesDir};
use crate::train::TrainConfig;
use crate::util::paths::check_apart;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  saectl collect --checkpoint runs/l12/final --activations caches/gemma-l12 --out samples/l12\n  saectl collect --checkpoint gemma-scope/layer_12/width_16k/average_l0_82/params.npz \\\n    --model google/gemma-2-2b --hook blocks.12.hook_resid_post --dataset data/corpus.jsonl \\\n    --num-tokens 2000000 --out samples/scope-l12\n\nOn N machines: add --shard I/N (I = 0..N-1, each its own --out), then\n  saectl merge samples/l12-shard* --out samples/l12   (see docs/collect.md)"
)]
pub struct CollectArgs {
    /// The SAE: a saectl checkpoint folder, a SAELens folder (cfg.json + sae_weights.safetensors)
    /// or a Gemma Scope params.npz — on disk; on the Hugging Face Hub as org/name/path, e.g.
    /// google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz; or by its
    /// SAELens name RELEASE/SAE_ID, e.g. gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical
    /// (--list-releases shows the releases).
    #[arg(long, value_name = "PATH", required_unless_present = "list_releases")]
    pub checkpoint: Option<PathBuf>,

    /// List the SAE releases --checkpoint RELEASE/SAE_ID knows (Gemma Scope and other Gemma-2
    /// releases, by SAELens's names) and exit.
    #[arg(long, exclusive = true)]
    pub list_releases: bool,

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
    #[arg(long, value_name = "DIR", required_unless_present = "list_releases")]
    pub out: Option<PathBuf>,

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

    /// Skip tokens whose activations are NaN or infinite, and count them in
    /// collection_summary.json (`nonfinite`), instead of stopping at the first one.
    #[arg(long)]
    pub allow_nonfinite: bool,

    /// JSON file with the sample-collection keys under the original's names (snake_case:
    /// `max_samples_per_feature`, `sample_context_size`, …; the original's whole config file
    /// works, other keys are ignored); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub collector: CollectorArgs,
}

impl CollectArgs {
    /// The collector and save settings: `--config`'s keys (or the defaults) with the given
    /// flags laid over them.
    pub fn settings(&self) -> Result<CollectionSettings> {
        let Some(path) = &self.config else {
            return self.collector.settings(CollectionSettings::default());
        };
        let (cfg, notes) = TrainConfig::from_user_file(path)?;
        notes.iter().for_each(|note| eprintln!("note: {note}"));
        self.collector
            .settings(cfg.collection_settings())
            .with_context(|| format!("in {}", path.display()))
    }
}

impl CollectArgs {
    /// What the collection reads; `--model` and `--dataset` are required without
    /// `--activations`.
    fn collect_source(&self) -> Result<CollectSource> {
        let model = self.model.spec();
        let activations = match &self.activations {
            Some(dir) => Activations::Cache {
                dir: dir.clone(),
                model,
                tokenizer: self.model.tokenizer.clone(),
            },
            None => {
                const LIVE: &str = "collect (without --activations)";
                self.model.require_model(LIVE)?;
                let (text, num_tokens) = self.data.require(LIVE)?;
                Activations::Live {
                    model: model.expect("required above"),
                    text,
                    num_tokens,
                    seq_len: self.data.seq_len,
                    model_batch_size: self.data.model_batch_size,
                }
            }
        };
        Ok(CollectSource {
            checkpoint: self
                .checkpoint
                .as_ref()
                .context("--checkpoint is required")?
                .to_string_lossy()
                .into_owned(),
            activations,
            hook: self.hook.clone(),
        })
    }

    /// The validated settings of the run.
    fn collect_config(&self) -> Result<CollectConfig> {
        let CollectionSettings { collector, save } = self.settings()?;
        Ok(CollectConfig {
            collector,
            save,
            batch_sequences: self.batch_sequences,
            save_every_tokens: self.save_every_tokens,
            shard: self.shard,
            logit_effects: !self.no_logit_effects,
            allow_nonfinite: self.allow_nonfinite,
        })
    }
}

/// `--list-releases`: the release table, on stdout.
pub fn list_releases() -> Result<()> {
    print!("{}", crate::sae::releases::describe());
    Ok(())
}

pub fn run(args: CollectArgs) -> Result<()> {
    let config = args.collect_config()?;
    let device = resolve_device(args.model.device)?;
    if let Some(note) = &device.note {
        eprintln!("note: {note}");
    }
    let source = args.collect_source()?;
    let out = args.out.as_ref().context("--out is required")?;
    if let Some(cache) = &args.activations {
        check_apart(out, "--out", cache, "--activations")?;
    }
    let mut bar = None;
    let summary = collect::run(&source, out, config, &device.device, &mut |event| {
        show(event, out, &mut bar)
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = summary?;
    let seconds = summary.elapsed.as_secs_f64();
    eprintln!(
        "collected {} tokens in {:.1} s ({:.0} tokens/s): {} of {} features have samples, {} special tokens skipped; \
         wrote {} (run `saectl report {}`)",
        summary.tokens,
        seconds,
        summary.tokens as f64 / seconds.max(1e-9),
        summary.features_with_samples,
        summary.d_sae,
        summary.special_tokens_excluded,
        out.display(),
        out.display()
    );
    eprintln!("time: {}", summary.times.summary());
    if summary.features_with_samples == 0 {
        note_why_empty(out);
    }
    Ok(())
}

/// Says why the folder `dir` got no samples (the threshold above every activation, …).
pub(super) fn note_why_empty(dir: &Path) {
    let summary = SamplesDir::new(dir).read_summary().ok().flatten();
    if let Some(why) = summary.and_then(|s| s.why_empty()) {
        eprintln!("note: {why}");
    }
}

/// Shows one event of the collection: the token bar, or a line on stderr.
fn show(event: CollectEvent, out: &Path, bar: &mut Option<ProgressBar>) {
    let line = match event {
        CollectEvent::Start { tokens } => {
            *bar = Some(token_bar(tokens, "collecting"));
            return;
        }
        CollectEvent::Batch { tokens } => {
            if let Some(bar) = bar {
                bar.inc(tokens);
            }
            return;
        }
        CollectEvent::Note(note) => format!("note: {note}"),
        CollectEvent::Resuming { sequences } => {
            format!("resuming {} after {sequences} sequences", out.display())
        }
        CollectEvent::LogitEffects { features, path } => format!(
            "wrote the logit effects of {features} features to {}",
            path.display()
        ),
    };
    match bar {
        Some(bar) => bar.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn settings(extra: &[&str], file: &str) -> crate::samples::CollectionSettings {
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
        let crate::samples::CollectionSettings { collector, save } =
            settings(&["--sample-context-size", "8"], file);
        assert_eq!(collector.max_samples_per_feature, 7);
        assert_eq!(collector.sample_context_size, 8, "the flag wins");
        assert_eq!(collector.sample_activation_threshold, 0.5);
        assert_eq!(
            (save.top_features_to_save, save.samples_per_feature_to_save),
            (3, 2)
        );
    }

    #[test]
    fn a_flag_at_its_default_value_still_overrides_the_config_file() {
        // The file says 7; the flag asks for 100, which is also the default.
        let file = r#"{"max_samples_per_feature": 7, "top_features_to_save": 3,
            "ultra_rare_density": 0.001}"#;
        let settings = settings(
            &[
                "--max-samples-per-feature",
                "100",
                "--ultra-rare-density",
                "1e-5",
            ],
            file,
        );
        assert_eq!(settings.collector.max_samples_per_feature, 100);
        assert_eq!(settings.save.flags.ultra_rare_density, 1e-5);
        assert_eq!(
            settings.save.top_features_to_save, 3,
            "not given: the file's"
        );
    }
}
