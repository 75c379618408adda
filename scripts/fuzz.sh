#!/usr/bin/env bash
# Coverage-guided fuzzing of every loader of untrusted bytes (fuzz/, docs/reliability.md):
# builds the targets with cargo-fuzz (libFuzzer, AddressSanitizer, debug assertions and
# overflow checks on), seeds each corpus with real files, and runs each target for RUNS
# executions under `nice -n 19`. A crash, panic, timeout or oversized allocation stops the
# target and leaves its input in fuzz/artifacts/<target>/; turn it into a regression test in
# the normal suite before fixing it.
#
#   scripts/fuzz.sh [TARGET...]           all targets when none is named
#   RUNS=1000000 JOBS=1 scripts/fuzz.sh   executions per target; targets run side by side
#
# Needs the nightly toolchain and `cargo install cargo-fuzz`. Seeds come from tests/fixtures,
# assets/ and fuzz/fixtures/ (scripts/fuzz-fixtures.sh). Corpora and logs stay in
# fuzz/corpus/ and fuzz/logs/ (not committed); each log ends with libFuzzer's final stats.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-1000000}
jobs=${JOBS:-1}
build=(+nightly fuzz build -a --codegen-units 16)
if (($# == 0)); then
    mapfile -t targets < <(cargo +nightly fuzz list)
else
    targets=("$@")
fi

# seed TARGET SELECTOR FILE: FILE behind its selector byte (none for single-file targets).
seed() {
    local target=$1 selector=$2 file=$3 dir=fuzz/corpus/$1
    mkdir -p "$dir"
    local name
    name="seed-${selector:-x}-$(basename "$(dirname "$file")")-$(basename "$file")"
    if [[ -n $selector ]]; then
        { printf "\\x$(printf %02x "$selector")"; cat "$file"; } > "$dir/$name"
    else
        cp "$file" "$dir/$name"
    fi
}

seed_all() {
    local f=fuzz/fixtures t=tests/fixtures i
    seed collector_state "" $f/samples/collector_state.safetensors
    i=0
    for file in feature_00003_samples.json collection_summary.json logit_effects.json; do
        seed samples_folder $i $f/samples/$file
        i=$((i + 1))
    done
    seed sae_checkpoint 0 $f/run/saectl.json
    seed sae_checkpoint 1 $f/run/cfg.json
    seed sae_checkpoint 2 $f/run/sae_weights.safetensors
    for kind in standard topk batchtopk jumprelu; do
        seed sae_checkpoint 3 $t/sae/saelens_$kind/cfg.json
        seed sae_checkpoint 4 $t/sae/saelens_$kind/sae_weights.safetensors
    done
    seed gemma_scope_npz "" $t/sae/gemma_scope/params.npz
    seed activation_cache 0 $f/cache/cache_index.json
    seed activation_cache 1 $f/cache/shard_00000.safetensors
    i=0
    for file in train_config.json trainer_state.json optimizer.safetensors saectl.json cfg.json \
        sae_weights.safetensors; do
        seed train_checkpoint $i $f/run/$file
        i=$((i + 1))
    done
    seed tokenizer "" $t/tokenizer/tokenizer.json
    seed tokenizer "" assets/demo-model/tokenizer.json
    seed parquet "" $t/corpus/tiny.parquet
    seed jsonl "" $t/corpus/tiny.jsonl
}

run_target() {
    local target=$1
    mkdir -p fuzz/logs "fuzz/artifacts/$target"
    # -malloc_limit_mb: no input is above 64 KiB, so no honest allocation comes near 256 MiB
    # (a deflated npz entry can grow 1032-fold: 64 MiB at most).
    # The binary itself, not `cargo fuzz run`: that would rebuild after any source edit.
    nice -n 19 "fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release/$target" \
        "fuzz/corpus/$target" -runs="$runs" -max_len=65536 -rss_limit_mb=2048 \
        -malloc_limit_mb=256 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" > "fuzz/logs/$target.log" 2>&1 && status=ok || status="FAILED (exit $?)"
    local execs
    execs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$target.log" |
        grep -o '[0-9]*$' || echo "?")
    echo "$target: $status, $execs executions ($(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg))"
}

seed_all
cargo "${build[@]}" # an ordinary build; only the fuzzing itself runs niced
running=0
for target in "${targets[@]}"; do
    run_target "$target" &
    running=$((running + 1))
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
done
wait
# The targets' scratch folders (one per fuzzing process).
rm -rf /dev/shm/saectl-fuzz-* "${TMPDIR:-/tmp}"/saectl-fuzz-*
