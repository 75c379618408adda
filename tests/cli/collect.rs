//! `saectl collect` on the tiny Gemma-2 with a random TopK SAE: from a cache it equals a
//! brute-force computation; live, from a cache, and resumed it writes the same folder; bad
//! input fails in one line.

use std::path::Path;

use candle_core::DType;
use saectl::cache::ActivationCache;
use saectl::sae::Sae;
use saectl::samples::format::FeatureFile;
use saectl::samples::{SamplesDir, SamplesFolder};

use super::util::{
    assert_ok, assert_one_line_error, cache, collect, feature_files, live_args, path_str, stderr,
    stdout, strs, write_sae, Saectl, D_SAE, MAX_SAMPLES, SEQ_LEN,
};

/// Per feature: (activation, sequence, position) of the best `MAX_SAMPLES` activations above 0
/// over non-special tokens, deduplicated per sequence within ±ctx/2 = 10, computed by encoding
/// every cached token densely and sorting.
fn brute_force(cache_dir: &Path, sae: &Sae) -> Vec<Vec<(f32, u64, u32)>> {
    all_activations(cache_dir, sae)
        .into_iter()
        .map(|mut list| {
            list.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
            let mut kept: Vec<(f32, u64, u32)> = Vec::new();
            for c in list {
                if !kept.iter().any(|k| k.1 == c.1 && k.2.abs_diff(c.2) <= 10) {
                    kept.push(c);
                }
            }
            kept.truncate(MAX_SAMPLES);
            kept
        })
        .collect()
}

/// Per feature, every (activation, sequence, position) above 0 over non-special tokens.
fn all_activations(cache_dir: &Path, sae: &Sae) -> Vec<Vec<(f32, u64, u32)>> {
    let cache = ActivationCache::open(cache_dir).unwrap();
    let specials = &cache.index().spec.special_token_ids;
    let mut candidates: Vec<Vec<(f32, u64, u32)>> = vec![Vec::new(); D_SAE];
    let mut sequence = 0u64;
    for shard in cache.shards() {
        let shard = shard.unwrap();
        let xs = shard
            .activations
            .to_dtype(DType::F32)
            .unwrap()
            .reshape((shard.num_sequences * SEQ_LEN, 64))
            .unwrap();
        let dense = sae.encode(&xs).unwrap().to_vec2::<f32>().unwrap();
        for (token, row) in dense.iter().enumerate() {
            let (seq, pos) = (
                sequence + (token / SEQ_LEN) as u64,
                (token % SEQ_LEN) as u32,
            );
            if specials.contains(&shard.tokens[token]) {
                continue;
            }
            for (f, &v) in row.iter().enumerate() {
                if v > 0.0 {
                    candidates[f].push((v, seq, pos));
                }
            }
        }
        sequence += shard.num_sequences as u64;
    }
    candidates
}

#[test]
fn collecting_from_a_cache_equals_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, checkpoint, out) = (
        dir.path().join("cache"),
        dir.path().join("sae"),
        dir.path().join("samples"),
    );
    assert_ok(&cache(&cache_dir, 300, &[]));
    let sae = write_sae(&checkpoint, 64);
    assert_ok(&collect(
        &checkpoint,
        &out,
        &["--activations", cache_dir.to_str().unwrap()],
    ));
    let compared = assert_matches_brute_force(&out, &cache_dir, &sae);
    assert!(
        compared > D_SAE,
        "too few samples to mean anything: {compared}"
    );
    assert!(out.join("collector_state.safetensors").is_file());
    let folder = SamplesFolder::load(&out).unwrap();
    // The feature view counts every activation: positions exactly (0, 1, 2–3, … 8–15 for
    // sequences of 16), values in some histogram bin and in some interval.
    for (f, all) in all_activations(&cache_dir, &sae).iter().enumerate() {
        let Some(file) = folder.features.get(&(f as u32)) else {
            continue;
        };
        let mut positions = vec![0u64; 8];
        for &(_, _, p) in all {
            positions[(u32::BITS - p.leading_zeros()).min(7) as usize] += 1;
        }
        assert_eq!(file.position_histogram.as_ref().unwrap().counts, positions);
        let histogram = file.activation_histogram.as_ref().unwrap();
        assert_eq!(histogram.counts.iter().sum::<u64>(), all.len() as u64);
        let intervals = file.interval_samples.as_ref().unwrap();
        let in_intervals: u64 = intervals.iter().map(|i| i.activation_count).sum();
        assert_eq!(in_intervals, all.len() as u64, "feature {f}");
        for sample in intervals.iter().flat_map(|i| &i.samples) {
            assert!(all
                .iter()
                .any(|a| (a.1, a.2) == (sample.sequence_idx, sample.position)));
        }
    }
}

/// The samples folder `out` holds what [`brute_force`] finds; returns the samples compared.
pub fn assert_matches_brute_force(out: &Path, cache_dir: &Path, sae: &Sae) -> usize {
    let folder = SamplesFolder::load(out).unwrap();
    let expected = brute_force(cache_dir, sae);
    let mut compared = 0;
    for (f, want) in expected.iter().enumerate() {
        let got: Vec<(f32, u64, u32)> = folder
            .features
            .get(&(f as u32))
            .map(|file: &FeatureFile| {
                file.top_samples
                    .iter()
                    .map(|s| (s.activation_value, s.sequence_idx, s.position))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(got.len(), want.len(), "feature {f}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.1, g.2), (w.1, w.2), "feature {f}");
            assert!((g.0 - w.0).abs() <= 1e-5, "feature {f}: {} vs {}", g.0, w.0);
        }
        compared += got.len();
    }
    compared
}

#[test]
fn live_cached_and_resumed_collections_write_the_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, checkpoint) = (dir.path().join("cache"), dir.path().join("sae"));
    assert_ok(&cache(&cache_dir, 300, &[]));
    write_sae(&checkpoint, 64);
    let from_cache = dir.path().join("from-cache");
    assert_ok(&collect(
        &checkpoint,
        &from_cache,
        &["--activations", cache_dir.to_str().unwrap()],
    ));
    let live = dir.path().join("live");
    let args = live_args(300);
    assert_ok(&collect(&checkpoint, &live, &strs(&args)));
    // Resumed: a first run over 100 tokens, then the same command over 300.
    let resumed = dir.path().join("resumed");
    let first = live_args(100);
    assert_ok(&collect(&checkpoint, &resumed, &strs(&first)));
    let output = collect(&checkpoint, &resumed, &strs(&args));
    assert_ok(&output);
    assert!(stderr(&output).contains("resuming"));
    let live_files = feature_files(&live);
    assert!(!live_files.is_empty());
    assert_eq!(
        feature_files(&resumed),
        live_files,
        "resumed differs from one run"
    );
    // The cache stored the same activations (≤1e-5), so the same samples in the same order.
    let cached = SamplesFolder::load(&from_cache).unwrap();
    let direct = SamplesFolder::load(&live).unwrap();
    assert_eq!(
        cached.features.keys().collect::<Vec<_>>(),
        direct.features.keys().collect::<Vec<_>>()
    );
    for (f, file) in &direct.features {
        let key = |file: &FeatureFile| {
            file.top_samples
                .iter()
                .map(|s| (s.sequence_idx, s.position))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(file), key(&cached.features[f]), "feature {f}");
    }
}

#[test]
fn bad_input_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, narrow, out) = (
        dir.path().join("cache"),
        dir.path().join("narrow"),
        dir.path().join("out"),
    );
    assert_ok(&cache(&cache_dir, 100, &[]));
    write_sae(&narrow, 32);
    let from_cache = ["--activations", cache_dir.to_str().unwrap()];
    assert_one_line_error(&collect(&narrow, &out, &from_cache), "d_in 32");
    assert_one_line_error(
        &collect(&dir.path().join("missing"), &out, &from_cache),
        "missing",
    );
    // A release the table knows, with an SAE id it lacks: refused before any download.
    let unknown = Path::new("gemma-scope-2b-pt-res/layer_3/width_16k/average_l0_7");
    assert_one_line_error(
        &collect(unknown, &out, &from_cache),
        "release gemma-scope-2b-pt-res has no SAE",
    );
    let wide = dir.path().join("wide");
    write_sae(&wide, 64);
    let other_hook = [
        "--activations",
        cache_dir.to_str().unwrap(),
        "--hook",
        "blocks.1.hook_resid_post",
    ];
    assert_one_line_error(
        &collect(&wide, &out, &other_hook),
        "holds blocks.2.hook_resid_post",
    );
    // Without --model (or --activations) collect runs the embedded demo model, says so, and
    // refuses an SAE of another width in one error line.
    let home = dir.path().join("home");
    let output = Saectl::new(["collect", "--checkpoint", path_str(&wide), "--out"])
        .arg(&out)
        .env("SAECTL_HOME", &home)
        .run();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("note: no --model given"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("d_in 64") && errors[0].contains("d_model is 128"),
        "{stderr}"
    );
}

/// `--list-releases` prints the table `--checkpoint RELEASE/SAE_ID` resolves through, and
/// takes no other flag.
#[test]
fn list_releases_shows_the_table() {
    let text = stdout(&Saectl::new(["collect", "--list-releases"]).run());
    for release in [
        "gemma-scope-2b-pt-res-canonical",
        "gemma-scope-9b-pt-mlp",
        "gemma-2-2b-res-matryoshka-dc",
    ] {
        assert!(text.contains(release), "{release} missing:\n{text}");
    }
    assert!(text.contains("e.g. gemma-scope-2b-pt-res-canonical/layer_0/width_16k/canonical"));
    let both = Saectl::new(["collect", "--list-releases", "--out", "x"]).run();
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

/// `--config` with the original's whole config file: read once (its note shown once), its
/// keys used, and a flag wins even when it asks for the default value.
#[test]
fn a_config_file_is_read_once_and_the_flags_given_win() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, checkpoint, out) = (
        dir.path().join("cache"),
        dir.path().join("sae"),
        dir.path().join("out"),
    );
    assert_ok(&cache(&cache_dir, 100, &[]));
    write_sae(&checkpoint, 64);
    let config = dir.path().join("cfg.json");
    std::fs::write(
        &config,
        r#"{"model_name": "gemma-2-2b", "lr": 0.0003, "max_samples_per_feature": 7,
            "top_features_to_save": 5}"#,
    )
    .unwrap();
    let output = Saectl::new(["collect", "--checkpoint", path_str(&checkpoint)])
        .args([
            "--activations",
            path_str(&cache_dir),
            "--out",
            path_str(&out),
        ])
        .args(["--config", path_str(&config), "--device", "cpu"])
        .args(["--max-samples-per-feature", "100"])
        .ok();
    let notes = stderr(&output)
        .lines()
        .filter(|line| line.contains("sets model_name"))
        .count();
    assert_eq!(notes, 1, "{}", stderr(&output));
    let summary = SamplesDir::new(&out).read_summary().unwrap().unwrap();
    let settings = summary.settings.unwrap();
    assert_eq!(settings.collector.max_samples_per_feature, 100, "the flag");
    assert_eq!(settings.save.top_features_to_save, 5, "the file");
}
