//! Training tests: gradients against finite differences, ground-truth dictionary recovery,
//! resume equals uninterrupted, the batch stream, and the errors users hit.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::*;
use crate::data::cache::{CacheDtype, CacheSpec, CacheWriter};
use crate::sae::{SaeKind, SplitMix64};

const SEQ_LEN: usize = 16;

/// A synthetic cache of `n_seq · SEQ_LEN` tokens of width `d_in`, token `t` given by `make(t)`.
fn write_cache(
    dir: &Path,
    d_in: usize,
    n_seq: usize,
    per_shard: usize,
    make: impl Fn(usize) -> Vec<f32>,
) {
    let spec = CacheSpec {
        model: "synthetic".into(),
        hook_point: "blocks.0.hook_resid_post".into(),
        d_in,
        seq_len: SEQ_LEN,
        dtype: CacheDtype::F32,
        special_token_ids: vec![],
        source: Default::default(),
    };
    let mut writer = CacheWriter::create_or_resume(dir, spec, per_shard, None).unwrap();
    for seq in 0..n_seq {
        let values: Vec<f32> = (0..SEQ_LEN).flat_map(|p| make(seq * SEQ_LEN + p)).collect();
        let acts = Tensor::from_vec(values, (1, SEQ_LEN, d_in), &Device::Cpu).unwrap();
        let tokens: Vec<u32> = (0..SEQ_LEN as u32).collect();
        writer.push(&tokens, &acts).unwrap();
    }
    writer.finish(true).unwrap();
}

/// `count` random unit directions in `d` dimensions, row-major.
fn unit_directions(count: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SplitMix64(seed);
    (0..count)
        .map(|_| {
            let v: Vec<f32> = (0..d).map(|_| rng.uniform_sym()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

/// Token `t`: `active` of the true directions (chosen by a hash of `t`), magnitudes in [1, 2).
fn sparse_token(t: usize, dirs: &[Vec<f32>], active: usize) -> Vec<f32> {
    let mut rng = SplitMix64(t as u64 ^ 0x5eed);
    let mut x = vec![0f32; dirs[0].len()];
    for _ in 0..active {
        let which = (rng.next_u64() % dirs.len() as u64) as usize;
        let scale = 1.5 + 0.5 * rng.uniform_sym();
        for (xi, di) in x.iter_mut().zip(&dirs[which]) {
            *xi += scale * di;
        }
    }
    x
}

/// Mean over the true directions of the best cosine with a learned decoder row.
fn mean_max_cosine(w_dec: &Tensor, dirs: &[Vec<f32>]) -> f32 {
    let rows = w_dec.to_vec2::<f32>().unwrap();
    let unit = |v: &[f32]| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let rows: Vec<Vec<f32>> = rows.iter().map(|r| unit(r)).collect();
    let best = |d: &Vec<f32>| {
        rows.iter()
            .map(|r| r.iter().zip(d).map(|(a, b)| a * b).sum::<f32>())
            .fold(f32::MIN, f32::max)
    };
    dirs.iter().map(best).sum::<f32>() / dirs.len() as f32
}

fn small_config(kind: SaeKind) -> TrainConfig {
    TrainConfig {
        sae_type: kind,
        dict_size: 256,
        top_k: 3,
        top_k_aux: 16,
        batch_size: 256,
        lr: 3e-3,
        input_unit_norm: false,
        num_tokens: 256 * 500,
        checkpoint_freq: 100_000,
        log_freq: 100,
        model_batch_size: 8,
        num_batches_in_buffer: 4,
        n_batches_to_dead: 5,
        ..TrainConfig::default()
    }
}

fn ground_truth(kind: SaeKind) -> (f32, f32, f64) {
    let dir = tempfile::tempdir().unwrap();
    let dirs = unit_directions(128, 32, 7);
    let cache = dir.path().join("cache");
    write_cache(&cache, 32, 256, 64, |t| sparse_token(t, &dirs, 3));
    let mut cfg = small_config(kind);
    if kind == SaeKind::Matryoshka {
        cfg.group_sizes = vec![64, 192];
    }
    if kind == SaeKind::Relu {
        cfg.l1_coeff = 3e-2;
    }
    let init = Trainer::new(cfg.clone(), 32, &Device::Cpu).unwrap();
    let before = mean_max_cosine(init.w_dec.as_tensor(), &dirs);
    let start = std::time::Instant::now();
    let summary = train(
        &cache,
        &dir.path().join("run"),
        cfg,
        &Device::Cpu,
        &mut |_| {},
    )
    .unwrap();
    let steps_per_s = summary.steps as f64 / start.elapsed().as_secs_f64();
    let (sae, _) = crate::sae::checkpoint::load(
        &summary.final_checkpoint,
        candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let after = mean_max_cosine(&sae.weights().w_dec, &dirs);
    eprintln!(
        "{kind}: mean max cosine {before:.3} → {after:.3}, {steps_per_s:.0} steps/s, last {:?}",
        summary.last
    );
    (before, after, steps_per_s)
}

#[test]
fn batchtopk_recovers_a_known_dictionary() {
    let (before, after, _) = ground_truth(SaeKind::BatchTopK);
    assert!(before < 0.7, "{before}");
    assert!(after > 0.9, "mean max cosine {after}");
}

#[test]
fn topk_recovers_a_known_dictionary() {
    let (_, after, _) = ground_truth(SaeKind::TopK);
    assert!(after > 0.9, "mean max cosine {after}");
}

#[test]
fn matryoshka_recovers_a_known_dictionary() {
    let (_, after, _) = ground_truth(SaeKind::Matryoshka);
    assert!(after > 0.85, "mean max cosine {after}");
}

#[test]
fn relu_recovers_a_known_dictionary() {
    // ReLU + L1 learns slowly (0.75 after these 500 steps); 0.65 is still far above the
    // 0.48 of the initialisation.
    let (_, after, _) = ground_truth(SaeKind::Relu);
    assert!(after > 0.65, "mean max cosine {after}");
}

fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn set_entry(var: &candle_core::Var, i: usize, value: f32) {
    let mut data = host(var.as_tensor());
    data[i] = value;
    let t = Tensor::from_vec(data, var.dims(), &Device::Cpu).unwrap();
    var.set(&t).unwrap();
}

fn same_selection(a: &loss::ActiveSet, b: &loss::ActiveSet) -> bool {
    a.rows == b.rows && a.feats == b.feats
}

/// Central differences of the full loss (MSE or Matryoshka prefixes + L1 + aux-K) against
/// autograd, for every parameter entry whose perturbation keeps both selections. With the
/// selection fixed the loss is quadratic in each entry, so central differences are exact up
/// to f32 rounding. Aux-K's residual is a constant to autograd by design, so with aux-K on
/// only the entries that cannot move the main reconstruction (those of latents outside the
/// main active set) are compared; a second pass without aux-K compares every entry.
fn check_gradients(kind: SaeKind, aux_penalty: f64) {
    let mut cfg = TrainConfig {
        sae_type: kind,
        dict_size: 12,
        top_k: 2,
        top_k_aux: 3,
        batch_size: 8,
        num_tokens: 8,
        l1_coeff: 0.1,
        aux_penalty,
        n_batches_to_dead: 1,
        input_unit_norm: false,
        ..TrainConfig::default()
    };
    if kind == SaeKind::Matryoshka {
        cfg.group_sizes = vec![4, 8];
    }
    let trainer = Trainer::new(cfg, 6, &Device::Cpu).unwrap();
    let mut rng = SplitMix64(3);
    for var in [&trainer.b_enc, &trainer.b_dec] {
        for i in 0..var.elem_count() {
            set_entry(var, i, 0.3 * rng.uniform_sym());
        }
    }
    let xs: Vec<f32> = (0..48).map(|_| rng.uniform_sym()).collect();
    let xs = Tensor::from_vec(xs, (8, 6), &Device::Cpu).unwrap();
    let base = trainer.forward(&xs).unwrap();
    assert_eq!(base.aux_active.is_empty(), aux_penalty == 0.0);
    let grads = base.loss.backward().unwrap();
    let loss_of = |f: &step::Forward| f.loss.to_scalar::<f32>().unwrap() as f64;
    // The latent each entry belongs to (None: b_dec, which moves every reconstruction).
    let latent: [&dyn Fn(usize) -> Option<usize>; 4] =
        [&|i| Some(i % 12), &|i| Some(i), &|i| Some(i / 6), &|_| None];
    let vars = [
        &trainer.w_enc,
        &trainer.b_enc,
        &trainer.w_dec,
        &trainer.b_dec,
    ];
    let (mut checked, eps) = (0, 1e-3f32);
    for (var, latent) in vars.into_iter().zip(latent) {
        let analytic = host(grads.get(var.as_tensor()).unwrap());
        for (i, &g) in analytic.iter().enumerate() {
            let moves_main = latent(i).is_none_or(|f| base.active.feats.contains(&(f as u32)));
            if aux_penalty > 0.0 && moves_main {
                continue;
            }
            let x = host(var.as_tensor())[i];
            set_entry(var, i, x + eps);
            let plus = trainer.forward(&xs).unwrap();
            set_entry(var, i, x - eps);
            let minus = trainer.forward(&xs).unwrap();
            set_entry(var, i, x);
            let stable = [&plus, &minus].iter().all(|f| {
                same_selection(&f.active, &base.active)
                    && same_selection(&f.aux_active, &base.aux_active)
            });
            if !stable {
                continue;
            }
            let numeric = (loss_of(&plus) - loss_of(&minus)) / (2.0 * eps as f64);
            let tolerance = 2e-4 + 1e-2 * numeric.abs();
            assert!(
                (numeric - g as f64).abs() < tolerance,
                "{kind} (aux {aux_penalty}) entry {i}: numeric {numeric}, autograd {g}"
            );
            checked += 1;
        }
    }
    // 162 entries in all; with aux-K on, only those of latents outside the main set count.
    let enough = if aux_penalty > 0.0 { 15 } else { 100 };
    eprintln!("{kind} (aux {aux_penalty}): {checked} entries checked");
    assert!(checked >= enough, "{kind}: only {checked} entries checked");
}

#[test]
fn gradients_match_finite_differences() {
    for kind in [SaeKind::BatchTopK, SaeKind::TopK, SaeKind::Matryoshka] {
        check_gradients(kind, 0.0);
        check_gradients(kind, 0.5);
    }
    // ReLU SAEs have no aux-K.
    check_gradients(SaeKind::Relu, 0.0);
}

/// The CPU kernel and the candle-op path (gather and dense) give the same decoding and the
/// same gradients.
#[test]
fn cpu_decode_kernel_matches_candle_ops() {
    // 15 pairs: 7.5% of 5 × 40 (dense product), 4.7% of 5 × 64 (gather + index_add).
    check_decode_kernel(40);
    check_decode_kernel(64);
}

fn check_decode_kernel(d_sae: usize) {
    let mut rng = SplitMix64(9);
    let (n, d_in) = (5, 7);
    let w: Vec<f32> = (0..d_sae * d_in).map(|_| rng.uniform_sym()).collect();
    let w =
        candle_core::Var::from_tensor(&Tensor::from_vec(w, (d_sae, d_in), &Device::Cpu).unwrap())
            .unwrap();
    let mut set = loss::ActiveSet {
        n,
        d_sae,
        ..Default::default()
    };
    for r in 0..n as u32 {
        for f in [r, 3 * r + 1, d_sae as u32 - 1 - r] {
            set.rows.push(r);
            set.feats.push(f);
            set.values.push(rng.uniform_sym());
        }
    }
    let values =
        candle_core::Var::from_tensor(&Tensor::new(set.values.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
    let target: Vec<f32> = (0..n * d_in).map(|_| rng.uniform_sym()).collect();
    let target = Tensor::from_vec(target, (n, d_in), &Device::Cpu).unwrap();
    let run = |dense: bool| {
        let out = if dense {
            loss::decode_with_candle_ops(w.as_tensor(), &set, values.as_tensor()).unwrap()
        } else {
            loss::decode_active(w.as_tensor(), &set, values.as_tensor()).unwrap()
        };
        let grads = loss::mse(&out, &target).unwrap().backward().unwrap();
        let grad = |v: &candle_core::Var| host(grads.get(v.as_tensor()).unwrap());
        (host(&out), grad(&w), grad(&values))
    };
    let (kernel, ops) = (run(false), run(true));
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    assert!(close(&kernel.0, &ops.0) && close(&kernel.1, &ops.1) && close(&kernel.2, &ops.2));
}

/// The CPU encoder kernel gives the gathered values and the gradients of gathering from `pre`.
#[test]
fn cpu_encode_kernel_matches_gathering_from_pre() {
    let mut rng = SplitMix64(4);
    let (n, d_in, d_sae) = (6, 5, 16);
    let mut var = |len: usize, shape: (usize, usize)| {
        let data: Vec<f32> = (0..len).map(|_| rng.uniform_sym()).collect();
        let t = Tensor::from_vec(data, shape, &Device::Cpu).unwrap();
        candle_core::Var::from_tensor(&t).unwrap()
    };
    let w_enc = var(d_in * d_sae, (d_in, d_sae));
    let b_enc = var(d_sae, (1, d_sae));
    let b_dec = var(d_in, (1, d_in));
    let (b_enc_t, b_dec_t) = (
        b_enc.as_tensor().squeeze(0).unwrap(),
        b_dec.as_tensor().squeeze(0).unwrap(),
    );
    let xs = var(n * d_in, (n, d_in));
    let encoded =
        loss::Encoded::new(xs.as_tensor(), w_enc.as_tensor(), &b_enc_t, &b_dec_t).unwrap();
    let set = loss::select(SaeKind::BatchTopK, &encoded.pre, 3).unwrap();
    let weights: Vec<f32> = (0..set.len()).map(|i| 1.0 + i as f32 / 10.0).collect();
    let weights = Tensor::new(weights.as_slice(), &Device::Cpu).unwrap();
    let grads_of = |values: Tensor| {
        let grads = (values * &weights)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        [&w_enc, &b_enc, &b_dec].map(|v| host(grads.get(v.as_tensor()).unwrap()))
    };
    let kernel = encoded.values(&set).unwrap();
    let gathered = loss::gather_values(&encoded.pre, &set).unwrap();
    assert_eq!(host(&kernel), host(&gathered));
    let (a, b) = (grads_of(kernel), grads_of(gathered));
    for (x, y) in a.iter().zip(&b) {
        let close = |(p, q): (&f32, &f32)| (p - q).abs() < 1e-5 * (1.0 + q.abs());
        assert!(x.iter().zip(y).all(close), "{x:?} vs {y:?}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn tiny_cache(dir: &Path) -> std::path::PathBuf {
    let dirs = unit_directions(24, 8, 11);
    let cache = dir.join("cache");
    write_cache(&cache, 8, 32, 8, |t| sparse_token(t, &dirs, 2));
    cache
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let cfg = TrainConfig {
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
    };
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
    assert_eq!(
        metrics::read(&full.join("metrics.jsonl")).unwrap(),
        metrics::read(&cut.join("metrics.jsonl")).unwrap()
    );
}

#[test]
fn stream_visits_every_token_once_per_epoch_and_resumes_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    write_cache(&cache, 2, 32, 8, |t| vec![t as f32, 0.0]);
    let open = || crate::data::cache::ActivationCache::open(&cache).unwrap();
    let mut stream = data::BatchStream::new(open(), 5, 64, 128, 0);
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
    let mut again = data::BatchStream::new(open(), 5, 64, 128, 512);
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

/// Step throughput on the CPU (`cargo test --release --lib train::tests::step_throughput --
/// --ignored --nocapture`); the figures are in docs/train.md.
#[test]
#[ignore = "benchmark: run in release by hand"]
fn step_throughput() {
    let shapes = [
        (32, 256, 3, 256, 200),
        (256, 4096, 32, 4096, 5),
        (2304, 16384, 32, 4096, 2),
    ];
    for (d_in, d_sae, k, batch, steps) in shapes {
        for kind in [SaeKind::BatchTopK, SaeKind::TopK] {
            let cfg = TrainConfig {
                sae_type: kind,
                dict_size: d_sae,
                top_k: k,
                batch_size: batch,
                num_tokens: (batch * (steps + 1)) as u64,
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(cfg, d_in, &Device::Cpu).unwrap();
            let mut rng = SplitMix64(1);
            let xs: Vec<f32> = (0..batch * d_in).map(|_| rng.uniform_sym()).collect();
            let xs = Tensor::from_vec(xs, (batch, d_in), &Device::Cpu).unwrap();
            trainer.step(&xs).unwrap(); // warm-up
            let start = std::time::Instant::now();
            for _ in 0..steps {
                trainer.step(&xs).unwrap();
            }
            let seconds = start.elapsed().as_secs_f64() / steps as f64;
            eprintln!(
                "{kind} d_in {d_in} d_sae {d_sae} k {k} batch {batch}: {:.1} steps/s, {:.0} tokens/s",
                1.0 / seconds,
                batch as f64 / seconds
            );
        }
    }
}
