//! Training tests: gradients against finite differences and the CPU kernels against candle's
//! ops ([`gradients`]), ground-truth dictionary recovery and step throughput
//! ([`ground_truth`]), JumpReLU's pseudo-derivatives and checkpoints ([`jumprelu`]), and whole
//! runs — resume equals uninterrupted, the batch stream, the errors users hit ([`runs`]); on the
//! tiny Gemma-2 fixture, training live and transcoders ([`live`]) and the loss-recovered
//! evaluation ([`eval`]); the device selections against the host's, and training through them
//! ([`device_select`]). This file holds the shared fixtures.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::*;
use crate::cache::{CacheDtype, CacheSpec, CacheWriter};
use crate::data::TextSpec;
use crate::model::ModelSpec;
use crate::sae::SaeKind;
use crate::util::rng::SplitMix64;

mod device_select;
mod eval;
mod gradients;
mod ground_truth;
mod jumprelu;
mod live;
mod runs;

pub(super) const SEQ_LEN: usize = 16;

/// Runs `body` — a training run given the progress callback — and stops it as an
/// interruption would once a step after `step` is reported: the run folder keeps what was
/// written by then (a run cut from a finished one would not: older checkpoints lose their
/// collector state when newer ones are written).
pub(super) fn interrupt_after(step: u64, body: impl FnOnce(&mut dyn FnMut(&StepReport))) {
    let mut stop = |report: &StepReport| {
        if report.step > step {
            std::panic::panic_any("interrupted by the test");
        }
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut stop)));
    assert!(outcome.is_err(), "the run ended before step {step}");
}

/// A synthetic cache of `n_seq · SEQ_LEN` tokens of width `d_in`, token `t` given by `make(t)`.
pub(super) fn write_cache(
    dir: &Path,
    d_in: usize,
    n_seq: usize,
    per_shard: usize,
    make: impl Fn(usize) -> Vec<f32>,
) {
    let spec = CacheSpec {
        model: "synthetic".into(),
        hook_point: "blocks.0.hook_resid_post".into(),
        d_in,
        seq_len: SEQ_LEN,
        dtype: CacheDtype::F32,
        special_token_ids: vec![],
        source: Default::default(),
    };
    let mut writer = CacheWriter::create_or_resume(dir, spec, per_shard, None).unwrap();
    for seq in 0..n_seq {
        let values: Vec<f32> = (0..SEQ_LEN).flat_map(|p| make(seq * SEQ_LEN + p)).collect();
        let acts = Tensor::from_vec(values, (1, SEQ_LEN, d_in), &Device::Cpu).unwrap();
        let tokens: Vec<u32> = (0..SEQ_LEN as u32).collect();
        writer.push(&tokens, &acts).unwrap();
    }
    writer.finish(true).unwrap();
}

/// `count` random unit directions in `d` dimensions, row-major.
pub(super) fn unit_directions(count: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SplitMix64(seed);
    (0..count)
        .map(|_| {
            let v: Vec<f32> = (0..d).map(|_| rng.uniform_sym()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

/// Token `t`: `active` of the true directions (chosen by a hash of `t`), magnitudes in [1, 2).
pub(super) fn sparse_token(t: usize, dirs: &[Vec<f32>], active: usize) -> Vec<f32> {
    let mut rng = SplitMix64(t as u64 ^ 0x5eed);
    let mut x = vec![0f32; dirs[0].len()];
    for _ in 0..active {
        let which = (rng.next_u64() % dirs.len() as u64) as usize;
        let scale = 1.5 + 0.5 * rng.uniform_sym();
        for (xi, di) in x.iter_mut().zip(&dirs[which]) {
            *xi += scale * di;
        }
    }
    x
}

pub(super) fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

pub(super) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub(super) fn tiny_cache(dir: &Path) -> std::path::PathBuf {
    let dirs = unit_directions(24, 8, 11);
    let cache = dir.join("cache");
    write_cache(&cache, 8, 32, 8, |t| sparse_token(t, &dirs, 2));
    cache
}

/// A file or folder under `tests/fixtures/`.
pub(crate) fn fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// The tiny corpus (`corpus/tiny.jsonl`) and the test tokenizer.
pub(crate) fn fixture_text() -> (crate::data::DataSource, crate::data::DocumentTokenizer) {
    let corpus = fixture("corpus/tiny.jsonl");
    let source = crate::data::DataSource::resolve(
        corpus.to_str().unwrap(),
        &crate::data::SourceOptions::default(),
        &crate::hub::HubSettings::from_env(),
    )
    .unwrap();
    let tokenizer = crate::data::DocumentTokenizer::from_file(
        &fixture("tokenizer/tokenizer.json"),
        crate::data::Bos::FromTokenizer,
    )
    .unwrap();
    (source, tokenizer)
}

/// The whole tiny Gemma-2 fixture (4 layers, d_model 64, vocab 256), f32 on the CPU.
pub(crate) fn tiny_model() -> crate::model::Gemma2 {
    let source = crate::model::ModelSource::Local(fixture("tiny-gemma2"));
    let options = crate::model::LoadOptions {
        device: Device::Cpu,
        dtype: candle_core::DType::F32,
        layers: None,
    };
    crate::model::load_model(&source, &options, &crate::hub::HubSettings::from_env())
        .unwrap()
        .model
}

/// A live run on the fixtures reading `hook` (and `hook_out` for a transcoder).
pub(crate) fn live_source(hook: &str, hook_out: Option<&str>) -> RunSource {
    RunSource {
        activations: None,
        model: Some(ModelSpec {
            model: fixture("tiny-gemma2").display().to_string(),
            tokenizer: Some(fixture("tokenizer/tokenizer.json")),
            dtype: Some("f32".into()),
        }),
        hook: Some(hook.into()),
        hook_out: hook_out.map(Into::into),
        text: Some(TextSpec::new(
            fixture("corpus/tiny.jsonl").to_str().unwrap(),
        )),
    }
}
