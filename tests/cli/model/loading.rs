//! Loading from a directory and from a Hugging Face cache laid out as huggingface_hub does,
//! with HF_HUB_OFFLINE=1 (these tests never touch the network).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use saectl::hub::fixtures;
use saectl::hub::{HubSettings, RepoKind};
use saectl::model::{load_model, HookPoint, ModelSource};

use super::common::{cpu_f32, fixture_dir, input_ids, max_abs_diff, reference, tiny_model};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Puts `files` of model `repo_id` at [`COMMIT`] into `cache` as huggingface_hub lays it out.
fn add_to_cache(cache: &Path, repo_id: &str, files: &[(&str, &[u8])]) {
    fixtures::add_to_cache(cache, RepoKind::Model, repo_id, COMMIT, files).unwrap();
}

fn fixture_file(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap()
}

/// The settings a user with `HF_HUB_CACHE=cache HF_HUB_OFFLINE=1` gets.
fn offline_settings(cache: &Path) -> HubSettings {
    let cache = cache.to_str().unwrap().to_string();
    HubSettings::from_vars(|name| match name {
        "HF_HUB_CACHE" => Some(cache.clone()),
        "HF_HUB_OFFLINE" => Some("1".into()),
        _ => None,
    })
}

#[test]
fn loads_from_an_offline_hub_cache() {
    let cache = tempfile::tempdir().unwrap();
    let files = [
        ("config.json", fixture_file("config.json")),
        ("model.safetensors", fixture_file("model.safetensors")),
    ];
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    add_to_cache(cache.path(), "saectl/tiny-gemma2", &files);
    let hub = offline_settings(cache.path());
    assert!(hub.offline);

    let source: ModelSource = "saectl/tiny-gemma2".parse().unwrap();
    let loaded = load_model(&source, &cpu_f32(None), &hub).unwrap();
    assert!(loaded.files.tokenizer.is_none());
    let ids = input_ids(&reference());
    let expected = tiny_model(None).logits(&ids).unwrap();
    assert_eq!(
        max_abs_diff(&loaded.model.logits(&ids).unwrap(), &expected),
        0.0
    );

    let pinned: ModelSource = format!("saectl/tiny-gemma2@{COMMIT}").parse().unwrap();
    assert!(load_model(&pinned, &cpu_f32(Some(1)), &hub).is_ok());
}

/// The regression: a local `--model` must load with no `HOME` and no `HF_*` variable at all,
/// since it never needs the Hugging Face cache.
#[test]
fn a_local_folder_loads_without_home_or_any_hub_variable() {
    let hub = HubSettings::from_vars(|_| None);
    assert!(hub.cache_dir.is_none());
    let source = ModelSource::Local(fixture_dir());
    let loaded = load_model(&source, &cpu_f32(Some(1)), &hub).unwrap();
    assert_eq!(loaded.files.config, fixture_dir().join("config.json"));
    // A repo id with the same settings fails only then, saying what to set.
    let source: ModelSource = "saectl/tiny-gemma2".parse().unwrap();
    let err = format!(
        "{:#}",
        load_model(&source, &cpu_f32(None), &hub).err().unwrap()
    );
    assert!(err.contains("set HF_HUB_CACHE or HF_HOME"), "{err}");
}

#[test]
fn a_repo_missing_from_the_cache_is_a_clear_error_offline() {
    let cache = tempfile::tempdir().unwrap();
    let hub = offline_settings(cache.path());
    let source: ModelSource = "saectl/not-cached".parse().unwrap();
    let err = format!(
        "{:#}",
        load_model(&source, &cpu_f32(None), &hub).err().unwrap()
    );
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(err.contains(cache.path().to_str().unwrap()), "{err}");

    // Config cached, weights not.
    let config = fixture_file("config.json");
    add_to_cache(
        cache.path(),
        "saectl/no-weights",
        &[("config.json", &config)],
    );
    let source: ModelSource = "saectl/no-weights".parse().unwrap();
    let err = format!(
        "{:#}",
        load_model(&source, &cpu_f32(None), &hub).err().unwrap()
    );
    assert!(err.contains("weights of saectl/no-weights"), "{err}");
}

/// Splits the tiny model into two shards: embedding + blocks 0..2, then the rest.
fn sharded(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let tensors =
        candle_core::safetensors::load(fixture_dir().join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let early = |name: &str| {
        name.starts_with("model.embed_tokens")
            || name.starts_with("model.layers.0.")
            || name.starts_with("model.layers.1.")
    };
    let mut shards: [HashMap<String, Tensor>; 2] = Default::default();
    let mut weight_map = serde_json::Map::new();
    for (name, tensor) in tensors {
        let shard = usize::from(!early(&name));
        weight_map.insert(
            name.clone(),
            format!("model-0000{}-of-00002.safetensors", shard + 1).into(),
        );
        shards[shard].insert(name, tensor);
    }
    let mut files = Vec::new();
    for (i, shard) in shards.iter().enumerate() {
        let path = dir.join(format!("shard{i}"));
        candle_core::safetensors::save(shard, &path).unwrap();
        let name = if i == 0 {
            "model-00001-of-00002.safetensors"
        } else {
            "model-00002-of-00002.safetensors"
        };
        files.push((name, std::fs::read(path).unwrap()));
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    files.push((
        "model.safetensors.index.json",
        index.to_string().into_bytes(),
    ));
    files.push(("config.json", fixture_file("config.json")));
    files
}

#[test]
fn sharded_checkpoints_load_and_partial_loads_need_only_early_shards() {
    let scratch = tempfile::tempdir().unwrap();
    let files = sharded(scratch.path());
    let ids = input_ids(&reference());
    let full = tiny_model(None);

    // A local sharded folder loads completely.
    let local = scratch.path().join("local");
    std::fs::create_dir(&local).unwrap();
    for (name, bytes) in &files {
        std::fs::write(local.join(name), bytes).unwrap();
    }
    let source = ModelSource::Local(local);
    let hub = offline_settings(scratch.path());
    let loaded = load_model(&source, &cpu_f32(None), &hub).unwrap();
    assert_eq!(loaded.files.weights.len(), 2);
    assert_eq!(
        max_abs_diff(
            &loaded.model.logits(&ids).unwrap(),
            &full.logits(&ids).unwrap()
        ),
        0.0
    );

    // In the cache without the second shard: the first two blocks still load offline.
    let cache = scratch.path().join("hub");
    let early: Vec<(&str, &[u8])> = files
        .iter()
        .filter(|(name, _)| *name != "model-00002-of-00002.safetensors")
        .map(|(n, b)| (*n, b.as_slice()))
        .collect();
    add_to_cache(&cache, "saectl/sharded", &early);
    let hub = offline_settings(&cache);
    let source: ModelSource = "saectl/sharded".parse().unwrap();
    let partial = load_model(&source, &cpu_f32(Some(2)), &hub).unwrap();
    assert_eq!(partial.files.weights.len(), 1);
    let hook: HookPoint = "blocks.1.hook_resid_post".parse().unwrap();
    let got = partial.model.forward_to_hook(&ids, &hook).unwrap();
    assert_eq!(
        max_abs_diff(&got, &full.forward_to_hook(&ids, &hook).unwrap()),
        0.0
    );
    let err = format!(
        "{:#}",
        load_model(&source, &cpu_f32(None), &hub).err().unwrap()
    );
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
}

#[test]
fn local_folders_without_a_checkpoint_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let hub = offline_settings(dir.path());
    let source = ModelSource::Local(dir.path().to_path_buf());
    let err = format!(
        "{:#}",
        load_model(&source, &cpu_f32(None), &hub).err().unwrap()
    );
    assert!(err.contains("no config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), fixture_file("config.json")).unwrap();
    let err = format!(
        "{:#}",
        load_model(&source, &cpu_f32(None), &hub).err().unwrap()
    );
    assert!(err.contains("neither model.safetensors"), "{err}");
    std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
    let err = format!(
        "{:#}",
        load_model(&source, &cpu_f32(None), &hub).err().unwrap()
    );
    assert!(err.contains("failed to read the weights"), "{err}");
    let err = format!(
        "{:#}",
        load_model(&source, &cpu_f32(Some(9)), &hub).err().unwrap()
    );
    assert!(err.contains("cannot load 9 layers"), "{err}");
}
