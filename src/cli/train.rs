//! `saectl train`: fit an SAE (or a transcoder) live from the model over text, or on
//! activations stored by `saectl cache`.
//!
//! Parse, then resolve, then run: the flags (the original's config keys in kebab-case) are laid
//! over `--config FILE` (the same keys in snake_case JSON) or the defaults, the result is
//! validated against the model's or the cache's width, and only then does training start.
//! `--resume RUN` continues a run with its own saved configuration and data.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::collector_args::CollectorArgs;
use super::data_args::TextArgs;
use super::model_args::ModelArgs;
use super::overlay::Given;
use super::progress::token_bar;
use crate::model::resolve_device;
use crate::sae::SaeKind;
use crate::train::{
    self, LossRecovered, RunDir, RunSource, RunSummary, ScheduleKind, StepReport, TrainConfig,
};
use crate::util::paths::check_apart;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    saectl train --model google/gemma-2-2b --hook blocks.12.hook_resid_post \\\n    \
    --dataset data/corpus.jsonl --num-tokens 100000000 --out runs/l12 --dict-size 16384\n  \
    saectl train --model google/gemma-2-2b --hook blocks.12.ln2.hook_normalized \\\n    \
    --hook-out blocks.12.hook_mlp_out --dataset data/corpus.jsonl --out runs/l12-tc\n  \
    saectl train --activations caches/gemma-l12 --out runs/l12 --dict-size 16384 --top-k 32\n  \
    saectl train --resume runs/l12")]
pub struct TrainArgs {
    /// Activation cache to train on (written by `saectl cache`); without it, train live from
    /// --model over --dataset (without --model either: the embedded demo model).
    #[arg(long, value_name = "DIR", conflicts_with = "dataset")]
    pub activations: Option<PathBuf>,

    /// Run folder: config, metrics.jsonl, checkpoints.
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,

    /// Continue the run in this folder from its latest checkpoint, with its own settings.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "activations", "out", "config", "model", "tokenizer", "dtype", "hook", "hook_out", "dataset",
    ])]
    pub resume: Option<PathBuf>,

    /// JSON file with the original's config keys (snake_case); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The model (live training; with --activations, for the loss-recovered evaluation).
    #[command(flatten)]
    pub model: ModelArgs,

    /// The SAE's input hook point, e.g. blocks.12.hook_resid_post (a cache run: the cache's).
    #[arg(long, value_name = "HOOK", visible_alias = "source-hook-point")]
    pub hook: Option<String>,

    /// Train a transcoder: its target hook point, e.g. blocks.12.hook_mlp_out (SAELens
    /// `hook_name_out`; the original's `target_hook_point`). Live only.
    #[arg(long, value_name = "HOOK", visible_alias = "target-hook-point")]
    pub hook_out: Option<String>,

    #[command(flatten)]
    pub text: TextArgs,

    #[command(flatten)]
    pub keys: TrainKeys,

    #[command(flatten)]
    pub collector: CollectorArgs,
}

/// The training keys; each overrides `--config` (or the default) only when given.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Training (the original's config keys)")]
pub struct TrainKeys {
    /// batchtopk (default), topk, relu (or vanilla), jumprelu, matryoshka.
    #[arg(long, value_name = "TYPE")]
    pub sae_type: Option<SaeKind>,
    /// Latents in the dictionary (d_sae) [default: 12288].
    #[arg(long, value_name = "N")]
    pub dict_size: Option<usize>,
    /// Active latents per token (TopK) or on average (BatchTopK) [default: 32].
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Dead latents used by the aux-K loss [default: 512].
    #[arg(long, value_name = "K")]
    pub top_k_aux: Option<usize>,
    /// Weight of the aux-K loss [default: 1/32].
    #[arg(long, value_name = "X")]
    pub aux_penalty: Option<f64>,
    /// Learning rate [default: 3e-4].
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    #[arg(long, value_name = "B")]
    pub beta1: Option<f64>,
    #[arg(long, value_name = "B")]
    pub beta2: Option<f64>,
    /// Tokens per training step [default: 4096].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Training tokens in all [default: 1e9]; the cache or the text is repeated as needed.
    #[arg(long, value_name = "N")]
    pub num_tokens: Option<u64>,
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// L1 penalty on the activations (ReLU SAEs) [default: 0].
    #[arg(long, value_name = "X")]
    pub l1_coeff: Option<f64>,
    /// JumpReLU: sparsity coefficient λ of the L0 penalty (SAELens's meaning) [default: 1].
    #[arg(long, value_name = "X")]
    pub l0_coefficient: Option<f64>,
    /// JumpReLU: steps over which λ rises linearly from 0 [default: 10000].
    #[arg(long, value_name = "STEPS")]
    pub l0_warm_up_steps: Option<u64>,
    /// JumpReLU: width ε of the threshold's pseudo-derivative kernel [default: 0.001].
    #[arg(long, value_name = "X")]
    pub jumprelu_bandwidth: Option<f64>,
    /// JumpReLU: every latent's threshold at the start [default: 0.001].
    #[arg(long, value_name = "X")]
    pub jumprelu_init_threshold: Option<f64>,
    /// Batches without firing after which a latent counts as dead [default: 20].
    #[arg(long, value_name = "N")]
    pub n_batches_to_dead: Option<u32>,
    #[arg(long, value_name = "X")]
    pub max_grad_norm: Option<f64>,
    /// none, warmup (warmup_only), decay (decay_only), warmup_decay.
    #[arg(long, value_name = "KIND", value_parser = parse_schedule)]
    pub scheduler_type: Option<ScheduleKind>,
    #[arg(long, value_name = "STEPS")]
    pub warmup_steps: Option<u64>,
    /// Floor of the decaying schedules [default: lr / 100].
    #[arg(long, value_name = "LR")]
    pub min_lr: Option<f64>,
    /// Steps between checkpoints [default: 10000].
    #[arg(long, value_name = "STEPS")]
    pub checkpoint_freq: Option<u64>,
    /// Keep only the N newest checkpoints, deleting older ones as new ones are written; 0
    /// keeps every checkpoint's SAE [default: 0]. The sample collector's state is kept in the
    /// newest checkpoint only, whatever N.
    #[arg(long, value_name = "N")]
    pub keep_checkpoints: Option<usize>,
    /// Steps between metrics lines in metrics.jsonl [default: 100].
    #[arg(long, value_name = "STEPS")]
    pub log_freq: Option<u64>,
    /// Per-token layer norm of the input [default: true].
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub input_unit_norm: Option<bool>,
    /// Matryoshka group sizes, comma-separated, summing to --dict-size.
    #[arg(long, value_name = "N,N,…", value_delimiter = ',')]
    pub group_sizes: Option<Vec<usize>>,
    /// Tokens per sequence of a live run [default: 128]; a cache run takes its cache's.
    #[arg(long, value_name = "N")]
    pub seq_len: Option<usize>,
    /// Sequences per model forward pass; with --num-batches-in-buffer and seq_len, sizes the
    /// shuffling buffer [default: 512].
    #[arg(long, value_name = "N")]
    pub model_batch_size: Option<usize>,
    /// Model batches in the shuffling buffer [default: 10].
    #[arg(long, value_name = "N")]
    pub num_batches_in_buffer: Option<usize>,
    /// Steps between loss-recovered evaluations (with the model at hand) [default: 1000].
    #[arg(long, value_name = "STEPS")]
    pub perf_log_freq: Option<u64>,
    /// Sequences of the loss-recovered evaluation, held out from live training; 0: no
    /// evaluation [default: 64].
    #[arg(long, value_name = "N")]
    pub eval_sequences: Option<usize>,
    /// Collect top-activating samples while training, into RUN/activation_samples/
    /// [default: false].
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub save_activation_samples: Option<bool>,
    /// Collect samples every N training steps (step 0 included) [default: 1000].
    #[arg(long, value_name = "STEPS")]
    pub sample_collection_freq: Option<u64>,
}

fn parse_schedule(name: &str) -> Result<ScheduleKind, String> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        format!("unknown schedule {name:?}: expected none, warmup, decay or warmup_decay")
    })
}

/// Lays each given flag of a `TrainKeys` over the `TrainConfig` field of the same name. The
/// pattern names every field of `TrainKeys`, so a flag added without being laid over does not
/// compile.
macro_rules! lay_over {
    ($keys:expr, $cfg:expr, $given:expr, TrainKeys { $($plain:ident),* ; $($optional:ident),* }) => {{
        let TrainKeys { $($plain,)* $($optional,)* } = $keys;
        $($given.set(stringify!($plain), $plain, &mut $cfg.$plain);)*
        $($given.set_some(stringify!($optional), $optional, &mut $cfg.$optional);)*
    }};
}

impl TrainKeys {
    /// Lays the given flags over `cfg`; returns the flags given.
    fn apply(&self, cfg: &mut TrainConfig) -> Vec<String> {
        let mut given = Given::default();
        lay_over!(self, cfg, given, TrainKeys {
            sae_type, dict_size, top_k, top_k_aux, aux_penalty, lr, beta1, beta2, batch_size,
            num_tokens, seed, l1_coeff, l0_coefficient, l0_warm_up_steps, jumprelu_bandwidth,
            jumprelu_init_threshold, n_batches_to_dead, max_grad_norm, scheduler_type,
            warmup_steps, checkpoint_freq, keep_checkpoints, log_freq, input_unit_norm, group_sizes, seq_len,
            model_batch_size, num_batches_in_buffer, perf_log_freq, eval_sequences,
            save_activation_samples, sample_collection_freq;
            min_lr
        });
        given.into_flags()
    }
}

impl TrainArgs {
    /// The resolved configuration: file (or defaults), then flags. Validated by the run
    /// against the cache's or the model's width.
    pub fn train_config(&self) -> Result<TrainConfig> {
        let mut cfg = match &self.config {
            Some(path) => {
                let (cfg, notes) = TrainConfig::from_user_file(path)?;
                notes.iter().for_each(|note| eprintln!("note: {note}"));
                cfg
            }
            None => TrainConfig::default(),
        };
        self.keys.apply(&mut cfg);
        let mut settings = cfg.collection_settings();
        let mut collection_flags = self.collector.overlay(&mut settings);
        cfg.set_collection_settings(settings);
        if self.keys.sample_collection_freq.is_some() {
            collection_flags.insert(0, "--sample-collection-freq".to_string());
        }
        if !cfg.save_activation_samples && !collection_flags.is_empty() {
            // Given on the command line, they would otherwise be ignored without a word.
            bail!(
                "{} only apply with --save-activation-samples true (sample collection is off)",
                collection_flags.join(", ")
            );
        }
        Ok(cfg)
    }

    /// The flags given that a resumed run, which keeps its own settings and data, would
    /// ignore (the model, hook, data and output flags clap already refuses with --resume).
    fn ignored_by_resume(&self) -> Vec<String> {
        let mut given = self.keys.apply(&mut TrainConfig::default());
        given.extend(self.collector.overlay(&mut Default::default()));
        given.extend(self.text.given());
        given
    }
}

impl TrainArgs {
    /// What a new run reads: a cache, or the model live over text; the model is also what a
    /// cache run evaluates with.
    pub fn run_source(&self) -> RunSource {
        let model = self.model.spec();
        let text = self.text.text_spec();
        RunSource {
            activations: self.activations.clone(),
            model,
            hook: self.hook.clone(),
            hook_out: self.hook_out.clone(),
            text,
        }
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let resolved = resolve_device(args.model.device)?;
    if let Some(note) = &resolved.note {
        eprintln!("note: {note}");
    }
    let device = resolved.device;
    let summary = if let Some(run_dir) = &args.resume {
        let ignored = args.ignored_by_resume();
        if !ignored.is_empty() {
            bail!(
                "--resume continues a run with its own settings; {} cannot be combined with it",
                ignored.join(", ")
            );
        }
        let cfg = TrainConfig::from_json_file(&RunDir::new(run_dir).config())
            .with_context(|| format!("{} is not a training run", run_dir.display()))?;
        with_progress(&cfg, |progress| train::resume(run_dir, &device, progress))?
    } else {
        let cfg = args.train_config()?;
        if let Some(note) = cfg.collection_schedule_note() {
            eprintln!("note: {note}");
        }
        let Some(out) = &args.out else {
            bail!("--out is required (or --resume RUN)");
        };
        let source = args.run_source();
        if let Some(cache) = &source.activations {
            check_apart(out, "--out", cache, "--activations")?;
        }
        if source.activations.is_none() && (source.hook.is_none() || source.text.is_none()) {
            bail!("training live from --model needs --hook and --dataset (or train on a cache with --activations)");
        }
        with_progress(&cfg, |progress| {
            train::train_from(&source, out, cfg.clone(), &device, progress)
        })?
    };
    eprintln!(
        "trained {} steps ({} tokens); final checkpoint: {}",
        summary.steps,
        summary.tokens,
        summary.final_checkpoint.display()
    );
    if let Some((eval, sequences)) = &summary.eval {
        eprintln!("{} ({sequences} evaluation sequences)", describe_eval(eval));
    }
    if let Some((folder, time)) = &summary.samples {
        eprintln!(
            "activation samples: {} (`saectl report {}`); collecting took {:.2} s of \
             training ({:.2} s reading and encoding, {:.2} s waiting for the collector) \
             and {:.2} s on the collector's thread",
            folder.display(),
            folder.display(),
            (time.source + time.waited).as_secs_f64(),
            time.source.as_secs_f64(),
            time.waited.as_secs_f64(),
            time.ingest.as_secs_f64(),
        );
        super::collect::note_why_empty(folder);
    }
    Ok(())
}

/// `loss recovered 0.93 (mean ablation 0.88): CE clean 2.31, with the SAE 2.52, …`.
fn describe_eval(eval: &LossRecovered) -> String {
    let fraction = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.3}"));
    format!(
        "loss recovered {} (against mean ablation {}): CE clean {:.4}, with the SAE {:.4}, \
         zero-ablated {:.4}, mean-ablated {:.4}",
        fraction(eval.recovered()),
        fraction(eval.recovered_mean()),
        eval.ce_clean,
        eval.ce_sae,
        eval.ce_zero,
        eval.ce_mean
    )
}

/// Runs `body` with a token progress bar (tokens/s, ETA) fed by the loop's callback.
fn with_progress(
    cfg: &TrainConfig,
    body: impl FnOnce(&mut dyn FnMut(&StepReport)) -> Result<RunSummary>,
) -> Result<RunSummary> {
    let batch = cfg.batch_size as u64;
    let bar = token_bar(cfg.total_steps() * batch, "train");
    let mut first = true;
    let mut progress = |report: &StepReport| {
        if first {
            // A resumed run starts part-way: only the tokens trained from here count for the rate.
            bar.set_position((report.step - 1) * batch);
            bar.reset_eta();
            bar.reset_elapsed();
            first = false;
        }
        bar.set_position(report.step * batch);
        let s = report.stats;
        let mut message = format!(
            "loss {:.4} fvu {:.3} L0 {:.1} dead {}",
            s.loss, s.fvu, s.l0, s.dead
        );
        if let Some(recovered) = report.eval.and_then(LossRecovered::recovered) {
            message.push_str(&format!(" CE rec {recovered:.3}"));
        }
        bar.set_message(message);
    };
    let result = body(&mut progress);
    bar.finish_and_clear();
    result
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use candle_core::{Device, Tensor};
    use clap::Parser;

    use crate::cache::{CacheDtype, CacheSpec, CacheWriter};
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> super::TrainArgs {
        let argv = ["saectl", "train"].iter().chain(args).copied();
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Train(args) => *args,
            _ => unreachable!(),
        }
    }

    fn write_cache(dir: &Path) {
        let spec = CacheSpec {
            model: "synthetic".into(),
            hook_point: "blocks.0.hook_resid_post".into(),
            d_in: 8,
            seq_len: 16,
            dtype: CacheDtype::F32,
            special_token_ids: vec![],
            source: Default::default(),
        };
        let mut writer = CacheWriter::create_or_resume(dir, spec, 4, None).unwrap();
        let values: Vec<f32> = (0..8 * 16 * 8)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let acts = Tensor::from_vec(values, (8, 16, 8), &Device::Cpu).unwrap();
        writer.push(&vec![1; 8 * 16], &acts).unwrap();
        writer.finish(true).unwrap();
    }

    #[test]
    fn a_run_folder_is_required() {
        // Without --activations or --model, training runs live on the embedded demo model,
        // but it always needs somewhere to write.
        let err = Cli::try_parse_from(["saectl", "train"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--out"), "{err}");
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cfg.json");
        std::fs::write(
            &file,
            r#"{"dict_size": 64, "top_k": 8, "max_samples_per_feature": 7}"#,
        )
        .unwrap();
        let args = parse(&[
            "--activations",
            "c",
            "--out",
            "r",
            "--config",
            file.to_str().unwrap(),
            "--top-k",
            "4",
            "--group-sizes",
            "16,48",
            "--scheduler-type",
            "warmup_only",
        ]);
        let cfg = args.train_config().unwrap();
        assert_eq!(
            (cfg.dict_size, cfg.top_k, cfg.max_samples_per_feature),
            (64, 4, 7)
        );
        assert_eq!(cfg.group_sizes, vec![16, 48]);
        assert_eq!(cfg.scheduler_type, crate::train::ScheduleKind::Warmup);
    }

    #[test]
    fn feature_view_keys_come_from_the_file_or_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cfg.json");
        std::fs::write(
            &file,
            r#"{"interval_count": 3, "ultra_rare_density": 1e-4, "save_activation_samples": true}"#,
        )
        .unwrap();
        let args = parse(&[
            "--activations",
            "c",
            "--out",
            "r",
            "--config",
            file.to_str().unwrap(),
            "--samples-per-interval",
            "7",
            "--dominant-share",
            "0.8",
        ]);
        let cfg = args.train_config().unwrap();
        assert_eq!((cfg.interval_count, cfg.samples_per_interval), (3, 7));
        assert_eq!((cfg.ultra_rare_density, cfg.dominant_share), (1e-4, 0.8));
        let settings = cfg.collection_settings();
        assert_eq!(
            (
                settings.collector.interval_count,
                settings.collector.samples_per_interval
            ),
            (3, 7)
        );
        assert_eq!(settings.save.flags.dominant_share, 0.8);
    }

    #[test]
    fn trains_from_a_cache_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        write_cache(&cache);
        let run = dir.path().join("run");
        let (cache, run) = (cache.to_str().unwrap(), run.to_str().unwrap());
        let flags = [
            "--activations",
            cache,
            "--out",
            run,
            "--device",
            "cpu",
            "--dict-size",
            "32",
            "--top-k",
            "2",
            "--batch-size",
            "64",
            "--num-tokens",
            "640",
            "--checkpoint-freq",
            "4",
        ];
        super::run(parse(&flags)).unwrap();
        let cfg =
            crate::train::TrainConfig::from_json_file(&Path::new(run).join("train_config.json"))
                .unwrap();
        assert_eq!((cfg.dict_size, cfg.top_k), (32, 2));
        let latest = crate::train::RunDir::new(Path::new(run))
            .latest_checkpoint()
            .unwrap()
            .unwrap();
        assert!(
            latest.ends_with("checkpoints/step_000000010"),
            "{}",
            latest.display()
        );
        super::run(parse(&["--resume", run, "--device", "cpu"])).unwrap();
        let err = super::run(parse(&["--resume", run, "--top-k", "3"])).unwrap_err();
        assert!(err.to_string().contains("own settings"), "{err}");
        // Collector and text flags would be ignored just the same: refused, and named.
        let resumed = ["--resume", run, "--max-samples-per-feature", "5"];
        let err = super::run(parse(&[&resumed[..], &["--text-field", "body"]].concat()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--resume continues a run with its own settings; --max-samples-per-feature, \
             --text-field cannot be combined with it"
        );
        let err = super::run(parse(&["--resume", run, "--no-dedup", "--split", "test"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--no-dedup, --split cannot"), "{err}");
        let err = super::run(parse(&flags)).unwrap_err();
        assert!(format!("{err:#}").contains("--resume"), "{err:#}");
    }
}
