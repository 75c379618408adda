#!/usr/bin/env bash
# The CPU training step of `saectl train` against the Python original's BatchTopK step in
# PyTorch (scripts/bench_train_torch.py), on the same synthetic cache, both with THREADS
# threads, best of RUNS runs each (docs/benchmarks.md, "Training step against PyTorch").
#
#   scripts/bench-train-vs-torch.sh
#   D_IN=2304 D_SAE=16384 STEPS=4 RUNS=1 PYTHON=/tmp/torchenv/bin/python scripts/bench-train-vs-torch.sh
#
# saectl is timed two ways: the whole process (start-up, reading the cache, the final
# checkpoint) divided by its steps, and its warm steps (metrics.jsonl's elapsed_s between
# consecutive steps after the first WARMUP); torch by its warm steps only. The ratio the issue
# asks for is torch's warm step over saectl's whole process per step. Peak resident memory of
# both comes from /usr/bin/time -v. PYTHON must have torch and numpy (pip install torch numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
d_in=${D_IN:-256} d_sae=${D_SAE:-4096} k=${K:-32} batch=${BATCH:-4096}
steps=${STEPS:-20} warmup=${WARMUP:-3} runs=${RUNS:-3} threads=${THREADS:-2}
python=${PYTHON:-python3}
bin=$(realpath "${SAECTL:-target/release/saectl}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads

tokens=$((batch * (steps + warmup)))
"$python" scripts/bench_train_torch.py make-cache "$work/cache" --d-in "$d_in" --tokens "$tokens"

# Peak RSS in MB of the command that wrote /usr/bin/time's report $1.
peak_mb() { awk '/Maximum resident/ {printf "%.0f", $6 / 1024}' "$1"; }

best_saectl=inf best_warm=inf saectl_rss=0
for run in $(seq "$runs"); do
    rm -rf "$work/run"
    start=$(date +%s%N)
    /usr/bin/time -v "$bin" train --activations "$work/cache" --out "$work/run" --device cpu \
        --sae-type batchtopk --dict-size "$d_sae" --top-k "$k" --batch-size "$batch" \
        --num-tokens "$((batch * steps))" --log-freq 1 --checkpoint-freq 1000000 \
        --eval-sequences 0 2> "$work/time" > /dev/null || { cat "$work/time" >&2; exit 1; }
    whole=$(( ($(date +%s%N) - start) / 1000000 ))
    per_step=$(awk -v w="$whole" -v s="$steps" 'BEGIN {printf "%.1f", w / s}')
    # Warm: the mean step time between the line of step WARMUP and the last line.
    warm=$("$python" -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
a, b = lines[int(sys.argv[2]) - 1], lines[-1]
print("%.1f" % (1000 * (b["elapsed_s"] - a["elapsed_s"]) / (b["step"] - a["step"])))
' "$work/run/metrics.jsonl" "$warmup")
    rss=$(peak_mb "$work/time")
    echo "saectl run $run: ${per_step} ms/step whole process (${whole} ms for $steps steps), ${warm} ms/step warm, peak RSS ${rss} MB"
    best_saectl=$(awk -v a="$best_saectl" -v b="$per_step" 'BEGIN {print (b < a) ? b : a}')
    best_warm=$(awk -v a="$best_warm" -v b="$warm" 'BEGIN {print (b < a) ? b : a}')
    saectl_rss=$rss
done

best_torch=inf torch_rss=0
for run in $(seq "$runs"); do
    /usr/bin/time -v "$python" scripts/bench_train_torch.py step "$work/cache" --d-sae "$d_sae" \
        --k "$k" --batch "$batch" --steps "$steps" --warmup "$warmup" --threads "$threads" \
        > "$work/torch.json" 2> "$work/time" || { cat "$work/time" >&2; exit 1; }
    ms=$("$python" -c 'import json, sys; print("%.1f" % json.load(open(sys.argv[1]))["warm_ms_per_step"])' "$work/torch.json")
    torch_rss=$(peak_mb "$work/time")
    echo "torch run $run: ${ms} ms/step warm, peak RSS ${torch_rss} MB: $(cat "$work/torch.json")"
    best_torch=$(awk -v a="$best_torch" -v b="$ms" 'BEGIN {print (b < a) ? b : a}')
done

echo "shape d_in $d_in, d_sae $d_sae, k $k, batch $batch; $threads threads; best of $runs"
echo "saectl: ${best_saectl} ms/step whole process, ${best_warm} ms/step warm, peak RSS ${saectl_rss} MB"
echo "torch:  ${best_torch} ms/step warm, peak RSS ${torch_rss} MB"
awk -v t="$best_torch" -v s="$best_saectl" -v w="$best_warm" 'BEGIN {
    printf "ratio torch warm / saectl whole process: %.2fx (torch warm / saectl warm: %.2fx)\n", t / s, t / w }'
echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
