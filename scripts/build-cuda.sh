#!/usr/bin/env bash
# Builds saectl with `--features cuda` on a machine without a GPU or CUDA toolkit, using the
# recipe in ../shared/cuda/ (CUDA 13.0 compiler from PyPI wheels, link-only stubs), and packs
# what a GPU run needs into gpu/ (git-ignored) for the device tool to carry.
#
#   scripts/build-cuda.sh            # toolchain cached in ~/.cache/saectl-cuda13
#   SAECTL_CUDA_TOOLCHAIN=DIR SAECTL_SHARED=../shared scripts/build-cuda.sh
#
# The default build and CI stay CPU-only; this uses its own target dir (target/cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
toolchain=${SAECTL_CUDA_TOOLCHAIN:-$HOME/.cache/saectl-cuda13}
shared=$(cd "${SAECTL_SHARED:-../shared}" && pwd)

cargo fetch --locked
if [ ! -f "$toolchain/env.sh" ]; then
    "$shared/cuda/setup-cuda13-toolchain.sh" "$toolchain"
fi
# shellcheck disable=SC1091
source "$toolchain/env.sh"
# The lean nvcc drops candle's MoE/GGUF kernels (unused here): 16 MB instead of 52 MB.
NVCC="$shared/cuda/nvcc-lean" cargo build --release --locked --features cuda --target-dir target/cuda

mkdir -p gpu
xz -T0 -6 -c target/cuda/release/saectl > gpu/saectl.xz
cp tests/fixtures/gemma2-configs/*.json gpu/ 2>/dev/null || true
cp -r tests/fixtures/tiny-gemma2 tests/fixtures/tokenizer gpu/
ls -la gpu/
echo "packed gpu/ ($(du -sh gpu | cut -f1)); on the GPU machine see docs/gpu.md"
