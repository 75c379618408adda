//! Gradients of every loss against central differences, and the CPU kernels against the
//! candle-op path they replace.

use candle_core::{Device, Tensor};

use super::*;

fn set_entry(var: &candle_core::Var, i: usize, value: f32) {
    let mut data = host(var.as_tensor());
    data[i] = value;
    let t = Tensor::from_vec(data, var.dims(), &Device::Cpu).unwrap();
    var.set(&t).unwrap();
}

fn same_selection(a: &loss::ActiveSet, b: &loss::ActiveSet) -> bool {
    a.rows == b.rows && a.feats == b.feats
}

/// Central differences of the loss `forward()` computes against autograd's `grads` of `base`,
/// for every entry of `vars` that `include(var, entry)` admits and whose perturbation keeps
/// both selections (main and aux-K) of `base`: with the selection fixed the loss is quadratic
/// in each entry, so the differences are exact up to f32 rounding. Returns the entries
/// compared.
pub(super) fn assert_grads_match_finite_differences(
    vars: &[&candle_core::Var],
    base: &step::Forward,
    forward: impl Fn() -> step::Forward,
    include: impl Fn(usize, usize) -> bool,
    what: &str,
) -> usize {
    let grads = base.loss.backward().unwrap();
    let loss_of = |f: &step::Forward| f.loss.to_scalar::<f32>().unwrap() as f64;
    let (mut checked, eps) = (0, 1e-3f32);
    for (v, var) in vars.iter().enumerate() {
        let analytic = host(grads.get(var.as_tensor()).unwrap());
        for (i, &g) in analytic.iter().enumerate() {
            if !include(v, i) {
                continue;
            }
            let x = host(var.as_tensor())[i];
            set_entry(var, i, x + eps);
            let plus = forward();
            set_entry(var, i, x - eps);
            let minus = forward();
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
                "{what} entry {i}: numeric {numeric}, autograd {g}"
            );
            checked += 1;
        }
    }
    checked
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
    if kind == SaeKind::JumpRelu {
        // With the firing set fixed the L0 term is constant: only MSE moves these entries.
        cfg.l1_coeff = 0.0;
        cfg.l0_coefficient = 0.5;
        cfg.l0_warm_up_steps = 0;
        cfg.jumprelu_init_threshold = 0.1;
        cfg.jumprelu_bandwidth = 0.05;
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
    // The latent each entry belongs to (None: b_dec, which moves every reconstruction).
    let latent: [&dyn Fn(usize) -> Option<usize>; 4] =
        [&|i| Some(i % 12), &|i| Some(i), &|i| Some(i / 6), &|_| None];
    let vars = [
        &trainer.w_enc,
        &trainer.b_enc,
        &trainer.w_dec,
        &trainer.b_dec,
    ];
    // Aux-K's residual is a constant to autograd by design: with aux-K on, only the entries
    // that cannot move the main reconstruction are compared.
    let include = |v: usize, i: usize| {
        let moves_main = latent[v](i).is_none_or(|f| base.active.feats.contains(&(f as u32)));
        aux_penalty == 0.0 || !moves_main
    };
    let what = format!("{kind} (aux {aux_penalty})");
    let checked = assert_grads_match_finite_differences(
        &vars,
        &base,
        || trainer.forward(&xs).unwrap(),
        include,
        &what,
    );
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
    // ReLU and JumpReLU SAEs have no aux-K; JumpReLU's threshold gradient, a pseudo-derivative,
    // is checked against its formula in `tests::jumprelu`.
    check_gradients(SaeKind::Relu, 0.0);
    check_gradients(SaeKind::JumpRelu, 0.0);
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
    // The CPU's `pre` has no graph (the kernel differentiates); built from candle ops it has
    // one, and the same values to the bit.
    let pre = (xs.as_tensor().broadcast_sub(&b_dec_t).unwrap())
        .matmul(w_enc.as_tensor())
        .and_then(|p| p.broadcast_add(&b_enc_t))
        .unwrap();
    assert_eq!(host(&encoded.pre), host(&pre));
    let gathered = loss::gather_values(&pre, &set).unwrap();
    assert_eq!(host(&kernel), host(&gathered));
    let (a, b) = (grads_of(kernel), grads_of(gathered));
    for (x, y) in a.iter().zip(&b) {
        let close = |(p, q): (&f32, &f32)| (p - q).abs() < 1e-5 * (1.0 + q.abs());
        assert!(x.iter().zip(y).all(close), "{x:?} vs {y:?}");
    }
}

/// The host BatchTopK selection keeps exactly the positive entries `batch_topk_host` keeps,
/// ties included.
#[test]
fn batch_topk_selection_matches_the_sae_module() {
    let mut rng = SplitMix64(12);
    let (n, d_sae) = (7, 30);
    // Few distinct values, so that the cut falls inside runs of ties.
    let ties: Vec<f32> = (0..n * d_sae)
        .map(|_| (rng.uniform_sym() * 4.0).round() / 4.0)
        .collect();
    // Values that share their high 16 bits (the radix select's first bucket) and differ in
    // the low ones, ±∞, -0.0 and negatives (NaN never reaches selection: batches with one are
    // refused).
    let mut close: Vec<f32> = (0..n * d_sae)
        .map(|i| f32::from_bits(1.5f32.to_bits() + (i as u32 * 7919) % 300))
        .collect();
    close[3] = f32::INFINITY;
    close[10] = f32::NEG_INFINITY;
    close[11] = -0.0;
    close[12] = -1.0;
    close[40] = f32::MIN_POSITIVE;
    let continuous: Vec<f32> = (0..n * d_sae).map(|_| rng.uniform_sym()).collect();
    for (k_total, data) in [1, 5, 40, 90, 200]
        .into_iter()
        .flat_map(|k| [(k, &ties), (k, &close), (k, &continuous)])
    {
        let ours = loss::batch_topk_active(data, n, d_sae, k_total);
        let kept = crate::sae::topk::batch_topk_host(data.clone(), k_total);
        let expected = (0..n * d_sae).filter(|&i| kept[i] > 0.0);
        let got = ours
            .rows
            .iter()
            .zip(&ours.feats)
            .map(|(&r, &f)| r as usize * d_sae + f as usize);
        assert!(got.eq(expected), "k_total {k_total}");
    }
}
