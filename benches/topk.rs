//! CPU cost of the top-k selections at the Gemma Scope shape `[4096, 16384]`.
//!
//! Row top-k (TopK encode, k = 32 and 128) and batch top-k (BatchTopK training, k·B with
//! k = 32) on the exact host paths, against a plain read of the batch (memory-bandwidth bound).
//! The input looks like pre-activations: continuous values, half of them negative.
//!
//! Run with `cargo bench --bench topk`; results go in docs/sae.md.

use std::hint::black_box;
use std::time::Instant;

use candle_core::{Device, Tensor};
use saectl::sae::topk::{batch_topk, topk_rows, topk_rows_host};

const N: usize = 4096;
const D: usize = 16384;
const REPEATS: usize = 3;

/// splitmix64 → uniform in [-1, 1): deterministic data without a dependency.
fn data() -> Vec<f32> {
    let mut state = 0x5EED_u64;
    (0..N * D)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Best of `REPEATS` wall-clock seconds.
fn best(mut f: impl FnMut()) -> f64 {
    (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let xs = data();
    let tensor = Tensor::from_vec(xs.clone(), (N, D), &Device::Cpu).unwrap();
    let gb = (N * D * 4) as f64 / 1e9;
    println!("top-k on CPU, [{N}, {D}] f32 ({gb:.2} GB), best of {REPEATS}, 1 thread");
    let read = best(|| {
        black_box(xs.iter().fold(0f32, |acc, &x| acc.max(x)));
    });
    println!("  plain read (bound)            {:8.1} ms", read * 1e3);
    for k in [32, 128] {
        let t = best(|| {
            black_box(topk_rows_host(&xs, D, k));
        });
        println!("  row top-k host slice, k {k:<4}  {:8.1} ms", t * 1e3);
    }
    let t = best(|| {
        black_box(topk_rows(&tensor, 32).unwrap());
    });
    println!(
        "  row top-k tensor API, k 32    {:8.1} ms (reads the tensor in place)",
        t * 1e3
    );
    let t = best(|| {
        black_box(batch_topk(&tensor, 32 * N).unwrap());
    });
    println!(
        "  batch top-k, k·B = 32·{N}    {:8.1} ms (incl. copies)",
        t * 1e3
    );
}
