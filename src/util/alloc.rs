//! The allocator's settings: memory the process frees stays with it.
//!
//! mimalloc (the binary's global allocator, see Cargo.toml) hands memory that stayed free for
//! a second back to the OS by default (`madvise`), and the kernel zeroes it again when it is
//! next touched. A collection frees and reallocates buffers all the time (each batch's
//! activations, the stores as they grow): a 1M-token cold fill made ~270 such calls, and runs
//! whose timing crossed them paid 0.4–0.9 s of system time (docs/benchmarks.md). The resident
//! memory now stays at its peak, which a batch job reaches anyway (`train`'s peak: +3%,
//! docs/train.md). `MIMALLOC_PURGE_DELAY` in the environment still decides where it is set.

/// `mi_option_purge_delay` in mimalloc's option enum (the same in its v2 and v3; `strace`
/// shows the fill's `madvise` calls go from ~270 to 1 with it set).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory with the process: call once, first thing in `main`.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets a process-wide option (an integer mimalloc reads when it purges), before
    // the program starts its threads.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_is_kept_unless_the_environment_says_otherwise() {
        keep_freed_memory();
        // SAFETY: reads a process-wide option.
        let delay = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(set) => assert_eq!(delay.to_string(), set.trim()),
            Err(_) => assert_eq!(delay, -1),
        }
    }
}
