# saectl recipes (https://github.com/casey/just). Each is a plain cargo command underneath.

# Run the whole test suite (what CI runs).
test:
    cargo test --locked

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --check
    cargo clippy --locked --all-targets -- -D warnings

# Benchmarks (release build); paste the tables into docs/benchmarks.md.
bench:
    cargo bench --bench collector

# API documentation of the library.
docs:
    cargo doc --no-deps --open

# The CUDA binary, built without a GPU or toolkit, packed into gpu/ (docs/gpu.md).
cuda:
    bash scripts/build-cuda.sh

# CI exactly as it runs on a clean clone.
ci:
    bash .ci/run
