//! An ordered parallel map over `0..n` on scoped threads, for work that splits into
//! independent pieces (the dashboard's shards, its per-feature read-out and neighbour lists).
//!
//! Results come back in index order whatever the thread count, so a parallel build writes
//! the same bytes as a serial one; `threads` is a parameter so that tests can hold a parallel
//! run against a serial one. No dependency: `std::thread::scope` is all it takes.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The threads to use on this host: one per core.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}

/// `(0..n).map(work).collect()` on up to `threads` threads, in index order. Items are handed
/// out one at a time, so uneven items balance; a panic in `work` is re-raised here.
pub fn map<T: Send>(threads: usize, n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return (0..n).map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return done;
            }
            done.push((i, work(i)));
        }
    };
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
        let mut all = worker();
        for handle in handles {
            match handle.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, t)| t).collect()
}

/// [`map`] over chunks of `chunk` consecutive indices, flattened: for cheap items, where one
/// hand-out per item would cost more than the item.
pub fn map_chunked<T: Send>(
    threads: usize,
    n: usize,
    chunk: usize,
    work: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let chunk = chunk.max(1);
    map(threads, n.div_ceil(chunk), |c| {
        (c * chunk..((c + 1) * chunk).min(n))
            .map(&work)
            .collect::<Vec<T>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_in_index_order_whatever_the_thread_count() {
        // Uneven work, so that threads finish out of order.
        let work = |i: usize| {
            let spin = (i * 7919) % 50_000;
            (0..spin).fold(i as u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64))
        };
        let serial: Vec<u64> = (0..300).map(work).collect();
        for threads in [1, 2, 3, 8] {
            assert_eq!(map(threads, 300, work), serial, "{threads} threads");
            for chunk in [1, 7, 300, 1000] {
                assert_eq!(map_chunked(threads, 300, chunk, work), serial);
            }
        }
        assert!(map(4, 0, work).is_empty());
        assert!(map_chunked(4, 0, 16, work).is_empty());
    }

    #[test]
    #[should_panic(expected = "item 5")]
    fn a_panicking_item_panics_the_caller() {
        map(3, 10, |i| assert!(i != 5, "item {i}"));
    }
}
