//! The device selections (forced on the CPU: generic candle ops, and with the device sort's ties
//! broken the other way) give the host's active sets exactly — pairs, order and values — and
//! training through them ends with the host's weights.

use candle_core::{Device, Tensor};

use super::*;
use crate::sae::extract::ForceDevicePath;
use crate::sae::topk_sparse::tests::{both_tie_orders, matrix};

/// (n, d, levels, shift): ties (levels), zeros and all-negative rows (every case), few
/// positives (shift), widths 16384 and 65536 with small batches.
const CASES: [(usize, usize, u64, f32); 6] = [
    (8, 50, 5, 0.0),
    (6, 64, 3, 0.3),
    (4, 3000, 9, 0.5),
    (3, 16384, 0, 0.99),
    (3, 16384, 40, 0.0),
    (2, 65536, 0, 0.995),
];

fn on_device<T>(f: impl FnOnce() -> T) -> T {
    let _forced = ForceDevicePath::new();
    f()
}

#[test]
fn training_selections_equal_the_host() {
    let kinds = [
        SaeKind::BatchTopK,
        SaeKind::Matryoshka,
        SaeKind::TopK,
        SaeKind::Relu,
    ];
    for (case, &(n, d, levels, shift)) in CASES.iter().enumerate() {
        let pre = Tensor::from_vec(
            matrix(n, d, levels, shift, case as u64),
            (n, d),
            &Device::Cpu,
        )
        .unwrap();
        let positives = host(&pre).iter().filter(|&&x| x > 0.0).count();
        // k·B below and above the number of positives.
        for k in [1, 3, 32, positives / n + 5] {
            for kind in kinds {
                let expected = loss::select(kind, &pre, k.min(d)).unwrap();
                both_tie_orders(|| {
                    let got = on_device(|| loss::select(kind, &pre, k.min(d)).unwrap());
                    assert_eq!(got, expected, "{kind} n {n} d {d} levels {levels} k {k}");
                });
            }
        }
    }
}

#[test]
fn aux_k_selection_equals_the_host() {
    for (case, &(n, d, levels, shift)) in CASES.iter().enumerate() {
        let pre = Tensor::from_vec(
            matrix(n, d, levels, shift, 50 + case as u64),
            (n, d),
            &Device::Cpu,
        )
        .unwrap();
        let dead: Vec<u32> = (0..d as u32).filter(|f| f % 3 != 1).collect();
        for k_aux in [2, 16, 512] {
            let expected = loss::select_dead(&pre, &dead, k_aux).unwrap();
            both_tie_orders(|| {
                let got = on_device(|| loss::select_dead(&pre, &dead, k_aux).unwrap());
                assert_eq!(got, expected, "d {d} levels {levels} k_aux {k_aux}");
            });
        }
    }
}

#[test]
fn jumprelu_support_equals_the_host() {
    let mut non_positive_in_window = 0;
    for (case, &(n, d, levels, shift)) in CASES.iter().enumerate() {
        let pre = Tensor::from_vec(
            matrix(n, d, levels, shift, 80 + case as u64),
            (n, d),
            &Device::Cpu,
        )
        .unwrap();
        // Thresholds inside the positive range of each case.
        let theta: Vec<f32> = (0..d)
            .map(|f| (1.0 - shift) * (0.1 + (f % 11) as f32 * 0.05))
            .collect();
        // A narrow window, and one wide enough to take in zeros and negative pre-activations.
        for bandwidth in [0.01, 0.5] {
            let expected = crate::train::jumprelu::select(&pre, &theta, bandwidth).unwrap();
            assert!(bandwidth < 0.1 || !expected.set.is_empty(), "d {d}");
            non_positive_in_window += expected.set.values.iter().filter(|&&z| z <= 0.0).count();
            both_tie_orders(|| {
                let got =
                    on_device(|| crate::train::jumprelu::select(&pre, &theta, bandwidth).unwrap());
                assert_eq!(got, expected, "d {d} levels {levels} ε {bandwidth}");
            });
        }
    }
    assert!(non_positive_in_window > 0);
}

/// A few steps of each kind through the device selections end with the host run's weights, bit
/// for bit (continuous random inputs: no ties). Aux-K runs from the second step on (every latent
/// not fired in one batch is dead), and d_sae 2048 spans two 1024-column blocks.
#[test]
fn training_on_the_device_path_gives_the_host_weights() {
    let (d_in, d_sae, batch) = (8, 2048, 16);
    let mut rng = SplitMix64(31);
    let batches: Vec<Tensor> = (0..3)
        .map(|_| {
            let xs: Vec<f32> = (0..batch * d_in).map(|_| rng.uniform_sym()).collect();
            Tensor::from_vec(xs, (batch, d_in), &Device::Cpu).unwrap()
        })
        .collect();
    for kind in SaeKind::ALL {
        let cfg = TrainConfig {
            sae_type: kind,
            dict_size: d_sae,
            top_k: 8,
            top_k_aux: 32,
            batch_size: batch,
            num_tokens: (batch * batches.len()) as u64,
            n_batches_to_dead: 1,
            group_sizes: match kind {
                SaeKind::Matryoshka => vec![512, 1536],
                _ => Vec::new(),
            },
            jumprelu_init_threshold: 0.05,
            jumprelu_bandwidth: 0.05,
            l0_warm_up_steps: 0,
            ..TrainConfig::default()
        };
        let run = |forced: bool| {
            let _forced = forced.then(ForceDevicePath::with_reversed_ties);
            let mut trainer = Trainer::new(cfg.clone(), d_in, &Device::Cpu).unwrap();
            let stats: Vec<StepStats> =
                batches.iter().map(|xs| trainer.step(xs).unwrap()).collect();
            let weights = [
                &trainer.w_enc,
                &trainer.b_enc,
                &trainer.w_dec,
                &trainer.b_dec,
            ]
            .map(|v| host(v.as_tensor()));
            (stats, weights, trainer.threshold, trainer.batches_inactive)
        };
        let (host_run, device_run) = (run(false), run(true));
        assert!(
            host_run.0.iter().all(|s| s.l0 > 0.0),
            "{kind}: nothing fired"
        );
        if kind.uses_k() {
            assert!(host_run.0[1].aux_loss > 0.0, "{kind}: aux-K did not run");
        }
        assert_eq!(device_run.0, host_run.0, "{kind}: step statistics");
        assert!(device_run.1 == host_run.1, "{kind}: the weights differ");
        assert_eq!(device_run.2, host_run.2, "{kind}: θ");
        assert!(
            device_run.3 == host_run.3,
            "{kind}: the dead-latent counts differ"
        );
    }
}
