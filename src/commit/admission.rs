//! Admission to the request queue: the one place producers wait for room.
//!
//! Every request that producers queue for the I/O thread (an append, a
//! batch, a sync) first takes a slot here: one request, and the payload
//! bytes it carries, under `queue_requests_max` and `queue_bytes_max`. The
//! I/O thread gives the request back when it takes it off the channel and
//! the bytes once they are encoded. The channel holds one message more
//! than the request limit (the shutdown), so sending never blocks: a
//! producer waits only here, where the log's failure or close wakes it at
//! once, never in a channel that a stuck I/O thread no longer drains.
//!
//! Waiting comes three ways: blocking ([`Admission::admit`]), not at all
//! ([`Admission::try_admit`]), or as a future ([`Admission::poll_admit`]).
//! Waiters are woken when the queue has drained to half of both limits
//! (or emptied), not at every request taken: a full queue of sleepers is
//! woken once per half-queue, not once per request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::Result;

/// Admission to the request queue; see the module docs.
#[derive(Debug)]
pub(crate) struct Admission {
    requests: AtomicUsize,
    requests_max: usize,
    bytes: AtomicU64,
    bytes_max: u64,
    /// Producers waiting, blocking or as futures.
    sleepers: AtomicUsize,
    /// Futures waiting, by token.
    wakers: Mutex<Vec<(u64, Waker)>>,
    cv: Condvar,
}

impl Admission {
    pub fn new(requests_max: usize, bytes_max: u64) -> Admission {
        assert!(requests_max > 0, "a queue admits at least one request");
        Admission {
            requests: AtomicUsize::new(0),
            requests_max,
            bytes: AtomicU64::new(0),
            bytes_max,
            sleepers: AtomicUsize::new(0),
            wakers: Mutex::new(Vec::new()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Waker)>> {
        // Pushes and drains only: a panic cannot leave the list inconsistent.
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a request slot and `bytes` if there is room now. An empty queue
    /// always admits one request, so a record as large as the whole byte
    /// limit still gets through.
    pub fn try_admit(&self, bytes: u64) -> bool {
        if self.requests.fetch_add(1, Ordering::SeqCst) >= self.requests_max {
            self.requests.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        let mut used = self.bytes.load(Ordering::SeqCst);
        loop {
            if used != 0 && used + bytes > self.bytes_max {
                self.requests.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
            match self.bytes.compare_exchange_weak(used, used + bytes, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Takes a slot, blocking while the queue is full; fails as soon as
    /// `usable` does (the log failed or closed).
    pub fn admit(&self, bytes: u64, usable: impl Fn() -> Result<()>) -> Result<()> {
        if self.try_admit(bytes) {
            return Ok(());
        }
        let mut guard = self.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            // Registered as a sleeper before this try: a release after it
            // sees the sleeper and notifies under the lock held here.
            if self.try_admit(bytes) {
                break Ok(());
            }
            if let Err(e) = usable() {
                break Err(e);
            }
            // The timeout only bounds the cost of a notification missed by
            // a wake-up policy bug; correctness does not rest on it.
            guard = self.cv.wait_timeout(guard, Duration::from_millis(100)).unwrap_or_else(PoisonError::into_inner).0;
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Async [`Admission::admit`]: `Ready(Ok)` once a slot is taken,
    /// `Ready(Err)` once `usable` fails, else registers `cx`'s waker under
    /// `token` (replacing an earlier one) and returns `Pending`. `waiting`
    /// tracks whether this future counts as a sleeper; [`Admission::forget`]
    /// ends that when the future is dropped.
    pub fn poll_admit(
        &self,
        bytes: u64,
        token: u64,
        waiting: &mut bool,
        cx: &Context<'_>,
        usable: impl Fn() -> Result<()>,
    ) -> Poll<Result<()>> {
        if let Err(e) = usable() {
            self.forget(token, waiting);
            return Poll::Ready(Err(e));
        }
        if self.try_admit(bytes) {
            self.forget(token, waiting);
            return Poll::Ready(Ok(()));
        }
        {
            let mut wakers = self.lock();
            match wakers.iter_mut().find(|(t, _)| *t == token) {
                Some((_, w)) if w.will_wake(cx.waker()) => {}
                Some((_, w)) => w.clone_from(cx.waker()),
                None => wakers.push((token, cx.waker().clone())),
            }
            if !*waiting {
                *waiting = true;
                self.sleepers.fetch_add(1, Ordering::SeqCst);
            }
        }
        // Registered before this try (see `admit`).
        if self.try_admit(bytes) {
            self.forget(token, waiting);
            return Poll::Ready(Ok(()));
        }
        if let Err(e) = usable() {
            self.forget(token, waiting);
            return Poll::Ready(Err(e));
        }
        Poll::Pending
    }

    /// A future that waited under `token` is done or dropped.
    pub fn forget(&self, token: u64, waiting: &mut bool) {
        if std::mem::take(waiting) {
            let mut wakers = self.lock();
            wakers.retain(|(t, _)| *t != token);
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// I/O thread: a request was taken off the channel.
    pub fn release_request(&self) {
        self.requests.fetch_sub(1, Ordering::SeqCst);
        self.wake_if_drained();
    }

    /// I/O thread: `n` queued payload bytes were encoded (or discarded).
    pub fn release_bytes(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.bytes.fetch_sub(n, Ordering::SeqCst);
        self.wake_if_drained();
    }

    fn wake_if_drained(&self) {
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        let requests = self.requests.load(Ordering::SeqCst);
        let bytes = self.bytes.load(Ordering::SeqCst);
        if requests <= self.requests_max / 2 && (bytes <= self.bytes_max / 2 || bytes == 0) {
            self.wake_all();
        }
    }

    /// Wakes every waiter: room was made, or the log failed or closed.
    pub fn wake_all(&self) {
        let wakers: Vec<(u64, Waker)> = {
            let mut list = self.lock();
            self.cv.notify_all();
            // Futures stay counted as sleepers until polled again (or
            // dropped); a new waker is registered if they must wait on.
            list.drain(..).collect()
        };
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// Requests queued now (admitted and not yet taken off the channel).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Payload bytes queued now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn requests_max(&self) -> usize {
        self.requests_max
    }

    pub fn bytes_max(&self) -> u64 {
        self.bytes_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    fn ok() -> Result<()> {
        Ok(())
    }

    #[test]
    fn admits_up_to_both_limits_and_one_request_into_an_empty_queue() {
        let a = Admission::new(2, 100);
        assert!(a.try_admit(1000), "an empty queue admits a request larger than the byte limit");
        assert!(!a.try_admit(1), "bytes over the limit");
        a.release_bytes(1000);
        assert!(a.try_admit(60));
        assert!(!a.try_admit(0), "two requests queued: full");
        a.release_request();
        a.release_request();
        assert!(!a.try_admit(50), "60 + 50 bytes over 100");
        assert!(a.try_admit(40));
        assert_eq!((a.requests(), a.bytes()), (1, 100));
    }

    #[test]
    fn a_blocked_producer_is_woken_by_room_or_by_the_log_failing() {
        let a = Arc::new(Admission::new(1, 1 << 20));
        assert!(a.try_admit(0));
        let b = a.clone();
        let waiter = std::thread::spawn(move || b.admit(0, ok));
        std::thread::sleep(Duration::from_millis(20));
        a.release_request();
        waiter.join().unwrap().unwrap();

        let failed = Arc::new(AtomicBool::new(false));
        let (b, f) = (a.clone(), failed.clone());
        let waiter = std::thread::spawn(move || {
            b.admit(0, || if f.load(Ordering::SeqCst) { Err(Error::Closed) } else { Ok(()) })
        });
        std::thread::sleep(Duration::from_millis(20));
        failed.store(true, Ordering::SeqCst);
        let t0 = std::time::Instant::now();
        a.wake_all();
        assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
        assert!(t0.elapsed() < Duration::from_millis(90), "woken, not timed out: {:?}", t0.elapsed());
    }

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_future_waits_until_half_the_queue_drained_and_forgets_itself_when_dropped() {
        let a = Admission::new(4, 1 << 20);
        for _ in 0..4 {
            assert!(a.try_admit(0));
        }
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let cx = Context::from_waker(&waker);
        let mut waiting = false;
        assert!(a.poll_admit(0, 7, &mut waiting, &cx, ok).is_pending());
        assert!(waiting);
        a.release_request();
        assert!(!flag.0.load(Ordering::SeqCst), "three of four queued: not yet");
        a.release_request();
        assert!(flag.0.load(Ordering::SeqCst), "half drained: woken");
        assert!(a.poll_admit(0, 7, &mut waiting, &cx, ok).is_ready());
        assert!(!waiting);
        assert_eq!(a.sleepers.load(Ordering::SeqCst), 0);

        for _ in 0..1 {
            assert!(a.try_admit(0));
        }
        assert!(a.poll_admit(0, 8, &mut waiting, &cx, ok).is_pending());
        a.forget(8, &mut waiting);
        assert_eq!((a.sleepers.load(Ordering::SeqCst), a.lock().len()), (0, 0));
    }
}
