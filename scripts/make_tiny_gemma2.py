#!/usr/bin/env python3
"""Build the tiny Gemma-2 test fixture and its Hugging Face reference activations.

The Rust forward in `src/model/` is checked against Hugging Face transformers (PyTorch) on a
tiny Gemma-2 with every Gemma-2 feature switched on:

* `query_pre_attn_scalar` (24) differs from `head_dim` (16), so a wrong attention scale shows;
* `sliding_window` (8) is shorter than the test sequence (24), so sliding (even layers) and
  global (odd layers) attention give different results;
* attention and final logit soft-capping (5.0 / 3.0) are small enough to bite;
* grouped-query attention (4 query heads, 2 key/value heads) and random RMSNorm weights
  (Gemma multiplies by 1 + w).

Outputs, in `tests/fixtures/tiny-gemma2/` (all little, < 1 MB in total):

* `config.json`, `model.safetensors` — written by `save_pretrained`, so the tensor names are
  the real Hugging Face ones (`model.layers.0.self_attn.q_proj.weight`, ...);
* `reference_activations.safetensors` — `input_ids [2, 24]` (int64), every hook point of every
  layer (`blocks.{L}.hook_resid_pre`, `hook_resid_mid`, `ln2.hook_normalized`, `hook_mlp_out`,
  `hook_resid_post`, each `[2, 24, 64]` f32) and the final `logits [2, 24, vocab]`.

The activations are captured with forward hooks on the Hugging Face modules (not by
re-implementing the block), so the reference is independent of our Rust code.

Usage: pip install torch transformers safetensors numpy; python scripts/make_tiny_gemma2.py
"""

import json
import pathlib
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import Gemma2Config, Gemma2ForCausalLM

SEED = 20240731
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny-gemma2"
BATCH, SEQ = 2, 24
BOS = 2


def tiny_config() -> Gemma2Config:
    return Gemma2Config(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        query_pre_attn_scalar=24,
        sliding_window=8,
        attn_logit_softcapping=5.0,
        final_logit_softcapping=3.0,
        attention_bias=False,
        bos_token_id=BOS,
        eos_token_id=1,
        pad_token_id=0,
        tie_word_embeddings=True,
        attn_implementation="eager",
    )


def randomize(model: Gemma2ForCausalLM, generator: torch.Generator) -> None:
    """Seeded weights scaled so that activations are O(1) and both soft-caps matter."""
    scales = {
        "embed_tokens": 0.5,  # x sqrt(64) = 8 in the embedding: resid norm ~4 per entry
        "q_proj": 0.3,  # attention logits of several units: tanh(x / 5) * 5 bites
        "k_proj": 0.3,
        "v_proj": 0.15,
        "o_proj": 0.15,
        "gate_proj": 0.15,
        "up_proj": 0.15,
        "down_proj": 0.12,
        "norm": 0.3,  # RMSNorm weights w around 0: the layer multiplies by 1 + w
    }
    with torch.no_grad():
        for name, param in model.named_parameters():
            key = next(k for k in scales if k in name.split(".")[-2] or k in name)
            param.copy_(torch.randn(param.shape, generator=generator) * scales[key])


def capture(model: Gemma2ForCausalLM, input_ids: torch.Tensor) -> dict:
    """Runs the HF forward once and records every hook point through module hooks."""
    acts = {}
    handles = []

    def first(x):
        return x[0] if isinstance(x, (tuple, list)) else x

    for idx, layer in enumerate(model.model.layers):
        def pre_layer(_mod, args, kwargs, idx=idx):
            hidden = args[0] if args else kwargs["hidden_states"]
            acts[f"blocks.{idx}.hook_resid_pre"] = hidden.detach().clone()

        def post_layer(_mod, _args, output, idx=idx):
            acts[f"blocks.{idx}.hook_resid_post"] = first(output).detach().clone()

        def pre_ln2(_mod, args, idx=idx):
            acts[f"blocks.{idx}.hook_resid_mid"] = args[0].detach().clone()

        def post_ln2(_mod, _args, output, idx=idx):
            acts[f"blocks.{idx}.ln2.hook_normalized"] = output.detach().clone()

        def post_mlp_norm(_mod, _args, output, idx=idx):
            acts[f"blocks.{idx}.hook_mlp_out"] = output.detach().clone()

        handles.append(layer.register_forward_pre_hook(pre_layer, with_kwargs=True))
        handles.append(layer.register_forward_hook(post_layer))
        handles.append(layer.pre_feedforward_layernorm.register_forward_pre_hook(pre_ln2))
        handles.append(layer.pre_feedforward_layernorm.register_forward_hook(post_ln2))
        handles.append(layer.post_feedforward_layernorm.register_forward_hook(post_mlp_norm))

    with torch.no_grad():
        logits = model(input_ids=input_ids, use_cache=False).logits
    for handle in handles:
        handle.remove()
    acts["logits"] = logits.detach().clone()
    return acts


def self_check(acts: dict, n_layers: int) -> None:
    """The captured points must be consistent with the block structure they come from."""
    for idx in range(n_layers):
        mid, out = acts[f"blocks.{idx}.hook_resid_mid"], acts[f"blocks.{idx}.hook_mlp_out"]
        post = acts[f"blocks.{idx}.hook_resid_post"]
        assert torch.allclose(mid + out, post, atol=1e-5), f"layer {idx}: mid + mlp_out != post"
        if idx + 1 < n_layers:
            assert torch.equal(post, acts[f"blocks.{idx + 1}.hook_resid_pre"])


def main() -> int:
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    config = tiny_config()
    model = Gemma2ForCausalLM(config).to(torch.float32).eval()
    randomize(model, generator)

    input_ids = torch.randint(3, config.vocab_size, (BATCH, SEQ), generator=generator)
    input_ids[:, 0] = BOS
    input_ids[1, 12] = BOS  # a second document starting mid-window, as packing produces

    acts = capture(model, input_ids)
    self_check(acts, config.num_hidden_layers)

    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    tensors = {name: t.contiguous().to(torch.float32) for name, t in acts.items()}
    tensors["input_ids"] = input_ids.to(torch.int64).contiguous()
    metadata = {
        "generator": "scripts/make_tiny_gemma2.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seed": str(SEED),
    }
    save_file(tensors, OUT / "reference_activations.safetensors", metadata=metadata)
    # generation_config.json is not part of the fixture: nothing reads it.
    (OUT / "generation_config.json").unlink(missing_ok=True)

    caps = acts["logits"].abs().max().item()
    print(f"wrote {OUT} (transformers {transformers.__version__}, torch {torch.__version__})")
    print(f"max |logit| {caps:.3f} (final soft-cap {config.final_logit_softcapping})")
    for name in ("blocks.0.hook_resid_pre", "blocks.3.hook_resid_post"):
        print(f"{name}: std {acts[name].std().item():.3f}")
    print(json.dumps({p.name: p.stat().st_size for p in sorted(OUT.iterdir())}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
