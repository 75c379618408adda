#!/usr/bin/env python3
"""A Gemma-2 with random weights and a real config, saved as a Hugging Face checkpoint folder.

Gemma-2-2B's weights cannot be carried to the GPU machine (and are gated), but its image has
PyTorch and transformers: this builds `Gemma2ForCausalLM(config)` from the committed config
(tests/fixtures/gemma2-configs/gemma-2-2b.json, the published values), initialised by
transformers' own `_init_weights` under a fixed seed, and writes what `saectl --model DIR`
and `from_pretrained(DIR)` read: `config.json`, sharded `model*.safetensors` with their
index, and a `tokenizer.json` (the test tokenizer: its ids are a subset of the vocabulary,
enough for timing). Right for timing and for comparing saectl with transformers on the same
weights; the activations mean nothing.

Usage (GPU machine): python3 make_random_gemma2.py --config gemma-2-2b.json \
    --tokenizer tokenizer.json --out /tmp/gemma-2-2b-random [--dtype bfloat16] [--device cuda]
"""

import argparse
import json
import os
import shutil
import sys
import time

import torch
from transformers import Gemma2Config, Gemma2ForCausalLM

# Keys of a published config.json that are not constructor arguments of the config class.
NOT_ARGUMENTS = {"architectures", "transformers_version", "model_type", "_name_or_path"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-shard-size", default="2GB")
    args = parser.parse_args()

    published = json.load(open(args.config))
    config = Gemma2Config(**{k: v for k, v in published.items() if k not in NOT_ARGUMENTS})
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    started = time.time()
    # Initialising on the GPU takes seconds where the CPU takes minutes for 2.6 B parameters.
    with torch.device(args.device):
        model = Gemma2ForCausalLM(config)
    model = model.to(dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True, max_shard_size=args.max_shard_size)
    shutil.copy(args.tokenizer, os.path.join(args.out, "tokenizer.json"))
    seconds = time.time() - started
    print(json.dumps({"model": args.out, "parameters": params, "dtype": args.dtype,
                      "device": args.device, "seconds": seconds,
                      "hidden_size": config.hidden_size,
                      "num_hidden_layers": config.num_hidden_layers}))


if __name__ == "__main__":
    sys.exit(main())
