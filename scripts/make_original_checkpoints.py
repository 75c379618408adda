#!/usr/bin/env python3
"""Writes tests/fixtures/original/: checkpoints and config files as the Python original wrote them.

The original (matryoshka_transcoder) saved `torch.save(model.state_dict(), "sae.pt")` beside a
`config.json`, the cfg dict of its `get_default_cfg()` / `post_init_cfg()` with the training
script's changes, dumped with `json.dump(..., indent=4)` after `str()` of every value JSON
cannot hold (its first writer, `checkpoints/{name}_{step}/`) or of dtypes only (its later one,
`results/{model}/layer{L}/{steps}/checkpoints/final.pt` with `config.json` in the run folder).
This script rebuilds such dicts key for key at a tiny size (d_in 64, the tiny Gemma-2's width;
32 latents) and writes them the same two ways, with state dicts under the original's parameter
names:

  batchtopk/  BatchTopKSAE: W_enc, W_dec, b_enc (unused by its encoder), b_dec, scalar `threshold`;
              `sae_type` "batch-topk", `num_tokens` 5e8 (a float), old writer
  matryoshka/ GlobalBatchTopKMatryoshkaSAE: the same keys; `group_sizes` and
              `top_k_matryoshka` str()-ed by the old writer
  jumprelu/   JumpReLUSAE in bfloat16: `jumprelu.log_threshold`, no b_dec on the input
  transcoder/ MatryoshkaTranscoder (later writer): W_dec [F, d_out], b_dec [d_out], `prefix_sizes`,
              source and target hook points, `completed_steps`, `completed_at`

and expected.json: inputs x [6, 64] and each checkpoint's activations [6, 32], computed here in
float64 with the original's inference formulas (written out below, not the Rust code):
input_unit_norm `(x - mean) / (std + 1e-5)` (unbiased std); BatchTopK and the Matryoshka SAE
`relu((x - b_dec) @ W_enc)` kept where above the scalar threshold; the transcoder
`relu(x @ W_enc + b_enc)` above its threshold; JumpReLU `relu(x @ W_enc + b_enc)` kept where
above `exp(log_threshold)`.

Needs torch (pip install torch). Run from the repository root:
    python3 scripts/make_original_checkpoints.py
The output is deterministic for a given torch version (its zip layout may differ across versions).
"""

import json
import os

import torch

OUT = os.path.join("tests", "fixtures", "original")
ACT, DICT = 64, 32
torch.manual_seed(20251203)


def default_cfg():
    """The original's get_default_cfg() keys and defaults (torch dtypes as torch objects)."""
    return {
        "seed": 49, "batch_size": 4096, "lr": 3e-4, "num_tokens": int(1e9), "l1_coeff": 0,
        "beta1": 0.9, "beta2": 0.99, "max_grad_norm": 100000, "seq_len": 128,
        "dtype": torch.float32, "model_dtype": torch.float32, "model_name": "gpt2-small",
        "site": "resid_pre", "layer": 8, "act_size": 768, "dict_size": 12288, "device": "cuda:0",
        "model_batch_size": 512, "num_batches_in_buffer": 10,
        "dataset_path": "Skylion007/openwebtext", "wandb_project": "sparse_autoencoders",
        "input_unit_norm": True, "perf_log_freq": 1000, "sae_type": "topk",
        "checkpoint_freq": 10000, "n_batches_to_dead": 20, "top_k": 32, "top_k_aux": 512,
        "aux_penalty": (1 / 32), "bandwidth": 0.001, "save_activation_samples": False,
        "sample_collection_freq": 1000, "max_samples_per_feature": 100,
        "sample_context_size": 20, "sample_activation_threshold": 0.1,
        "top_features_to_save": 100, "samples_per_feature_to_save": 10,
        "store_tokens_for_samples": False,
    }


def post_init(cfg):
    """post_init_cfg: the hook point from site and layer, then the run's name."""
    cfg["hook_point"] = f"blocks.{cfg['layer']}.hook_{cfg['site']}"
    cfg["name"] = (f"{cfg['model_name']}_{cfg['hook_point']}_{cfg['dict_size']}_"
                   f"{cfg['sae_type']}_{cfg['top_k']}_{cfg['lr']}")
    return cfg


def tiny(cfg, **changes):
    """A training script's edits: the tiny Gemma-2's layer and width, 32 latents."""
    cfg.update(model_name="gemma-2-2b", site="resid_post", layer=2, act_size=ACT,
               dict_size=DICT, top_k=4, device="cuda", model_dtype=torch.bfloat16,
               save_activation_samples=True, sample_collection_freq=100)
    cfg.update(changes)
    return post_init(cfg)


def old_writer_json(cfg):
    """The first checkpoint writer: JSON-safe scalars as they are, everything else str()-ed."""
    safe = {}
    for key, value in cfg.items():
        if isinstance(value, (int, float, str, bool, type(None))):
            safe[key] = value
        else:
            safe[key] = str(value)
    return safe


def later_writer_json(cfg):
    """The later writer: dtypes and devices str()-ed, lists kept."""
    def convert(value):
        if isinstance(value, (torch.dtype, torch.device)):
            return str(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value
    return convert(cfg)


def unit_rows(w):
    return w / w.norm(dim=-1, keepdim=True)


def base_weights(d_out=ACT):
    w_enc = torch.randn(ACT, DICT) * 0.3
    return {
        "b_dec": torch.randn(d_out) * 0.2,
        "b_enc": torch.randn(DICT) * 0.3,
        "W_enc": w_enc,
        "W_dec": unit_rows(torch.randn(DICT, d_out)),
    }


def unit_norm(x):
    x = x - x.mean(dim=-1, keepdim=True)
    return x / (x.std(dim=-1, keepdim=True) + 1e-5)


def write(folder, file_name, state, config, writer):
    os.makedirs(folder, exist_ok=True)
    torch.save(state, os.path.join(folder, file_name))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(writer(config), f, indent=4)


def main():
    x = torch.randn(6, ACT, dtype=torch.float64) * 2.0 + 0.5
    expected = {"x": x.tolist()}

    # BatchTopKSAE: its encoder ignores b_enc; inference keeps what exceeds the scalar θ.
    w = base_weights()
    w["threshold"] = torch.tensor(0.35)
    cfg = tiny(default_cfg(), sae_type="batch-topk", num_tokens=5e8)
    write(os.path.join(OUT, "batchtopk", "checkpoints", f"{cfg['name']}_200"), "sae.pt", w, cfg,
          old_writer_json)
    pre = (unit_norm(x) - w["b_dec"].double()) @ w["W_enc"].double()
    acts = torch.relu(pre)
    expected["batchtopk"] = torch.where(acts > 0.35, acts, torch.zeros_like(acts)).tolist()

    # GlobalBatchTopKMatryoshkaSAE: the same encoder over the nested groups.
    w = base_weights()
    w["threshold"] = torch.tensor(0.3)
    cfg = tiny(default_cfg(), sae_type="global-matryoshka-topk", input_unit_norm=False,
               group_sizes=[8, 8, 16], top_k_matryoshka=[10, 10, 10])
    write(os.path.join(OUT, "matryoshka", "checkpoints", f"{cfg['name']}_100"), "sae.pt", w, cfg,
          old_writer_json)
    acts = torch.relu((x - w["b_dec"].double()) @ w["W_enc"].double())
    expected["matryoshka"] = torch.where(acts > 0.3, acts, torch.zeros_like(acts)).tolist()

    # JumpReLUSAE in bfloat16: relu(x @ W_enc + b_enc), kept above exp(log_threshold).
    w = {k: v.to(torch.bfloat16) for k, v in base_weights().items()}
    log_threshold = (torch.rand(DICT) * 0.8 - 1.2).to(torch.bfloat16)
    w["jumprelu.log_threshold"] = log_threshold
    cfg = tiny(default_cfg(), sae_type="jumprelu", dtype=torch.bfloat16, bandwidth=0.002)
    write(os.path.join(OUT, "jumprelu", "checkpoints", f"{cfg['name']}_50"), "sae.pt", w, cfg,
          old_writer_json)
    w64 = {k: v.double() for k, v in w.items()}
    pre = torch.relu(unit_norm(x) @ w64["W_enc"] + w64["b_enc"])
    theta = torch.exp(log_threshold.double())
    expected["jumprelu"] = (pre * (pre > theta)).tolist()

    # MatryoshkaTranscoder, later writer: results/{model}/layer{L}/{steps}/checkpoints/final.pt.
    w = base_weights()
    w["threshold"] = torch.tensor(0.4)
    cfg = tiny(default_cfg(), sae_type="matryoshka-transcoder", prefix_sizes=[8, 16, DICT],
               source_site="mlp_in", target_site="mlp_out", source_layer=2, target_layer=2,
               source_hook_point="blocks.2.ln2.hook_normalized",
               target_hook_point="blocks.2.hook_mlp_out", source_act_size=ACT,
               target_act_size=ACT, experiment_description="tiny", completed_steps=300,
               completed_at="2025-10-28T09:00:00Z")
    cfg["hook_point"] = cfg["source_hook_point"]
    run = os.path.join(OUT, "transcoder", "results", "gemma-2-2b", "layer2", "300")
    os.makedirs(os.path.join(run, "checkpoints"), exist_ok=True)
    torch.save(w, os.path.join(run, "checkpoints", "final.pt"))
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(later_writer_json(cfg), f, indent=2)
    acts = torch.relu(unit_norm(x) @ w["W_enc"].double() + w["b_enc"].double())
    expected["transcoder"] = torch.where(acts > 0.4, acts, torch.zeros_like(acts)).tolist()

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
