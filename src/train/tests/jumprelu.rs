//! JumpReLU: the threshold's pseudo-derivatives against the paper's formula evaluated by brute
//! force over every (token, latent) pair; the training forward against inference; checkpoints
//! read back as SAELens folders encode as Gemma Scope does.

use candle_core::{DType, Device, Tensor};

use super::*;

/// A 6 × 12 JumpReLU trainer with random biases and per-latent thresholds, and a batch of 8.
fn setup(bandwidth: f64, l0_coefficient: f64, warm_up: u64, step: u64) -> (Trainer, Tensor) {
    let cfg = TrainConfig {
        sae_type: SaeKind::JumpRelu,
        dict_size: 12,
        batch_size: 8,
        num_tokens: 8,
        input_unit_norm: false,
        l0_coefficient,
        l0_warm_up_steps: warm_up,
        jumprelu_bandwidth: bandwidth,
        jumprelu_init_threshold: 0.2,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(cfg, 6, &Device::Cpu).unwrap();
    trainer.step = step;
    let mut rng = SplitMix64(21);
    let mut fill = |var: &candle_core::Var, scale: f32, offset: f32| {
        let data: Vec<f32> = (0..var.elem_count())
            .map(|_| offset + scale * rng.uniform_sym())
            .collect();
        var.set(&Tensor::from_vec(data, var.dims(), &Device::Cpu).unwrap())
            .unwrap();
    };
    fill(&trainer.b_enc, 0.3, 0.0);
    fill(&trainer.b_dec, 0.3, 0.0);
    // θ between e^-2.5 ≈ 0.08 and e^-0.5 ≈ 0.6.
    fill(trainer.log_threshold.as_ref().unwrap(), 1.0, -1.5);
    let xs: Vec<f32> = (0..48).map(|_| rng.uniform_sym()).collect();
    (trainer, Tensor::from_vec(xs, (8, 6), &Device::Cpu).unwrap())
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_vec2::<f32>()
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(f64::from).collect())
        .collect()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    host(t).into_iter().map(f64::from).collect()
}

/// ∂loss/∂log θ by the paper's pseudo-derivatives, every pair visited, in f64:
/// `θ_f · Σ_b K((z − θ)/ε) · (−(θ/ε)·∂L/∂a[b,f] − c/(B·ε))` with `c` the per-token L0 weight.
/// With `skip_below` the pairs under the threshold are left out (a deliberately wrong variant).
fn reference(trainer: &Trainer, xs: &Tensor, coefficient: f64, skip_below: bool) -> Vec<f64> {
    let (x, w_enc, w_dec) = (
        rows(xs),
        rows(trainer.w_enc.as_tensor()),
        rows(trainer.w_dec.as_tensor()),
    );
    let (b_enc, b_dec) = (
        f64s(trainer.b_enc.as_tensor()),
        f64s(trainer.b_dec.as_tensor()),
    );
    let theta: Vec<f64> = f64s(trainer.log_threshold.as_ref().unwrap().as_tensor())
        .iter()
        .map(|t| t.exp())
        .collect();
    let eps = trainer.cfg.jumprelu_bandwidth;
    let (n, d_in, d_sae) = (x.len(), b_dec.len(), b_enc.len());
    let z: Vec<Vec<f64>> = x
        .iter()
        .map(|xb| {
            (0..d_sae)
                .map(|f| {
                    b_enc[f]
                        + (0..d_in)
                            .map(|d| (xb[d] - b_dec[d]) * w_enc[d][f])
                            .sum::<f64>()
                })
                .collect()
        })
        .collect();
    let mut grad = vec![0f64; d_sae];
    for b in 0..n {
        // ∂L/∂x̂ for the MSE over all B·d_in entries.
        let x_hat: Vec<f64> = (0..d_in)
            .map(|d| {
                let acts = (0..d_sae).filter(|&f| z[b][f] > theta[f]);
                b_dec[d] + acts.map(|f| z[b][f] * w_dec[f][d]).sum::<f64>()
            })
            .collect();
        let upstream: Vec<f64> = (0..d_in)
            .map(|d| 2.0 * (x_hat[d] - x[b][d]) / (n * d_in) as f64)
            .collect();
        for f in 0..d_sae {
            let u = (z[b][f] - theta[f]) / eps;
            if !(u > -0.5 && u < 0.5) || (skip_below && z[b][f] <= theta[f]) {
                continue;
            }
            let grad_a: f64 = (0..d_in).map(|d| w_dec[f][d] * upstream[d]).sum();
            let d_theta = -(theta[f] / eps) * grad_a - coefficient / (n as f64 * eps);
            grad[f] += theta[f] * d_theta;
        }
    }
    grad
}

#[test]
fn threshold_gradient_is_the_papers_pseudo_derivative() {
    // ε wide enough that many pairs sit in the window, on both sides of θ; halfway through
    // the λ warm-up (step 5 of 10), so λ counts half.
    let (trainer, xs) = setup(0.4, 0.6, 10, 5);
    let forward = trainer.forward(&xs).unwrap();
    let grads = forward.loss.backward().unwrap();
    let log_threshold = trainer.log_threshold.as_ref().unwrap().as_tensor();
    let autograd = f64s(grads.get(log_threshold).unwrap());
    let coefficient = 0.6 * 0.5 / 6.0;
    let expected = reference(&trainer, &xs, coefficient, false);
    for (f, (a, e)) in autograd.iter().zip(&expected).enumerate() {
        assert!(
            (a - e).abs() < 1e-5 + 1e-4 * e.abs(),
            "latent {f}: autograd {a}, formula {e}"
        );
    }
    assert!(
        expected.iter().filter(|g| g.abs() > 1e-4).count() >= 8,
        "{expected:?}"
    );
    // The pairs just under θ decode to 0 yet carry gradient: leaving them out is caught.
    let wrong = reference(&trainer, &xs, coefficient, true);
    let gap = wrong
        .iter()
        .zip(&autograd)
        .map(|(w, a)| (w - a).abs())
        .fold(0.0, f64::max);
    assert!(
        gap > 1e-3,
        "the below-threshold pairs made no difference ({gap})"
    );
    // The L0 term alone: with λ = 0 the gradient changes by θ·(c/(Bε))·(pairs in the window).
    let (plain, xs) = setup(0.4, 0.0, 10, 5);
    let grads = plain.forward(&xs).unwrap().loss.backward().unwrap();
    let without = f64s(
        grads
            .get(plain.log_threshold.as_ref().unwrap().as_tensor())
            .unwrap(),
    );
    let expected = reference(&plain, &xs, 0.0, false);
    for (a, e) in without.iter().zip(&expected) {
        assert!(
            (a - e).abs() < 1e-5 + 1e-4 * e.abs(),
            "λ = 0: autograd {a}, formula {e}"
        );
    }
    assert!(without
        .iter()
        .zip(&autograd)
        .any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn training_forward_equals_gemma_scope_inference() {
    let (trainer, xs) = setup(0.001, 1.0, 0, 0);
    let forward = trainer.forward(&xs).unwrap();
    let sae = trainer.sae().unwrap();
    let inference = sae.reconstruct(&xs).unwrap();
    let close = host(&forward.x_hat)
        .iter()
        .zip(host(&inference))
        .all(|(a, b)| (a - b).abs() < 1e-5);
    assert!(close, "training and inference reconstructions differ");
    // relu(pre)·(pre > θ), written out.
    let pre = sae.pre_activations(&xs).unwrap();
    let theta = sae.weights().threshold.clone().unwrap();
    let by_hand = (pre.relu().unwrap()
        * pre
            .broadcast_gt(&theta)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap())
    .unwrap();
    let acts = host(&sae.encode(&xs).unwrap());
    assert_eq!(acts, host(&by_hand));
    let firing = acts.iter().filter(|&&a| a > 0.0).count();
    assert_eq!(forward.active.len(), firing);
    assert!(firing > 10 && firing < 80, "{firing} of 96 fire");
    let penalty = forward.l0.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (penalty - firing as f64 / 8.0 / 6.0).abs() < 1e-6,
        "{penalty}"
    );
}

/// A short run's checkpoint, read as a SAELens folder (cfg.json + sae_weights.safetensors),
/// holds `threshold = exp(log θ)` per latent and encodes as relu(pre)·(pre > θ).
#[test]
fn checkpoints_hold_the_learnt_thresholds_for_sae_lens_and_collect() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tiny_cache(dir.path());
    let cfg = TrainConfig {
        sae_type: SaeKind::JumpRelu,
        dict_size: 32,
        batch_size: 64,
        num_tokens: 64 * 12,
        lr: 1e-2,
        l0_coefficient: 0.5,
        l0_warm_up_steps: 4,
        jumprelu_bandwidth: 0.05,
        jumprelu_init_threshold: 0.05,
        model_batch_size: 8,
        num_batches_in_buffer: 1,
        ..TrainConfig::default()
    };
    let summary = train(
        &cache,
        &dir.path().join("run"),
        cfg,
        &Device::Cpu,
        &mut |_| {},
    )
    .unwrap();
    let folder = &summary.final_checkpoint;
    let cfg_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg_json["architecture"], "jumprelu");
    let sae = crate::sae::import::load_sae_lens(folder, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(sae.config().kind, SaeKind::JumpRelu);
    let theta = host(sae.weights().threshold.as_ref().unwrap());
    let optimizer =
        candle_core::safetensors::load(folder.join(checkpoint::OPTIMIZER_FILE), &Device::Cpu)
            .unwrap();
    let learnt = host(&optimizer["log_threshold"].exp().unwrap());
    assert_eq!(theta, learnt, "threshold must be exp(log_threshold)");
    let distinct = theta
        .iter()
        .filter(|&&t| (t - theta[0]).abs() > 1e-6)
        .count();
    assert!(distinct > 0, "the thresholds did not move: {theta:?}");
    let (own, _) = crate::sae::checkpoint::load(folder, DType::F32, &Device::Cpu).unwrap();
    let mut rng = SplitMix64(5);
    let xs: Vec<f32> = (0..10 * 8).map(|_| rng.uniform_sym()).collect();
    let xs = Tensor::from_vec(xs, (10, 8), &Device::Cpu).unwrap();
    let (normed, _) = sae.normalize_input(&xs).unwrap();
    let pre = host(&sae.pre_activations(&normed).unwrap());
    let by_hand: Vec<f32> = pre
        .iter()
        .enumerate()
        .map(|(i, &z)| if z > theta[i % 32] { z.max(0.0) } else { 0.0 })
        .collect();
    assert_eq!(host(&sae.encode(&xs).unwrap()), by_hand);
    assert_eq!(host(&own.encode(&xs).unwrap()), by_hand);
}
