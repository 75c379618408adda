//! The GPU kit's probe (`scripts/gpu/run.sh`, docs/gpu.md): the measurements the `saectl`
//! commands cannot make on their own, as JSON on stdout.
//!
//! - `forward`: load a Hugging Face Gemma-2 folder on a device and time the forward pass that
//!   stops at the hook points, on random token ids (the model's own work only: no text
//!   pipeline, no disk); with `--ids FILE` also dump the activations of those ids (f32
//!   safetensors, keys = hook names) for the parity checks against the CPU and Hugging Face.
//! - `topk`: the device top-k selections (`sae::topk::topk_rows`, `batch_topk`) at SAE widths
//!   where candle's `arg_sort` fails on CUDA (> 8192 columns), checked against the exact host
//!   versions, and timed.
//! - `select`: training's selections (`train::loss::select`, `train::jumprelu::select`) and the
//!   collector's CSR (`SparseActs::from_dense`) on the device — which never copy the dense
//!   `[tokens, d_sae]` matrix — against the host path they replace (copy, then select on the
//!   CPU): identical active sets, and both timed, with the bare dense copy for scale.
//!
//! It runs on the CPU too (the kit's local smoke test); built with `--features cuda` by
//! `scripts/build-cuda.sh`, it is what the kit carries to the GPU machine beside `saectl`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::{Args, Parser, Subcommand};
use saectl::hub::HubSettings;
use saectl::model::{
    load_model, resolve_device, resolve_dtype, DTypeChoice, DeviceChoice, HookPoint, HookSite,
    LoadOptions, ModelSource,
};
use saectl::sae::topk::{batch_topk, batch_topk_host, topk_rows, topk_rows_host};
use saectl::sae::{SaeKind, SparseActs};
use saectl::train::{jumprelu, loss};
use saectl::util::rng::SplitMix64;
use serde_json::json;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time the forward to hook points; optionally dump the activations of given ids.
    Forward {
        #[arg(long)]
        model: PathBuf,
        /// Comma-separated hook names, or `all` (every site of every layer).
        #[arg(long, default_value = "blocks.12.hook_resid_post")]
        hooks: String,
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        #[arg(long)]
        dtype: Option<DTypeChoice>,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 128)]
        seq_len: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Timed runs (0: no timing).
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// safetensors file with `input_ids` `[batch, seq]` (i64 or u32) to dump.
        #[arg(long, requires = "dump")]
        ids: Option<PathBuf>,
        #[arg(long)]
        dump: Option<PathBuf>,
    },
    /// Device top-k against the host's exact top-k at the given widths.
    Topk(SelectionArgs),
    /// Training's and the collector's selections on the device against the host path.
    Select(SelectionArgs),
}

/// Shapes and repetitions of the `topk` and `select` probes.
#[derive(Args)]
struct SelectionArgs {
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    #[arg(long, value_delimiter = ',', default_value = "16384,65536")]
    d_sae: Vec<usize>,
    #[arg(long, default_value_t = 4096)]
    tokens: usize,
    #[arg(long, default_value_t = 32)]
    k: usize,
    #[arg(long, default_value_t = 5)]
    iters: usize,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Forward {
            model,
            hooks,
            device,
            dtype,
            batch,
            seq_len,
            warmup,
            iters,
            ids,
            dump,
        } => {
            let resolved = resolve_device(device)?;
            let dtype = resolve_dtype(dtype, &resolved.device);
            let options = ForwardOptions {
                batch,
                seq_len,
                warmup,
                iters,
            };
            forward(
                &model,
                &hooks,
                &resolved.device,
                dtype,
                &options,
                ids.zip(dump),
            )
        }
        Command::Topk(a) => {
            let device = resolve_device(a.device)?.device;
            for d in a.d_sae {
                println!("{}", topk_case(&device, a.tokens, d, a.k, a.iters)?);
            }
            Ok(())
        }
        Command::Select(a) => {
            let device = resolve_device(a.device)?.device;
            for d in a.d_sae {
                for what in ["batchtopk", "topk", "relu", "jumprelu", "collect"] {
                    println!("{}", select_case(&device, what, a.tokens, d, a.k, a.iters)?);
                }
            }
            Ok(())
        }
    }
}

struct ForwardOptions {
    batch: usize,
    seq_len: usize,
    warmup: usize,
    iters: usize,
}

fn parse_hooks(text: &str, n_layers: Option<usize>) -> Result<Vec<HookPoint>> {
    if text == "all" {
        let n = n_layers.context("`all` needs the model's depth")?;
        return Ok((0..n)
            .flat_map(|layer| HookSite::ALL.map(|site| HookPoint::new(layer, site)))
            .collect());
    }
    text.split(',')
        .map(|name| name.trim().parse().map_err(anyhow::Error::from))
        .collect()
}

fn forward(
    dir: &std::path::Path,
    hooks: &str,
    device: &Device,
    dtype: DType,
    options: &ForwardOptions,
    dump: Option<(PathBuf, PathBuf)>,
) -> Result<()> {
    let config = saectl::model::read_config(&dir.join("config.json"))?;
    let hooks = parse_hooks(hooks, Some(config.num_hidden_layers))?;
    let layers = hooks.iter().map(|h| h.layers_needed()).max().unwrap_or(1);
    let started = Instant::now();
    let load = LoadOptions {
        device: device.clone(),
        dtype,
        layers: Some(layers.max(1)),
    };
    let source = ModelSource::Local(dir.to_path_buf());
    let model = load_model(&source, &load, &HubSettings::from_env())?.model;
    device.synchronize()?;
    let load_s = started.elapsed().as_secs_f64();
    if let Some((ids_path, dump_path)) = dump {
        dump_activations(&model, &hooks, &ids_path, &dump_path)?;
    }
    let (batch, seq_len) = (options.batch, options.seq_len);
    let mut rng = SplitMix64(49);
    let vocab = config.vocab_size as u64;
    let ids: Vec<u32> = (0..batch * seq_len)
        .map(|i| {
            if i % seq_len == 0 {
                2
            } else {
                (rng.next_u64() % vocab) as u32
            }
        })
        .collect();
    let ids = Tensor::from_vec(ids, (batch, seq_len), device)?;
    let run = || -> Result<f64> {
        let start = Instant::now();
        model.forward_to_hooks(&ids, &hooks)?;
        device.synchronize()?;
        Ok(start.elapsed().as_secs_f64())
    };
    let warmup = if options.iters == 0 {
        0
    } else {
        options.warmup
    };
    for _ in 0..warmup {
        run()?;
    }
    let mut times = (0..options.iters)
        .map(|_| run())
        .collect::<Result<Vec<_>>>()?;
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied();
    let report = json!({
        "what": "saectl forward",
        "device": device_label(device),
        "dtype": format!("{dtype:?}").to_lowercase(),
        "hooks": hooks.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "layers_loaded": layers,
        "batch": batch,
        "seq_len": seq_len,
        "load_s": load_s,
        "iters": options.iters,
        "min_ms": times.first().map(|t| t * 1e3),
        "median_ms": median.map(|t| t * 1e3),
        "tokens_per_s": median.map(|t| (batch * seq_len) as f64 / t),
    });
    println!("{report}");
    Ok(())
}

/// Forward of the ids in `ids_path` (`input_ids`), every hook's activations as f32.
fn dump_activations(
    model: &saectl::model::Gemma2,
    hooks: &[HookPoint],
    ids_path: &std::path::Path,
    dump_path: &std::path::Path,
) -> Result<()> {
    let tensors = candle_core::safetensors::load(ids_path, &Device::Cpu)
        .with_context(|| format!("failed to read {}", ids_path.display()))?;
    let Some(ids) = tensors.get("input_ids") else {
        bail!("{} has no input_ids", ids_path.display());
    };
    let ids = ids.to_dtype(DType::U32)?.to_device(model.device())?;
    let acts = model.forward_to_hooks(&ids, hooks)?;
    let mut out: HashMap<String, Tensor> = HashMap::new();
    for (hook, act) in hooks.iter().zip(acts) {
        out.insert(
            hook.to_string(),
            act.to_dtype(DType::F32)?.to_device(&Device::Cpu)?,
        );
    }
    candle_core::safetensors::save(&out, dump_path)
        .with_context(|| format!("failed to write {}", dump_path.display()))
}

fn device_label(device: &Device) -> &'static str {
    if device.is_cuda() {
        "cuda"
    } else if device.is_metal() {
        "metal"
    } else {
        "cpu"
    }
}

/// One width: the device selections against the host's, and their median times.
fn topk_case(
    device: &Device,
    n: usize,
    d: usize,
    k: usize,
    iters: usize,
) -> Result<serde_json::Value> {
    let mut rng = SplitMix64(d as u64);
    let data: Vec<f32> = (0..n * d).map(|_| rng.uniform_sym()).collect();
    let xs = Tensor::from_vec(data.clone(), (n, d), device)?;
    let time = |f: &dyn Fn() -> Result<()>| median_ms(device, iters, f);
    // Row top-k: the values must be exactly the host's; every index must point at its value.
    let (values, indices) = topk_rows(&xs, k)?;
    let values = values.flatten_all()?.to_vec1::<f32>()?;
    let indices = indices.flatten_all()?.to_vec1::<u32>()?;
    let (host_values, _) = topk_rows_host(&data, d, k);
    let consistent = indices
        .iter()
        .zip(&values)
        .enumerate()
        .all(|(i, (&c, &v))| data[(i / k) * d + c as usize] == v);
    let rows_ok = values == host_values && consistent;
    let rows_ms = time(&|| topk_rows(&xs, k).map(|_| ()).map_err(Into::into))?;
    // Batch top-k: the device keeps every value tied with the cut, so it may keep a few more.
    let k_total = k * n;
    let kept = batch_topk(&xs, k_total)?.flatten_all()?.to_vec1::<f32>()?;
    let expected = batch_topk_host(data.clone(), k_total);
    let cut = expected
        .iter()
        .copied()
        .filter(|&x| x != 0.0)
        .fold(f32::INFINITY, f32::min);
    let batch_ok = kept.iter().zip(&expected).all(|(&got, &want)| {
        got == want || (want == 0.0 && got == cut) // a tie at the cut
    });
    let kept_count = kept.iter().filter(|&&x| x != 0.0).count();
    let batch_ms = time(&|| batch_topk(&xs, k_total).map(|_| ()).map_err(Into::into))?;
    Ok(json!({
        "what": "topk",
        "device": device_label(device),
        "tokens": n,
        "d_sae": d,
        "k": k,
        "row_topk_ok": rows_ok,
        "row_topk_ms": rows_ms,
        "batch_topk_ok": batch_ok,
        "batch_topk_kept": kept_count,
        "batch_topk_expected": k_total,
        "batch_topk_ms": batch_ms,
    }))
}

/// Median wall time of `f` in milliseconds over `iters` runs, the device synchronised.
fn median_ms(device: &Device, iters: usize, f: &dyn Fn() -> Result<()>) -> Result<f64> {
    let mut times = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        let start = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// One selection at one width: the device path (no dense copy) against the host path (copy the
/// pre-activations, select on the CPU): the same active set, and both times. Pre-activations
/// are uniform in (−1, 1) for the top-k kinds (half positive: the bisection's worst case) and
/// shifted to ~0.5% above threshold for the threshold kinds (an L0 of ~80 at 16k).
fn select_case(
    device: &Device,
    what: &str,
    n: usize,
    d: usize,
    k: usize,
    iters: usize,
) -> Result<serde_json::Value> {
    let mut rng = SplitMix64(7 + d as u64);
    let shift = if matches!(what, "relu" | "collect") {
        0.99
    } else {
        0.0
    };
    let data: Vec<f32> = (0..n * d).map(|_| rng.uniform_sym() - shift).collect();
    let theta = vec![0.99f32; d];
    let on_device = Tensor::from_vec(data.clone(), (n, d), device)?;
    let select = |pre: &Tensor| -> Result<(Vec<u32>, Vec<u32>, Vec<f32>)> {
        let set = match what {
            "batchtopk" => loss::select(SaeKind::BatchTopK, pre, k)?,
            "topk" => loss::select(SaeKind::TopK, pre, k)?,
            "relu" => loss::select(SaeKind::Relu, pre, k)?,
            "jumprelu" => jumprelu::select(pre, &theta, 0.001)?.set,
            _ => {
                let csr = SparseActs::from_dense(pre)?;
                let rows = csr.offsets.windows(2).enumerate();
                let rows = rows.flat_map(|(r, w)| std::iter::repeat_n(r as u32, w[1] - w[0]));
                return Ok((rows.collect(), csr.indices, csr.values));
            }
        };
        Ok((set.rows, set.feats, set.values))
    };
    let host_path = || -> Result<_> {
        let copied = on_device.to_device(&Device::Cpu)?;
        select(&copied)
    };
    let got = select(&on_device)?;
    let equal = got == host_path()?;
    let device_ms = median_ms(device, iters, &|| select(&on_device).map(|_| ()))?;
    let host_ms = median_ms(device, iters, &|| host_path().map(|_| ()))?;
    let copy_ms = median_ms(device, iters, &|| {
        on_device.flatten_all()?.to_vec1::<f32>().map(|_| ())?;
        Ok(())
    })?;
    Ok(json!({
        "what": "select",
        "selection": what,
        "device": device_label(device),
        "tokens": n,
        "d_sae": d,
        "k": k,
        "active": got.0.len(),
        "equal_to_host": equal,
        "device_ms": device_ms,
        "host_path_ms": host_ms,
        "dense_copy_ms": copy_ms,
        "dense_bytes": 4 * n * d,
    }))
}
