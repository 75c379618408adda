//! `inspect` and `steer` on the embedded demo model (d_model 128, 4 layers, vocab 160, sliding
//! window 32): the latency of inspecting one 128-token text, and the tokens per second of
//! generation through the KV cache, unsteered and steered, against re-running the whole
//! sequence for every token (what generation would cost without the cache).
//!
//! The SAE is `SAECTL_BENCH_SAE` when set (e.g. `saectl-demo/run`), else a seeded random
//! BatchTopK SAE of the demo's shape (512 latents); both read `blocks.2.hook_resid_post`.
//! Run with `cargo bench --bench probe`; results are recorded in docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, IndexOp, Tensor};
use saectl::data::{Bos, DocumentTokenizer};
use saectl::demo::CorpusGenerator;
use saectl::hub::HubSettings;
use saectl::model::{
    generate, load_model, GenerateConfig, HookEdit, LoadOptions, ModelSource, Sampling,
};
use saectl::probe::{
    inspect, FeatureContext, FeatureEdit, InspectConfig, Probe, SteerMode, Steering,
};
use saectl::sae::{Sae, SaeConfig, SaeKind, SaeWeights};

const RUNS: usize = 15;
const WARMUP: usize = 2;
const NEW_TOKENS: usize = 128;

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-model")
}

fn sae() -> (Sae, String) {
    if let Ok(path) = std::env::var("SAECTL_BENCH_SAE") {
        let hub = HubSettings::from_env();
        let path =
            saectl::sae::hub_path::resolve_checkpoint(&path, &hub).expect("SAECTL_BENCH_SAE");
        let sae = saectl::sae::import::load_any(&path, &Device::Cpu).expect("SAE");
        return (sae, format!("the SAE at {}", path.display()));
    }
    let mut config = SaeConfig::new(SaeKind::BatchTopK, 128, 512, Some(8));
    config.hook_name = Some("blocks.2.hook_resid_post".into());
    let mut weights = SaeWeights::init(&config, 7, &Device::Cpu).expect("weights");
    // θ such that a random unit-norm encoder keeps a handful of latents per token.
    weights.threshold = Some(Tensor::full(2.0f32, 512, &Device::Cpu).unwrap());
    (
        Sae::new(config, weights).expect("SAE"),
        "a random BatchTopK SAE (512 latents)".into(),
    )
}

/// (min, median) of `RUNS` timed calls after `WARMUP` untimed ones.
fn time(mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..WARMUP {
        f();
    }
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[0], times[RUNS / 2])
}

fn main() {
    let options = LoadOptions {
        device: Device::Cpu,
        dtype: DType::F32,
        layers: None,
    };
    let hub = HubSettings::from_vars(|_| None);
    let model = load_model(&ModelSource::Local(demo_dir()), &options, &hub)
        .unwrap()
        .model;
    let tokenizer =
        DocumentTokenizer::from_file(&demo_dir().join("tokenizer.json"), Bos::FromTokenizer)
            .unwrap();
    let (sae, which) = sae();
    let hook = "blocks.2.hook_resid_post".parse().unwrap();
    let probe = Probe::new(model, sae, tokenizer, hook).unwrap();

    // 127 words of the demo corpus: 128 tokens with the BOS.
    let words: Vec<String> = CorpusGenerator::new(12)
        .documents(10)
        .join(" ")
        .split(' ')
        .take(127)
        .map(str::to_string)
        .collect();
    let text = vec![words.join(" ")];
    assert_eq!(probe.tokenize(&text[0]).unwrap().len(), 128);
    let config = InspectConfig::default();
    let context = FeatureContext::default();
    let inspect_time = time(|| {
        inspect(&probe, &text, &config, &context).unwrap();
    });

    let prompt = probe.tokenize("alice saw a brown fox near the").unwrap();
    let generation = GenerateConfig {
        max_new_tokens: NEW_TOKENS,
        sampling: Sampling::Greedy,
        stop_tokens: vec![],
    };
    let model = &probe.model;
    let cached = time(|| {
        generate(model, &prompt, &generation, None).unwrap();
    });
    let edits = [FeatureEdit {
        feature: 3,
        value: 8.0,
    }];
    let steering =
        Steering::new(&probe.sae, SteerMode::Add, &edits, DType::F32, &Device::Cpu).unwrap();
    let apply = |xs: &Tensor| steering.apply(xs);
    let edit = HookEdit { hook, edit: &apply };
    let steered = time(|| {
        generate(model, &prompt, &generation, Some(&edit)).unwrap();
    });
    let clamping = Steering::new(
        &probe.sae,
        SteerMode::Clamp,
        &edits,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let clamp = |xs: &Tensor| clamping.apply(xs);
    let clamp_edit = HookEdit { hook, edit: &clamp };
    let clamped = time(|| {
        generate(model, &prompt, &generation, Some(&clamp_edit)).unwrap();
    });
    let uncached = time(|| {
        let mut ids = prompt.clone();
        for _ in 0..NEW_TOKENS {
            let input = Tensor::new(ids.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let logits = model.logits(&input).unwrap().i((0, ids.len() - 1)).unwrap();
            ids.push(logits.argmax(0).unwrap().to_scalar::<u32>().unwrap());
        }
    });

    println!("probe on the demo model (CPU, f32), {which}; {RUNS} runs after {WARMUP} warm-up");
    println!("| what | min | median | rate (min) |");
    println!("| --- | ---: | ---: | ---: |");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| inspect, one 128-token text | {:.2} ms | {:.2} ms | {:.0} tokens/s |",
        ms(inspect_time.0),
        ms(inspect_time.1),
        128.0 / inspect_time.0.as_secs_f64()
    );
    for (what, (min, median)) in [
        ("generate with the KV cache, unsteered", cached),
        ("generate with the KV cache, steered (add)", steered),
        ("generate with the KV cache, steered (clamp)", clamped),
        (
            "generate without a cache (whole sequence per token)",
            uncached,
        ),
    ] {
        println!(
            "| {what}, {NEW_TOKENS} new tokens after {} | {:.1} ms | {:.1} ms | {:.0} tokens/s |",
            prompt.len(),
            ms(min),
            ms(median),
            NEW_TOKENS as f64 / min.as_secs_f64()
        );
    }
}
