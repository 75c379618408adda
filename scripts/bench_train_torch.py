#!/usr/bin/env python3
"""The PyTorch side of scripts/bench-train-vs-torch.sh: a synthetic activation cache, and the
Python original's BatchTopK training step timed on it.

    python3 scripts/bench_train_torch.py make-cache DIR --d-in 256 --tokens 131072
    python3 scripts/bench_train_torch.py step DIR --d-sae 4096 --k 32 --batch 4096 --steps 20

`make-cache` writes a saectl activation cache (docs/cache.md: cache_index.json and f32
safetensors shards) of sparse sums of random unit directions plus noise, so that an SAE has
structure to find; numpy only. `step` reads the same shards and runs the original's
(Bussmann et al.'s BatchTopK repo, `BatchTopKSAE` + `train_sae`) equations with torch on the
CPU: input unit norm, `relu((x - b_dec) @ W_enc + b_enc)` (saectl trains b_enc; the original's
BatchTopK forward left it out), the batch's top k*B values, dense decode, MSE + aux-K loss on
dead latents, backward, `clip_grad_norm_`, the decoder's parallel-gradient removal and unit
norm, Adam. It prints one JSON line: warm ms per step (the mean over --steps after --warmup
steps), the threads, torch's version and the peak RSS. Only benchmarks run this; tests never
need Python.
"""

import argparse
import json
import os
import resource
import struct
import time

import numpy as np


def write_safetensors(path, tensors):
    """safetensors: an 8-byte little-endian header size, the JSON header, the raw data."""
    header, offset, blobs = {}, 0, []
    for name, (dtype, array) in tensors.items():
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_activations(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    entry = header["activations"]
    start, end = entry["data_offsets"]
    array = np.frombuffer(data[start:end], dtype=np.float32)
    return array.reshape(-1, entry["shape"][-1])


def make_cache(args):
    rng = np.random.default_rng(args.seed)
    seq_len, per_shard = 128, 256
    n_seq = -(-args.tokens // seq_len)
    directions = rng.standard_normal((args.features, args.d_in)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    os.makedirs(args.dir, exist_ok=True)
    shards = []
    for first in range(0, n_seq, per_shard):
        count = min(per_shard, n_seq - first)
        tokens = count * seq_len
        acts = 0.1 * rng.standard_normal((tokens, args.d_in)).astype(np.float32)
        for _ in range(args.active):
            which = rng.integers(0, args.features, tokens)
            scale = rng.uniform(1.0, 3.0, (tokens, 1)).astype(np.float32)
            acts += scale * directions[which]
        name = f"shard_{len(shards):05d}.safetensors"
        ids = rng.integers(0, 1000, (count, seq_len)).astype(np.uint32)
        write_safetensors(
            os.path.join(args.dir, name),
            {
                "activations": ("F32", acts.reshape(count, seq_len, args.d_in)),
                "tokens": ("U32", ids),
            },
        )
        shards.append({"file": name, "num_sequences": count})
    index = {
        "format_version": 1,
        "model": "synthetic",
        "hook_point": "blocks.0.hook_resid_post",
        "d_in": args.d_in,
        "seq_len": seq_len,
        "dtype": "f32",
        "special_token_ids": [],
        "source": {"synthetic": "scripts/bench_train_torch.py"},
        "tokenizer_file": None,
        "num_sequences": n_seq,
        "num_tokens": n_seq * seq_len,
        "complete": True,
        "shards": shards,
    }
    with open(os.path.join(args.dir, "cache_index.json"), "w") as f:
        json.dump(index, f, indent=2)


class BatchTopK:
    """The original's BatchTopKSAE with its training step (saectl's defaults)."""

    def __init__(self, torch, d_in, d_sae, k, lr=3e-4, aux_k=512, dead_after=20):
        self.torch, self.k, self.aux_k, self.dead_after = torch, k, aux_k, dead_after
        nn = torch.nn
        self.w_enc = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(d_in, d_sae)))
        w_dec = self.w_enc.detach().t().clone()
        self.w_dec = nn.Parameter(w_dec / w_dec.norm(dim=-1, keepdim=True))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.params = [self.w_enc, self.b_enc, self.w_dec, self.b_dec]
        self.adam = torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.99))
        self.inactive = torch.zeros(d_sae)

    def step(self, x):
        torch = self.torch
        x = x - x.mean(dim=-1, keepdim=True)
        x = x / (x.std(dim=-1, keepdim=True) + 1e-5)
        acts = torch.relu((x - self.b_dec) @ self.w_enc + self.b_enc)
        top = torch.topk(acts.flatten(), self.k * x.shape[0], dim=-1)
        acts_topk = (
            torch.zeros_like(acts.flatten())
            .scatter(-1, top.indices, top.values)
            .reshape(acts.shape)
        )
        x_hat = acts_topk @ self.w_dec + self.b_dec
        fired = acts_topk.sum(0) > 0
        self.inactive += (~fired).float()
        self.inactive[fired] = 0
        loss = (x_hat - x).pow(2).mean() + self.aux_loss(x, x_hat, acts)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 100000.0)
        with torch.no_grad():
            normed = self.w_dec / self.w_dec.norm(dim=-1, keepdim=True)
            self.w_dec.grad -= (self.w_dec.grad * normed).sum(-1, keepdim=True) * normed
            self.w_dec.data = normed
        self.adam.step()
        self.adam.zero_grad()
        return loss.item()

    def aux_loss(self, x, x_hat, acts):
        dead = self.inactive >= self.dead_after
        if dead.sum() == 0:
            return 0.0
        residual = x - x_hat
        top = self.torch.topk(acts[:, dead], min(self.aux_k, int(dead.sum())), dim=-1)
        acts_aux = self.torch.zeros_like(acts[:, dead]).scatter(-1, top.indices, top.values)
        return (1 / 32) * (acts_aux @ self.w_dec[dead] - residual).pow(2).mean()


def step(args):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(os.path.join(args.dir, "cache_index.json")) as f:
        index = json.load(f)
    data = np.concatenate(
        [read_activations(os.path.join(args.dir, s["file"])) for s in index["shards"]]
    )
    data = torch.from_numpy(data[np.random.default_rng(args.seed).permutation(len(data))])
    sae = BatchTopK(torch, index["d_in"], args.d_sae, args.k)
    batches = len(data) // args.batch
    times, losses = [], []
    for i in range(args.warmup + args.steps):
        x = data[(i % batches) * args.batch : (i % batches + 1) * args.batch]
        start = time.perf_counter()
        losses.append(sae.step(x))
        times.append(time.perf_counter() - start)
    warm = times[args.warmup :]
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "warm_ms_per_step": 1000 * sum(warm) / len(warm),
        "best_ms_per_step": 1000 * min(warm),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "dead": int((sae.inactive >= sae.dead_after).sum()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-cache")
    make.add_argument("dir")
    make.add_argument("--d-in", type=int, default=256)
    make.add_argument("--tokens", type=int, default=131072)
    make.add_argument("--features", type=int, default=2048, help="true directions")
    make.add_argument("--active", type=int, default=16, help="true directions per token")
    make.add_argument("--seed", type=int, default=0)
    run = sub.add_parser("step")
    run.add_argument("dir")
    run.add_argument("--d-sae", type=int, default=4096)
    run.add_argument("--k", type=int, default=32)
    run.add_argument("--batch", type=int, default=4096)
    run.add_argument("--steps", type=int, default=20)
    run.add_argument("--warmup", type=int, default=3)
    run.add_argument("--threads", type=int, default=2)
    run.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"make-cache": make_cache, "step": step}[args.command](args)


if __name__ == "__main__":
    main()
