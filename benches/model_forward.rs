//! Time to a hook point vs the whole model: stopping after block L should cost about
//! (L + 1) / n_layers of a full forward (plus the embedding; the full pass adds the head).
//!
//! A random Gemma-2 (d_model 256, 8 layers, 4 heads of 64, 2 KV heads, d_mlp 1024, vocab 8192)
//! on the CPU in f32, batch 4 × seq 128, sliding window 64 so both attention kinds run.
//! Run with `cargo bench --bench model_forward`; results are recorded in docs/benchmarks.md.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use saectl::model::{Gemma2, Gemma2Config, HookPoint, HookSite};
use saectl::util::rng::SplitMix64;

const BATCH: usize = 4;
const SEQ: usize = 128;
const WARMUP: usize = 2;
const RUNS: usize = 15;

/// `n` values uniform in [-scale, scale).
fn uniform(rng: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform_sym() * scale).collect()
}

fn config() -> Gemma2Config {
    let json = serde_json::json!({
        "model_type": "gemma2", "vocab_size": 8192, "hidden_size": 256,
        "intermediate_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 64, "query_pre_attn_scalar": 64,
        "sliding_window": 64, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0
    });
    Gemma2Config::from_json(&json.to_string()).expect("benchmark config")
}

/// Random weights under the Hugging Face tensor names.
fn weights(config: &Gemma2Config, rng: &mut SplitMix64) -> HashMap<String, Tensor> {
    let d = config.hidden_size;
    let (q_dim, kv_dim) = (
        config.num_attention_heads * config.head_dim,
        config.num_key_value_heads * config.head_dim,
    );
    let mut shapes = vec![
        (
            "model.embed_tokens.weight".to_string(),
            vec![config.vocab_size, d],
        ),
        ("model.norm.weight".to_string(), vec![d]),
    ];
    for layer in 0..config.num_hidden_layers {
        let p = format!("model.layers.{layer}");
        for norm in [
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ] {
            shapes.push((format!("{p}.{norm}.weight"), vec![d]));
        }
        for (name, shape) in [
            ("self_attn.q_proj", [q_dim, d]),
            ("self_attn.k_proj", [kv_dim, d]),
            ("self_attn.v_proj", [kv_dim, d]),
            ("self_attn.o_proj", [d, q_dim]),
            ("mlp.gate_proj", [config.intermediate_size, d]),
            ("mlp.up_proj", [config.intermediate_size, d]),
            ("mlp.down_proj", [d, config.intermediate_size]),
        ] {
            shapes.push((format!("{p}.{name}.weight"), shape.to_vec()));
        }
    }
    shapes
        .into_iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            let scale = 1.0 / (*shape.last().unwrap() as f32).sqrt();
            let tensor = Tensor::from_vec(uniform(rng, n, scale), shape, &Device::Cpu).unwrap();
            (name, tensor)
        })
        .collect()
}

/// Runs every case `RUNS` times, interleaved (case 1, case 2, ..., case 1, ...), so that load
/// from other processes on a shared machine spreads over all cases; returns (min, median).
fn time_cases(cases: &mut [Box<dyn FnMut() + '_>]) -> Vec<(Duration, Duration)> {
    for case in cases.iter_mut() {
        for _ in 0..WARMUP {
            case();
        }
    }
    let mut times = vec![Vec::with_capacity(RUNS); cases.len()];
    for _ in 0..RUNS {
        for (case, times) in cases.iter_mut().zip(&mut times) {
            let start = Instant::now();
            case();
            times.push(start.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            (t[0], t[RUNS / 2])
        })
        .collect()
}

fn main() {
    let config = config();
    let mut rng = SplitMix64(49);
    let vb = VarBuilder::from_tensors(weights(&config, &mut rng), DType::F32, &Device::Cpu);
    let model = Gemma2::new(&config, config.num_hidden_layers, vb).expect("model");
    let ids: Vec<u32> = (0..BATCH * SEQ)
        .map(|_| (rng.next_u64() % config.vocab_size as u64) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (BATCH, SEQ), &Device::Cpu).unwrap();
    let tokens = (BATCH * SEQ) as f64;

    let layers = [0, 1, 3, 5, 7];
    let hooks: Vec<HookPoint> = layers
        .iter()
        .map(|&layer| HookPoint::new(layer, HookSite::ResidPost))
        .collect();
    let mut cases: Vec<Box<dyn FnMut() + '_>> = hooks
        .iter()
        .map(|hook| -> Box<dyn FnMut() + '_> {
            Box::new(|| {
                model.forward_to_hook(&ids, hook).unwrap();
            })
        })
        .collect();
    cases.push(Box::new(|| {
        model.logits(&ids).unwrap();
    }));
    let times = time_cases(&mut cases);
    let full = times[times.len() - 1].0;

    println!(
        "model forward: d_model 256, 8 layers, batch {BATCH} x seq {SEQ}, CPU f32, {RUNS} runs"
    );
    println!(
        "| stop at | blocks run | min (ms) | median (ms) | tokens/s (min) | share of full (min) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for ((hook, layer), time) in hooks.iter().zip(layers).zip(&times) {
        row(&format!("`{hook}`"), layer + 1, *time, tokens, full);
    }
    row(
        "`logits` (all blocks + head)",
        8,
        times[times.len() - 1],
        tokens,
        full,
    );
}

fn row(
    what: &str,
    blocks: usize,
    (min, median): (Duration, Duration),
    tokens: f64,
    full: Duration,
) {
    println!(
        "| {what} | {blocks} | {:.1} | {:.1} | {:.0} | {:.2} |",
        min.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        tokens / min.as_secs_f64(),
        min.as_secs_f64() / full.as_secs_f64()
    );
}
