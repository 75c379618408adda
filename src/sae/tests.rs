//! Every architecture against the numpy reference (`scripts/make_sae_fixtures.py`), the CSR
//! output against the dense encoding, checkpoint round trips, and each bad input's error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::checkpoint::{self, CheckpointMeta};
use super::import::{self, load_any, SaeFormat};
use super::*;
use crate::util::rng::SplitMix64;

/// f32 against the f64 numpy reference on values of order 1.
const TOL: f32 = 1e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sae")
}

fn expected() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("expected.safetensors"), &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_err(a: &Tensor, b: &Tensor) -> f32 {
    flat(a)
        .iter()
        .zip(flat(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Loads `path`, checks encode, reconstruct and the CSR against `<name>_acts` / `<name>_recon`.
fn check_reference(path: &Path, name: &str, kind: SaeKind) -> (f32, f32) {
    let sae = load_any(path, &Device::Cpu).unwrap();
    assert_eq!(sae.config().kind, kind, "{name}");
    let ex = expected();
    let x = &ex["x"];
    let acts = sae.encode(x).unwrap();
    let recon = sae.reconstruct(x).unwrap();
    let (acts_err, recon_err) = (
        max_err(&acts, &ex[&format!("{name}_acts")]),
        max_err(&recon, &ex[&format!("{name}_recon")]),
    );
    eprintln!("{name}: max |acts − ref| = {acts_err:.2e}, max |recon − ref| = {recon_err:.2e}");
    assert!(
        acts_err < TOL && recon_err < TOL,
        "{name}: {acts_err} {recon_err}"
    );
    // Same support as the reference (no latent switched on or off by rounding).
    let support = |t: &Tensor| flat(t).iter().map(|&v| v > 0.0).collect::<Vec<_>>();
    assert_eq!(
        support(&acts),
        support(&ex[&format!("{name}_acts")]),
        "{name}"
    );
    let sparse = sae.encode_sparse(x).unwrap();
    assert_eq!(sparse.to_dense(), flat(&acts), "{name}: CSR ≠ dense");
    assert_eq!(sparse.num_tokens(), 16);
    assert_eq!(device_csr(&sae, x), sparse, "{name}: device CSR ≠ host CSR");
    (acts_err, recon_err)
}

/// `encode_sparse` through the device method (forced on the CPU, device ties reversed).
fn device_csr(sae: &Sae, x: &Tensor) -> SparseActs {
    let _forced = extract::ForceDevicePath::with_reversed_ties();
    sae.encode_sparse(x).unwrap()
}

/// The collector's CSR through the device method equals the host's at SAE widths, for every
/// architecture, with sparse and (young ReLU) half-dense activations.
#[test]
fn encode_sparse_on_the_device_path_equals_the_host_at_16k() {
    let mut rng = SplitMix64(21);
    let (d_in, d_sae, n) = (8, 16384, 5);
    let xs: Vec<f32> = (0..n * d_in).map(|_| rng.uniform_sym()).collect();
    let xs = Tensor::from_vec(xs, (n, d_in), &Device::Cpu).unwrap();
    for kind in SaeKind::ALL {
        let mut cfg = SaeConfig::new(kind, d_in, d_sae, kind.uses_k().then_some(32));
        if kind == SaeKind::Matryoshka {
            cfg.group_sizes = vec![4096, 12288];
        }
        let mut weights = SaeWeights::init(&cfg, 5, &Device::Cpu).unwrap();
        if kind.has_threshold() {
            // About 1% of the latents above θ (pre-activations have a std of ~0.6 here).
            let theta: Vec<f32> = (0..d_sae).map(|f| 1.4 + (f % 7) as f32 * 0.01).collect();
            weights.threshold = Some(Tensor::from_vec(theta, d_sae, &Device::Cpu).unwrap());
        }
        let sae = Sae::new(cfg, weights).unwrap();
        let host = sae.encode_sparse(&xs).unwrap();
        assert_eq!(device_csr(&sae, &xs), host, "{kind}");
        let active = host.values.len() / n;
        eprintln!("{kind}: {active} active per token");
        assert!(active > 0, "{kind}");
    }
}

/// The CPU's one-pass gate (`Sae::encode_sparse` of the gated architectures) equals the
/// general activation's CSR bit for bit: θ negative, zero, positive and equal to a value's
/// pre-activation, a bias, and `b_dec` subtracted from the input.
#[test]
fn the_host_gate_equals_the_general_activation() {
    let mut rng = SplitMix64(8);
    let (d_in, d_sae, n) = (6, 257, 40);
    let mut random = |len: usize, scale: f32| -> Vec<f32> {
        (0..len).map(|_| rng.uniform_sym() * scale).collect()
    };
    let xs = Tensor::from_vec(random(n * d_in, 2.0), (n, d_in), &Device::Cpu).unwrap();
    let (b_enc, b_dec) = (random(d_sae, 0.3), random(d_in, 0.3));
    for kind in [
        SaeKind::Relu,
        SaeKind::JumpRelu,
        SaeKind::BatchTopK,
        SaeKind::Matryoshka,
    ] {
        let mut cfg = SaeConfig::new(kind, d_in, d_sae, kind.uses_k().then_some(8));
        if kind == SaeKind::Matryoshka {
            cfg.group_sizes = vec![57, 200];
        }
        cfg.apply_b_dec_to_input = true;
        let mut weights = SaeWeights::init(&cfg, 3, &Device::Cpu).unwrap();
        weights.b_enc = Tensor::from_vec(b_enc.clone(), d_sae, &Device::Cpu).unwrap();
        weights.b_dec = Tensor::from_vec(b_dec.clone(), d_in, &Device::Cpu).unwrap();
        if kind.has_threshold() {
            let plain = Sae::new(cfg.clone(), weights.clone()).unwrap();
            let (normed, _) = plain.normalize_input(&xs).unwrap();
            let pre = flat(&plain.pre_activations(&normed).unwrap());
            let theta: Vec<f32> = (0..d_sae)
                .map(|f| match f % 4 {
                    0 => -0.5,
                    1 => 0.0,
                    // Exactly one token's pre-activation: that value is not above it.
                    2 => pre[(f % n) * d_sae + f],
                    _ => 0.3,
                })
                .collect();
            weights.threshold = Some(Tensor::from_vec(theta, d_sae, &Device::Cpu).unwrap());
        }
        let sae = Sae::new(cfg, weights).unwrap();
        let general = SparseActs::from_dense(&sae.encode(&xs).unwrap()).unwrap();
        let host = sae.encode_sparse(&xs).unwrap();
        assert_eq!(host, general, "{kind}");
        assert!(host.values.len() > 10 * n, "{kind}: too few active to tell");
    }
}

#[test]
fn sae_lens_standard_matches_reference() {
    check_reference(
        &fixtures().join("saelens_standard"),
        "standard",
        SaeKind::Relu,
    );
}

#[test]
fn sae_lens_topk_matches_reference() {
    check_reference(&fixtures().join("saelens_topk"), "topk", SaeKind::TopK);
}

#[test]
fn sae_lens_batchtopk_matches_reference() {
    check_reference(
        &fixtures().join("saelens_batchtopk"),
        "batchtopk",
        SaeKind::BatchTopK,
    );
}

#[test]
fn sae_lens_jumprelu_matches_reference() {
    check_reference(
        &fixtures().join("saelens_jumprelu"),
        "jumprelu",
        SaeKind::JumpRelu,
    );
}

#[test]
fn gemma_scope_npz_matches_reference() {
    let dir = fixtures().join("gemma_scope");
    assert_eq!(import::detect(&dir).unwrap(), SaeFormat::GemmaScope);
    check_reference(&dir, "gemma_scope", SaeKind::JumpRelu);
    check_reference(&dir.join("params.npz"), "gemma_scope", SaeKind::JumpRelu);
}

#[test]
fn gemma_scope_origin_from_hub_path() {
    let path = Path::new("x/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz");
    let (hook, model) = import::gemma_scope_origin(path);
    assert_eq!(hook.as_deref(), Some("blocks.12.hook_resid_post"));
    assert_eq!(model.as_deref(), Some("google/gemma-2-2b"));
}

#[test]
fn topk_keeps_k_per_token_and_matryoshka_is_batchtopk_at_inference() {
    let sae = load_any(&fixtures().join("saelens_topk"), &Device::Cpu).unwrap();
    let sparse = sae.encode_sparse(&expected()["x"]).unwrap();
    assert!(sparse.offsets.windows(2).all(|w| w[1] - w[0] <= 5));
    // A Matryoshka SAE with BatchTopK's weights encodes exactly as BatchTopK.
    let batch = load_any(&fixtures().join("saelens_batchtopk"), &Device::Cpu).unwrap();
    let (mut cfg, weights) = batch.clone().into_parts();
    cfg.kind = SaeKind::Matryoshka;
    cfg.group_sizes = vec![8, 24];
    let matryoshka = Sae::new(cfg, weights).unwrap();
    let x = &expected()["x"];
    assert_eq!(
        flat(&matryoshka.encode(x).unwrap()),
        flat(&batch.encode(x).unwrap())
    );
}

/// Every field of `cfg.json` SAELens's loader and `ActivationsStore.from_sae` read, pinned:
/// what a SAELens user gets must describe the SAE and how saectl packed its training text.
#[test]
fn cfg_json_pins_the_sae_lens_fields() {
    let mut cfg = SaeConfig::new(SaeKind::TopK, 8, 32, Some(4));
    cfg.hook_name = Some("blocks.3.hook_resid_post".into());
    cfg.model_name = Some("google/gemma-2-2b".into());
    let sae = Sae::new(
        cfg.clone(),
        SaeWeights::init(&cfg, 7, &Device::Cpu).unwrap(),
    )
    .unwrap();
    let mut meta = CheckpointMeta::new(cfg);
    meta.context_size = Some(128);
    meta.dataset_path = Some("/data/corpus.jsonl".into());
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(dir.path(), &sae, &meta).unwrap();
    let got: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cfg.json")).unwrap()).unwrap();
    let want = serde_json::json!({
        "architecture": "topk", "d_in": 8, "d_sae": 32, "k": 4,
        "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 4},
        "dtype": "float32", "device": "cpu",
        "model_name": "google/gemma-2-2b",
        "hook_name": "blocks.3.hook_resid_post", "hook_layer": 3, "hook_head_index": null,
        "apply_b_dec_to_input": true, "finetuning_scaling_factor": false,
        "normalize_activations": "none",
        "context_size": 128, "dataset_path": "/data/corpus.jsonl",
        "sae_lens_training_version": null,
        // How saectl packs text: a BOS before every document, none forced at a row's start.
        "prepend_bos": false, "sequence_separator_token": "bos",
        "disable_concat_sequences": false, "exclude_special_tokens": false,
        "seqpos_slice": [null],
        "model_class_name": "HookedTransformer",
        "model_from_pretrained_kwargs": {"center_writing_weights": false},
    });
    assert_eq!(got, want);
}

#[test]
fn checkpoint_round_trips_every_kind() {
    let x = &expected()["x"];
    for kind in SaeKind::ALL {
        let mut cfg = SaeConfig::new(kind, 8, 32, kind.uses_k().then_some(4));
        if kind == SaeKind::Matryoshka {
            cfg.group_sizes = vec![4, 12, 16];
        }
        cfg.hook_name = Some("blocks.3.hook_resid_post".into());
        cfg.normalization = Normalization::LayerNorm;
        let mut weights = SaeWeights::init(&cfg, 7, &Device::Cpu).unwrap();
        weights.b_enc = (weights.b_enc + 0.05).unwrap();
        let sae = Sae::new(cfg, weights).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut meta = CheckpointMeta::new(sae.config().clone());
        meta.training.insert("step".into(), 12.into());
        checkpoint::save(dir.path(), &sae, &meta).unwrap();
        let (back, back_meta) = checkpoint::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(back_meta, meta, "{kind}");
        assert_eq!(back.config(), sae.config());
        assert_eq!(
            flat(&back.encode(x).unwrap()),
            flat(&sae.encode(x).unwrap())
        );
        // SAELens sees threshold kinds as jumprelu, and load_any finds saectl.json first.
        let cfg_json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("cfg.json")).unwrap()).unwrap();
        let lens = import::parse_sae_lens_cfg(&cfg_json).unwrap();
        let expected_kind = if kind.has_threshold() {
            SaeKind::JumpRelu
        } else {
            kind
        };
        assert_eq!(lens.kind, expected_kind, "{kind}");
        assert_eq!(cfg_json["hook_layer"], 3);
        assert_eq!(
            load_any(dir.path(), &Device::Cpu).unwrap().config().kind,
            kind
        );
    }
}

#[test]
fn half_precision_weights_widen_and_integers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("saelens_standard");
    std::fs::copy(src.join("cfg.json"), dir.path().join("cfg.json")).unwrap();
    let mut tensors = checkpoint::read_safetensors(&src.join("sae_weights.safetensors")).unwrap();
    for t in tensors.values_mut() {
        *t = t.to_dtype(DType::BF16).unwrap();
    }
    let weights = dir.path().join("sae_weights.safetensors");
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let sae = load_any(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(sae.weights().w_enc.dtype(), DType::F32);
    tensors.insert(
        "b_dec".into(),
        Tensor::zeros(8, DType::U32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let msg = format!("{:#}", load_any(dir.path(), &Device::Cpu).unwrap_err());
    assert!(
        msg.contains("b_dec") && msg.contains("floating point"),
        "{msg}"
    );
}

/// A copy of a SAELens fixture whose cfg.json and tensors the test then breaks.
fn broken_copy(
    edit_cfg: impl FnOnce(&mut serde_json::Value),
    edit_tensors: impl FnOnce(&mut HashMap<String, Tensor>),
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("saelens_jumprelu");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("cfg.json")).unwrap()).unwrap();
    edit_cfg(&mut cfg);
    std::fs::write(dir.path().join("cfg.json"), cfg.to_string()).unwrap();
    let mut tensors = checkpoint::read_safetensors(&src.join("sae_weights.safetensors")).unwrap();
    edit_tensors(&mut tensors);
    candle_core::safetensors::save(&tensors, dir.path().join("sae_weights.safetensors")).unwrap();
    format!("{:#}", load_any(dir.path(), &Device::Cpu).unwrap_err())
}

#[test]
fn bad_inputs_give_clear_errors() {
    let missing = broken_copy(|_| {}, |t| drop(t.remove("threshold")));
    assert!(
        missing.contains("no tensor threshold") && missing.contains("sae_weights"),
        "{missing}"
    );
    let shape = broken_copy(
        |_| {},
        |t| {
            t.insert(
                "W_dec".into(),
                Tensor::zeros((32, 7), DType::F32, &Device::Cpu).unwrap(),
            );
        },
    );
    assert!(shape.contains("W_dec") && shape.contains("[32, 7]") && shape.contains("[32, 8]"));
    let norm = broken_copy(
        |c| c["normalize_activations"] = "expected_average_only_in".into(),
        |_| {},
    );
    assert!(
        norm.contains("expected_average_only_in") && norm.contains("cfg.json"),
        "{norm}"
    );
    let arch = broken_copy(|c| c["architecture"] = "gated".into(), |_| {});
    assert!(
        arch.contains("unsupported SAELens architecture \"gated\""),
        "{arch}"
    );
    let scale = broken_copy(
        |_| {},
        |t| {
            t.insert(
                "scaling_factor".into(),
                Tensor::full(2f32, 32, &Device::Cpu).unwrap(),
            );
        },
    );
    assert!(scale.contains("scaling_factor"), "{scale}");
    let k = broken_copy(
        |c| {
            c["architecture"] = "topk".into();
            c["k"] = 40.into();
        },
        |_| {},
    );
    assert!(k.contains("k (40) is larger than d_sae (32)"), "{k}");
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let none = format!("{:#}", load_any(dir.path(), &Device::Cpu).unwrap_err());
    assert!(none.contains("not an SAE checkpoint"), "{none}");
    std::fs::copy(
        fixtures().join("saelens_topk/cfg.json"),
        dir.path().join("cfg.json"),
    )
    .unwrap();
    let weights = format!("{:#}", load_any(dir.path(), &Device::Cpu).unwrap_err());
    assert!(weights.contains("missing weights file") && weights.contains("sae_weights"));
    std::fs::write(dir.path().join("saectl.json"), "{").unwrap();
    let meta = format!("{:#}", load_any(dir.path(), &Device::Cpu).unwrap_err());
    assert!(meta.contains("saectl.json"), "{meta}");
    let npz = format!(
        "{:#}",
        load_any(&dir.path().join("x.npz"), &Device::Cpu).unwrap_err()
    );
    assert!(npz.contains("x.npz"), "{npz}");
}
