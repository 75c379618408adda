//! Collector throughput against the memory-bandwidth bound.
//!
//! One run, side by side on the same buffers: a plain sequential read of a dense
//! `[4096, 16384]` f32 batch (the bound: the collector must at least read every value), the
//! collector's dense ingest of that batch, and its sparse ingest of TopK batches with
//! k = 32, 64, 128 (cost should follow the non-zeros). The dense batch looks like a real
//! SAE's output: ~64 non-zero latents per token, the rest exactly zero.
//!
//! Two states are measured. "cold": a fresh collector, every hit is admitted to a store that
//! is still filling (the first few batches of a run). "warm": after `WARMUP_BATCHES` distinct
//! batches, the stores are full and only hits above each feature's floor are kept — the state
//! a collection spends nearly all its time in; each timed warm batch follows one untimed batch
//! of other values, so that, as in a collection, the last batch's working memory is at hand.
//!
//! A second table measures a whole **cold fill**: a fresh collector ingesting a 1M-token
//! collection batch by batch (`FILL_TOKENS`), input generated fresh per batch and not timed,
//! for TopK k = 32 (sparse), a JumpReLU-like sparse input (each token's L0 uniform in 40..=120,
//! mean 80, values above a threshold) and the same in dense `[tokens, d_sae]` form. Its user
//! and system columns split the collector thread's CPU time: the system part is the kernel
//! zeroing pages on first touch, which on a shared host swings from ~0 to ~0.9 s between runs
//! of one binary (docs/benchmarks.md); compare builds by the user time.
//!
//! Run with `cargo bench --bench collector` (or `just bench`); results go in docs/benchmarks.md.
//! `COLLECTOR_BENCH=table` runs the first table only, `COLLECTOR_BENCH=dense-warm` its warm
//! dense ingest only (see `dense_warm_only`), `COLLECTOR_BENCH=fill-k32|fill-l80|
//! fill-l80-dense` one cold fill only, and
//! `COLLECTOR_BENCH_TOKENS=N` sets its length (for callgrind: a short fill counts the same
//! instructions per hit), `COLLECTOR_BENCH_GATHER=0` feeds each 4096-token batch alone instead
//! of gathering them as `collect` does.

use std::hint::black_box;
use std::time::{Duration, Instant};

use saectl::collect::{fixed_k_offsets, Collector, FeatureActivations, TokenBatch};
use saectl::samples::CollectorConfig;
use saectl::util::rng::SplitMix64;

/// The allocator the `saectl` binary uses, set as it sets it (src/main.rs), so stores allocate
/// as they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKENS: usize = 4096;
const SEQ_LEN: usize = 128;
const D_SAE: usize = 16384;
const DENSE_L0: usize = 64;
const REPEATS: usize = 5;
const WARMUP_BATCHES: usize = 2000;
/// Tokens of the cold-fill measurement: a 1M-token collection.
const FILL_TOKENS: usize = 1 << 20;

/// A positive activation with a long tail, like SAE latents.
fn activation(rng: &mut SplitMix64) -> f32 {
    -(1.0 - rng.next_f32()).ln() * 0.8 + 0.01
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time<F: FnMut()>(mut f: F) -> Duration {
    let times = (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    median(times)
}

/// Median time of ingesting `activations` into a fresh copy of `collector` (copy not timed).
/// With `previous`, each copy first ingests that batch (not timed): a collection's steady
/// state, where the working memory of the last batch is at hand — a fresh copy starts
/// without it, and its first batch pays for mapping ~10 MB of buffers (page faults and the
/// kernel's zeroing: a tenth of a warm dense batch's time).
fn time_ingest(
    collector: &Collector,
    previous: Option<(&TokenBatch<'_>, &FeatureActivations<'_>)>,
    batch: &TokenBatch<'_>,
    activations: &FeatureActivations<'_>,
) -> Duration {
    let times = (0..REPEATS)
        .map(|_| {
            let mut copy = collector.clone();
            if let Some((batch, activations)) = previous {
                copy.ingest(batch, activations).unwrap();
            }
            let start = Instant::now();
            copy.ingest(batch, activations).unwrap();
            start.elapsed()
        })
        .collect();
    median(times)
}

/// A collector that has seen `batches` distinct TopK-64 batches.
fn warm_collector(rng: &mut SplitMix64, tokens: &[u32], batches: usize) -> Collector {
    let mut collector = Collector::new(CollectorConfig::default(), D_SAE, &[2]).unwrap();
    let offsets = fixed_k_offsets(TOKENS, 64);
    for round in 0..batches {
        let batch = TokenBatch::new(
            tokens,
            TOKENS / SEQ_LEN,
            SEQ_LEN,
            (round * TOKENS / SEQ_LEN) as u64,
        )
        .unwrap();
        let (indices, values) = sparse_batch(rng, 64);
        let sparse = FeatureActivations::Sparse {
            offsets: &offsets,
            indices: &indices,
            values: &values,
            d_sae: D_SAE,
        };
        collector.ingest(&batch, &sparse).unwrap();
    }
    collector
}

/// Sums every value: the least work that reads the whole buffer (vectorised, 16 lanes).
fn sequential_read(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    for block in values.chunks_exact(16) {
        for (lane, &v) in lanes.iter_mut().zip(block) {
            *lane += v;
        }
    }
    lanes.iter().sum()
}

fn dense_batch(rng: &mut SplitMix64) -> Vec<f32> {
    let mut values = vec![0.0f32; TOKENS * D_SAE];
    for token in values.chunks_exact_mut(D_SAE) {
        for _ in 0..DENSE_L0 {
            token[(rng.next_u64() % D_SAE as u64) as usize] = activation(rng);
        }
    }
    values
}

fn sparse_batch(rng: &mut SplitMix64, k: usize) -> (Vec<u32>, Vec<f32>) {
    let mut indices = Vec::with_capacity(TOKENS * k);
    let mut values = Vec::with_capacity(TOKENS * k);
    for _ in 0..TOKENS {
        for _ in 0..k {
            indices.push((rng.next_u64() % D_SAE as u64) as u32);
            values.push(activation(rng));
        }
    }
    (indices, values)
}

fn gib_per_s(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / (1u64 << 30) as f64
}

/// The inputs of a cold fill.
#[derive(Clone, Copy, PartialEq)]
enum FillInput {
    /// TopK, k = 32.
    TopK32,
    /// JumpReLU-like, sparse CSR: L0 40..=120 per token.
    JumpRelu80,
    /// The same activations as a dense `[tokens, d_sae]` batch.
    JumpRelu80Dense,
}

impl FillInput {
    fn name(self) -> &'static str {
        match self {
            Self::TopK32 => "sparse TopK k=32",
            Self::JumpRelu80 => "sparse JumpReLU-like, L0≈80",
            Self::JumpRelu80Dense => "dense f32 JumpReLU-like, L0≈80",
        }
    }
}

/// One token's distinct features and values (`n` of them), appended to `indices`/`values`.
fn token_activations(
    rng: &mut SplitMix64,
    n: usize,
    threshold: f32,
    indices: &mut Vec<u32>,
    values: &mut Vec<f32>,
) {
    let start = indices.len();
    while indices.len() - start < n {
        let feature = (rng.next_u64() % D_SAE as u64) as u32;
        if !indices[start..].contains(&feature) {
            indices.push(feature);
            values.push(threshold + activation(rng));
        }
    }
}

/// One generated batch of a cold fill: sparse CSR activations of `TOKENS` tokens.
struct Generated {
    offsets: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

/// This thread's CPU time so far, user and system apart (the module docs say why).
fn thread_cpu() -> (Duration, Duration) {
    // Per thread where the system says (Linux); elsewhere the process's, the same while the
    // cold fill runs on one thread.
    #[cfg(target_os = "linux")]
    const WHO: libc::c_int = libc::RUSAGE_THREAD;
    #[cfg(not(target_os = "linux"))]
    const WHO: libc::c_int = libc::RUSAGE_SELF;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` only writes the struct it is given, and all zeros (what is left if
    // it fails) is a valid `rusage`.
    let usage = unsafe {
        libc::getrusage(WHO, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

/// Time spent in the collector: wall, and the thread's user and system CPU.
#[derive(Default)]
struct Spent {
    wall: Duration,
    user: Duration,
    system: Duration,
}

impl Spent {
    /// Runs `f`, adding what it took.
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let (start, (user, system)) = (Instant::now(), thread_cpu());
        let out = f();
        let (user_end, system_end) = thread_cpu();
        self.wall += start.elapsed();
        self.user += user_end - user;
        self.system += system_end - system;
        out
    }
}

/// A fresh collector fed `tokens` tokens of `input`; returns the time spent in the collector.
/// Sparse batches are gathered as `saectl collect` gathers them (until they hold
/// `Collector::ingest_hits_hint` values) and fed at once; `COLLECTOR_BENCH_GATHER=0` feeds
/// each batch alone.
fn cold_fill(input: FillInput, tokens: usize, token_ids: &[u32]) -> Spent {
    let gather = std::env::var("COLLECTOR_BENCH_GATHER").map_or(true, |v| v != "0");
    let mut rng = SplitMix64(7);
    let mut collector = Collector::new(CollectorConfig::default(), D_SAE, &[2]).unwrap();
    let hint = if gather && input != FillInput::JumpRelu80Dense {
        collector.ingest_hits_hint()
    } else {
        0
    };
    let mut dense = vec![
        0.0f32;
        if input == FillInput::JumpRelu80Dense {
            TOKENS * D_SAE
        } else {
            0
        }
    ];
    let mut group: Vec<Generated> = Vec::new();
    let mut group_tokens: Vec<u32> = Vec::new();
    let mut first_sequence = 0u64;
    let mut spent = Spent::default();
    let rounds = tokens.div_ceil(TOKENS);
    for round in 0..rounds {
        let mut batch = Generated {
            offsets: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
        };
        for _ in 0..TOKENS {
            let (n, threshold) = match input {
                FillInput::TopK32 => (32, 0.0),
                _ => (40 + (rng.next_u64() % 81) as usize, 0.2),
            };
            token_activations(
                &mut rng,
                n,
                threshold,
                &mut batch.indices,
                &mut batch.values,
            );
            batch.offsets.push(batch.indices.len());
        }
        if input == FillInput::JumpRelu80Dense {
            dense.fill(0.0);
            for token in 0..TOKENS {
                for i in batch.offsets[token]..batch.offsets[token + 1] {
                    dense[token * D_SAE + batch.indices[i] as usize] = batch.values[i];
                }
            }
            let tokens =
                TokenBatch::new(token_ids, TOKENS / SEQ_LEN, SEQ_LEN, first_sequence).unwrap();
            let activations = FeatureActivations::Dense {
                values: &dense,
                d_sae: D_SAE,
            };
            spent.time(|| collector.ingest(&tokens, &activations).unwrap());
            first_sequence += (TOKENS / SEQ_LEN) as u64;
            continue;
        }
        group.push(batch);
        group_tokens.extend_from_slice(token_ids);
        let values: usize = group.iter().map(|b| b.values.len()).sum();
        if values < hint && round + 1 < rounds {
            continue;
        }
        let rows = group_tokens.len() / SEQ_LEN;
        let tokens = TokenBatch::new(&group_tokens, rows, SEQ_LEN, first_sequence).unwrap();
        let parts: Vec<FeatureActivations<'_>> = group
            .iter()
            .map(|b| FeatureActivations::Sparse {
                offsets: &b.offsets,
                indices: &b.indices,
                values: &b.values,
                d_sae: D_SAE,
            })
            .collect();
        spent.time(|| collector.ingest_parts(&tokens, &parts).unwrap());
        first_sequence += rows as u64;
        group.clear();
        group_tokens.clear();
    }
    black_box(&collector);
    spent
}

/// The cold-fill table (or one row of it, for a profiler).
fn cold_fill_table(token_ids: &[u32], only: Option<&str>, tokens: usize) {
    let inputs = [
        ("fill-k32", FillInput::TopK32),
        ("fill-l80", FillInput::JumpRelu80),
        ("fill-l80-dense", FillInput::JumpRelu80Dense),
    ];
    println!(
        "\ncold fill: a fresh collector fed {tokens} tokens in batches of {TOKENS}, d_sae {D_SAE}, \
         defaults (context 20, 100 samples), 1 thread\n"
    );
    println!("| input | time (s) | tokens/s | ns / token | user (s) | system (s) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (key, input) in inputs {
        if only.is_some_and(|only| only != key) {
            continue;
        }
        let spent = cold_fill(input, tokens, token_ids);
        let t = spent.wall;
        println!(
            "| {} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} |",
            input.name(),
            t.as_secs_f64(),
            tokens as f64 / t.as_secs_f64(),
            t.as_nanos() as f64 / tokens as f64,
            spent.user.as_secs_f64(),
            spent.system.as_secs_f64(),
        );
    }
}

/// The two batches that follow `warmup` batches, as in a continuing run: the one a warm copy
/// ingests untimed, then the one timed (the same tokens, the sequences after the warm-up's).
fn batches_after(tokens: &[u32], warmup: usize) -> (TokenBatch<'_>, TokenBatch<'_>) {
    let rows = TOKENS / SEQ_LEN;
    let first_sequence = (warmup * rows) as u64;
    let batch = |first| TokenBatch::new(tokens, rows, SEQ_LEN, first).unwrap();
    (batch(first_sequence), batch(first_sequence + rows as u64))
}

/// The warm dense ingest alone, repeated (`COLLECTOR_BENCH=dense-warm`, for a profiler: the
/// warm-up is most of the run otherwise), each into a copy that has just ingested a batch of
/// its own, as in the table. `COLLECTOR_BENCH_WARMUP=N` shortens the warm-up to N batches and
/// `COLLECTOR_BENCH_REPEATS=N` sets the ingests (under valgrind: the scan and extraction count
/// the same instructions whatever the stores hold).
fn dense_warm_only(rng: &mut SplitMix64, tokens: &[u32]) {
    let var = |name: &str, default: usize| {
        std::env::var(name).map_or(default, |n| n.parse().expect("a number"))
    };
    let (warmup, repeats) = (
        var("COLLECTOR_BENCH_WARMUP", WARMUP_BATCHES),
        var("COLLECTOR_BENCH_REPEATS", 40).max(1),
    );
    let warm = warm_collector(rng, tokens, warmup);
    let (previous_batch, batch) = batches_after(tokens, warmup);
    let (dense, previous) = (dense_batch(rng), dense_batch(rng));
    let activations = FeatureActivations::Dense {
        values: &dense,
        d_sae: D_SAE,
    };
    let previous = FeatureActivations::Dense {
        values: &previous,
        d_sae: D_SAE,
    };
    // The read bound moves with the host's memory bandwidth (it has measured 8.6 to 19 ms
    // here): each ingest is paired with a read timed just before it, and the verdict is the
    // median of the pairs' ratios.
    let started = Instant::now();
    let (mut times, mut reads, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        let mut copy = warm.clone();
        copy.ingest(&previous_batch, &previous).unwrap();
        let start = Instant::now();
        black_box(sequential_read(black_box(&dense)));
        let read = start.elapsed();
        let start = Instant::now();
        copy.ingest(&batch, &activations).unwrap();
        let ingest = start.elapsed();
        ratios.push(read.as_secs_f64() / ingest.as_secs_f64());
        times.push(ingest);
        reads.push(read);
    }
    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    ratios.sort_by(f64::total_cmp);
    println!(
        "dense ingest after {warmup} batches, {repeats} times into a copy ({:.1} s): best {:.1} ms, \
         median {:.1} ms; sequential read best {:.1} ms, median {:.1} ms; read / ingest, median \
         of pairs {:.0}% (quartiles {:.0}%, {:.0}%)",
        started.elapsed().as_secs_f64(),
        ms(*times.iter().min().unwrap()),
        ms(median(times)),
        ms(*reads.iter().min().unwrap()),
        ms(median(reads)),
        100.0 * ratios[repeats / 2],
        100.0 * ratios[repeats / 4],
        100.0 * ratios[3 * repeats / 4],
    );
}

fn main() {
    saectl::util::alloc::keep_freed_memory();
    let mut rng = SplitMix64(49);
    let only = std::env::var("COLLECTOR_BENCH").ok();
    let fill_tokens = std::env::var("COLLECTOR_BENCH_TOKENS")
        .ok()
        .map_or(FILL_TOKENS, |n| {
            n.parse().expect("COLLECTOR_BENCH_TOKENS is a number")
        });
    let tokens: Vec<u32> = (0..TOKENS)
        .map(|_| (rng.next_u64() % 50_000) as u32 + 3)
        .collect();
    if only.as_deref() == Some("dense-warm") {
        dense_warm_only(&mut rng, &tokens);
        return;
    }
    if let Some(only) = only.as_deref().filter(|&only| only != "table") {
        cold_fill_table(&tokens, Some(only), fill_tokens);
        return;
    }
    let cold = Collector::new(CollectorConfig::default(), D_SAE, &[2]).unwrap();
    let warm = warm_collector(&mut rng, &tokens, WARMUP_BATCHES);
    // A warm copy first ingests a batch of its own (`previous`, other values), then the one
    // timed.
    let (previous_batch, batch) = batches_after(&tokens, WARMUP_BATCHES);
    let dense = dense_batch(&mut rng);
    let dense_previous = dense_batch(&mut rng);
    let dense_previous = FeatureActivations::Dense {
        values: &dense_previous,
        d_sae: D_SAE,
    };
    let settled_dense = Some((&previous_batch, &dense_previous));
    let bytes = dense.len() * 4;
    let read = time(|| {
        black_box(sequential_read(black_box(&dense)));
    });

    println!(
        "collector benchmark: batches of {TOKENS} tokens x d_sae {D_SAE}, median of {REPEATS} runs, 1 thread; \
         warm = after {} distinct tokens\n",
        WARMUP_BATCHES * TOKENS
    );
    println!("| input | work | time (ms) | GiB/s of input | Mtokens/s | ns / non-zero | vs read |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    // `nnz` 0: an all-zero input, where a per-non-zero cost means nothing.
    let row = |input: &str, work: &str, t: Duration, bytes: usize, nnz: usize| {
        let per_nonzero = match nnz {
            0 => "—".to_string(),
            n => format!("{:.1}", t.as_nanos() as f64 / n as f64),
        };
        println!(
            "| {input} | {work} | {:.1} | {:.2} | {:.2} | {per_nonzero} | {:.0}% |",
            t.as_secs_f64() * 1e3,
            gib_per_s(bytes, t),
            TOKENS as f64 / t.as_secs_f64() / 1e6,
            100.0 * read.as_secs_f64() / t.as_secs_f64()
        );
    };
    let dense_nnz = dense.iter().filter(|&&v| v > 0.0).count();
    let activations = FeatureActivations::Dense {
        values: &dense,
        d_sae: D_SAE,
    };
    row(
        "dense f32, L0≈64",
        "sequential read (bound)",
        read,
        bytes,
        dense_nnz,
    );
    // -0.0, not 0.0: a zeroed allocation maps the shared zero page and reads for free.
    let zeros = vec![-0.0f32; dense.len()];
    let silent = FeatureActivations::Dense {
        values: &zeros,
        d_sae: D_SAE,
    };
    row(
        "dense f32, all zero",
        "ingest (scan only)",
        time_ingest(&warm, settled_dense, &batch, &silent),
        bytes,
        0,
    );
    row(
        "dense f32, L0≈64",
        "ingest, cold",
        time_ingest(&cold, None, &batch, &activations),
        bytes,
        dense_nnz,
    );
    row(
        "dense f32, L0≈64",
        "ingest, warm",
        time_ingest(&warm, settled_dense, &batch, &activations),
        bytes,
        dense_nnz,
    );
    for k in [32, 64, 128] {
        let (indices, values) = sparse_batch(&mut rng, k);
        let (previous_indices, previous_values) = sparse_batch(&mut rng, k);
        let offsets = fixed_k_offsets(TOKENS, k);
        let sparse = FeatureActivations::Sparse {
            offsets: &offsets,
            indices: &indices,
            values: &values,
            d_sae: D_SAE,
        };
        let previous = FeatureActivations::Sparse {
            offsets: &offsets,
            indices: &previous_indices,
            values: &previous_values,
            d_sae: D_SAE,
        };
        let input = format!("sparse TopK k={k}");
        let sparse_bytes = values.len() * 8;
        row(
            &input,
            "ingest, cold",
            time_ingest(&cold, None, &batch, &sparse),
            sparse_bytes,
            values.len(),
        );
        row(
            &input,
            "ingest, warm",
            time_ingest(&warm, Some((&previous_batch, &previous)), &batch, &sparse),
            sparse_bytes,
            values.len(),
        );
    }
    if only.is_none() {
        cold_fill_table(&tokens, None, fill_tokens);
    }
}
