//! Logit effects: `collect --model` writes each feature's most promoted and suppressed output
//! tokens, equal to a brute-force computation from the checkpoint files; `analyze` and
//! `report` show them; `merge` carries them and refuses shards that disagree.

use std::path::Path;

use candle_core::{DType, Device};
use saectl::sae::Sae;
use saectl::samples::{LogitConvention, SamplesDir, LOGIT_EFFECTS_FILE_NAME};

use super::logit_reference::{ranked_logits, Ranked};

use super::util::{
    assert_ok, assert_one_line_error, cache, collect, fixture, live_args, path_str, saectl, stderr,
    stdout, strs, write_sae, Saectl,
};

/// Per feature, the 10 largest and 10 smallest `(token, value)` of
/// `(W_dec[f] ⊙ (1 + w_norm)) · W_E[t]` (not centred) and their vocabulary mean, in f64 from
/// the files.
fn brute_force(sae: &Sae) -> Vec<(Ranked, Ranked, f64)> {
    let model = Path::new(&fixture("tiny-gemma2")).join("model.safetensors");
    let tensors = candle_core::safetensors::load(model, &Device::Cpu).unwrap();
    let embed: Vec<Vec<f32>> = tensors["model.embed_tokens.weight"]
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2()
        .unwrap();
    let norm: Vec<f32> = tensors["model.norm.weight"].to_vec1().unwrap();
    let w_dec: Vec<Vec<f32>> = sae.weights().w_dec.to_vec2().unwrap();
    w_dec
        .iter()
        .map(|d| ranked_logits(d, &norm, &embed, 10))
        .collect()
}

#[test]
fn live_collection_writes_the_brute_force_logit_effects_and_the_views_show_them() {
    let dir = tempfile::tempdir().unwrap();
    let (checkpoint, out) = (dir.path().join("sae"), dir.path().join("samples"));
    let sae = write_sae(&checkpoint, 64);
    let args = live_args(100);
    assert_ok(&collect(&checkpoint, &out, &strs(&args)));
    let effects = SamplesDir::new(&out)
        .read_logit_effects()
        .unwrap()
        .expect("logit_effects.json");
    let expected = brute_force(&sae);
    assert_eq!(effects.features.len(), expected.len());
    assert_eq!(effects.header.vocab_size, 256);
    assert_eq!(effects.header.convention, LogitConvention::Uncentred);
    let tokenizer = tokenizers::Tokenizer::from_file(fixture("tokenizer/tokenizer.json")).unwrap();
    for (f, (got, (top, bottom, mean))) in effects.features.iter().zip(&expected).enumerate() {
        assert_eq!(got.feature_idx, f as u32);
        let got_mean = f64::from(got.vocab_mean.expect("every feature has its mean"));
        assert!(
            (got_mean - mean).abs() < 1e-4,
            "feature {f}: {got_mean} vs {mean}"
        );
        for (list, want) in [(&got.top, top), (&got.bottom, bottom)] {
            let ids: Vec<u32> = list.iter().map(|e| e.token_id).collect();
            let want_ids: Vec<u32> = want.iter().map(|w| w.0).collect();
            assert_eq!(ids, want_ids, "feature {f}");
            for (e, w) in list.iter().zip(want) {
                assert!((f64::from(e.value) - w.1).abs() < 1e-4, "feature {f}");
                assert_eq!(e.text, tokenizer.decode(&[e.token_id], false).unwrap());
            }
        }
    }
    let feature = first_feature(&out);
    let text = stdout(&saectl(&["analyze", path_str(&out), "--feature", &feature]));
    assert!(
        text.contains("Promotes:") && text.contains("Suppresses:"),
        "{text}"
    );
    let json = saectl(&[
        "analyze",
        out.to_str().unwrap(),
        "--feature",
        &feature,
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["logit_effects"]["top"].as_array().unwrap().len(), 10);
    assert_ok(&saectl(&["report", out.to_str().unwrap()]));
    let report = std::fs::read_to_string(out.join("interpretability_report.md")).unwrap();
    assert!(report.contains("- Promoted output tokens (logit effect): "));

    // Opting out in a fresh collection into the same folder removes the stale file.
    std::fs::remove_file(out.join("collector_state.safetensors")).unwrap();
    let mut no_logits = strs(&args);
    no_logits.push("--no-logit-effects");
    assert_ok(&collect(&checkpoint, &out, &no_logits));
    assert!(!out.join(LOGIT_EFFECTS_FILE_NAME).exists());
}

/// The first feature saved in a folder, as text.
fn first_feature(dir: &Path) -> String {
    let folder = saectl::samples::SamplesFolder::load(dir).unwrap();
    folder.features.keys().next().unwrap().to_string()
}

#[test]
fn merge_carries_logit_effects_and_refuses_disagreeing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, checkpoint) = (dir.path().join("cache"), dir.path().join("sae"));
    assert_ok(&cache(&cache_dir, 100, &[]));
    write_sae(&checkpoint, 64);
    let model = fixture("tiny-gemma2");
    let cache_arg = cache_dir.to_str().unwrap();
    let shard = |name: &str, flags: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["--activations", cache_arg];
        args.extend(flags);
        assert_ok(&collect(&checkpoint, &out, &args));
        out
    };
    let whole = shard("whole", &["--model", &model]);
    let first = shard("first", &["--model", &model, "--shard", "0/2"]);
    let second = shard("second", &["--shard", "1/2"]);
    assert!(!second.join(LOGIT_EFFECTS_FILE_NAME).exists());
    let merged = dir.path().join("merged");
    let merge = |inputs: &[&Path], out: &Path| {
        Saectl::new(["merge"])
            .args(inputs)
            .arg("--out")
            .arg(out)
            .run()
    };
    let output = merge(&[&second, &first], &merged);
    assert_ok(&output);
    assert!(stderr(&output).contains("1 of 2 folders have no"));
    assert_eq!(
        std::fs::read(merged.join(LOGIT_EFFECTS_FILE_NAME)).unwrap(),
        std::fs::read(whole.join(LOGIT_EFFECTS_FILE_NAME)).unwrap()
    );
    // A shard whose file says otherwise (another model) does not merge.
    let tampered = shard("tampered", &["--model", &model, "--shard", "1/2"]);
    let tampered_dir = SamplesDir::new(&tampered);
    let mut effects = tampered_dir.read_logit_effects().unwrap().unwrap();
    effects.features[5].top[0].value += 0.5;
    tampered_dir.write_logit_effects(&effects).unwrap();
    assert_one_line_error(
        &merge(&[&first, &tampered], &dir.path().join("bad")),
        "disagree",
    );
}
