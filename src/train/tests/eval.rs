//! The loss-recovered evaluation on the tiny Gemma-2: the clean loss equals a cross-entropy
//! computed by hand from the model's logits, an exact SAE recovers all of the loss, a zero SAE
//! none of it, and an SAE that outputs the mean activation none against mean ablation.

use candle_core::{DType, Device, Tensor};

use super::*;
use crate::model::{Gemma2, HookPoint};
use crate::sae::{Sae, SaeConfig, SaeWeights};
use crate::train::corpus::WindowCursor;
use crate::train::eval::CeEval;

const SEQ_LEN: usize = 16;
const SEQUENCES: u64 = 6;

/// The first six windows of the fixture corpus, as a live run would hold them out.
fn eval_tokens() -> Vec<u32> {
    let (source, tokenizer) = fixture_text();
    WindowCursor::new(source, tokenizer, SEQ_LEN, SEQUENCES, None)
        .held_out_rows()
        .unwrap()
}

/// Mean next-token cross-entropy from `model.logits`, with an f64 log-sum-exp on the host.
fn hand_ce(model: &Gemma2, tokens: &[u32]) -> f64 {
    let rows = tokens.len() / SEQ_LEN;
    let ids = Tensor::from_slice(tokens, (rows, SEQ_LEN), &Device::Cpu).unwrap();
    let logits = model.logits(&ids).unwrap().to_vec3::<f32>().unwrap();
    let (mut total, mut count) = (0f64, 0usize);
    for (row, row_logits) in logits.iter().enumerate() {
        for t in 0..SEQ_LEN - 1 {
            let l = &row_logits[t];
            let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max + l.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            total += lse - l[tokens[row * SEQ_LEN + t + 1] as usize] as f64;
            count += 1;
        }
    }
    total / count as f64
}

/// A ReLU SAE of width `2d` with `W_enc = [I, −I]`, `W_dec = [I; −I]` and no biases:
/// `relu(x) − relu(−x) = x`, so it reconstructs every input exactly.
fn identity_sae(d: usize) -> Sae {
    let mut w_enc = vec![0f32; d * 2 * d]; // [d, 2d]
    let mut w_dec = vec![0f32; 2 * d * d]; // [2d, d]
    for i in 0..d {
        w_enc[i * 2 * d + i] = 1.0;
        w_enc[i * 2 * d + d + i] = -1.0;
        w_dec[i * d + i] = 1.0;
        w_dec[(d + i) * d + i] = -1.0;
    }
    let weights = SaeWeights {
        w_enc: Tensor::from_vec(w_enc, (d, 2 * d), &Device::Cpu).unwrap(),
        b_enc: Tensor::zeros(2 * d, DType::F32, &Device::Cpu).unwrap(),
        w_dec: Tensor::from_vec(w_dec, (2 * d, d), &Device::Cpu).unwrap(),
        b_dec: Tensor::zeros(d, DType::F32, &Device::Cpu).unwrap(),
        threshold: None,
    };
    Sae::new(SaeConfig::new(SaeKind::Relu, d, 2 * d, None), weights).unwrap()
}

/// An SAE whose reconstruction is `b_dec` for every token (all weights zero).
fn constant_sae(b_dec: Vec<f32>) -> Sae {
    let d = b_dec.len();
    let weights = SaeWeights {
        w_enc: Tensor::zeros((d, 4), DType::F32, &Device::Cpu).unwrap(),
        b_enc: Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
        w_dec: Tensor::zeros((4, d), DType::F32, &Device::Cpu).unwrap(),
        b_dec: Tensor::from_vec(b_dec, d, &Device::Cpu).unwrap(),
        threshold: None,
    };
    Sae::new(SaeConfig::new(SaeKind::Relu, d, 4, None), weights).unwrap()
}

#[test]
fn clean_loss_equals_a_hand_computation() {
    let model = tiny_model();
    let tokens = eval_tokens();
    let hook: HookPoint = "blocks.1.hook_resid_post".parse().unwrap();
    let eval = CeEval::new(model.clone(), hook, hook, &tokens, SEQ_LEN).unwrap();
    let result = eval.evaluate(&identity_sae(64)).unwrap();
    let expected = hand_ce(&model, &tokens);
    assert!(
        (result.ce_clean - expected).abs() < 1e-5 * expected,
        "clean CE {} vs by hand {expected}",
        result.ce_clean
    );
    assert_eq!(eval.sequences(), SEQUENCES as usize);
}

#[test]
fn an_exact_sae_recovers_everything_and_ablations_nothing() {
    let model = tiny_model();
    let tokens = eval_tokens();
    let hook: HookPoint = "blocks.1.hook_resid_post".parse().unwrap();
    let eval = CeEval::new(model.clone(), hook, hook, &tokens, SEQ_LEN).unwrap();
    let exact = eval.evaluate(&identity_sae(64)).unwrap();
    assert_eq!(
        exact.ce_sae, exact.ce_clean,
        "the identity splice changed the loss"
    );
    assert_eq!(exact.recovered(), Some(1.0));
    assert_eq!(exact.recovered_mean(), Some(1.0));
    assert!((exact.ce_zero - exact.ce_clean).abs() > 0.1, "{exact:?}");
    let zero = eval.evaluate(&constant_sae(vec![0.0; 64])).unwrap();
    assert_eq!(zero.ce_sae, zero.ce_zero);
    assert_eq!(zero.recovered(), Some(0.0));
    // The mean activation over every evaluation token, computed here on the host.
    let ids = Tensor::from_slice(&tokens, (SEQUENCES as usize, SEQ_LEN), &Device::Cpu).unwrap();
    let acts = model.forward_to_hook(&ids, &hook).unwrap();
    let acts = host(&acts);
    let n = acts.len() / 64;
    let mean: Vec<f32> = (0..64)
        .map(|j| ((0..n).map(|t| acts[t * 64 + j] as f64).sum::<f64>() / n as f64) as f32)
        .collect();
    let mean = eval.evaluate(&constant_sae(mean)).unwrap();
    let recovered = mean.recovered_mean().unwrap();
    assert!(
        recovered.abs() < 1e-3,
        "mean SAE recovered {recovered} against mean ablation"
    );
}

#[test]
fn a_transcoder_is_spliced_at_its_output_hook() {
    let model = tiny_model();
    let tokens = eval_tokens();
    let hook_in: HookPoint = "blocks.1.ln2.hook_normalized".parse().unwrap();
    let splice: HookPoint = "blocks.1.hook_mlp_out".parse().unwrap();
    let eval = CeEval::new(model.clone(), hook_in, splice, &tokens, SEQ_LEN).unwrap();
    let zero = eval.evaluate(&constant_sae(vec![0.0; 64])).unwrap();
    assert_eq!(zero.recovered(), Some(0.0));
    assert!((zero.ce_clean - hand_ce(&model, &tokens)).abs() < 1e-5 * zero.ce_clean);
    // Zeroing the MLP's output is not zeroing the residual stream.
    let resid: HookPoint = "blocks.1.hook_resid_post".parse().unwrap();
    let resid_eval = CeEval::new(model, resid, resid, &tokens, SEQ_LEN).unwrap();
    let resid_zero = resid_eval.evaluate(&constant_sae(vec![0.0; 64])).unwrap();
    assert!(
        (zero.ce_zero - resid_zero.ce_zero).abs() > 1e-3,
        "{zero:?} {resid_zero:?}"
    );
}
