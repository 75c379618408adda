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

# Run the demo: the whole pipeline on the embedded model (about a minute in release).
demo:
    cargo run --release -- demo

# Retrain the embedded demo model into assets/demo-model/ (deterministic; docs/demo.md).
demo-model:
    cargo run --release --example train_demo_model -- assets/demo-model

# The CUDA binary, built without a GPU or toolkit, packed into gpu/ (docs/gpu.md).
cuda:
    bash scripts/build-cuda.sh

# CI exactly as it runs on a clean clone.
ci:
    bash .ci/run
