//! The steering formulas against a plain re-derivation on the host, in f64, for each input
//! normalization: the change of the reconstruction when latent `f` goes from `a_f` to
//! `a_f + S` (add) or to `c` (clamp), brought back to the residual's units.

use candle_core::{DType, Device, Tensor};

use super::steer::{FeatureEdit, SteerMode, Steering};
use crate::sae::{Normalization, Sae, SaeConfig, SaeKind, SaeWeights};
use crate::util::rng::SplitMix64;

const D_IN: usize = 8;
const D_SAE: usize = 16;

fn random(rng: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform_sym() * scale).collect()
}

fn sae(normalization: Normalization) -> Sae {
    let mut config = SaeConfig::new(SaeKind::Relu, D_IN, D_SAE, None);
    config.normalization = normalization;
    let mut weights = SaeWeights::init(&config, 3, &Device::Cpu).unwrap();
    let mut rng = SplitMix64(4);
    weights.b_enc = Tensor::new(random(&mut rng, D_SAE, 0.5).as_slice(), &Device::Cpu).unwrap();
    weights.b_dec = Tensor::new(random(&mut rng, D_IN, 0.3).as_slice(), &Device::Cpu).unwrap();
    Sae::new(config, weights).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let rows: Vec<Vec<f32>> = t.to_dtype(DType::F32).unwrap().to_vec2().unwrap();
    rows.into_iter()
        .map(|r| r.into_iter().map(f64::from).collect())
        .collect()
}

/// The normalized token and the factor that brings a change back to the residual's units.
fn normalize(x: &[f64], normalization: Normalization) -> (Vec<f64>, f64) {
    let d = x.len() as f64;
    match normalization {
        Normalization::None => (x.to_vec(), 1.0),
        Normalization::ConstantNormRescale => {
            let coeff = d.sqrt() / x.iter().map(|v| v * v).sum::<f64>().sqrt();
            (x.iter().map(|v| v * coeff).collect(), 1.0 / coeff)
        }
        Normalization::LayerNorm => {
            let mean = x.iter().sum::<f64>() / d;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (d - 1.0);
            let std = var.sqrt();
            (x.iter().map(|v| (v - mean) / (std + 1e-5)).collect(), std)
        }
    }
}

/// `x'` for one token, by the definitions in docs/probe.md.
fn expected(sae: &Sae, x: &[f64], mode: SteerMode, edits: &[FeatureEdit]) -> Vec<f64> {
    let w = sae.weights();
    let (w_enc, w_dec) = (rows(&w.w_enc), rows(&w.w_dec));
    let b_enc: Vec<f64> = rows(&w.b_enc.unsqueeze(0).unwrap()).remove(0);
    let b_dec: Vec<f64> = rows(&w.b_dec.unsqueeze(0).unwrap()).remove(0);
    let (normed, scale) = normalize(x, sae.config().normalization);
    let activation = |f: usize| {
        let pre: f64 = (0..D_IN)
            .map(|i| (normed[i] - b_dec[i]) * w_enc[i][f])
            .sum::<f64>()
            + b_enc[f];
        pre.max(0.0)
    };
    let mut out = x.to_vec();
    for edit in edits {
        let f = edit.feature as usize;
        let change = match mode {
            SteerMode::Add => f64::from(edit.value),
            SteerMode::Clamp => f64::from(edit.value) - activation(f),
        };
        for i in 0..D_IN {
            out[i] += change * w_dec[f][i] * scale;
        }
    }
    out
}

#[test]
fn steering_moves_the_residual_by_the_change_in_the_reconstruction() {
    let mut rng = SplitMix64(9);
    let xs = Tensor::from_vec(
        random(&mut rng, 2 * 3 * D_IN, 4.0),
        (2, 3, D_IN),
        &Device::Cpu,
    )
    .unwrap();
    let tokens = rows(&xs.reshape((6, D_IN)).unwrap());
    let edits = [
        FeatureEdit {
            feature: 3,
            value: 2.5,
        },
        FeatureEdit {
            feature: 11,
            value: -1.5,
        },
    ];
    for normalization in [
        Normalization::None,
        Normalization::ConstantNormRescale,
        Normalization::LayerNorm,
    ] {
        let sae = sae(normalization);
        for mode in [SteerMode::Add, SteerMode::Clamp] {
            let steering = Steering::new(&sae, mode, &edits, DType::F32, &Device::Cpu).unwrap();
            let got = steering.apply(&xs).unwrap();
            assert_eq!(got.dims(), xs.dims());
            let got = rows(&got.reshape((6, D_IN)).unwrap());
            for (token, row) in tokens.iter().zip(&got) {
                let want = expected(&sae, token, mode, &edits);
                for (a, b) in row.iter().zip(&want) {
                    assert!(
                        (a - b).abs() < 1e-4,
                        "{normalization:?} {mode:?}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn clamping_twice_or_beyond_the_sae_is_refused() {
    let sae = sae(Normalization::None);
    let edit = |feature, value| FeatureEdit { feature, value };
    let new = |mode, edits: &[FeatureEdit]| {
        Steering::new(&sae, mode, edits, DType::F32, &Device::Cpu)
            .err()
            .map(|e| e.to_string())
    };
    assert!(new(SteerMode::Clamp, &[edit(2, 1.0), edit(2, 3.0)])
        .unwrap()
        .contains("clamped twice"));
    // Adding twice is a sum, and allowed.
    assert_eq!(new(SteerMode::Add, &[edit(2, 1.0), edit(2, 3.0)]), None);
    assert!(new(SteerMode::Add, &[edit(16, 1.0)])
        .unwrap()
        .contains("the SAE has 16 features"));
    assert!(new(SteerMode::Add, &[edit(1, f32::NAN)])
        .unwrap()
        .contains("not finite"));
    assert!(new(SteerMode::Add, &[]).unwrap().contains("no feature"));
}
