use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use saectl::hub::HubSettings;
use saectl::model::{load_model, Gemma2, LoadOptions, ModelSource};

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gemma2")
}

pub fn cpu_f32(layers: Option<usize>) -> LoadOptions {
    LoadOptions {
        device: Device::Cpu,
        dtype: DType::F32,
        layers,
    }
}

/// Hub settings that never reach the network (the tests pass their own cache folder).
pub fn offline_hub(cache_dir: &Path) -> HubSettings {
    HubSettings {
        cache_dir: Some(cache_dir.to_path_buf()),
        offline: true,
        ..HubSettings::from_vars(|_| None)
    }
}

pub fn tiny_model(layers: Option<usize>) -> Gemma2 {
    let source = ModelSource::Local(fixture_dir());
    let hub = offline_hub(Path::new("/nonexistent"));
    load_model(&source, &cpu_f32(layers), &hub).unwrap().model
}

/// The Hugging Face reference: `input_ids`, every hook point, `logits`.
pub fn reference() -> HashMap<String, Tensor> {
    let path = fixture_dir().join("reference_activations.safetensors");
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

pub fn input_ids(reference: &HashMap<String, Tensor>) -> Tensor {
    reference["input_ids"].to_dtype(DType::U32).unwrap()
}

/// max |a - b| / max |b|.
pub fn relative_error(actual: &Tensor, expected: &Tensor) -> f32 {
    assert_eq!(actual.dims(), expected.dims());
    let diff = (actual - expected).unwrap().abs().unwrap();
    let max_diff = diff.flatten_all().unwrap().max(0).unwrap();
    let scale = expected
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap();
    max_diff.to_scalar::<f32>().unwrap() / scale.to_scalar::<f32>().unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let diff = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
    diff.max(0).unwrap().to_scalar::<f32>().unwrap()
}
