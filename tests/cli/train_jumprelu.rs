//! `saectl train --sae-type jumprelu` on a cache of the tiny Gemma-2, then `saectl collect` on
//! the run: the flags reach the saved config, and the learnt per-latent thresholds encode in
//! collect exactly as the dense `relu(pre)·(pre > θ)` of every cached token, sorted by brute force.

use candle_core::{DType, Device};
use saectl::sae::SaeKind;
use saectl::train::{RunDir, TrainConfig};

use super::collect::assert_matches_brute_force;
use super::util::{assert_ok, cache, collect, path_str, Saectl, D_SAE};

#[test]
fn a_trained_jumprelu_run_collects_as_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, run, out) = (
        dir.path().join("cache"),
        dir.path().join("run"),
        dir.path().join("samples"),
    );
    assert_ok(&cache(&cache_dir, 300, &[]));
    let dict_size = D_SAE.to_string();
    let output = Saectl::new(["train", "--activations", path_str(&cache_dir)])
        .args(["--out", path_str(&run), "--device", "cpu"])
        .args(["--sae-type", "jumprelu", "--dict-size", &dict_size])
        .args(["--batch-size", "64", "--num-tokens", "640", "--lr", "1e-2"])
        .args(["--l0-coefficient", "0.5", "--l0-warm-up-steps", "3"])
        .args([
            "--jumprelu-bandwidth",
            "0.05",
            "--jumprelu-init-threshold",
            "0.05",
        ])
        .run();
    assert_ok(&output);
    let cfg = TrainConfig::from_json_file(&run.join("train_config.json")).unwrap();
    assert_eq!(cfg.sae_type, SaeKind::JumpRelu);
    assert_eq!(
        (cfg.l0_coefficient, cfg.l0_warm_up_steps),
        (0.5, 3),
        "flags must reach the config"
    );
    assert_eq!(
        (cfg.jumprelu_bandwidth, cfg.jumprelu_init_threshold),
        (0.05, 0.05)
    );
    let latest = RunDir::new(&run).latest_checkpoint().unwrap().unwrap();
    let (sae, _) = saectl::sae::checkpoint::load(&latest, DType::F32, &Device::Cpu).unwrap();
    let theta = sae.weights().threshold.as_ref().unwrap();
    let theta = theta.to_vec1::<f32>().unwrap();
    assert!(
        theta.iter().any(|&t| (t - 0.05).abs() > 1e-4),
        "the thresholds were not learnt: {theta:?}"
    );
    // `--checkpoint RUN` means the run's latest checkpoint.
    assert_ok(&collect(
        &run,
        &out,
        &["--activations", cache_dir.to_str().unwrap()],
    ));
    let compared = assert_matches_brute_force(&out, &cache_dir, &sae);
    assert!(
        compared > D_SAE,
        "too few samples to mean anything: {compared}"
    );
}
