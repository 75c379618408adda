//! What `saectl collect` writes, byte for byte: `collection_summary.json` and the top
//! feature's `feature_XXXXX_samples.json` of a deterministic collection, against
//! tests/golden/collect/ (the JSON contract of DESIGN §3.2; `UPDATE_DOCS=1` rewrites them).
//!
//! The input is made so that no machine can compute it differently: activations and encoder
//! weights are small multiples of 1/8, so every sum in the encoder is exact in f32 whatever
//! order a CPU's matrix kernel adds in. Machine-dependent text — the temporary folder, the
//! repository's path, the version — is replaced by placeholders before comparing.

use std::path::Path;

use candle_core::{Device, Tensor};
use saectl::cache::{CacheDtype, CacheSpec, CacheWriter};
use saectl::sae::checkpoint::{save, CheckpointMeta};
use saectl::sae::{Sae, SaeConfig, SaeKind, SaeWeights};
use saectl::samples::SamplesDir;

use super::util::{assert_golden, fixture, path_str, Saectl};

const D_IN: usize = 4;
const D_SAE: usize = 8;
const SEQUENCES: usize = 6;
const SEQ_LEN: usize = 16;

/// A multiple of 1/8 in [-1, 1] from `i`.
fn eighths(i: usize, mul: usize, add: usize) -> f32 {
    ((i * mul + add) % 17) as f32 / 8.0 - 1.0
}

/// Six sequences of the fixture tokenizer's ids (BOS first) and their activations.
fn write_cache(dir: &Path) {
    let spec = CacheSpec {
        model: "synthetic".into(),
        hook_point: "blocks.0.hook_resid_post".into(),
        d_in: D_IN,
        seq_len: SEQ_LEN,
        dtype: CacheDtype::F32,
        special_token_ids: vec![0, 1, 2, 3],
        source: Default::default(),
    };
    let mut writer = CacheWriter::create_or_resume(dir, spec, 4, None).unwrap();
    let tokens: Vec<u32> = (0..SEQUENCES * SEQ_LEN)
        .map(|t| match t % SEQ_LEN {
            0 => 2,
            _ => 4 + (t * 7 % 90) as u32,
        })
        .collect();
    let values: Vec<f32> = (0..SEQUENCES * SEQ_LEN * D_IN)
        .map(|i| eighths(i, 5, 3))
        .collect();
    let acts = Tensor::from_vec(values, (SEQUENCES, SEQ_LEN, D_IN), &Device::Cpu).unwrap();
    writer.push(&tokens, &acts).unwrap();
    writer.finish(true).unwrap();
}

/// A TopK SAE (k 2) whose encoder is made of eighths, biases zero.
fn write_sae(dir: &Path) {
    let mut config = SaeConfig::new(SaeKind::TopK, D_IN, D_SAE, Some(2));
    config.hook_name = Some("blocks.0.hook_resid_post".into());
    let matrix = |rows: usize, cols: usize, mul: usize| {
        let values: Vec<f32> = (0..rows * cols).map(|i| eighths(i, mul, 1)).collect();
        Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap()
    };
    let weights = SaeWeights {
        w_enc: matrix(D_IN, D_SAE, 3),
        b_enc: Tensor::zeros(D_SAE, candle_core::DType::F32, &Device::Cpu).unwrap(),
        w_dec: matrix(D_SAE, D_IN, 11),
        b_dec: Tensor::zeros(D_IN, candle_core::DType::F32, &Device::Cpu).unwrap(),
        threshold: None,
    };
    let sae = Sae::new(config.clone(), weights).unwrap();
    save(dir, &sae, &CheckpointMeta::new(config)).unwrap();
}

/// `bytes` with the machine's paths and the version replaced by placeholders.
fn normalized(bytes: &[u8], tmp: &Path) -> Vec<u8> {
    let repo = env!("CARGO_MANIFEST_DIR");
    let tmp = tmp.canonicalize().unwrap();
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace(path_str(&tmp), "<tmp>")
        .replace(repo, "<repo>")
        .replace(
            &format!("\"saectl_version\": \"{}\"", env!("CARGO_PKG_VERSION")),
            "\"saectl_version\": \"<version>\"",
        )
        .into_bytes()
}

#[test]
fn collect_writes_the_golden_summary_and_feature_file() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().canonicalize().unwrap();
    let (cache, sae, out) = (dir.join("cache"), dir.join("sae"), dir.join("samples"));
    write_cache(&cache);
    write_sae(&sae);
    Saectl::new([
        "collect",
        "--checkpoint",
        path_str(&sae),
        "--out",
        path_str(&out),
    ])
    .args(["--activations", path_str(&cache), "--device", "cpu"])
    .args(["--tokenizer", &fixture("tokenizer/tokenizer.json")])
    .args([
        "--max-samples-per-feature",
        "4",
        "--samples-per-feature-to-save",
        "3",
    ])
    .args([
        "--sample-activation-threshold",
        "0",
        "--interval-count",
        "2",
    ])
    .args(["--samples-per-interval", "2"])
    .ok();
    let folder = SamplesDir::new(&out);
    let summary = std::fs::read(folder.summary()).unwrap();
    assert_golden(
        "collect/collection_summary.json",
        &normalized(&summary, &dir),
    );
    let top = folder.read_summary().unwrap().unwrap().features_saved[0];
    let feature = std::fs::read(folder.feature(top)).unwrap();
    let name = folder.feature(top);
    let name = name.file_name().unwrap().to_str().unwrap();
    assert_golden(&format!("collect/{name}"), &normalized(&feature, &dir));
}
