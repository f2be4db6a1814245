//! The I/O watchdog on a thread of its own.
//!
//! Two threads of a log make system calls that a stalled device can keep in
//! the kernel for ever: the I/O thread (writes and syncs of segments; the
//! threaded backend's `pwritev2` and `fdatasync`, the io_uring backend's
//! inline `fdatasync`) and the segment preparer (create, allocate,
//! zero-fill, sync, rename, remove, directory sync). Each publishes, in an
//! [`OpClock`], when the oldest operation it waits for started. This thread
//! reads both and poisons the log once one is older than `io_timeout`:
//! every waiter, and every producer blocked on a full queue, then fails in
//! bounded time, whatever the stuck thread is stuck in. The I/O thread also
//! checks its own operations before each wait; the watchdog is what covers
//! a thread that never gets there.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::shared::Shared;
use crate::error::Failure;

/// When the oldest operation a thread waits for started, if any: written by
/// that thread, read by the watchdog.
#[derive(Debug)]
pub(crate) struct OpClock {
    /// Nanoseconds after `epoch`, plus one (0: nothing in flight).
    since_ns: AtomicU64,
    epoch: Instant,
}

impl Default for OpClock {
    fn default() -> OpClock {
        OpClock { since_ns: AtomicU64::new(0), epoch: Instant::now() }
    }
}

impl OpClock {
    /// Sets (or clears, with `None`) the start of the oldest operation.
    pub fn set(&self, oldest: Option<Instant>) {
        // +1: a start at the epoch itself must not read as "none".
        let ns = oldest.map_or(0, |t| t.saturating_duration_since(self.epoch).as_nanos() as u64 + 1);
        self.since_ns.store(ns, Ordering::Release);
    }

    /// When the oldest operation in flight started, if any.
    pub fn get(&self) -> Option<Instant> {
        match self.since_ns.load(Ordering::Acquire) {
            0 => None,
            ns => Some(self.epoch + Duration::from_nanos(ns - 1)),
        }
    }

    /// Runs `op`, a call that may block in the kernel, on the clock. Not
    /// nested: the inner call would clear the outer one's start.
    pub fn time<T>(&self, op: impl FnOnce() -> T) -> T {
        self.set(Some(Instant::now()));
        let out = op();
        self.set(None);
        out
    }
}

/// A running watchdog; dropping `stop` ends it within one interval.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pub stop: Sender<()>,
    pub thread: JoinHandle<()>,
}

/// How often the watchdog looks: a quarter of `io_timeout`, within 1 ms..=1 s,
/// so a stuck operation is reported at most 25% (or a second) late.
fn interval(io_timeout: Duration) -> Duration {
    (io_timeout / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
}

/// Watches the I/O thread's clock (in `shared`) and the preparer's.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    preparer: Arc<OpClock>,
    io_timeout: Duration,
    dir: PathBuf,
) -> io::Result<Watchdog> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let every = interval(io_timeout);
    let thread = std::thread::Builder::new().name("uring-wal-watchdog".into()).spawn(move || {
        loop {
            match stopped.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            if shared.failure().is_some() {
                return;
            }
            let stuck = |clock: &OpClock| clock.get().is_some_and(|t| t.elapsed() >= io_timeout);
            let what = if stuck(&shared.io_clock) {
                "a write or sync"
            } else if stuck(&preparer) {
                "a step of preparing or retiring a segment (create, allocate, zero-fill, sync, rename, remove)"
            } else {
                continue;
            };
            let error = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} stayed in the kernel longer than io_timeout ({io_timeout:?})"),
            );
            let lsn = shared.acked_lsn() + 1;
            shared.poison(Arc::new(Failure { op: "I/O timeout", path: dir, segment: 0, offset: 0, lsn, error }));
            return;
        }
    })?;
    Ok(Watchdog { stop, thread })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_often_enough_and_not_too_often() {
        assert_eq!(interval(Duration::from_secs(30)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_millis(200)), Duration::from_millis(50));
        assert_eq!(interval(Duration::from_millis(1)), Duration::from_millis(1));
    }

    /// Starts a watchdog over `shared`, sets `clock` going, and returns the
    /// failure and how long it took.
    fn poisoned_by(shared: &Arc<Shared>, preparer: Arc<OpClock>, clock: &OpClock) -> (Arc<Failure>, Duration) {
        let w = spawn(shared.clone(), preparer, Duration::from_millis(20), PathBuf::from("/x")).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert!(shared.failure().is_none(), "nothing in flight: nothing to report");
        clock.set(Some(Instant::now()));
        let t0 = Instant::now();
        while shared.failure().is_none() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let failure = shared.failure().expect("poisoned").clone();
        drop(w.stop);
        w.thread.join().unwrap();
        (failure, t0.elapsed())
    }

    #[test]
    fn poisons_an_io_thread_operation_older_than_the_timeout_and_only_that() {
        let shared = Arc::new(Shared::new(0, 16, 1 << 20, Duration::ZERO));
        let (failure, took) = poisoned_by(&shared, Arc::default(), &shared.io_clock);
        assert_eq!(failure.op, "I/O timeout");
        assert!(failure.error.to_string().contains("a write or sync"), "{failure}");
        assert!(took >= Duration::from_millis(20), "not before the timeout");
    }

    #[test]
    fn poisons_a_preparer_step_older_than_the_timeout() {
        let shared = Arc::new(Shared::new(0, 16, 1 << 20, Duration::ZERO));
        let preparer = Arc::new(OpClock::default());
        let (failure, _) = poisoned_by(&shared, preparer.clone(), &preparer);
        assert!(failure.error.to_string().contains("preparing or retiring a segment"), "{failure}");
    }

    #[test]
    fn a_timed_call_is_on_the_clock_only_while_it_runs() {
        let clock = OpClock::default();
        assert_eq!(clock.get(), None);
        let seen = clock.time(|| clock.get());
        assert!(seen.is_some_and(|t| t.elapsed() < Duration::from_secs(5)));
        assert_eq!(clock.get(), None);
    }
}
