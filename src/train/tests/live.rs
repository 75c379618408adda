//! Training live from the tiny Gemma-2: the buffer holds the model's activations of the
//! training windows, shuffled; an interrupted and resumed run equals an uninterrupted one; a
//! transcoder's gradients match finite differences and it learns its target.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::gradients::assert_grads_match_finite_differences;
use super::*;
use crate::model::HookPoint;
use crate::train::corpus::WindowCursor;
use crate::train::live::{LiveLayout, LiveStream};

const HOOK: &str = "blocks.2.hook_resid_post";

/// Rows of a `[n, d]` host matrix, sorted, for comparing sets of token activations.
fn sorted_rows(values: Vec<f32>, d: usize) -> Vec<Vec<f32>> {
    let mut rows: Vec<Vec<f32>> = values.chunks(d).map(<[f32]>::to_vec).collect();
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows
}

#[test]
fn buffers_hold_the_training_windows_activations_shuffled() {
    let model = tiny_model();
    let hook: HookPoint = HOOK.parse().unwrap();
    let (source, tokenizer) = fixture_text();
    let cursor = WindowCursor::new(source.clone(), tokenizer.clone(), 16, 4, None);
    let layout = LiveLayout {
        seed: 7,
        batch_size: 32,
        model_batch_size: 3,
        buffer_windows: 6,
        total_tokens: 192,
    };
    let mut stream = LiveStream::new(cursor, model.clone(), vec![hook], layout, 0);
    let batches: Vec<Vec<f32>> = (0..6)
        .map(|_| host(&stream.next_batch(&Device::Cpu).unwrap().0))
        .collect();
    assert_eq!(stream.offset(), 192);
    // Independently: the held-out windows skipped, then windows 4.. through the model at once.
    let tokens = WindowCursor::new(source, tokenizer, 16, 0, None)
        .rows(4, 12)
        .unwrap();
    let ids = Tensor::from_vec(tokens, (12, 16), &Device::Cpu).unwrap();
    let direct = host(&model.forward_to_hook(&ids, &hook).unwrap()); // [12·16·64]
    for (buffer, pair) in batches.chunks(3).enumerate() {
        let got = sorted_rows(pair.concat(), 64);
        let want = sorted_rows(
            direct[buffer * 96 * 64..(buffer + 1) * 96 * 64].to_vec(),
            64,
        );
        for (g, w) in got.iter().zip(&want) {
            for (a, b) in g.iter().zip(w) {
                assert!((a - b).abs() < 1e-5, "buffer {buffer}: {a} vs {b}");
            }
        }
    }
    let in_order = &direct[..32 * 64];
    assert_ne!(batches[0], in_order, "the buffer was not shuffled");
}

#[test]
fn resumed_live_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        dict_size: 32,
        top_k: 2,
        top_k_aux: 4,
        batch_size: 40,      // buffers of 96 tokens: batches span two of them
        num_tokens: 40 * 30, // 75 windows: the 40 training windows are read about twice
        lr: 1e-2,
        seq_len: 16,
        model_batch_size: 3,
        num_batches_in_buffer: 2,
        eval_sequences: 4,
        perf_log_freq: 4,
        scheduler_type: ScheduleKind::WarmupDecay,
        warmup_steps: 5,
        checkpoint_freq: 10,
        log_freq: 3,
        n_batches_to_dead: 2,
        save_activation_samples: true,
        sample_collection_freq: 3,
        ..TrainConfig::default()
    };
    let source = live_source(HOOK, None);
    let full = dir.path().join("full");
    let summary = train_from(&source, &full, cfg.clone(), &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!((summary.steps, summary.tokens), (30, 1200));
    assert!(summary.eval.is_some());
    // Interrupt after step 10 (the corpus size is not known yet then) and resume.
    let cut = dir.path().join("cut");
    interrupt_after(10, |progress| {
        train_from(&source, &cut, cfg, &Device::Cpu, progress).unwrap();
    });
    let run = RunDir::new(&cut);
    let state = std::fs::read_to_string(run.checkpoint(10).join("data_state.json")).unwrap();
    assert!(state.contains("null"), "{state}");
    let resumed = resume(&cut, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!((resumed.steps, resumed.tokens), (30, 1200));
    let file = |root: &Path, name: &str| std::fs::read(root.join(name)).unwrap();
    for name in [
        "sae_weights.safetensors",
        "optimizer.safetensors",
        "collector_state.safetensors",
        "data_state.json",
    ] {
        assert!(
            file(&summary.final_checkpoint, name) == file(&resumed.final_checkpoint, name),
            "{name} differs after resume"
        );
    }
    let state = std::fs::read_to_string(summary.final_checkpoint.join("data_state.json")).unwrap();
    assert!(state.contains("44"), "{state}");
    // Timing aside (the wall clock differs between runs), the trainer state and the metrics
    // are the same.
    let state = |dir: &Path| {
        let name = checkpoint::TRAINER_STATE_FILE;
        let text = String::from_utf8(file(dir, name)).unwrap();
        let state: checkpoint::TrainerState = serde_json::from_str(&text).unwrap();
        checkpoint::TrainerState {
            elapsed_s: 0.0,
            ..state
        }
    };
    assert_eq!(
        state(&summary.final_checkpoint),
        state(&resumed.final_checkpoint)
    );
    let untimed = |root: &Path| -> Vec<_> {
        let lines = metrics::read(&root.join("metrics.jsonl")).unwrap();
        lines.iter().map(metrics::without_timing).collect()
    };
    assert_eq!(untimed(&full), untimed(&cut));
    let lines = metrics::read(&full.join("metrics.jsonl")).unwrap();
    let evaluated: Vec<u64> = lines
        .iter()
        .filter(|l| l.ce_sae.is_some())
        .map(|l| l.step)
        .collect();
    assert_eq!(evaluated, [4, 8, 12, 16, 20, 24, 28, 30]);
}

/// Central differences of a transcoder's loss (input ≠ target, nothing subtracted from the
/// input) against autograd, for every entry whose perturbation keeps the selection.
#[test]
fn transcoder_gradients_match_finite_differences() {
    let cfg = TrainConfig {
        sae_type: SaeKind::TopK,
        dict_size: 12,
        top_k: 3,
        batch_size: 8,
        num_tokens: 8,
        l1_coeff: 0.1,
        aux_penalty: 0.0,
        input_unit_norm: false,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(cfg, 6, &Device::Cpu).unwrap();
    trainer.sae_cfg.hook_name_out = Some("blocks.0.hook_mlp_out".into());
    trainer.sae_cfg.apply_b_dec_to_input = false;
    let mut rng = SplitMix64(5);
    let mut random = |n: usize, shape: (usize, usize)| {
        let v: Vec<f32> = (0..n).map(|_| rng.uniform_sym()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let (xs, target) = (random(48, (8, 6)), random(48, (8, 6)));
    trainer
        .b_dec
        .set(&random(6, (1, 6)).flatten_all().unwrap())
        .unwrap();
    let base = trainer.forward_to(&xs, &target).unwrap();
    let vars = [
        &trainer.w_enc,
        &trainer.b_enc,
        &trainer.w_dec,
        &trainer.b_dec,
    ];
    let checked = assert_grads_match_finite_differences(
        &vars,
        &base,
        || trainer.forward_to(&xs, &target).unwrap(),
        |_, _| true,
        "transcoder",
    );
    assert!(checked >= 100, "only {checked} entries checked");
}

/// Fraction of variance of `target` left unexplained by `recon` (host, f64).
fn host_fvu(recon: &[f32], target: &[f32], d: usize) -> f64 {
    let n = target.len() / d;
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|t| target[t * d + j] as f64).sum::<f64>() / n as f64)
        .collect();
    let (mut residual, mut total) = (0f64, 0f64);
    for (i, (&r, &t)) in recon.iter().zip(target).enumerate() {
        residual += (t as f64 - r as f64).powi(2);
        total += (t as f64 - mean[i % d]).powi(2);
    }
    residual / total
}

#[test]
fn a_transcoder_learns_its_target_live() {
    let dir = tempfile::tempdir().unwrap();
    let (hook_in, hook_out) = ("blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out");
    let cfg = TrainConfig {
        dict_size: 128,
        top_k: 8,
        lr: 3e-3,
        batch_size: 64,
        num_tokens: 64 * 150,
        seq_len: 16,
        model_batch_size: 4,
        num_batches_in_buffer: 2,
        eval_sequences: 4,
        perf_log_freq: 75,
        log_freq: 10,
        checkpoint_freq: 1000,
        ..TrainConfig::default()
    };
    let run = dir.path().join("run");
    let source = live_source(hook_in, Some(hook_out));
    let summary = train_from(&source, &run, cfg.clone(), &Device::Cpu, &mut |_| {}).unwrap();
    let lines = metrics::read(&run.join("metrics.jsonl")).unwrap();
    let (first, last) = (&lines[0], lines.last().unwrap());
    assert!(
        last.mse < 0.5 * first.mse,
        "mse {} → {}",
        first.mse,
        last.mse
    );
    assert!(last.ce_recovered.is_some());
    let (sae, meta) = crate::sae::checkpoint::load(
        &summary.final_checkpoint,
        candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(sae.config().hook_name.as_deref(), Some(hook_in));
    assert_eq!(sae.config().hook_name_out.as_deref(), Some(hook_out));
    assert!(!sae.config().apply_b_dec_to_input);
    assert_eq!(meta.context_size, Some(16));
    let cfg_json = std::fs::read_to_string(summary.final_checkpoint.join("cfg.json")).unwrap();
    assert!(
        cfg_json.contains("\"hook_name_out\": \"blocks.1.hook_mlp_out\""),
        "{cfg_json}"
    );
    // Independently: the held-out windows through the model, reconstructed by the checkpoint.
    let (text, tokenizer) = fixture_text();
    let tokens = WindowCursor::new(text, tokenizer, 16, 4, None)
        .held_out_rows()
        .unwrap();
    let ids = Tensor::from_vec(tokens, (4, 16), &Device::Cpu).unwrap();
    let hooks: Vec<HookPoint> = [hook_in, hook_out]
        .iter()
        .map(|h| h.parse().unwrap())
        .collect();
    let acts = tiny_model().forward_to_hooks(&ids, &hooks).unwrap();
    let xs = acts[0].reshape((64, 64)).unwrap();
    let target = host(&acts[1]);
    let trained = host_fvu(&host(&sae.reconstruct(&xs).unwrap()), &target, 64);
    let initial = Trainer::new(cfg, 64, &Device::Cpu).unwrap().sae().unwrap();
    let before = host_fvu(&host(&initial.reconstruct(&xs).unwrap()), &target, 64);
    // A transcoder that learnt only b_dec (the mean) would leave FVU ≈ 1.
    assert!(
        trained < 0.75 && trained < 0.3 * before,
        "FVU {before} → {trained}"
    );
}
