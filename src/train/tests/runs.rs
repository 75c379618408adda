//! Whole runs: resume equals uninterrupted, the batch stream, NaN handling, refused settings.

use std::path::Path;
use std::time::Duration;

use candle_core::{Device, Tensor};

use super::*;

#[test]
fn resumed_run_equals_uninterrupted_run() {
    check_resume(resume_config());
}

/// JumpReLU's learnt log-thresholds and their Adam moments resume exactly too, mid warm-up.
#[test]
fn resumed_jumprelu_run_equals_uninterrupted_run() {
    check_resume(TrainConfig {
        sae_type: SaeKind::JumpRelu,
        l0_coefficient: 0.5,
        l0_warm_up_steps: 15,
        jumprelu_bandwidth: 0.05,
        jumprelu_init_threshold: 0.05,
        ..resume_config()
    });
}

fn resume_config() -> TrainConfig {
    TrainConfig {
        dict_size: 32,
        top_k: 2,
        top_k_aux: 4,
        batch_size: 48,
        num_tokens: 48 * 30, // ~2.8 epochs of the 512-token cache
        lr: 1e-2,
        scheduler_type: ScheduleKind::WarmupDecay,
        warmup_steps: 5,
        checkpoint_freq: 10,
        log_freq: 1,
        model_batch_size: 8,
        num_batches_in_buffer: 1, // 128-token groups: several per epoch
        n_batches_to_dead: 2,
        ..TrainConfig::default()
    }
}

fn check_resume(cfg: TrainConfig) {
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let full = dir.path().join("full");
    let summary = train(&cache, &full, cfg, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(summary.steps, 30);
    // Interrupt after step 10: keep only what existed then.
    let cut = dir.path().join("cut");
    copy_dir(&full, &cut);
    let run = RunDir::new(&cut);
    for step in [20, 30] {
        std::fs::remove_dir_all(run.checkpoint(step)).unwrap();
    }
    std::fs::write(cut.join("latest_checkpoint"), "checkpoints/step_000000010").unwrap();
    // As if the first part had trained 1000 s: the resumed clock must continue from there.
    let state = run.checkpoint(10).join(checkpoint::TRAINER_STATE_FILE);
    let mut saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(saved["elapsed_s"].as_f64().unwrap() > 0.0, "{saved}");
    saved["elapsed_s"] = serde_json::json!(1000.0);
    std::fs::write(&state, saved.to_string()).unwrap();
    let resumed = resume(&cut, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(
        (resumed.steps, resumed.tokens),
        (summary.steps, summary.tokens)
    );
    let load = |p: &Path| {
        crate::sae::checkpoint::load(p, candle_core::DType::F32, &Device::Cpu)
            .unwrap()
            .0
    };
    let (a, b) = (
        load(&summary.final_checkpoint),
        load(&resumed.final_checkpoint),
    );
    for ((name, x), (_, y)) in a.weights().named().into_iter().zip(b.weights().named()) {
        assert_eq!(host(x), host(y), "{name} differs after resume");
    }
    let optimizer = |p: &Path| std::fs::read(p.join(checkpoint::OPTIMIZER_FILE)).unwrap();
    assert_eq!(
        optimizer(&summary.final_checkpoint),
        optimizer(&resumed.final_checkpoint)
    );
    let (lines, resumed_lines) = (
        metrics::read(&full.join("metrics.jsonl")).unwrap(),
        metrics::read(&cut.join("metrics.jsonl")).unwrap(),
    );
    let untimed = |lines: &[metrics::MetricsLine]| -> Vec<_> {
        lines.iter().map(metrics::without_timing).collect()
    };
    assert_eq!(untimed(&lines), untimed(&resumed_lines));
    check_timing(&lines);
    check_timing(&resumed_lines);
    // The first part's lines are kept as they were; the rest continue its clock.
    assert_eq!(lines[..10], resumed_lines[..10]);
    assert!(resumed_lines[10..].iter().all(|l| l.elapsed_s > 1000.0));
    let at_end = checkpoint::load(&resumed.final_checkpoint, cfg_of(&cut), &Device::Cpu)
        .unwrap()
        .1;
    assert!(at_end.elapsed_s >= resumed_lines.last().unwrap().elapsed_s);
}

fn cfg_of(run: &Path) -> TrainConfig {
    TrainConfig::from_json_file(&RunDir::new(run).config()).unwrap()
}

/// Every line has a positive rate and a clock that only moves forward.
fn check_timing(lines: &[metrics::MetricsLine]) {
    for pair in lines.windows(2) {
        assert!(pair[1].elapsed_s > pair[0].elapsed_s, "{pair:?}");
    }
    assert!(lines.iter().all(|l| l.tokens_per_s > 0.0), "{lines:?}");
}

#[test]
fn stream_visits_every_token_once_per_epoch_and_resumes_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    write_cache(&cache, 2, 32, 8, |t| vec![t as f32, 0.0]);
    let open = || crate::cache::ActivationCache::open(&cache).unwrap();
    let mut stream = cache_batches::BatchStream::new(open(), 5, 64, 128, 0);
    let mut seen: Vec<f32> = Vec::new();
    for _ in 0..8 {
        let batch = stream.next_batch(&Device::Cpu).unwrap();
        seen.extend(host(&batch.narrow(1, 0, 1).unwrap()));
    }
    let in_order: Vec<f32> = (0..512).map(|t| t as f32).collect();
    assert_ne!(seen, in_order, "the stream must be shuffled");
    seen.sort_by(f32::total_cmp);
    assert_eq!(seen, in_order);
    let next = host(&stream.next_batch(&Device::Cpu).unwrap());
    let mut again = cache_batches::BatchStream::new(open(), 5, 64, 128, 512);
    assert_eq!(host(&again.next_batch(&Device::Cpu).unwrap()), next);
}

#[test]
fn nan_activations_stop_with_the_step_and_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    // The writer refuses NaN, so corrupt a shard behind its back.
    let shard = cache.join("shard_00002.safetensors");
    let mut tensors = candle_core::safetensors::load(&shard, &Device::Cpu).unwrap();
    let nan = Tensor::full(f32::NAN, (8, SEQ_LEN, 8), &Device::Cpu).unwrap();
    tensors.insert("activations".into(), nan);
    candle_core::safetensors::save(&tensors, &shard).unwrap();
    let cfg = TrainConfig {
        dict_size: 32,
        top_k: 2,
        batch_size: 64,
        num_tokens: 64 * 8,
        model_batch_size: 8,
        num_batches_in_buffer: 1,
        ..TrainConfig::default()
    };
    let run = dir.path().join("run");
    let err = train(&cache, &run, cfg, &Device::Cpu, &mut |_| {}).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("NaN or infinite") && msg.starts_with("step "),
        "{msg}"
    );
    let latest = RunDir::new(&run)
        .latest_checkpoint()
        .unwrap()
        .expect("a checkpoint");
    assert!(msg.contains(&latest.display().to_string()), "{msg}");
    let (sae, _) =
        crate::sae::checkpoint::load(&latest, candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(host(&sae.weights().w_dec).iter().all(|x| x.is_finite()));
}

#[test]
fn bad_settings_and_reused_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let run = dir.path().join("run");
    let bad = TrainConfig {
        dict_size: 16,
        top_k: 17,
        ..TrainConfig::default()
    };
    let msg = format!(
        "{:#}",
        train(&cache, &run, bad, &Device::Cpu, &mut |_| {}).unwrap_err()
    );
    assert!(msg.contains("larger than d_sae"), "{msg}");
    let ok = TrainConfig {
        dict_size: 16,
        top_k: 2,
        batch_size: 64,
        num_tokens: 64,
        ..TrainConfig::default()
    };
    train(&cache, &run, ok.clone(), &Device::Cpu, &mut |_| {}).unwrap();
    let msg = format!(
        "{:#}",
        train(&cache, &run, ok, &Device::Cpu, &mut |_| {}).unwrap_err()
    );
    assert!(msg.contains("--resume"), "{msg}");
    let missing = format!(
        "{:#}",
        resume(&dir.path().join("nothing"), &Device::Cpu, &mut |_| {}).unwrap_err()
    );
    assert!(missing.contains("run.json"), "{missing}");
}

#[test]
fn a_cache_that_grew_cannot_continue_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let run = dir.path().join("run");
    let cfg = TrainConfig {
        dict_size: 16,
        top_k: 2,
        batch_size: 64,
        num_tokens: 64,
        ..TrainConfig::default()
    };
    train(&cache, &run, cfg, &Device::Cpu, &mut |_| {}).unwrap();
    let spec = crate::cache::ActivationCache::open(&cache)
        .unwrap()
        .index()
        .spec
        .clone();
    let mut writer = CacheWriter::create_or_resume(&cache, spec, 8, None).unwrap();
    let acts = Tensor::ones((1, SEQ_LEN, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
    writer.push(&[0; SEQ_LEN], &acts).unwrap();
    writer.finish(true).unwrap();
    let msg = format!("{:#}", resume(&run, &Device::Cpu, &mut |_| {}).unwrap_err());
    assert!(msg.contains("now holds 528 tokens, not the 512"), "{msg}");
}

#[test]
fn samples_are_collected_while_training_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let cfg = TrainConfig {
        dict_size: 32,
        top_k: 2,
        top_k_aux: 4,
        batch_size: 48,
        num_tokens: 48 * 30,
        lr: 1e-2,
        checkpoint_freq: 10,
        model_batch_size: 4,
        num_batches_in_buffer: 2,
        save_activation_samples: true,
        sample_collection_freq: 7,
        sample_activation_threshold: 0.0,
        max_samples_per_feature: 5,
        ..TrainConfig::default()
    };
    let full = dir.path().join("full");
    let summary = train(&cache, &full, cfg.clone(), &Device::Cpu, &mut |_| {}).unwrap();
    let (folder, time) = summary.samples.clone().expect("samples were collected");
    // Every collection's time is accounted for: read and encoded on the training thread,
    // taken on the collector's (the last batch's once the final save has waited for it).
    assert!(
        time.source > Duration::ZERO && time.ingest > Duration::ZERO,
        "{time:?}"
    );
    let samples = crate::samples::SamplesFolder::load(&folder).unwrap();
    let summary_file = samples.summary.as_ref().unwrap();
    // Collections at steps 0, 7, 14, 21, 28: 5 × 4 sequences of 16 tokens.
    assert_eq!(summary_file.sequences_seen, 20);
    assert_eq!(summary_file.tokens_seen, 20 * SEQ_LEN as u64);
    assert!(!samples.features.is_empty());
    // Interrupted after the checkpoint at step 10, then resumed: the same samples folder.
    let cut = dir.path().join("cut");
    interrupt_after(10, |progress| {
        train(&cache, &cut, cfg, &Device::Cpu, progress).unwrap();
    });
    resume(&cut, &Device::Cpu, &mut |_| {}).unwrap();
    let files = |root: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(RunDir::new(root).samples())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("feature_")
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| (p.file_name().unwrap().to_owned(), std::fs::read(p).unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(files(&full), files(&cut), "resumed samples differ");
    let state = |root: &Path| {
        let step30 = RunDir::new(root)
            .checkpoint(30)
            .join(crate::samples::STATE_FILE_NAME);
        crate::collect::Collector::load_state(&step30).unwrap()
    };
    let (a, b) = (state(&full), state(&cut));
    for f in 0..32 {
        assert_eq!(a.top_samples(f), b.top_samples(f));
        assert_eq!(a.statistics(f), b.statistics(f));
    }
}
