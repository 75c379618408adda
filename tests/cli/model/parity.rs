//! The Rust forward against Hugging Face transformers on the tiny Gemma-2
//! (`scripts/make_tiny_gemma2.py` made the fixture and the reference activations).

use candle_core::Tensor;
use saectl::model::{HookPoint, HookSite};

use super::common::{input_ids, max_abs_diff, reference, relative_error, tiny_model};

/// f32 on both sides; differences come from summation order only.
const TOLERANCE: f32 = 1e-5;

fn all_hooks(n_layers: usize) -> Vec<HookPoint> {
    (0..n_layers)
        .flat_map(|layer| HookSite::ALL.map(|site| HookPoint::new(layer, site)))
        .collect()
}

#[test]
fn every_hook_point_matches_hugging_face() {
    let model = tiny_model(None);
    let reference = reference();
    let hooks = all_hooks(model.n_layers());
    let acts = model
        .forward_to_hooks(&input_ids(&reference), &hooks)
        .unwrap();
    let mut worst = [0f32; 5];
    for (hook, act) in hooks.iter().zip(&acts) {
        let error = relative_error(act, &reference[&hook.to_string()]);
        assert!(error < TOLERANCE, "{hook}: relative error {error:e}");
        let slot = &mut worst[hook.site as usize];
        *slot = slot.max(error);
    }
    for (site, error) in HookSite::ALL.iter().zip(worst) {
        println!(
            "max relative error at blocks.*.{}: {error:.2e}",
            site.suffix()
        );
    }
}

#[test]
fn logits_match_hugging_face() {
    let model = tiny_model(None);
    let reference = reference();
    let logits = model.logits(&input_ids(&reference)).unwrap();
    let error = relative_error(&logits, &reference["logits"]);
    println!("max relative error of the logits: {error:.2e}");
    assert!(error < TOLERANCE, "logits: relative error {error:e}");
}

#[test]
fn stopping_early_gives_the_same_activations_as_a_full_pass() {
    let model = tiny_model(None);
    let ids = input_ids(&reference());
    let hooks = all_hooks(model.n_layers());
    let full = model.forward_to_hooks(&ids, &hooks).unwrap();
    for (hook, expected) in hooks.iter().zip(&full) {
        let early = model.forward_to_hook(&ids, hook).unwrap();
        assert_eq!(max_abs_diff(&early, expected), 0.0, "{hook}");
    }
}

#[test]
fn a_model_loaded_to_layer_l_reaches_hooks_up_to_l_only() {
    let partial = tiny_model(Some(2));
    assert_eq!(partial.loaded_layers(), 2);
    let full = tiny_model(None);
    let ids = input_ids(&reference());
    let hook: HookPoint = "blocks.1.hook_resid_post".parse().unwrap();
    let expected = full.forward_to_hook(&ids, &hook).unwrap();
    assert_eq!(
        max_abs_diff(&partial.forward_to_hook(&ids, &hook).unwrap(), &expected),
        0.0
    );

    let beyond: HookPoint = "blocks.2.hook_resid_pre".parse().unwrap();
    let err = partial
        .forward_to_hook(&ids, &beyond)
        .unwrap_err()
        .to_string();
    assert!(err.contains("only 2 of 4 were loaded"), "{err}");
    let err = partial.logits(&ids).unwrap_err().to_string();
    assert!(err.contains("needs all 4 layers"), "{err}");
}

#[test]
fn forward_from_a_residual_hook_reproduces_the_logits() {
    let model = tiny_model(None);
    let ids = input_ids(&reference());
    let logits = model.logits(&ids).unwrap();
    for layer in 0..model.n_layers() {
        for site in [HookSite::ResidPre, HookSite::ResidMid, HookSite::ResidPost] {
            let hook = HookPoint::new(layer, site);
            let act = model.forward_to_hook(&ids, &hook).unwrap();
            let resumed = model.forward_from_hook(&act, &hook).unwrap();
            assert_eq!(max_abs_diff(&resumed, &logits), 0.0, "{hook}");
        }
    }
}

#[test]
fn replacing_an_activation_changes_only_what_follows() {
    let model = tiny_model(None);
    let reference = reference();
    let ids = input_ids(&reference);
    let logits = model.logits(&ids).unwrap();
    for layer in 0..model.n_layers() {
        for site in HookSite::ALL {
            let hook = HookPoint::new(layer, site);
            let same = model
                .logits_with_replacement(&ids, &hook, |act| Ok(act.clone()))
                .unwrap();
            assert_eq!(max_abs_diff(&same, &logits), 0.0, "{hook}");
        }
    }
    // Zeroing the last MLP output equals resuming from resid_mid of the last block plus 0.
    let last = model.n_layers() - 1;
    let zeroed = model
        .logits_with_replacement(&ids, &HookPoint::new(last, HookSite::MlpOut), |act| {
            act.zeros_like()
        })
        .unwrap();
    let mid = &reference[&format!("blocks.{last}.hook_resid_mid")];
    let expected = model
        .forward_from_hook(mid, &HookPoint::new(last, HookSite::ResidPost))
        .unwrap();
    assert!(relative_error(&zeroed, &expected) < TOLERANCE);
    assert!(
        relative_error(&zeroed, &logits) > 1e-2,
        "the splice had no effect"
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let model = tiny_model(None);
    let hook: HookPoint = "blocks.0.hook_resid_post".parse().unwrap();
    let cpu = &candle_core::Device::Cpu;
    let out_of_vocab = Tensor::new(&[[2u32, 256]], cpu).unwrap();
    let err = model.forward_to_hook(&out_of_vocab, &hook).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    let one_dim = Tensor::new(&[2u32, 3], cpu).unwrap();
    assert!(model.forward_to_hook(&one_dim, &hook).is_err());
    let empty = Tensor::zeros((1, 0), candle_core::DType::U32, cpu).unwrap();
    assert!(model.logits(&empty).is_err());

    let too_deep: HookPoint = "blocks.4.hook_resid_pre".parse().unwrap();
    let err = model.forward_to_hook(&one_dim.unsqueeze(0).unwrap(), &too_deep);
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("valid layers are 0..=3"));

    let wrong_width = Tensor::zeros((1, 3, 32), candle_core::DType::F32, cpu).unwrap();
    assert!(model.forward_from_hook(&wrong_width, &hook).is_err());
    let ln2: HookPoint = "blocks.0.ln2.hook_normalized".parse().unwrap();
    let act = Tensor::zeros((1, 3, 64), candle_core::DType::F32, cpu).unwrap();
    let err = model.forward_from_hook(&act, &ln2).unwrap_err().to_string();
    assert!(err.contains("logits_with_replacement"), "{err}");
    let ids = Tensor::new(&[[2u32, 5, 6]], cpu).unwrap();
    let err = model
        .logits_with_replacement(&ids, &hook, |_| {
            Tensor::zeros((1, 2, 64), candle_core::DType::F32, cpu)
        })
        .unwrap_err();
    assert!(err.to_string().contains("expected [1, 3, 64]"), "{err}");
}

/// The fixture has teeth: each of candle-transformers' Gemma-2 deviations (DESIGN.md §6.2),
/// and an off-by-one window, moves the activations far beyond the tolerance.
#[test]
fn the_reference_detects_the_known_gemma2_mistakes() {
    use saectl::model::{read_config, Gemma2, LayerType};
    let dir = super::common::fixture_dir();
    let reference = reference();
    let ids = input_ids(&reference);
    let hook: HookPoint = "blocks.3.hook_resid_post".parse().unwrap();
    let base = read_config(&dir.join("config.json")).unwrap();
    let mut scale_from_head_dim = base.clone();
    scale_from_head_dim.query_pre_attn_scalar = base.head_dim as f64;
    let mut slide_everywhere = base.clone();
    slide_everywhere.layer_types = Some(vec![LayerType::SlidingAttention; 4]);
    let mut window_plus_one = base.clone();
    window_plus_one.sliding_window = base.sliding_window.map(|w| w + 1);
    let mut no_attention_cap = base.clone();
    no_attention_cap.attn_logit_softcapping = None;
    for (what, config) in [
        ("scale from head_dim", scale_from_head_dim),
        ("sliding on every layer", slide_everywhere),
        ("window one too wide", window_plus_one),
        ("no attention soft-cap", no_attention_cap),
    ] {
        let weights = [dir.join("model.safetensors")];
        let dtype = candle_core::DType::F32;
        let cpu = &candle_core::Device::Cpu;
        let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&weights, dtype, cpu) };
        let model = Gemma2::new(&config, 4, vb.unwrap()).unwrap();
        let act = model.forward_to_hook(&ids, &hook).unwrap();
        let error = relative_error(&act, &reference[&hook.to_string()]);
        assert!(error > 1e-3, "{what}: error {error:e} would pass");
    }
}

/// bf16 (the GPU default) runs every step and stays near the f32 reference: a smoke test of the
/// dtype plumbing (norms and softmax in f32, tables cast), not a parity claim.
#[test]
fn bf16_stays_close_to_the_reference() {
    use saectl::model::{load_model, LoadOptions, ModelSource};
    let options = LoadOptions {
        device: candle_core::Device::Cpu,
        dtype: candle_core::DType::BF16,
        layers: None,
    };
    let hub = super::common::offline_hub(std::path::Path::new("/nonexistent"));
    let source = ModelSource::Local(super::common::fixture_dir());
    let model = load_model(&source, &options, &hub).unwrap().model;
    let reference = reference();
    let ids = input_ids(&reference);
    let hook: HookPoint = "blocks.3.hook_resid_post".parse().unwrap();
    let act = model.forward_to_hook(&ids, &hook).unwrap();
    assert_eq!(act.dtype(), candle_core::DType::BF16);
    let act = act.to_dtype(candle_core::DType::F32).unwrap();
    let error = relative_error(&act, &reference[&hook.to_string()]);
    println!("bf16 relative error at {hook}: {error:.2e}");
    assert!(error < 0.1, "bf16 error {error:e}");
    let logits = model.logits(&ids).unwrap();
    assert_eq!(logits.dims(), &[2, 24, 256]);
}
