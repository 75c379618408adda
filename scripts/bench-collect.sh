#!/usr/bin/env bash
# `collect` end to end on the tiny Gemma-2 fixture (d_model 64) with a 16384-latent TopK SAE
# (k 32): a live collection and one from a cache, each with every binary given, so that a
# change can be measured before and after on the same inputs (docs/benchmarks.md, "collect:
# where the time goes"). Prints each run's closing lines: tokens/s and the per-stage times.
#
#   scripts/bench-collect.sh [SAECTL...]     default: target/release/saectl
#   TOKENS=1000000 scripts/bench-collect.sh target/release/saectl /tmp/before/saectl
#   MODES=live TOKENS=300000 scripts/bench-collect.sh …    one kind of run only
#
# Inputs (made once with the first binary, in $WORK, default /tmp/saectl-bench-collect): a
# corpus of seeded random sentences over the fixture corpus's words, a cache of it at
# blocks.1.hook_resid_post, and the SAE trained briefly on that cache.
set -euo pipefail
cd "$(dirname "$0")/.."
bins=("$@")
((${#bins[@]})) || bins=(target/release/saectl)
tokens=${TOKENS:-1000000}
work=${WORK:-/tmp/saectl-bench-collect}
fx=$PWD/tests/fixtures
hook=blocks.1.hook_resid_post
model=(--model "$fx/tiny-gemma2" --tokenizer "$fx/tokenizer/tokenizer.json" --device cpu)
text=(--dataset "$work/corpus.jsonl" --seq-len 64 --model-batch-size 16)
mkdir -p "$work"
first=${bins[0]}

if [[ ! -s $work/corpus.jsonl ]]; then
    # Seeded sentences of 8-40 words drawn from the fixture corpus (~6 M tokens).
    python3 - "$fx/corpus/tiny.txt" "$work/corpus.jsonl" <<'PY'
import json, random, sys
words = open(sys.argv[1]).read().split()
rng = random.Random(0)
with open(sys.argv[2], "w") as out:
    for _ in range(120_000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
        out.write(json.dumps({"text": text}) + "\n")
PY
fi
if [[ ! -e $work/cache/cache_index.json ]]; then
    "$first" cache "${model[@]}" "${text[@]}" --hook "$hook" --num-tokens "$tokens" \
        --cache-dtype f32 --out "$work/cache" 2> "$work/cache.log"
fi
if [[ ! -e $work/sae/latest_checkpoint ]]; then
    "$first" train --activations "$work/cache" --sae-type topk --dict-size 16384 --top-k 32 \
        --batch-size 1024 --num-tokens 32768 --eval-sequences 0 --device cpu \
        --out "$work/sae" 2> "$work/train.log"
fi
sae=$work/sae/$(cat "$work/sae/latest_checkpoint")

for bin in "${bins[@]}"; do
    for mode in ${MODES:-cache live}; do
        out=$work/out-$mode
        rm -rf "$out"
        if [[ $mode == cache ]]; then
            args=(--activations "$work/cache" --device cpu)
        else
            args=("${model[@]}" "${text[@]}" --num-tokens "$tokens")
        fi
        echo "== $bin, $mode, load $(cut -d' ' -f1-3 /proc/loadavg)"
        "$bin" collect --checkpoint "$sae" "${args[@]}" --out "$out" 2>&1 |
            grep -E '^(collected|time)' || true
    done
done
