#!/usr/bin/env bash
# Packs what a GPU run needs into one folder for the device tool to carry (≤ 64 MiB): the
# saectl binary and the kit's probe (examples/gpu_probe.rs), xz-compressed; the kit's scripts;
# the Gemma-2 configs; the tiny Gemma-2, its reference activations, the tokenizer and the corpus.
#
#   scripts/gpu/pack.sh                                  # the CUDA build of scripts/build-cuda.sh
#   scripts/gpu/pack.sh --saectl BIN --probe BIN --out DIR   # e.g. a CPU build, for a smoke test
#
# On the GPU machine: `bash gpu/run.sh STAGE…` (docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
cuda_target=${CARGO_TARGET_DIR:-target}/cuda
saectl=$cuda_target/release/saectl
probe=$cuda_target/release/examples/gpu_probe
out=gpu
while [ $# -gt 0 ]; do
    case $1 in
        --saectl) saectl=$2; shift 2 ;;
        --probe) probe=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
for bin in "$saectl" "$probe"; do
    [ -x "$bin" ] || { echo "missing binary $bin (build it first: scripts/build-cuda.sh)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/corpus"
xz -T0 -6 -c "$saectl" > "$out/saectl.xz"
xz -T0 -6 -c "$probe" > "$out/gpu_probe.xz"
cp scripts/gpu/run.sh scripts/gpu/*.py "$out/"
cp tests/fixtures/gemma2-configs/*.json "$out/"
cp -r tests/fixtures/tiny-gemma2 tests/fixtures/tokenizer "$out/"
cp tests/fixtures/corpus/tiny.txt tests/fixtures/corpus/tiny.jsonl "$out/corpus/"
git describe --always --dirty > "$out/VERSION" 2>/dev/null || echo unknown > "$out/VERSION"
size=$(du -sm "$out" | cut -f1)
echo "packed $out/ (${size} MiB); on the GPU machine: bash $out/run.sh (docs/gpu.md)"
if [ "$size" -gt 60 ]; then
    echo "warning: $out/ is over 60 MiB; the device tool carries at most 64 MiB" >&2
fi
