//! Stages on their own threads with bounded, timed queues between them.
//!
//! A sweep is a chain — read text and tokenize, run the model (or read a cache), encode, collect
//! — where each step waited for the one before when they ran in series. Here every stage but
//! the last runs on a scoped thread and hands its items on through a bounded channel: a stage
//! works at most `depth` items ahead of the next (memory stays bounded), items keep their order
//! (so the result is the serial one, bit for bit), and each stage records where its time went —
//! busy, waiting for input (the stage before it is slower) and waiting for room (the one after
//! it is slower). The wall time of the chain then approaches its slowest stage instead of the
//! sum of them.
//!
//! Errors travel as items: a stage that fails sends its error on and stops, and every stage
//! stops when the one after it has gone (its send fails), so the consumer sees the first error
//! in stream order and nothing runs on after it.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use anyhow::Result;

/// Where one stage's time went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTime {
    /// Doing its own work.
    pub busy: Duration,
    /// Waiting for the stage before it.
    pub input_wait: Duration,
    /// Waiting for room in the next stage's queue.
    pub output_wait: Duration,
}

impl std::ops::AddAssign for StageTime {
    fn add_assign(&mut self, other: Self) {
        self.busy += other.busy;
        self.input_wait += other.input_wait;
        self.output_wait += other.output_wait;
    }
}

/// The receiving end of a stage: yields its items in order and times the waits for them.
pub struct Queue<T> {
    receiver: Receiver<Result<T>>,
    waited: Duration,
}

impl<T> Queue<T> {
    /// Time spent waiting in [`Iterator::next`] so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl<T> Iterator for Queue<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        let started = Instant::now();
        let item = self.receiver.recv().ok();
        self.waited += started.elapsed();
        item
    }
}

/// A stage's thread; [`join`](Self::join) gives its times.
pub struct Stage<'scope> {
    handle: ScopedJoinHandle<'scope, StageTime>,
}

impl Stage<'_> {
    /// The stage's times once it has finished (a panic in it is passed on).
    pub fn join(self) -> StageTime {
        match self.handle.join() {
            Ok(time) => time,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Runs `source` on its own thread, up to `depth` items ahead of the consumer. Its time in
/// `next` is its busy time (it has no stage before it).
pub fn source<'scope, T, I>(
    scope: &'scope Scope<'scope, '_>,
    depth: usize,
    source: I,
) -> (Queue<T>, Stage<'scope>)
where
    T: Send + 'scope,
    I: Iterator<Item = Result<T>> + Send + 'scope,
{
    let (sender, queue) = channel(depth);
    let handle = scope.spawn(move || {
        let mut time = StageTime::default();
        let mut source = source;
        loop {
            let started = Instant::now();
            let Some(item) = source.next() else { break };
            time.busy += started.elapsed();
            let stop = item.is_err();
            if !send(&sender, item, &mut time) || stop {
                break;
            }
        }
        time
    });
    (queue, Stage { handle })
}

/// Runs `work` on every item of `input` on its own thread, up to `depth` items ahead of the
/// consumer. An error from `input` is passed on as it is.
pub fn map<'scope, T, U, F>(
    scope: &'scope Scope<'scope, '_>,
    depth: usize,
    input: Queue<T>,
    mut work: F,
) -> (Queue<U>, Stage<'scope>)
where
    T: Send + 'scope,
    U: Send + 'scope,
    F: FnMut(T) -> Result<U> + Send + 'scope,
{
    let (sender, queue) = channel(depth);
    let handle = scope.spawn(move || {
        let mut time = StageTime::default();
        let mut input = input;
        for item in input.by_ref() {
            let started = Instant::now();
            let item = item.and_then(&mut work);
            time.busy += started.elapsed();
            let stop = item.is_err();
            if !send(&sender, item, &mut time) || stop {
                break;
            }
        }
        time.input_wait = input.waited();
        time
    });
    (queue, Stage { handle })
}

fn channel<T>(depth: usize) -> (SyncSender<Result<T>>, Queue<T>) {
    let (sender, receiver) = sync_channel(depth.max(1));
    let queue = Queue {
        receiver,
        waited: Duration::ZERO,
    };
    (sender, queue)
}

/// Sends `item` on, timing the wait for room; false when the consumer has gone.
fn send<T>(sender: &SyncSender<Result<T>>, item: Result<T>, time: &mut StageTime) -> bool {
    let started = Instant::now();
    let sent = sender.send(item).is_ok();
    time.output_wait += started.elapsed();
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::bail;

    #[test]
    fn items_arrive_in_order_through_two_stages() {
        let got: Vec<u64> = std::thread::scope(|scope| {
            let (numbers, a) = source(scope, 2, (0..1000u64).map(Ok));
            let (squares, b) = map(scope, 3, numbers, |n| Ok(n * n));
            let got = squares.map(|item| item.unwrap()).collect();
            a.join();
            b.join();
            got
        });
        assert_eq!(got, (0..1000u64).map(|n| n * n).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_ends_the_stream_and_stops_the_stages_before_it() {
        let pulled = std::sync::atomic::AtomicU64::new(0);
        let got: Vec<Result<u64>> = std::thread::scope(|scope| {
            let numbers = (0..u64::MAX).map(|n| {
                pulled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(n)
            });
            let (numbers, a) = source(scope, 1, numbers);
            let (checked, b) = map(scope, 1, numbers, |n| {
                if n == 5 {
                    bail!("five");
                }
                Ok(n)
            });
            let got = checked.collect();
            a.join();
            b.join();
            got
        });
        assert_eq!(got.len(), 6);
        assert!(got[..5].iter().all(|item| item.is_ok()));
        assert_eq!(got[5].as_ref().unwrap_err().to_string(), "five");
        // The source stopped a few items ahead, not at the end of an endless stream.
        assert!(pulled.load(std::sync::atomic::Ordering::Relaxed) < 20);
    }

    #[test]
    fn a_consumer_that_stops_early_stops_the_source() {
        std::thread::scope(|scope| {
            let (numbers, a) = source(scope, 1, (0..u64::MAX).map(Ok));
            let first: Vec<u64> = numbers.take(3).map(|n| n.unwrap()).collect();
            assert_eq!(first, [0, 1, 2]);
            // `numbers` is dropped by `take`: the source's next send fails and it ends.
            a.join();
        });
    }

    #[test]
    fn a_slow_consumer_shows_as_the_producers_output_wait() {
        let time = std::thread::scope(|scope| {
            let (mut numbers, a) = source(scope, 1, (0..6u64).map(Ok));
            while numbers.next().is_some() {
                std::thread::sleep(Duration::from_millis(20));
            }
            a.join()
        });
        // Six items through a queue of one, 20 ms each at the consumer: the producer spent
        // most of ~120 ms waiting for room (a lower bound, so load cannot make it fail).
        assert!(time.output_wait >= Duration::from_millis(60), "{time:?}");
    }
}
