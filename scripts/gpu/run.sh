#!/usr/bin/env bash
# The GPU kit (issue #7 §2; docs/gpu.md): run on the GPU machine from the folder that
# scripts/gpu/pack.sh wrote (gpu/), which the device tool carries:
#
#   bash gpu/run.sh setup parity topk      # one device call each, ≤ 10 min
#   bash gpu/run.sh forward collect
#   bash gpu/run.sh train report
#
# Stages (default: all of them, in this order):
#   setup    decompress the binaries, CUDA library path, versions, warm-up (PTX JIT), a random
#            Gemma-2-2B with the real config (make_random_gemma2.py), a corpus of random words
#   parity   tiny Gemma-2: every hook point on the device (f32, bf16) and the CPU against
#            Hugging Face's reference; `cache` and `collect` device vs CPU (f32 tight, bf16
#            documented tolerance)
#   topk     row / batch top-k on the device vs the host at d_sae 16384 and 65536; training's
#            and the collector's selections without the dense copy vs the host path (same active
#            sets, times); BatchTopK and TopK training steps and a 65536-latent TopK
#            collection, device vs CPU
#   forward  forward to blocks.12.hook_resid_post, bf16, seq 128: saectl vs transformers (same
#            device, same run), and their activations on the same ids
#   collect  `saectl collect` at layer 12 with a random 16k TopK SAE (k 32): tokens/s, time split
#   train    `saectl train` at layer 12, 16k BatchTopK, k 32: tokens/s and peak GPU memory
#   report   every result so far → benchmarks.md (ready for docs/benchmarks.md)
#
# Results: $OUT (the device tool's folder; ./results when unset) gets results/*.json, logs/ and
# benchmarks.md after every call. State between calls lives in $SAECTL_GPU_WORK
# (/tmp/saectl-gpu): the random model, the corpus, caches, and every result so far.
# A failing check is recorded and the next stage still runs.
#
# Local smoke test of the plumbing (no GPU, no torch needed): KIT_DEVICE=cpu KIT_MODEL=tiny.
set -uo pipefail

KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEVICE=${KIT_DEVICE:-cuda}
MODEL_KIND=${KIT_MODEL:-gemma-2-2b}       # gemma-2-2b | tiny
WORK=${SAECTL_GPU_WORK:-/tmp/saectl-gpu}
OUT=${OUT:-$KIT/results}
RESULTS=$WORK/results
LOGS=$RESULTS/logs
mkdir -p "$WORK" "$RESULTS" "$LOGS" "$OUT"

SAECTL=${SAECTL:-$KIT/saectl}
PROBE=${PROBE:-$KIT/gpu_probe}
TOKENIZER=$KIT/tokenizer/tokenizer.json
TINY=$KIT/tiny-gemma2
TINY_HOOK=blocks.2.hook_resid_post

if [ "$MODEL_KIND" = tiny ]; then
    MODEL=$TINY LAYER=2 D_IN=64 VOCAB=256
    CORPUS_WORDS=${KIT_CORPUS_WORDS:-40000} COLLECT_TOKENS=${KIT_COLLECT_TOKENS:-20000}
    TRAIN_CACHE_TOKENS=${KIT_TRAIN_CACHE_TOKENS:-16384}
    TRAIN_STEPS=(${KIT_TRAIN_STEPS:-4 12}) BATCH=${KIT_BATCH:-8}
else
    MODEL=$WORK/gemma-2-2b-random LAYER=12 D_IN=2304 VOCAB=256000
    CORPUS_WORDS=${KIT_CORPUS_WORDS:-2500000} COLLECT_TOKENS=${KIT_COLLECT_TOKENS:-2000000}
    TRAIN_CACHE_TOKENS=${KIT_TRAIN_CACHE_TOKENS:-1048576}
    TRAIN_STEPS=(${KIT_TRAIN_STEPS:-100 300}) BATCH=${KIT_BATCH:-32}
fi
HOOK=blocks.$LAYER.hook_resid_post
CORPUS=$WORK/corpus.jsonl
DTYPE=bf16
[ "$DEVICE" = cpu ] && DTYPE=${KIT_DTYPE:-f32}

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
kit() { python3 "$KIT/kit.py" "$@"; }
# Writes stdin (one JSON object) to results/NAME.json; nothing on stdin (a helper failed)
# is recorded as an error pointing at the logs.
record() {
    local text
    text=$(cat)
    [ -n "$text" ] || text="{\"error\": \"no result; see logs/ for the failing command\"}"
    printf '%s\n' "$text" > "$RESULTS/$1.json"
    log "recorded $1: ${text:0:300}"
}
# Runs "$@" with stderr in logs/NAME.log; prints the seconds it took on stdout.
timed() {
    local name=$1; shift
    local start end
    start=$(date +%s.%N)
    "$@" 2> "$LOGS/$name.log" > "$LOGS/$name.out"
    local status=$?
    end=$(date +%s.%N)
    [ $status -ne 0 ] && log "FAILED ($status): $name — $(tail -n 3 "$LOGS/$name.log")"
    python3 -c "print(round($end - $start, 3))"
    return $status
}
has_torch() { python3 -c 'import torch, transformers' 2>/dev/null; }
publish() { cp -r "$RESULTS/." "$OUT/"; }
trap publish EXIT

cuda_library_path() {
    [ "$DEVICE" = cpu ] && return
    local lib
    if lib=$(python3 -c 'import nvidia.cu13,os;print(os.path.join(list(nvidia.cu13.__path__)[0],"lib"))' 2>/dev/null); then
        export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
    else
        log "nvidia.cu13 not importable: relying on the system's CUDA libraries"
    fi
}

binaries() {
    for bin in saectl gpu_probe; do
        if [ ! -x "$KIT/$bin" ] && [ -f "$KIT/$bin.xz" ]; then
            xz -dkc "$KIT/$bin.xz" > "$KIT/$bin" && chmod +x "$KIT/$bin"
        fi
    done
}

ensure_model() {
    [ -f "$MODEL/config.json" ] && return 0
    has_torch || { log "no torch/transformers: cannot make $MODEL"; return 1; }
    log "making a random Gemma-2-2B in $MODEL"
    python3 "$KIT/make_random_gemma2.py" --config "$KIT/gemma-2-2b.json" \
        --tokenizer "$TOKENIZER" --out "$MODEL" --dtype bfloat16 \
        --device "$([ "$DEVICE" = cpu ] && echo cpu || echo cuda)" | record model
}

ensure_corpus() {
    [ -f "$CORPUS" ] && return 0
    kit make-corpus --out "$CORPUS" --words "$KIT/corpus/tiny.txt" --words-total "$CORPUS_WORDS" \
        | record corpus
}

stage_setup() {
    binaries
    python3 - "$DEVICE" "$MODEL_KIND" "$("$SAECTL" --version 2>&1)" \
        "$(cat "$KIT/VERSION" 2>/dev/null || echo unknown)" \
        "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1)" \
        <<'PY' | record env
import json, os, platform, sys
device, model, saectl, kit, gpu = sys.argv[1:6]
def version(module):
    try:
        m = __import__(module)
        return m.__version__ + (f" (CUDA {m.version.cuda})" if module == "torch" else "")
    except Exception:
        return None
print(json.dumps({"device": device, "model": model, "saectl": saectl, "kit": kit,
                  "gpu": gpu or None, "python": platform.python_version(),
                  "torch": version("torch"), "transformers": version("transformers"),
                  "cpus": os.cpu_count()}))
PY
    # The driver JIT-compiles each PTX module on first use: the first run pays for it.
    local first second
    first=$(timed warmup1 "$PROBE" forward --model "$TINY" --hooks all --device "$DEVICE" \
        --dtype "$DTYPE" --batch 2 --seq-len 24 --warmup 1 --iters 3)
    second=$(timed warmup2 "$PROBE" forward --model "$TINY" --hooks all --device "$DEVICE" \
        --dtype "$DTYPE" --batch 2 --seq-len 24 --warmup 1 --iters 3)
    timed warmup_cache "$SAECTL" cache --model "$TINY" --tokenizer "$TOKENIZER" \
        --hook "$TINY_HOOK" --dataset "$KIT/corpus/tiny.jsonl" --num-tokens 2048 \
        --seq-len 64 --device "$DEVICE" --out "$WORK/warmup-cache" > /dev/null
    # Training and collection kernels too (index_add, Adam's element-wise ops, the top-k).
    for kind in batchtopk topk; do
        timed "warmup_train_$kind" "$SAECTL" train --activations "$WORK/warmup-cache" \
            --out "$WORK/warmup-train-$kind" --device "$DEVICE" --sae-type "$kind" --dict-size 512 \
            --top-k 8 --batch-size 256 --num-tokens 1024 > /dev/null
        rm -rf "$WORK/warmup-train-$kind"
    done
    rm -rf "$WORK/warmup-cache"
    echo "{\"probe_first_s\": ${first:-null}, \"probe_second_s\": ${second:-null}}" | record warmup
    ensure_model
    ensure_corpus
}

# Tiny Gemma-2: hook points against Hugging Face's reference, and device against CPU.
stage_parity() {
    local ref=$TINY/reference_activations.safetensors dumps=$WORK/parity
    mkdir -p "$dumps"
    for run in cpu:f32 "$DEVICE:f32" "$DEVICE:bf16"; do
        local dev=${run%%:*} dt=${run##*:}
        timed "parity_dump_${dev}_$dt" "$PROBE" forward --model "$TINY" --hooks all \
            --device "$dev" --dtype "$dt" --iters 0 --ids "$ref" --dump "$dumps/${dev}_$dt.safetensors" > /dev/null
    done
    kit compare-dumps "$dumps/cpu_f32.safetensors" "$ref" --tolerance 1e-5 | record parity_hooks_cpu_f32_vs_hf
    kit compare-dumps "$dumps/${DEVICE}_f32.safetensors" "$ref" --tolerance 1e-4 | record "parity_hooks_${DEVICE}_f32_vs_hf"
    kit compare-dumps "$dumps/${DEVICE}_f32.safetensors" "$dumps/cpu_f32.safetensors" --tolerance 1e-4 \
        | record "parity_hooks_${DEVICE}_f32_vs_cpu"
    # bf16 keeps 8 bits of mantissa: 2^-8 ≈ 4e-3 per rounding, compounded over the blocks.
    kit compare-dumps "$dumps/${DEVICE}_bf16.safetensors" "$ref" --tolerance 5e-2 | record "parity_hooks_${DEVICE}_bf16_vs_hf"

    # cache and collect, device against CPU, f32.
    local common=(--model "$TINY" --tokenizer "$TOKENIZER" --hook "$TINY_HOOK"
        --dataset "$KIT/corpus/tiny.jsonl" --num-tokens 4096 --seq-len 64 --cache-dtype f32)
    for dev in cpu "$DEVICE"; do
        rm -rf "$dumps/cache_$dev"
        timed "parity_cache_$dev" "$SAECTL" cache "${common[@]}" --device "$dev" --dtype f32 \
            --out "$dumps/cache_$dev" > /dev/null
    done
    kit compare-caches "$dumps/cache_$DEVICE" "$dumps/cache_cpu" --tolerance 1e-4 | record "parity_cache_${DEVICE}_vs_cpu"
    kit make-sae --out "$dumps/sae_topk" --arch topk --d-in 64 --d-sae 512 --k 8 --hook "$TINY_HOOK" > /dev/null
    kit make-sae --out "$dumps/sae_jumprelu" --arch jumprelu --d-in 64 --d-sae 512 --threshold 1.5 \
        --hook "$TINY_HOOK" > /dev/null
    local keep=(--top-features-to-save 512 --samples-per-feature-to-save 20 --max-samples-per-feature 20)
    for sae in topk jumprelu; do
        for dev in cpu "$DEVICE"; do
            rm -rf "$dumps/samples_${sae}_$dev"
            timed "parity_collect_${sae}_$dev" "$SAECTL" collect --checkpoint "$dumps/sae_$sae" \
                --activations "$dumps/cache_cpu" --device "$dev" "${keep[@]}" \
                --out "$dumps/samples_${sae}_$dev" > /dev/null
        done
        kit compare-samples "$dumps/samples_${sae}_$DEVICE" "$dumps/samples_${sae}_cpu" \
            --min-identical 0.99 --max-value-error 1e-4 | record "parity_collect_${sae}_${DEVICE}_vs_cpu"
    done
    # bf16 live on the device against f32 on the CPU: the model's rounding moves activations
    # by ~1e-2 relative, so near-equal samples may swap; recall and value error are reported.
    for run in cpu:f32 "$DEVICE:$DTYPE"; do
        local dev=${run%%:*} dt=${run##*:}
        rm -rf "$dumps/live_${dev}_$dt"
        timed "parity_live_${dev}_$dt" "$SAECTL" collect --checkpoint "$dumps/sae_topk" \
            --model "$TINY" --tokenizer "$TOKENIZER" --dataset "$KIT/corpus/tiny.jsonl" \
            --num-tokens 4096 --seq-len 64 --device "$dev" --dtype "$dt" "${keep[@]}" \
            --out "$dumps/live_${dev}_$dt" > /dev/null
    done
    kit compare-samples "$dumps/live_${DEVICE}_$DTYPE" "$dumps/live_cpu_f32" \
        | record "parity_collect_live_${DEVICE}_${DTYPE}_vs_cpu_f32"
}

small_cache() {
    local cache=$WORK/cache_small
    [ -f "$cache/cache_index.json" ] && grep -q '"complete": true' "$cache/cache_index.json" && return 0
    rm -rf "$cache"
    timed small_cache "$SAECTL" cache --model "$MODEL" --tokenizer "$TOKENIZER" --hook "$HOOK" \
        --dataset "$CORPUS" --num-tokens 8192 --seq-len 128 --model-batch-size 32 \
        --cache-dtype f32 --device "$DEVICE" --out "$cache" > /dev/null
}

# Top-k at SAE widths where candle's arg_sort fails on CUDA (> 8192 columns).
stage_topk() {
    timed topk_probe "$PROBE" topk --device "$DEVICE" --d-sae 16384,65536 --tokens 4096 --k 32 > /dev/null
    python3 -c 'import json,sys; print(json.dumps({"cases": [json.loads(l) for l in open(sys.argv[1]) if l.strip()]}))' \
        "$LOGS/topk_probe.out" | record topk_probe
    # Training's and the collector's selections without the dense copy, against the host path
    # (fewer tokens in the CPU smoke test, where both paths are the host's).
    local tokens=4096
    [ "$DEVICE" = cpu ] && tokens=256
    timed select_probe "$PROBE" select --device "$DEVICE" --d-sae 16384,65536 --tokens "$tokens" \
        --k 32 --iters 3 > /dev/null
    python3 -c 'import json,sys; print(json.dumps({"cases": [json.loads(l) for l in open(sys.argv[1]) if l.strip()]}))' \
        "$LOGS/select_probe.out" | record select_probe
    ensure_model && ensure_corpus && small_cache || return 1
    local cache=$WORK/cache_small
    for kind in batchtopk topk; do
        for d_sae in 16384 65536; do
            for dev in "$DEVICE" cpu; do
                local run=$WORK/train_${kind}_${d_sae}_$dev steps=4
                [ "$dev" = cpu ] && steps=2
                rm -rf "$run"
                timed "train_${kind}_${d_sae}_$dev" "$SAECTL" train --activations "$cache" --out "$run" \
                    --device "$dev" --sae-type "$kind" --dict-size "$d_sae" --top-k 32 \
                    --batch-size 1024 --num-tokens $((1024 * steps)) --log-freq 1 > /dev/null
            done
            kit compare-metrics "$WORK/train_${kind}_${d_sae}_$DEVICE" "$WORK/train_${kind}_${d_sae}_cpu" \
                --tolerance 1e-3 | record "train_${kind}_${d_sae}_${DEVICE}_vs_cpu"
        done
    done
    local sae=$WORK/sae_topk_65536
    [ -f "$sae/cfg.json" ] || kit make-sae --out "$sae" --arch topk --d-in "$D_IN" --d-sae 65536 \
        --k 32 --hook "$HOOK" > /dev/null
    for dev in "$DEVICE" cpu; do
        rm -rf "$WORK/samples_65536_$dev"
        timed "collect_65536_$dev" "$SAECTL" collect --checkpoint "$sae" --activations "$cache" \
            --device "$dev" --top-features-to-save 2000 --out "$WORK/samples_65536_$dev" > /dev/null
    done
    kit compare-samples "$WORK/samples_65536_$DEVICE" "$WORK/samples_65536_cpu" \
        --min-identical 0.99 --max-value-error 1e-3 | record "collect_topk_65536_${DEVICE}_vs_cpu"
}

stage_forward() {
    ensure_model || return 1
    local ids=$WORK/ids.safetensors
    kit make-ids --out "$ids" --batch 4 --seq-len 128 --vocab "$VOCAB" > /dev/null
    timed forward_saectl "$PROBE" forward --model "$MODEL" --hooks "$HOOK" --device "$DEVICE" \
        --dtype "$DTYPE" --batch "$BATCH" --seq-len 128 --warmup 3 --iters 20 \
        --ids "$ids" --dump "$WORK/forward_saectl.safetensors" > /dev/null
    record forward_saectl < "$LOGS/forward_saectl.out"
    if has_torch; then
        local hf_dtype=bfloat16
        [ "$DTYPE" = f32 ] && hf_dtype=float32
        timed forward_hf python3 "$KIT/hf_forward.py" --model "$MODEL" --layer "$LAYER" \
            --dtype "$hf_dtype" --device "$([ "$DEVICE" = cpu ] && echo cpu || echo cuda)" \
            --batch "$BATCH" --seq-len 128 --warmup 3 --iters 20 --ids "$ids" \
            --dump "$WORK/forward_hf.safetensors" --also-sdpa > /dev/null
        python3 -c 'import json,sys; print(json.dumps({"runs": [json.loads(l) for l in open(sys.argv[1]) if l.strip()]}))' \
            "$LOGS/forward_hf.out" | record forward_hf
        kit compare-dumps "$WORK/forward_saectl.safetensors" "$WORK/forward_hf.safetensors" \
            --tolerance 5e-2 | record "parity_forward_${DTYPE}_saectl_vs_hf"
    else
        echo '{"skipped": "torch/transformers not installed"}' | record forward_hf
    fi
}

stage_collect() {
    ensure_model && ensure_corpus || return 1
    local sae=$WORK/sae_topk_16384 out=$WORK/collect_16384
    [ -f "$sae/cfg.json" ] || kit make-sae --out "$sae" --arch topk --d-in "$D_IN" --d-sae 16384 \
        --k 32 --hook "$HOOK" > /dev/null
    rm -rf "$out"
    local wall
    if ! wall=$(timed collect_16384 "$SAECTL" collect --checkpoint "$sae" --model "$MODEL" \
        --tokenizer "$TOKENIZER" --dataset "$CORPUS" --num-tokens "$COLLECT_TOKENS" --seq-len 128 \
        --model-batch-size 64 --device "$DEVICE" --dtype "$DTYPE" --out "$out"); then
        echo '{"error": "saectl collect failed; see logs/collect_16384.log"}' | record collect_l12_16k
        return 1
    fi
    kit log-stats "$LOGS/collect_16384.log" | python3 -c '
import json, sys
stats = json.load(sys.stdin)
stats.update(wall_s=float(sys.argv[1]), sae="topk 16384 k 32, random", dtype=sys.argv[2], seq_len=128, model_batch_size=64)
print(json.dumps(stats))' "${wall:-0}" "$DTYPE" | record collect_l12_16k
}

# Runs "$@" while sampling nvidia-smi's memory.used every 100 ms; prints
# "STATUS SECONDS PEAK_MIB IDLE_MIB" (the memory fields `null` without nvidia-smi).
with_peak_memory() {
    local name=$1; shift
    local idle=null peak=null sampler="" samples=$LOGS/$name.mem wall status
    if command -v nvidia-smi > /dev/null; then
        idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n1)
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$samples" &
        sampler=$!
    fi
    wall=$(timed "$name" "$@")
    status=$?
    if [ -n "$sampler" ]; then
        kill "$sampler" 2> /dev/null
        wait "$sampler" 2> /dev/null
        peak=$(sort -n "$samples" | tail -n1)
    fi
    echo "$status $wall ${peak:-null} $idle"
}

stage_train() {
    ensure_model && ensure_corpus || return 1
    local mode=cache
    "$SAECTL" train --help 2>/dev/null | grep -qE -- '--model <' && mode=live
    local source=()
    if [ "$mode" = live ]; then
        source=(--model "$MODEL" --tokenizer "$TOKENIZER" --hook "$HOOK" --dataset "$CORPUS"
            --seq-len 128 --dtype "$DTYPE")
    else
        local cache=$WORK/cache_l12
        if ! grep -qs '"complete": true' "$cache/cache_index.json"; then
            rm -rf "$cache"
            timed cache_l12 "$SAECTL" cache --model "$MODEL" --tokenizer "$TOKENIZER" --hook "$HOOK" \
                --dataset "$CORPUS" --num-tokens "$TRAIN_CACHE_TOKENS" --seq-len 128 \
                --model-batch-size 64 --cache-dtype bf16 --device "$DEVICE" --dtype "$DTYPE" \
                --out "$cache" > /dev/null
            kit log-stats "$LOGS/cache_l12.log" | record cache_l12
        fi
        source=(--activations "$cache")
    fi
    # Two lengths: the difference of their times is the steady rate, without start-up costs.
    local results=()
    for steps in "${TRAIN_STEPS[@]}"; do
        rm -rf "$WORK/train_l12_$steps"
        results+=("$steps $(with_peak_memory "train_l12_$steps" "$SAECTL" train "${source[@]}" \
            --out "$WORK/train_l12_$steps" --device "$DEVICE" --sae-type batchtopk \
            --dict-size 16384 --top-k 32 --batch-size 4096 --num-tokens $((4096 * steps)) \
            --log-freq 10 --checkpoint-freq 100000)")
    done
    python3 - "$mode" "$DEVICE" "${results[@]}" <<'EOF' | record train_l12_16k
import json, sys
mode, device, runs = sys.argv[1], sys.argv[2], [r.split() for r in sys.argv[3:]]
number = lambda text: None if text == "null" else float(text)
parsed = [{"steps": int(r[0]), "exit_status": int(r[1]), "wall_s": float(r[2]),
           "peak_mib": number(r[3]), "idle_mib": number(r[4])} for r in runs]
out = {"mode": mode, "device": device, "sae": "batchtopk 16384 k 32", "batch_size": 4096,
       "runs": parsed}
failed = [r["steps"] for r in parsed if r["exit_status"] != 0]
if failed:
    out["error"] = f"the runs of {failed} steps failed; see logs/train_l12_*.log"
elif len(parsed) == 2:
    (a, b) = parsed
    seconds = b["wall_s"] - a["wall_s"]
    if seconds > 0:
        out["tokens_per_s"] = 4096 * (b["steps"] - a["steps"]) / seconds
peaks = [r["peak_mib"] - (r["idle_mib"] or 0) for r in parsed
         if r["peak_mib"] is not None and r["exit_status"] == 0]
out["peak_gpu_mib_above_idle"] = max(peaks) if peaks else None
print(json.dumps(out))
EOF
}

stage_report() {
    kit report "$RESULTS" | record report_index
}

binaries
cuda_library_path
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(setup parity topk forward collect train report)
for stage in "${stages[@]}"; do
    if ! declare -f "stage_$stage" > /dev/null; then
        log "unknown stage $stage (setup parity topk forward collect train report)"
        exit 2
    fi
    log "stage $stage"
    started=$(date +%s)
    "stage_$stage" || log "stage $stage did not finish"
    log "stage $stage took $(( $(date +%s) - started )) s"
done
