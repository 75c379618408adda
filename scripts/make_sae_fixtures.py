#!/usr/bin/env python3
"""Writes the small SAE fixtures in tests/fixtures/sae/ and their numpy-computed encodings.

Independent reference for src/sae: every architecture's encode/decode is re-implemented here in
numpy, following SAELens (sae_lens/saes/*.py) and Gemma Scope's published JumpReLU, not the Rust
code. Run from the repository root:  python3 scripts/make_sae_fixtures.py
Needs numpy and safetensors (pip install numpy safetensors). Output is deterministic.

Files:
  saelens_standard/   architecture "standard" (ReLU), constant_norm_rescale, b_dec applied
  saelens_topk/       architecture "topk" (SAELens 6 cfg: k at top level, metadata nested)
  saelens_batchtopk/  architecture "batchtopk", scalar `topk_threshold` buffer, b_dec not applied
  saelens_jumprelu/   architecture "jumprelu", per-feature threshold, layer_norm
  gemma_scope/params.npz  Gemma Scope JumpReLU (np.savez_compressed: deflate entries)
  expected.safetensors    x [16, 8]; <name>_acts [16, 32]; <name>_recon [16, 8]
"""

import json
import os

import numpy as np
from safetensors.numpy import save_file

D_IN, D_SAE, N = 8, 32, 16
OUT = os.path.join("tests", "fixtures", "sae")
rng = np.random.default_rng(20240605)


def weights():
    w_dec = rng.normal(size=(D_SAE, D_IN)).astype(np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    return {
        "W_enc": (rng.normal(size=(D_IN, D_SAE)) * 0.5).astype(np.float32),
        "W_dec": w_dec,
        "b_enc": (rng.normal(size=D_SAE) * 0.3).astype(np.float32),
        "b_dec": (rng.normal(size=D_IN) * 0.2).astype(np.float32),
    }


def normalize(x, mode):
    """Returns (normalized x, function undoing it on the output), as SAELens."""
    if mode == "constant_norm_rescale":
        coeff = np.sqrt(D_IN) / np.linalg.norm(x, axis=-1, keepdims=True)
        return x * coeff, lambda y: y / coeff
    if mode == "layer_norm":
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        std = xc.std(axis=-1, keepdims=True, ddof=1)  # torch.std is unbiased
        return xc / (std + 1e-5), lambda y: y * std + mu
    return x, lambda y: y


def pre_acts(w, x, apply_b_dec):
    return (x - w["b_dec"] * apply_b_dec) @ w["W_enc"] + w["b_enc"]


def run(w, x, act, norm, apply_b_dec):
    xn, undo = normalize(x.astype(np.float64), norm)
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    acts = act(pre_acts(w64, xn, apply_b_dec))
    recon = undo(acts @ w64["W_dec"] + w64["b_dec"])
    return acts.astype(np.float32), recon.astype(np.float32)


def relu(pre):
    return np.maximum(pre, 0.0)


def topk(k):
    def act(pre):
        # SAELens TopK: torch.topk on pre, then ReLU on the kept values, scattered into zeros.
        out = np.zeros_like(pre)
        idx = np.argsort(-pre, axis=-1, kind="stable")[:, :k]
        np.put_along_axis(out, idx, relu(np.take_along_axis(pre, idx, axis=-1)), axis=-1)
        return out
    return act


def jump(threshold):
    return lambda pre: relu(pre) * (pre > threshold)


def write_sae_lens(name, cfg, tensors):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "cfg.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    save_file(tensors, os.path.join(folder, "sae_weights.safetensors"))


def base_cfg(architecture, apply_b_dec, norm):
    return {
        "architecture": architecture, "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32",
        "device": "cpu", "model_name": "tiny-gemma", "hook_name": "blocks.1.hook_resid_post",
        "hook_layer": 1, "apply_b_dec_to_input": apply_b_dec, "normalize_activations": norm,
        "context_size": 16,
    }


def main():
    x = (rng.normal(size=(N, D_IN)) * 1.5).astype(np.float32)
    expected = {"x": x}

    w = weights()
    cfg = base_cfg("standard", True, "constant_norm_rescale")
    cfg.update(activation_fn_str="relu", activation_fn_kwargs={})
    write_sae_lens("saelens_standard", cfg, w)
    expected["standard_acts"], expected["standard_recon"] = run(
        w, x, relu, "constant_norm_rescale", True)

    w = weights()
    cfg = {"architecture": "topk", "d_in": D_IN, "d_sae": D_SAE, "k": 5, "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
           "reshape_activations": "none",
           "metadata": {"model_name": "tiny-gemma", "hook_name": "blocks.1.hook_resid_post",
                        "sae_lens_version": "6.5.1"}}
    write_sae_lens("saelens_topk", cfg, w)
    expected["topk_acts"], expected["topk_recon"] = run(w, x, topk(5), "none", True)

    w = weights()
    theta = np.float32(0.35)
    cfg = base_cfg("batchtopk", False, "none")
    cfg.update(k=4, activation_fn_str="relu")
    write_sae_lens("saelens_batchtopk", cfg, {**w, "topk_threshold": np.array(theta)})
    expected["batchtopk_acts"], expected["batchtopk_recon"] = run(
        w, x, jump(np.float64(theta)), "none", False)

    w = weights()
    w["threshold"] = rng.uniform(0.0, 0.6, size=D_SAE).astype(np.float32)
    cfg = base_cfg("jumprelu", True, "layer_norm")
    cfg.update(activation_fn_str="relu")
    write_sae_lens("saelens_jumprelu", cfg, w)
    expected["jumprelu_acts"], expected["jumprelu_recon"] = run(
        w, x, jump(w["threshold"].astype(np.float64)), "layer_norm", True)

    w = weights()
    w["threshold"] = rng.uniform(0.0, 0.6, size=D_SAE).astype(np.float32)
    os.makedirs(os.path.join(OUT, "gemma_scope"), exist_ok=True)
    np.savez_compressed(os.path.join(OUT, "gemma_scope", "params.npz"), **w)
    # Gemma Scope: no b_dec on the input, no normalization; encode = relu(pre)·(pre > threshold).
    expected["gemma_scope_acts"], expected["gemma_scope_recon"] = run(
        w, x, jump(w["threshold"].astype(np.float64)), "none", False)

    save_file(expected, os.path.join(OUT, "expected.safetensors"))


if __name__ == "__main__":
    main()
