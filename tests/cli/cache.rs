//! `saectl cache` on the tiny Gemma-2 fixture: the activations stored equal a direct forward
//! pass, a run extended or resumed equals one run, and bad input fails in one line.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use saectl::cache::ActivationCache;
use saectl::hub::HubSettings;
use saectl::model::{load_model, HookPoint, LoadOptions, ModelSource};

use super::util::{assert_ok, assert_one_line_error, cache, cache_command, fixture, stderr, HOOK};

fn read_all(dir: &Path) -> (Vec<u32>, Vec<f32>) {
    let cache = ActivationCache::open(dir).unwrap();
    let (mut tokens, mut values) = (Vec::new(), Vec::new());
    for shard in cache.shards() {
        let shard = shard.unwrap();
        tokens.extend(shard.tokens);
        values.extend(
            shard
                .activations
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
    }
    (tokens, values)
}

#[test]
fn cached_activations_equal_a_direct_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cache");
    assert_ok(&cache(&out, 200, &[]));
    let index = ActivationCache::open(&out).unwrap().index().clone();
    assert_eq!(
        (index.num_sequences, index.spec.seq_len, index.spec.d_in),
        (13, 16, 64)
    );
    assert!(index.complete && out.join("tokenizer.json").is_file());
    let (tokens, values) = read_all(&out);
    assert_eq!(tokens[0], 2, "every document starts with BOS");
    let source = ModelSource::Local(PathBuf::from(fixture("tiny-gemma2")));
    let options = LoadOptions {
        device: Device::Cpu,
        dtype: DType::F32,
        layers: Some(3),
    };
    let model = load_model(&source, &options, &HubSettings::from_vars(|_| None))
        .unwrap()
        .model;
    let ids = Tensor::from_vec(tokens, (13, 16), &Device::Cpu).unwrap();
    let hook: HookPoint = HOOK.parse().unwrap();
    let direct = model
        .forward_to_hook(&ids, &hook)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let worst = direct
        .iter()
        .zip(&values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-5,
        "cache differs from a direct forward by {worst}"
    );
}

#[test]
fn extending_and_resuming_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    assert_ok(&cache(&whole, 400, &[]));
    let pieces = dir.path().join("pieces");
    assert_ok(&cache(&pieces, 150, &[]));
    // An interruption mid-shard: the pending sequences are lost, the index still names what was
    // written, and a half-written shard lies around.
    std::fs::write(pieces.join(".shard_00009.safetensors.partial"), b"half").unwrap();
    let output = cache(&pieces, 400, &[]);
    assert_ok(&output);
    assert!(stderr(&output).contains("resuming"));
    let (whole_tokens, whole_values) = read_all(&whole);
    let (piece_tokens, piece_values) = read_all(&pieces);
    assert_eq!(whole_tokens, piece_tokens);
    let worst = whole_values
        .iter()
        .zip(&piece_values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-5 && whole_values.len() == piece_values.len(),
        "differ by {worst}"
    );
    let again = cache(&pieces, 400, &[]);
    assert_ok(&again);
    assert!(stderr(&again).contains("nothing to do"));
}

#[test]
fn bad_input_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cache");
    assert_one_line_error(
        &cache(&out, 100, &[("--hook", "blocks.9.hook_resid_post")]),
        "layer",
    );
    assert_one_line_error(
        &cache(&out, 100, &[("--hook", "blocks.1.hook_attn_out")]),
        "hook_resid_pre",
    );
    assert_one_line_error(
        &cache(&out, 100, &[("--dataset", "/nonexistent/corpus.jsonl")]),
        "/nonexistent/corpus.jsonl",
    );
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    assert_one_line_error(
        &cache(&out, 100, &[("--dataset", empty.to_str().unwrap())]),
        "empty.txt",
    );
    assert_ok(&cache(&out, 100, &[]));
    assert_one_line_error(
        &cache(&out, 200, &[("--hook", "blocks.1.hook_resid_post")]),
        "hook_point",
    );
}

/// Local model and dataset need no Hugging Face cache: the command runs with an empty
/// environment (no HOME, no HF_* variable).
#[test]
fn local_model_and_dataset_run_without_home_or_hub_variables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cache");
    let output = cache_command(&out, 32, &[]).env_clear().run();
    assert_ok(&output);
    assert_eq!(
        ActivationCache::open(&out).unwrap().index().num_sequences,
        2
    );
}
