#!/usr/bin/env python3
"""Hugging Face reference for `saectl steer`: steered greedy generation on the tiny Gemma-2.

The Rust KV cache, generation and steering (src/model/, src/probe/steer.rs) are checked against
Hugging Face transformers (PyTorch) by `tests/model/steering_reference.rs`. This script:

* loads the tiny random Gemma-2 fixture (tests/fixtures/tiny-gemma2, made by
  scripts/make_tiny_gemma2.py: sliding window 8 on even layers, soft-capping, 4 query heads over
  2 key/value heads) with eager attention in float32;
* writes a small SAELens-format SAE for it, `tests/fixtures/tiny-gemma2-sae/` (architecture
  "standard", ReLU, 32 latents, unit-norm decoder rows, no input normalization, hook
  `blocks.1.hook_resid_post`); features 5 and 9 point along the embeddings of tokens 77 and
  200 (see make_sae);
* generates greedily from two prompts, 16 new tokens each (past the sliding window), in three
  cases: unsteered; `add` (features 5 and 17 with strengths 120 and -20: the vector
  120·W_dec[5] − 20·W_dec[17] added to every position); `clamp` (feature 9 set to 120 on every
  position: x + (120 − a_9(x))·W_dec[9], a_9 the SAE's ReLU activation of that position);
* writes `tests/fixtures/tiny-gemma2/steering_reference.safetensors`: `prompt_{p}` (int64),
  and per case and prompt `{case}_{p}_tokens [16]` (int64) and `{case}_{p}_logits [16, 256]`
  (float32, the last position's logits before each generated token).

Hook placement. saectl's `blocks.L.hook_resid_post` (TransformerLens's name) is the output of
Hugging Face's decoder layer `model.model.layers[L]`, so the edit is a forward hook on that
module that replaces its output hidden states. It runs on every forward call: the prompt's pass
and every generated token's pass, as saectl's edit does.

Independence: the steered tokens come from an uncached loop (the whole sequence re-run at every
step with the hook), and `model.generate(..., use_cache=True)` with the same hook must give the
same tokens, so both Hugging Face paths agree before the Rust code is compared with them. Each
greedy step's margin between the best and second-best logit is checked to be far above float
noise, so a tie cannot flip a token.

Usage: pip install numpy torch transformers safetensors; python3 scripts/make_steering_reference.py
"""

import json
import pathlib
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import Gemma2ForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "fixtures" / "tiny-gemma2"
SAE_DIR = ROOT / "tests" / "fixtures" / "tiny-gemma2-sae"
OUT = MODEL / "steering_reference.safetensors"

SEED = 20250214
LAYER = 1
HOOK = f"blocks.{LAYER}.hook_resid_post"
D_SAE = 32
NEW_TOKENS = 16
PROMPTS = [[2, 17, 93, 5, 211, 44], [2, 120, 7, 7, 64, 30, 181, 9, 250]]
ADD = [(5, 120.0), (17, -20.0)]
CLAMP = (9, 120.0)
# Feature → the token whose embedding its decoder row points along (see make_sae).
TOKEN_FEATURES = {5: 77, 9: 200}
# The logits are soft-capped at 3 and nearly flat; 2e-4 is still ten times the largest
# difference the Rust side may have (relative 1e-5 of |logit| <= 3).
MIN_MARGIN = 2e-4


def make_sae(embedding: np.ndarray) -> dict:
    """Random unit decoder rows, except that the steered features point along token
    embeddings (TOKEN_FEATURES): the random model mostly repeats its last token, and only a
    push toward another token's embedding (its logit, through the tied unembedding) changes
    its greedy output visibly. The encoder is the decoder's transpose, halved."""
    d_in = embedding.shape[1]
    rng = np.random.default_rng(SEED)
    w_dec = rng.normal(size=(D_SAE, d_in)).astype(np.float32)
    for feature, token in TOKEN_FEATURES.items():
        w_dec[feature] = embedding[token]
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    return {
        "W_enc": (w_dec.T * 0.5).astype(np.float32).copy(),
        "W_dec": w_dec,
        "b_enc": (rng.normal(size=D_SAE) * 0.5).astype(np.float32),
        "b_dec": (rng.normal(size=d_in) * 0.2).astype(np.float32),
    }


def centre_clamped_feature(model, sae: dict) -> None:
    """Sets the clamped feature's b_enc so that it fires on about half the positions of the
    unsteered first prompt and its continuation: clamping then differs from adding its value
    everywhere (the check in main)."""
    feature, _ = CLAMP
    tokens, _, _ = uncached_greedy(model, PROMPTS[0])
    pre = pre_activation(model, sae, PROMPTS[0] + tokens, feature)
    sae["b_enc"][feature] -= np.float32(float(pre.median()))


def pre_activation(model, sae: dict, sequence, feature: int) -> torch.Tensor:
    """The SAE's pre-activation of `feature` at every position of `sequence`, unsteered."""
    with torch.no_grad():
        states = model(input_ids=torch.tensor([sequence]), output_hidden_states=True).hidden_states
    hidden = states[LAYER + 1][0]  # hidden_states[0] is the embedding: L + 1 is layer L's output
    w_enc = torch.from_numpy(sae["W_enc"])[:, feature]
    return (hidden - torch.from_numpy(sae["b_dec"])) @ w_enc + float(sae["b_enc"][feature])


def write_sae(sae: dict, d_in: int) -> None:
    SAE_DIR.mkdir(parents=True, exist_ok=True)
    cfg = {
        "architecture": "standard",
        "d_in": d_in,
        "d_sae": D_SAE,
        "activation_fn_str": "relu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "hook_name": HOOK,
        "model_name": "tiny-gemma2",
        "dtype": "float32",
        "generator": "scripts/make_steering_reference.py",
    }
    (SAE_DIR / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")
    tensors = {name: torch.from_numpy(value.copy()) for name, value in sae.items()}
    save_file(tensors, SAE_DIR / "sae_weights.safetensors")


def steering(case: str, sae: dict):
    """The function the hook applies to the layer's output `[batch, seq, d]`, or None."""
    w_dec = torch.from_numpy(sae["W_dec"])
    if case == "plain":
        return None
    if case == "add":
        vector = sum(strength * w_dec[f] for f, strength in ADD)
        return lambda hidden: hidden + vector
    feature, value = CLAMP
    w_enc, b_enc, b_dec = (torch.from_numpy(sae[k]) for k in ("W_enc", "b_enc", "b_dec"))

    def clamp(hidden):
        act = torch.relu((hidden - b_dec) @ w_enc[:, feature] + b_enc[feature])  # [b, s]
        return hidden + (value - act).unsqueeze(-1) * w_dec[feature]

    return clamp


def hooked(model, edit):
    """Registers `edit` on the output of decoder layer LAYER; returns the handle (or None)."""
    if edit is None:
        return None

    def hook(_module, _args, output):
        if isinstance(output, tuple):
            return (edit(output[0]),) + tuple(output[1:])
        return edit(output)

    return model.model.layers[LAYER].register_forward_hook(hook)


def uncached_greedy(model, prompt):
    """Greedy tokens and the logits before each, re-running the whole sequence every step."""
    ids = list(prompt)
    tokens, logits, margins = [], [], []
    for _ in range(NEW_TOKENS):
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        top2 = torch.topk(out, 2).values
        margins.append((top2[0] - top2[1]).item())
        token = int(torch.argmax(out))
        tokens.append(token)
        logits.append(out.clone())
        ids.append(token)
    return tokens, torch.stack(logits), min(margins)


def cached_greedy(model, prompt):
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,  # never stop at <eos>: the Rust side ignores it too
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
        )
    return out[0, len(prompt):].tolist()


def main() -> int:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # one summation order: the same file on every run
    model = Gemma2ForCausalLM.from_pretrained(MODEL, attn_implementation="eager")
    model = model.to(torch.float32).eval()
    d_in = model.config.hidden_size
    sae = make_sae(model.model.embed_tokens.weight.detach().numpy())
    centre_clamped_feature(model, sae)
    write_sae(sae, d_in)

    tensors = {}
    results = {}
    for p, prompt in enumerate(PROMPTS):
        tensors[f"prompt_{p}"] = torch.tensor(prompt, dtype=torch.int64)
        for case in ("plain", "add", "clamp"):
            handle = hooked(model, steering(case, sae))
            tokens, logits, margin = uncached_greedy(model, prompt)
            cached = cached_greedy(model, prompt)
            if handle is not None:
                handle.remove()
            assert cached == tokens, f"{case} {p}: generate() {cached} != uncached {tokens}"
            assert margin > MIN_MARGIN, f"{case} {p}: greedy margin {margin} too small"
            tensors[f"{case}_{p}_tokens"] = torch.tensor(tokens, dtype=torch.int64)
            tensors[f"{case}_{p}_logits"] = logits.to(torch.float32).contiguous()
            results[(case, p)] = tokens
            print(f"prompt {p} {case:>5}: {tokens} (min margin {margin:.3f})")
        for case in ("add", "clamp"):
            assert results[(case, p)] != results[("plain", p)], f"{case} changed nothing"

    # The clamped feature must be active on some positions of the unsteered text (and not on
    # others), so that clamping differs from adding its value everywhere.
    feature, _ = CLAMP
    sequence = PROMPTS[0] + results[("plain", 0)]
    active = int((pre_activation(model, sae, sequence, feature) > 0).sum())
    print(f"feature {feature} is active on {active} of {len(sequence)} positions")
    assert 0 < active < len(sequence), "pick another clamped feature"
    metadata = {
        "generator": "scripts/make_steering_reference.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "hook": HOOK,
        "add": json.dumps(ADD),
        "clamp": json.dumps(CLAMP),
        "new_tokens": str(NEW_TOKENS),
    }
    save_file(tensors, OUT, metadata=metadata)
    print(f"wrote {OUT} and {SAE_DIR} (transformers {transformers.__version__}, torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
