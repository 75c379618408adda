#!/usr/bin/env bash
# Builds saectl and the GPU kit's probe (examples/gpu_probe.rs) with `--features cuda` on a
# machine without a GPU or CUDA toolkit, using the recipe in ../shared/cuda/ (CUDA 13.0
# compiler from PyPI wheels, link-only stubs), and packs the kit into gpu/ (git-ignored) for
# the device tool to carry (scripts/gpu/pack.sh; docs/gpu.md).
#
#   scripts/build-cuda.sh            # toolchain cached in ~/.cache/saectl-cuda13
#   SAECTL_CUDA_TOOLCHAIN=DIR SAECTL_SHARED=../shared scripts/build-cuda.sh
#
# The default build and CI stay CPU-only; this builds into its own folder, cuda/ inside the
# target dir (target/cuda, or $CARGO_TARGET_DIR/cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
toolchain=${SAECTL_CUDA_TOOLCHAIN:-$HOME/.cache/saectl-cuda13}
shared=$(cd "${SAECTL_SHARED:-../shared}" && pwd)
target=${CARGO_TARGET_DIR:-target}/cuda

cargo fetch --locked
if [ ! -f "$toolchain/env.sh" ]; then
    "$shared/cuda/setup-cuda13-toolchain.sh" "$toolchain"
fi
# shellcheck disable=SC1091
source "$toolchain/env.sh"
# The lean nvcc drops candle's MoE/GGUF kernels (unused here): 16 MB instead of 52 MB.
NVCC="$shared/cuda/nvcc-lean" cargo build --release --locked --features cuda --target-dir "$target" \
    --bin saectl --example gpu_probe

scripts/gpu/pack.sh --saectl "$target/release/saectl" \
    --probe "$target/release/examples/gpu_probe" --out gpu
ls -la gpu/
