//! The `saectl` binary: parse the command line, run it, turn an error into one line on stderr.

use std::process::ExitCode;

/// Large per-batch tensors are freed and reallocated every batch; mimalloc reuses their pages
/// where glibc unmaps and faults them in again (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    saectl::util::alloc::keep_freed_memory();
    saectl::cli::main()
}
