//! Steered generation against Hugging Face transformers on the tiny Gemma-2: the greedy tokens
//! and the logits before each token, unsteered, with two features added, and with one
//! clamped, at `blocks.1.hook_resid_post` (the output of HF's decoder layer 1, where the
//! reference's forward hook sits). `scripts/make_steering_reference.py` made the SAE
//! (`tests/fixtures/tiny-gemma2-sae`) and the reference; the edits are read from the file's
//! metadata so the two sides cannot drift apart.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use saectl::model::{generate, Gemma2, GenerateConfig, HookEdit, HookPoint, Sampling};
use saectl::probe::{FeatureEdit, SteerMode, Steering};
use saectl::sae::import::load_any;

use super::common::{fixture_dir, relative_error, tiny_model};

/// f32 on both sides; 16 cached steps, each summing in another order than PyTorch.
const TOLERANCE: f32 = 1e-5;

struct Reference {
    tensors: HashMap<String, Tensor>,
    metadata: HashMap<String, String>,
}

fn reference() -> Reference {
    let path = fixture_dir().join("steering_reference.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    Reference {
        tensors: candle_core::safetensors::load(&path, &Device::Cpu).unwrap(),
        metadata: header.metadata().clone().unwrap_or_default(),
    }
}

impl Reference {
    fn ids(&self, name: &str) -> Vec<u32> {
        let t = self.tensors[name].to_dtype(DType::U32).unwrap();
        t.to_vec1().unwrap()
    }

    /// `[[feature, value], ...]` (add) or `[feature, value]` (clamp) from the metadata.
    fn edits(&self, case: &str) -> Vec<FeatureEdit> {
        let value: serde_json::Value = serde_json::from_str(&self.metadata[case]).unwrap();
        let pairs = match case {
            "clamp" => vec![value],
            _ => value.as_array().unwrap().clone(),
        };
        pairs
            .iter()
            .map(|pair| FeatureEdit {
                feature: pair[0].as_u64().unwrap() as u32,
                value: pair[1].as_f64().unwrap() as f32,
            })
            .collect()
    }
}

/// The steering of `case`, or `None` for the unsteered one.
fn steering(reference: &Reference, case: &str) -> Option<Steering> {
    let sae_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma2-sae");
    let sae = load_any(&sae_dir, &Device::Cpu).unwrap();
    let mode = match case {
        "plain" => return None,
        "add" => SteerMode::Add,
        _ => SteerMode::Clamp,
    };
    let edits = reference.edits(case);
    Some(Steering::new(&sae, mode, &edits, DType::F32, &Device::Cpu).unwrap())
}

/// The logits before each of `tokens`, read through the KV cache as generation reads them:
/// the prompt in one pass, then the tokens one at a time. `[tokens, vocab]`.
fn cached_logits(
    model: &Gemma2,
    prompt: &[u32],
    tokens: &[u32],
    edit: Option<&HookEdit>,
) -> Tensor {
    let mut cache = model.new_kv_cache();
    let mut rows = Vec::new();
    let mut input = prompt.to_vec();
    for &token in tokens {
        let ids = Tensor::new(input.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = model.logits_cached_with(&ids, &mut cache, edit).unwrap();
        rows.push(logits.i((0, input.len() - 1)).unwrap());
        input = vec![token];
    }
    Tensor::stack(&rows, 0).unwrap()
}

#[test]
fn steered_greedy_generation_matches_hugging_face() {
    let model = tiny_model(None);
    let reference = reference();
    let hook: HookPoint = reference.metadata["hook"].parse().unwrap();
    assert_eq!(hook.to_string(), "blocks.1.hook_resid_post");
    let new_tokens: usize = reference.metadata["new_tokens"].parse().unwrap();
    let config = GenerateConfig {
        max_new_tokens: new_tokens,
        sampling: Sampling::Greedy,
        stop_tokens: vec![],
    };
    for case in ["plain", "add", "clamp"] {
        let steering = steering(&reference, case);
        let apply = |xs: &Tensor| steering.as_ref().unwrap().apply(xs);
        let edit = HookEdit { hook, edit: &apply };
        let edit = steering.as_ref().map(|_| &edit);
        for p in 0..2 {
            let prompt = reference.ids(&format!("prompt_{p}"));
            let expected = reference.ids(&format!("{case}_{p}_tokens"));
            let generated = generate(&model, &prompt, &config, edit).unwrap();
            assert_eq!(generated.tokens, expected, "{case}, prompt {p}");

            let want = &reference.tensors[&format!("{case}_{p}_logits")];
            let got = cached_logits(&model, &prompt, &expected, edit);
            let error = relative_error(&got, want);
            println!("{case}, prompt {p}: max relative error of the logits {error:.1e}");
            assert!(
                error < TOLERANCE,
                "{case}, prompt {p}: relative error {error:e}"
            );
            for step in 0..new_tokens {
                let error = relative_error(&got.i(step).unwrap(), &want.i(step).unwrap());
                assert!(
                    error < TOLERANCE,
                    "{case}, prompt {p}, step {step}: {error:e}"
                );
            }
        }
    }
}

/// The fixture has teeth: the steered logits are far from the unsteered ones, and steering
/// one block later than HF's hook (at `resid_pre` of block 1 instead of its output) is caught.
#[test]
fn the_reference_tells_steering_apart_and_pins_the_hook() {
    let model = tiny_model(None);
    let reference = reference();
    let prompt = reference.ids("prompt_0");
    let tokens = reference.ids("add_0_tokens");
    let steering = steering(&reference, "add").unwrap();
    let apply = |xs: &Tensor| steering.apply(xs);
    let want = &reference.tensors["add_0_logits"];
    let plain = cached_logits(&model, &prompt, &tokens, None);
    assert!(relative_error(&plain, want) > 1e-3);
    let early = HookEdit {
        hook: "blocks.1.hook_resid_pre".parse().unwrap(),
        edit: &apply,
    };
    let misplaced = cached_logits(&model, &prompt, &tokens, Some(&early));
    let error = relative_error(&misplaced, want);
    assert!(error > 1e-3, "steering at the wrong site passes: {error:e}");
}
