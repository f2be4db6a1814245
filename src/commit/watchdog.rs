//! The I/O watchdog on a thread of its own. The I/O thread checks its
//! operations' age itself before each wait, but a backend that blocks in the
//! kernel (the threaded backend's `pwritev2` and `fdatasync`) keeps it from
//! ever getting there. This thread reads the start of the oldest operation
//! in flight, which the I/O thread publishes before each submission, and
//! poisons the log once it is older than `io_timeout`: every waiter then
//! fails in bounded time, whatever the I/O thread is stuck in.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::shared::Shared;
use crate::error::Failure;

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

pub(crate) fn spawn(shared: Arc<Shared>, io_timeout: Duration, dir: PathBuf) -> io::Result<Watchdog> {
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
            if shared.oldest_io().is_some_and(|t| t.elapsed() >= io_timeout) {
                let error = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("a write or sync stayed in flight longer than io_timeout ({io_timeout:?})"),
                );
                let lsn = shared.acked_lsn() + 1;
                shared.poison(Arc::new(Failure { op: "I/O timeout", path: dir, segment: 0, offset: 0, lsn, error }));
                return;
            }
        }
    })?;
    Ok(Watchdog { stop, thread })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn looks_often_enough_and_not_too_often() {
        assert_eq!(interval(Duration::from_secs(30)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_millis(200)), Duration::from_millis(50));
        assert_eq!(interval(Duration::from_millis(1)), Duration::from_millis(1));
    }

    #[test]
    fn poisons_an_operation_older_than_the_timeout_and_only_that() {
        let shared = Arc::new(Shared::new(0, 1 << 20, Duration::ZERO));
        let quiet = spawn(shared.clone(), Duration::from_millis(20), PathBuf::from("/x")).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert!(shared.failure().is_none(), "nothing in flight: nothing to report");
        shared.set_oldest_io(Some(Instant::now()));
        let t0 = Instant::now();
        while shared.failure().is_none() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let failure = shared.failure().expect("poisoned");
        assert_eq!(failure.op, "I/O timeout");
        assert!(t0.elapsed() >= Duration::from_millis(20), "not before the timeout");
        drop(quiet.stop);
        quiet.thread.join().unwrap();
    }
}
