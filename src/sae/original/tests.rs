//! The original's torch checkpoints (`scripts/make_original_checkpoints.py`, written by torch)
//! against the encodings the script computed with the original's formulas.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::sae::import::{detect, load_any, SaeFormat};
use crate::sae::{Normalization, SaeKind};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/original")
        .join(path)
}

/// The one checkpoint folder under `fixture(name)/checkpoints`.
fn checkpoint_dir(name: &str) -> PathBuf {
    let dir = fixture(&format!("{name}/checkpoints"));
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.pop().unwrap()
}

fn expected(key: &str) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(json[key].clone()).unwrap()
}

/// Encodes the script's inputs and compares with its activations (f32 against f64).
fn assert_encodes_as_the_original(path: &Path, name: &str) {
    let sae = load_any(path, &Device::Cpu).unwrap();
    let x: Vec<f32> = expected("x").concat().iter().map(|&v| v as f32).collect();
    let x = Tensor::from_vec(x, (6, 64), &Device::Cpu).unwrap();
    let acts: Vec<Vec<f32>> = sae
        .encode(&x)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2()
        .unwrap();
    let want = expected(name);
    let mut active = 0;
    for (row, want_row) in acts.iter().zip(&want) {
        for (&got, &want) in row.iter().zip(want_row) {
            assert!(
                (f64::from(got) - want).abs() < 1e-4,
                "{name}: {got} vs {want}"
            );
            assert_eq!(got > 0.0, want > 0.0, "{name}: the same latents fire");
            active += usize::from(want > 0.0);
        }
    }
    assert!(active > 6 && active < 6 * 28, "{name}: {active} active");
}

#[test]
fn every_architecture_encodes_as_the_original_did() {
    for name in ["batchtopk", "matryoshka", "jumprelu"] {
        let dir = checkpoint_dir(name);
        assert_eq!(detect(&dir).unwrap(), SaeFormat::Original, "{name}");
        assert_encodes_as_the_original(&dir, name);
    }
    // The later layout: RUN/checkpoints/final.pt, RUN/config.json.
    let pt = fixture("transcoder/results/gemma-2-2b/layer2/300/checkpoints/final.pt");
    assert_eq!(detect(&pt).unwrap(), SaeFormat::Original);
    assert_encodes_as_the_original(&pt, "transcoder");
}

#[test]
fn the_config_says_what_the_tensors_are() {
    let cfg = |path: PathBuf| load_any(&path, &Device::Cpu).unwrap().config().clone();
    let batchtopk = cfg(checkpoint_dir("batchtopk"));
    assert_eq!((batchtopk.kind, batchtopk.k), (SaeKind::BatchTopK, Some(4)));
    assert_eq!(batchtopk.normalization, Normalization::LayerNorm);
    assert_eq!(
        batchtopk.hook_name.as_deref(),
        Some("blocks.2.hook_resid_post")
    );
    assert!(batchtopk.apply_b_dec_to_input);
    let matryoshka = cfg(checkpoint_dir("matryoshka"));
    assert_eq!(matryoshka.kind, SaeKind::Matryoshka);
    assert_eq!(matryoshka.group_sizes, [8, 8, 16], "from the str()-ed list");
    assert_eq!(matryoshka.normalization, Normalization::None);
    let jumprelu = cfg(checkpoint_dir("jumprelu"));
    assert_eq!(jumprelu.kind, SaeKind::JumpRelu);
    assert!(!jumprelu.apply_b_dec_to_input);
    let transcoder = cfg(fixture(
        "transcoder/results/gemma-2-2b/layer2/300/checkpoints/final.pt",
    ));
    assert_eq!(transcoder.kind, SaeKind::Matryoshka);
    assert_eq!(
        transcoder.group_sizes,
        [8, 8, 16],
        "from the cumulative prefix_sizes"
    );
    assert_eq!(
        (
            transcoder.hook_name.as_deref(),
            transcoder.hook_name_out.as_deref()
        ),
        (
            Some("blocks.2.ln2.hook_normalized"),
            Some("blocks.2.hook_mlp_out")
        )
    );
    assert!(!transcoder.apply_b_dec_to_input);
}

#[test]
fn a_state_dict_without_its_config_or_not_written_by_torch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("step_5.pt");
    std::fs::copy(checkpoint_dir("batchtopk").join("sae.pt"), &lone).unwrap();
    let err = format!("{:#}", load_any(&lone, &Device::Cpu).unwrap_err());
    assert!(
        err.contains("config.json") && err.contains("not beside it"),
        "{err}"
    );
    std::fs::write(dir.path().join("config.json"), r#"{"sae_type": "topk"}"#).unwrap();
    std::fs::write(&lone, b"not a zip").unwrap();
    let err = format!("{:#}", load_any(&lone, &Device::Cpu).unwrap_err());
    assert!(err.contains("torch state dict"), "{err}");
}
