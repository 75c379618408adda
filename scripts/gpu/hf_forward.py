#!/usr/bin/env python3
"""Hugging Face transformers' side of the forward benchmark, and its activations for parity.

Loads a Gemma-2 checkpoint folder with `Gemma2ForCausalLM.from_pretrained` and runs the
forward on random token ids [batch, seq_len], stopping after decoder layer L the way saectl's
`forward_to_hook` stops: a forward hook on `model.model.layers[L]` records the layer's output
(`blocks.L.hook_resid_post`) and raises, so the later layers and the head are never launched.
Timing synchronises the device around each run (median of --iters after --warmup).

With --ids FILE (safetensors, `input_ids`) it also writes the layer's output for those ids to
--dump (f32 safetensors, key `blocks.L.hook_resid_post`), which scripts/gpu/kit.py compares
with saectl's dump of the same ids (examples/gpu_probe.rs).

Attention: "eager" is transformers' reference for Gemma-2 (soft-capped attention logits);
"sdpa" is timed as well when --also-sdpa is given and the installed version offers it for
Gemma-2 (faster, but without the soft-capping); otherwise its line says why not.

Usage: python3 hf_forward.py --model DIR --layer 12 --dtype bfloat16 --batch 32 --seq-len 128
"""

import argparse
import json
import struct
import sys
import time

import torch
from transformers import Gemma2ForCausalLM


class Stop(Exception):
    """Raised by the hook after layer L: the rest of the forward is not needed."""


def load(path, dtype, device, attention):
    kwargs = {"attn_implementation": attention}
    try:  # transformers >= 4.56 / 5 call it `dtype`, older versions `torch_dtype`
        model = Gemma2ForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    except TypeError:
        model = Gemma2ForCausalLM.from_pretrained(path, torch_dtype=dtype, **kwargs)
    return model.to(device).eval()


def stop_after(model, layer):
    captured = {}

    def hook(_module, _inputs, output):
        captured["out"] = output[0] if isinstance(output, tuple) else output
        raise Stop

    handle = model.model.layers[layer].register_forward_hook(hook)
    return captured, handle


def run_to_layer(model, ids, captured):
    try:
        model.model(input_ids=ids, use_cache=False)
    except Stop:
        pass
    return captured["out"]


def read_ids(path):
    """`input_ids` from a safetensors file (i64 or u32), without the safetensors package."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    info = header["input_ids"]
    start, end = info["data_offsets"]
    dtype = {"I64": torch.int64, "U32": torch.int32, "I32": torch.int32}[info["dtype"]]
    values = torch.frombuffer(bytearray(data[start:end]), dtype=dtype)
    return values.reshape(info["shape"]).to(torch.int64)


def write_f32(path, name, tensor):
    array = tensor.detach().to(torch.float32).cpu().contiguous()
    blob = array.numpy().tobytes()
    header = json.dumps({name: {"dtype": "F32", "shape": list(array.shape),
                                "data_offsets": [0, len(blob)]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + blob)


def time_forward(model, ids, captured, device, warmup, iters):
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            sync()
            start = time.perf_counter()
            run_to_layer(model, ids, captured)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    times.sort()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--layer", type=int, default=12)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--ids")
    parser.add_argument("--dump")
    parser.add_argument("--also-sdpa", action="store_true")
    args = parser.parse_args()

    dtype = getattr(torch, args.dtype)
    for attention in ["eager"] + (["sdpa"] if args.also_sdpa else []):
        started = time.time()
        try:
            model = load(args.model, dtype, args.device, attention)
        except (ValueError, ImportError) as err:  # e.g. no sdpa for Gemma-2 in this version
            print(json.dumps({"what": "transformers forward", "attention": attention,
                              "error": str(err).split("\n")[0][:300]}), flush=True)
            continue
        load_s = time.time() - started
        captured, handle = stop_after(model, args.layer)
        if args.ids and args.dump and attention == "eager":
            with torch.inference_mode():
                out = run_to_layer(model, read_ids(args.ids).to(args.device), captured)
            write_f32(args.dump, f"blocks.{args.layer}.hook_resid_post", out)
        generator = torch.Generator().manual_seed(49)
        vocab = model.config.vocab_size
        ids = torch.randint(0, vocab, (args.batch, args.seq_len), generator=generator)
        ids[:, 0] = 2  # BOS, as saectl's probe
        times = time_forward(model, ids.to(args.device), captured, args.device,
                             args.warmup, args.iters)
        median = times[len(times) // 2]
        print(json.dumps({"what": "transformers forward", "attention": attention,
                        "device": args.device, "dtype": args.dtype, "layer": args.layer,
                        "batch": args.batch, "seq_len": args.seq_len, "load_s": load_s,
                        "iters": args.iters, "min_ms": times[0] * 1e3,
                        "median_ms": median * 1e3,
                        "tokens_per_s": args.batch * args.seq_len / median,
                        "torch": torch.__version__,
                        "transformers": __import__("transformers").__version__}), flush=True)
        handle.remove()
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
