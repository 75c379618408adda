#!/usr/bin/env bash
# Randomised kill -9 trials (docs/reliability.md): each command is started, killed with
# SIGKILL at a random moment, started again (it resumes), killed again…, then left to finish;
# its output must equal an uninterrupted run's byte for byte, with no temporary file left.
# A trial stops killing after MAX_PER_TRIAL kills and lets the command finish; trials repeat
# until every command has been killed at least KILLS times.
#
#   scripts/kill-trials.sh [COMMAND...]     all of: cache collect-cache collect-live
#                                           train-cache train-live merge
#   KILLS=20 SEED=1 SAECTL=target/debug/saectl scripts/kill-trials.sh
#
# Resuming is what a user would do: the same command again (`cache`, `collect`, `merge`), or
# `train --resume RUN` once the run has a checkpoint (before it, the same command, which
# starts over). A merge killed after its rename has finished: its --out is complete.
# Exits non-zero at the first difference, naming the command and the files that differ.
set -euo pipefail
cd "$(dirname "$0")/.."
kills_wanted=${KILLS:-20}
max_per_trial=${MAX_PER_TRIAL:-6}
RANDOM=${SEED:-1}
bin=$(realpath "${SAECTL:-target/debug/saectl}")
fx=$PWD/tests/fixtures
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

hook=blocks.1.hook_resid_post
model=(--model "$fx/tiny-gemma2" --tokenizer "$fx/tokenizer/tokenizer.json" --device cpu)
text=(--dataset "$fx/corpus/tiny.jsonl" --seq-len 16 --model-batch-size 3)
sae=$fx/tiny-gemma2-sae
collector=(--max-samples-per-feature 8 --sample-activation-threshold 0.0 --top-features-to-save 32)

# One function per command: run it into $1 (fresh, or resumed when $1 holds a run). Each
# execs saectl, so that started in a subshell its pid is saectl's: call as ( run_X DIR ).
run_cache() {
    exec "$bin" cache "${model[@]}" "${text[@]}" --hook "$hook" --num-tokens 960 \
        --sequences-per-shard 6 --cache-dtype f32 --out "$1"
}
run_collect-cache() {
    exec "$bin" collect --checkpoint "$sae" --activations "$work/cache" --shard 1/2 \
        --save-every-tokens 64 --batch-sequences 4 "${collector[@]}" --device cpu --out "$1"
}
run_collect-live() {
    exec "$bin" collect --checkpoint "$sae" "${model[@]}" "${text[@]}" --num-tokens 960 \
        --shard 0/2 --save-every-tokens 64 "${collector[@]}" --out "$1"
}
train_common=(--sae-type topk --dict-size 32 --top-k 4 --batch-size 32 --checkpoint-freq 3
    --eval-sequences 0 --save-activation-samples true --sample-collection-freq 2)
run_train-cache() {
    if [[ -e $1/latest_checkpoint ]]; then
        exec "$bin" train --resume "$1"
    else
        exec "$bin" train --activations "$work/cache" --num-tokens 768 "${train_common[@]}" \
            --device cpu --out "$1"
    fi
}
run_train-live() {
    if [[ -e $1/latest_checkpoint ]]; then
        exec "$bin" train --resume "$1"
    else
        exec "$bin" train "${model[@]}" "${text[@]}" --hook "$hook" --num-tokens 768 \
            --num-batches-in-buffer 2 "${train_common[@]}" --out "$1"
    fi
}
run_merge() {
    [[ -e $1 ]] && return 0 # killed after the rename: done
    exec "$bin" merge "$work/shard0" "$work/shard1" --out "$1"
}

now_ms() { date +%s%3N; }

# The trees with the wall-clock fields removed: `elapsed_s` and `tokens_per_s` of
# metrics.jsonl (one compact object a line) and `elapsed_s` of trainer_state.json (pretty
# printed, one key a line) are timing, which differs between any two runs.
untimed_copy() {
    rm -rf "$2"
    cp -r "$1" "$2"
    find "$2" -name metrics.jsonl -exec sed -i -E \
        's/"(elapsed_s|tokens_per_s)":[^,}]*,?//g' {} +
    find "$2" -name trainer_state.json -exec sed -i -E '/"elapsed_s":/d' {} +
}

# What must match: every file but the run lock's (it names its last holder), timing aside.
compare() {
    untimed_copy "$1" "$work/cmp-ref"
    untimed_copy "$2" "$work/cmp-out"
    diff -r -x .saectl-lock "$work/cmp-ref" "$work/cmp-out" > "$work/diff" 2>&1 || {
        echo "FAILED: $3: the resumed output differs from an uninterrupted run:" >&2
        head -20 "$work/diff" >&2
        exit 1
    }
    local left
    left=$(find "$(dirname "$2")" -name '.saectl-tmp-*' | head -5)
    if [[ -n $left ]]; then
        echo "FAILED: $3: temporaries left: $left" >&2
        exit 1
    fi
}

trial_command() {
    local name=$1 ref=$work/ref-$1 dir=$work/trial-$1 out=$work/trial-$1/out
    local total=0 trials=0 started duration
    # The reference is written where the trials write (files record their own paths).
    mkdir -p "$dir"
    started=$(now_ms)
    ("run_$name" "$out") > "$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
    duration=$(($(now_ms) - started))
    mv "$out" "$ref"
    while ((total < kills_wanted)); do
        local kills=0
        rm -rf "$dir"
        mkdir -p "$dir"
        trials=$((trials + 1))
        while :; do
            ("run_$name" "$out") > "$work/log" 2>&1 &
            local pid=$! status=0
            # A random moment within one uninterrupted run's time (startup included).
            local delay_ms=$(((RANDOM * 32768 + RANDOM) % (duration + 1)))
            sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
            kill -9 "$pid" 2> /dev/null || true
            { wait "$pid"; } 2> /dev/null || status=$?
            if ((status == 137)); then
                kills=$((kills + 1))
                if ((kills >= max_per_trial)); then
                    ("run_$name" "$out") > "$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
                    break
                fi
            elif ((status == 0)); then
                break
            else
                echo "FAILED: $name exited with $status after $kills kills:" >&2
                cat "$work/log" >&2
                exit 1
            fi
        done
        total=$((total + kills))
        compare "$ref" "$out" "$name"
    done
    echo "$name: $total kills in $trials trials, every result equal to an uninterrupted run (${duration} ms each; load $(cut -d' ' -f1-3 /proc/loadavg))"
}

commands=("$@")
((${#commands[@]})) || commands=(cache collect-cache collect-live train-cache train-live merge)
# Inputs the trials share: a cache, and two collected shards for merge.
(run_cache "$work/cache") > "$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
for i in 0 1; do
    "$bin" collect --checkpoint "$sae" --activations "$work/cache" --shard "$i/2" \
        "${collector[@]}" --device cpu --out "$work/shard$i" > "$work/log" 2>&1 ||
        { cat "$work/log" >&2; exit 1; }
done
for name in "${commands[@]}"; do
    trial_command "$name"
done
