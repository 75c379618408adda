#!/usr/bin/env python3
"""The GPU kit's helpers that need only numpy (docs/gpu.md; driven by scripts/gpu/run.sh).

Subcommands (each prints one JSON object on stdout):

  compare-dumps A B         activation dumps (safetensors, same keys): max |a-b|, relative errors
  compare-caches A B        two `saectl cache` folders: tokens equal, activation errors
  compare-samples A B       two samples folders: same (sequence, position) per feature, values
  compare-metrics A B       two runs' metrics.jsonl, line by line (loss, mse, l0)
  log-stats FILE            the totals `saectl cache`/`collect` print on stderr
  make-sae ...              a random SAE in SAELens format (cfg.json + sae_weights.safetensors)
  make-corpus ...           a JSON Lines corpus of random words (timing only)
  make-ids ...              random `input_ids` [batch, seq] (i64 safetensors) for the dumps
  report DIR                results/*.json -> DIR/benchmarks.md, ready for docs/benchmarks.md

safetensors is read and written here directly (8-byte header length, JSON header, raw
little-endian data), so the helpers run wherever numpy does.
"""

import argparse
import glob
import json
import math
import os
import re
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
          "U32": np.uint32, "I32": np.int32, "U8": np.uint8, "U16": np.uint16}


def read_safetensors(path):
    """{name: float32 (or integer) numpy array}; bf16 is widened to f32 exactly."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[start:end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = array.reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    """Writes float32 / integer numpy arrays; atomic (temporary name, then rename)."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.uint32): "U32"}
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        blob = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def errors(actual, expected):
    """max |a-b|, that over max |b| (the parity tests' measure), and the relative L2 error."""
    a, b = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if a.shape != b.shape:
        raise SystemExit(f"shapes differ: {a.shape} vs {b.shape}")
    diff = np.abs(a - b)
    scale = float(np.abs(b).max()) or 1.0
    norm = float(np.linalg.norm(b)) or 1.0
    return {"max_abs": float(diff.max()), "rel_max": float(diff.max()) / scale,
            "rel_l2": float(np.linalg.norm(a - b)) / norm}


def compare_dumps(args):
    a, b = read_safetensors(args.a), read_safetensors(args.b)
    keys = sorted(k for k in a if k in b and a[k].dtype.kind == "f")
    if not keys:
        raise SystemExit(f"no common float tensors in {args.a} and {args.b}")
    per_key = {k: errors(a[k], b[k]) for k in keys}
    worst = max(per_key.values(), key=lambda e: e["rel_max"])
    out = {"compared": len(keys), "worst_rel_max": worst["rel_max"],
           "worst_rel_l2": max(e["rel_l2"] for e in per_key.values())}
    if args.per_key:
        out["per_key"] = per_key
    return verdict(out, out["worst_rel_max"], args.tolerance)


def verdict(out, value, tolerance):
    if tolerance is not None:
        out["tolerance"] = tolerance
        out["ok"] = bool(value <= tolerance)
    return out


def cache_arrays(folder):
    index = json.load(open(os.path.join(folder, "cache_index.json")))
    acts, tokens = [], []
    for shard in index["shards"]:
        tensors = read_safetensors(os.path.join(folder, shard["file"]))
        acts.append(tensors["activations"].astype(np.float32))
        tokens.append(tensors["tokens"])
    return np.concatenate(acts), np.concatenate(tokens), index


def compare_caches(args):
    (a, ta, ia), (b, tb, ib) = cache_arrays(args.a), cache_arrays(args.b)
    out = {"tokens_equal": bool(np.array_equal(ta, tb)), "dtypes": [ia["dtype"], ib["dtype"]],
           "num_tokens": int(ia["num_tokens"])}
    out.update(errors(a, b))
    out = verdict(out, out["rel_max"], args.tolerance)
    if "ok" in out:
        out["ok"] = out["ok"] and out["tokens_equal"]
    return out


def samples(folder):
    """{feature: [(sequence_idx, position, activation_value)]} in the files' order."""
    out = {}
    for path in glob.glob(os.path.join(folder, "feature_*_samples.json")):
        data = json.load(open(path))
        feature = int(re.search(r"feature_(\d+)_samples", path).group(1))
        out[feature] = [(s["sequence_idx"], s["position"], s["activation_value"])
                        for s in data["top_samples"]]
    return out


def compare_samples(args):
    a, b = samples(args.a), samples(args.b)
    features = sorted(set(a) | set(b))
    identical, recall, value_errors = 0, [], []
    for f in features:
        sa, sb = a.get(f, []), b.get(f, [])
        if [s[:2] for s in sa] == [s[:2] for s in sb]:
            identical += 1
        where = {s[:2]: s[2] for s in sb}
        found = [s for s in sa if s[:2] in where]
        recall.append(len(found) / max(len(sa), 1))
        for s in found:
            value_errors.append(abs(s[2] - where[s[:2]]) / max(abs(where[s[:2]]), 1e-12))
    out = {"features": len(features), "features_in_both": len(set(a) & set(b)),
           "identical_lists": identical / max(len(features), 1),
           "mean_recall": float(np.mean(recall)) if recall else 0.0,
           "max_rel_value_error": max(value_errors, default=0.0),
           "median_rel_value_error": float(np.median(value_errors)) if value_errors else 0.0,
           "samples_compared": len(value_errors)}
    if args.min_identical is not None:
        out["ok"] = bool(out["identical_lists"] >= args.min_identical
                         and out["max_rel_value_error"] <= args.max_value_error)
        out["tolerance"] = {"min_identical": args.min_identical,
                            "max_value_error": args.max_value_error}
    return out


def metrics(folder):
    path = os.path.join(folder, "metrics.jsonl")
    return [json.loads(line) for line in open(path) if line.strip()]


def compare_metrics(args):
    a, b = metrics(args.a), metrics(args.b)
    lines = []
    for x, y in zip(a, b):
        rel = {k: abs(x[k] - y[k]) / max(abs(y[k]), 1e-12) for k in ("loss", "mse", "l0")}
        lines.append({"step": x["step"], "l0": [x["l0"], y["l0"]], "rel": rel,
                      "finite": all(math.isfinite(x[k]) for k in ("loss", "mse"))})
    out = {"lines": lines}
    if args.tolerance is not None and lines:
        first = lines[0]["rel"]
        out["ok"] = bool(all(l["finite"] for l in lines)
                         and max(first.values()) <= args.tolerance)
        out["tolerance"] = args.tolerance
    return out


LOG_PATTERNS = {
    "collect": re.compile(r"collected (\d+) tokens in ([\d.]+) s \(([\d.]+) tokens/s\)"),
    "cache": re.compile(r"cached (\d+) sequences \((\d+) tokens\) in ([\d.]+) s \(([\d.]+) tokens/s\)"),
    "split": re.compile(r"^time: (.*)$", re.M),
}


def log_stats(args):
    text = open(args.file, errors="replace").read()
    out = {}
    if m := LOG_PATTERNS["collect"].search(text):
        out.update(command="collect", tokens=int(m[1]), seconds=float(m[2]),
                   tokens_per_s=float(m[3]))
    if m := LOG_PATTERNS["cache"].search(text):
        out.update(command="cache", tokens=int(m[2]), seconds=float(m[3]),
                   tokens_per_s=float(m[4]))
    if m := LOG_PATTERNS["split"].search(text):
        out["time_split"] = m[1].strip()
        # "source 10.8%, encode 53.9%, collector 35.3%"
        out["shares"] = {name: float(share) for name, share in
                         re.findall(r"(\w+) ([\d.]+)%", m[1])}
    return out


def make_sae(args):
    """Decoder rows random unit vectors, W_enc their transpose; per-token layer norm of the
    input, so that pre-activations are about N(0, 1) and a threshold of `z` keeps a known
    fraction of them."""
    rng = np.random.default_rng(args.seed)
    w_dec = rng.standard_normal((args.d_sae, args.d_in)).astype(np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    tensors = {"W_enc": np.ascontiguousarray(w_dec.T), "W_dec": w_dec,
               "b_enc": np.zeros(args.d_sae, np.float32), "b_dec": np.zeros(args.d_in, np.float32)}
    cfg = {"architecture": args.arch, "d_in": args.d_in, "d_sae": args.d_sae,
           "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
           "normalize_activations": "layer_norm", "reshape_activations": "none",
           "metadata": {"model_name": args.model_name, "hook_name": args.hook}}
    if args.arch == "topk":
        cfg["k"] = args.k
    else:
        tensors["threshold"] = np.full(args.d_sae, args.threshold, np.float32)
        if args.arch == "batchtopk":
            cfg["k"] = args.k
    os.makedirs(args.out, exist_ok=True)
    write_safetensors(os.path.join(args.out, "sae_weights.safetensors"), tensors)
    with open(os.path.join(args.out, "cfg.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return {"sae": args.out, "architecture": args.arch, "d_in": args.d_in, "d_sae": args.d_sae}


def make_corpus(args):
    words = open(args.words).read().split()
    rng = np.random.default_rng(args.seed)
    with open(args.out, "w") as f:
        written = 0
        while written < args.words_total:
            n = int(rng.integers(50, 400))
            text = " ".join(words[i] for i in rng.integers(0, len(words), n))
            f.write(json.dumps({"text": text}) + "\n")
            written += n
    return {"corpus": args.out, "words": written}


def make_ids(args):
    rng = np.random.default_rng(args.seed)
    ids = rng.integers(0, args.vocab, (args.batch, args.seq_len), dtype=np.int64)
    ids[:, 0] = 2  # BOS
    write_safetensors(args.out, {"input_ids": ids})
    return {"ids": args.out, "shape": [args.batch, args.seq_len]}


def report(args):
    results = {}
    for path in sorted(glob.glob(os.path.join(args.dir, "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            results[name] = json.load(open(path))
        except json.JSONDecodeError:
            results[name] = {"unreadable": path}
    from report import render  # scripts/gpu/report.py
    text = render(results)
    with open(os.path.join(args.dir, "benchmarks.md"), "w") as f:
        f.write(text)
    return {"report": os.path.join(args.dir, "benchmarks.md"), "sections": len(results)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("compare-dumps", "compare-caches", "compare-metrics"):
        p = sub.add_parser(name)
        p.add_argument("a")
        p.add_argument("b")
        p.add_argument("--tolerance", type=float)
        p.add_argument("--per-key", action="store_true")
    p = sub.add_parser("compare-samples")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--min-identical", type=float)
    p.add_argument("--max-value-error", type=float, default=1e-4)
    p = sub.add_parser("log-stats")
    p.add_argument("file")
    p = sub.add_parser("make-sae")
    p.add_argument("--out", required=True)
    p.add_argument("--arch", choices=["topk", "batchtopk", "jumprelu"], default="topk")
    p.add_argument("--d-in", type=int, required=True)
    p.add_argument("--d-sae", type=int, required=True)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--threshold", type=float, default=2.9)
    p.add_argument("--hook", required=True)
    p.add_argument("--model-name", default="random")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("make-corpus")
    p.add_argument("--out", required=True)
    p.add_argument("--words", required=True, help="text file whose words are drawn")
    p.add_argument("--words-total", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("make-ids")
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("report")
    p.add_argument("dir")
    args = parser.parse_args()
    handler = {"compare-dumps": compare_dumps, "compare-caches": compare_caches,
               "compare-samples": compare_samples, "compare-metrics": compare_metrics,
               "log-stats": log_stats, "make-sae": make_sae, "make-corpus": make_corpus,
               "make-ids": make_ids, "report": report}[args.command]
    print(json.dumps(handler(args)))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
