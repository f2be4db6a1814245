//! State shared by producers and the I/O thread: the acknowledged and synced
//! watermarks, the poison, the parked waiters, admission to the queue.
//!
//! A producer waits for a watermark to reach its LSN: it checks, optionally
//! spins, then registers in the waiter list and parks. The I/O thread stores
//! a new watermark, then wakes exactly the waiters it satisfies. Both sides
//! use sequentially consistent operations on `watermark` / `registered` so a
//! waiter either sees the new watermark or is seen by the I/O thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use super::admission::Admission;
use super::metrics::AtomicHistogram;
use super::watchdog::OpClock;
use crate::error::{Error, Failure, Result};
use crate::io::Doorbell;

/// Consecutive single-request flushes after which the log counts as having
/// a lone appender.
const LONELY_FLUSHES: u32 = 8;

/// Which watermark a waiter waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Acknowledged under the configured durability.
    Acked,
    /// On stable storage.
    Synced,
    /// On stable storage, and a durable sync marker says so (what
    /// `Wal::sync` waits for: after it, damage to these records is
    /// reported as corruption, never cut as a torn tail).
    Marked,
}

/// A function to call once a watermark reaches an LSN, with that LSN, or
/// with the error if the log fails or closes first.
pub(crate) type Callback = Box<dyn FnOnce(Result<u64>) + Send>;

/// How to wake a waiter: a parked thread, an async task, or a callback run
/// by the thread that publishes (the I/O thread).
pub(crate) enum Wake {
    Thread(Thread),
    Waker(Waker),
    Call { lsn: u64, token: u64, f: Callback },
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wake::Thread(t) => f.debug_tuple("Thread").field(t).finish(),
            Wake::Waker(w) => f.debug_tuple("Waker").field(w).finish(),
            Wake::Call { lsn, token, .. } => f.debug_struct("Call").field("lsn", lsn).field("token", token).finish(),
        }
    }
}

impl Wake {
    fn wake(self) {
        match self {
            Wake::Thread(t) => t.unpark(),
            Wake::Waker(w) => w.wake(),
            Wake::Call { lsn, f, .. } => call(f, Ok(lsn)),
        }
    }

    /// Order of callbacks: by LSN, then by registration; others first.
    fn order(&self) -> (u64, u64) {
        match self {
            Wake::Call { lsn, token, .. } => (*lsn, *token),
            _ => (0, 0),
        }
    }
}

/// Runs a callback; a panic in it must not take down the thread running it
/// (the I/O thread).
fn call(f: Callback, result: Result<u64>) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(result))).is_err() {
        crate::events::event!(error, "a durability callback panicked");
    }
}

#[derive(Debug)]
struct Waiter {
    lsn: u64,
    target: Target,
    token: u64,
    wake: Wake,
}

/// Counters the I/O thread and producers bump; read by `Wal::stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub appends: AtomicU64,
    pub append_bytes: AtomicU64,
    pub flushes: AtomicU64,
    pub rwf_dsync_flushes: AtomicU64,
    pub flush_bytes: AtomicU64,
    pub padding_bytes: AtomicU64,
    pub tail_rewrites: AtomicU64,
    pub segment_bytes_used: AtomicU64,
    pub syncs: AtomicU64,
    pub segments_activated: AtomicU64,
    pub segment_stalls: AtomicU64,
    pub syncs_in_flight_per_file_max: AtomicU64,
    pub parks: AtomicU64,
    pub requests: AtomicU64,
    /// Enqueued until taken by the I/O thread.
    pub queue_wait: AtomicHistogram,
    /// Flush submitted until written and synced.
    pub flush: AtomicHistogram,
    /// A sync round (Periodic / None durability) from start to end.
    pub sync_round: AtomicHistogram,
    /// Submitted until acknowledged, as the appender saw it.
    pub end_to_end: AtomicHistogram,
}

/// State shared by a `Wal`, its tickets and readers, and its I/O thread.
#[derive(Debug)]
pub(crate) struct Shared {
    acked: AtomicU64,
    synced: AtomicU64,
    marked: AtomicU64,
    failure: OnceLock<Arc<Failure>>,
    closed: AtomicBool,
    waiters: Mutex<Vec<Waiter>>,
    registered: AtomicUsize,
    /// Whether a thread holds the right to run callbacks (see
    /// [`Shared::drain_calls`]); read and written under the waiter lock.
    draining: AtomicBool,
    next_token: AtomicU64,
    spin: Duration,
    spinners: AtomicUsize,
    spinners_max: usize,
    lonely: AtomicBool,
    /// Room in the request queue; producers wait for it there.
    pub admission: Admission,
    pub counters: Counters,
    /// The oldest write or sync the I/O thread waits for, for the watchdog.
    pub io_clock: OpClock,
    /// Wakes the I/O thread, on backends that park it in the kernel.
    doorbell: OnceLock<Arc<dyn Doorbell>>,
}

impl Shared {
    pub fn new(last_lsn: u64, queue_requests_max: usize, queue_bytes_max: u64, spin: Duration) -> Shared {
        Shared {
            acked: AtomicU64::new(last_lsn),
            synced: AtomicU64::new(last_lsn),
            marked: AtomicU64::new(0),
            failure: OnceLock::new(),
            closed: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            registered: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            next_token: AtomicU64::new(1),
            spin,
            spinners: AtomicUsize::new(0),
            lonely: AtomicBool::new(false),
            // One CPU is the I/O thread's; on a single CPU nobody spins, as
            // the thread spun for would need that very CPU to make progress.
            spinners_max: std::thread::available_parallelism().map_or(0, |n| n.get().saturating_sub(1)),
            admission: Admission::new(queue_requests_max, queue_bytes_max),
            counters: Counters::default(),
            io_clock: OpClock::default(),
            doorbell: OnceLock::new(),
        }
    }

    /// Set once by the I/O thread, before it reports that it started.
    pub fn set_doorbell(&self, doorbell: Arc<dyn Doorbell>) {
        let _ = self.doorbell.set(doorbell);
    }

    /// Producers: wakes the I/O thread after queueing a request.
    pub fn wake_io(&self) {
        if let Some(bell) = self.doorbell.get() {
            bell.ring();
        }
    }

    /// I/O thread: when the oldest operation in flight started, before a
    /// submission that may block (and after completions).
    pub fn set_oldest_io(&self, oldest: Option<Instant>) {
        self.io_clock.set(oldest);
    }

    /// Whether spinning can pay at all: false on a single CPU.
    pub fn may_spin(&self) -> bool {
        self.spinners_max > 0
    }

    /// Whether appenders are asleep waiting (the log is busy).
    pub fn has_sleepers(&self) -> bool {
        self.registered.load(Ordering::Relaxed) > 0
    }

    /// Whether recent flushes each carried one request: a single appender,
    /// for whom spinning (instead of sleeping) pays, and whose flushes share
    /// no sync (see `SyncPolicy::flush_sync`).
    pub fn is_lonely(&self) -> bool {
        self.lonely.load(Ordering::Relaxed)
    }

    /// I/O thread: how many requests the flush it just sealed carried.
    pub fn note_flush_requests(&self, requests: u32, streak: &mut u32) {
        *streak = if requests <= 1 { streak.saturating_add(1) } else { 0 };
        let lonely = *streak >= LONELY_FLUSHES;
        if self.lonely.load(Ordering::Relaxed) != lonely {
            self.lonely.store(lonely, Ordering::Relaxed);
        }
    }

    pub fn acked_lsn(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    pub fn synced_lsn(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }

    fn value(&self, target: Target) -> u64 {
        match target {
            Target::Acked => self.acked.load(Ordering::SeqCst),
            Target::Synced => self.synced.load(Ordering::SeqCst),
            Target::Marked => self.marked.load(Ordering::SeqCst),
        }
    }

    pub fn failure(&self) -> Option<&Arc<Failure>> {
        self.failure.get()
    }

    /// Whether the log was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Err if appends must be refused.
    pub fn check_usable(&self) -> Result<()> {
        if let Some(f) = self.failure.get() {
            return Err(Error::Poisoned(f.clone()));
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn lock_waiters(&self) -> MutexGuard<'_, Vec<Waiter>> {
        // Waiter list operations cannot leave it inconsistent.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// I/O thread: publish new watermarks and collect into `scratch` the
    /// waiters they satisfy, to be woken by [`Shared::wake`] (after the next
    /// flush is submitted, so the device does not idle while threads wake).
    /// `scratch` is reused across calls so waking allocates nothing.
    pub fn publish(&self, acked: u64, synced: u64, marked: u64, scratch: &mut Vec<Wake>) {
        debug_assert!(synced <= acked || synced <= self.acked.load(Ordering::Relaxed).max(acked));
        debug_assert!(marked <= synced, "a marker only states what was synced");
        self.acked.store(acked, Ordering::SeqCst);
        self.synced.store(synced, Ordering::SeqCst);
        self.marked.store(marked, Ordering::SeqCst);
        if self.registered.load(Ordering::SeqCst) == 0 {
            return;
        }
        {
            let mut waiters = self.lock_waiters();
            let reached = |w: &Waiter| match w.target {
                Target::Acked => acked >= w.lsn,
                Target::Synced => synced >= w.lsn,
                Target::Marked => marked >= w.lsn,
            };
            // Callbacks are taken only by the thread that runs them: this
            // one, unless another already does (it takes these too).
            let calls = !self.draining.load(Ordering::SeqCst)
                && waiters.iter().any(|w| matches!(w.wake, Wake::Call { .. }) && reached(w));
            if calls {
                self.draining.store(true, Ordering::SeqCst);
            }
            let mut i = 0;
            while i < waiters.len() {
                let w = &waiters[i];
                if reached(w) && (calls || !matches!(w.wake, Wake::Call { .. })) {
                    scratch.push(waiters.swap_remove(i).wake);
                } else {
                    i += 1;
                }
            }
            self.registered.store(waiters.len(), Ordering::SeqCst);
        }
    }

    /// Wakes the waiters `publish` collected; if it collected callbacks,
    /// runs them in LSN order, then any registered meanwhile (see
    /// [`Shared::drain_calls`]).
    pub fn wake(&self, scratch: &mut Vec<Wake>) {
        // Callbacks run in LSN order (the waiter list is not kept in any).
        let calls = scratch.iter().any(|w| matches!(w, Wake::Call { .. }));
        if calls {
            scratch.sort_by_key(Wake::order);
        }
        for w in scratch.drain(..) {
            w.wake();
        }
        if calls {
            self.drain_calls();
        }
    }

    /// Runs the callbacks whose watermark was reached, in LSN order, until
    /// none is left, then gives up the right to run callbacks, which the
    /// caller holds (`draining`). One thread at a time runs callbacks, so a
    /// callback never runs before (or beside) one of a lower LSN that was
    /// registered first: a callback registered for an LSN already durable
    /// while another thread runs callbacks is left to that thread.
    fn drain_calls(&self) {
        let mut batch: Vec<Wake> = Vec::new();
        loop {
            {
                let mut waiters = self.lock_waiters();
                let mut i = 0;
                while i < waiters.len() {
                    let w = &waiters[i];
                    if matches!(w.wake, Wake::Call { .. }) && self.value(w.target) >= w.lsn {
                        batch.push(waiters.swap_remove(i).wake);
                    } else {
                        i += 1;
                    }
                }
                self.registered.store(waiters.len(), Ordering::SeqCst);
                if batch.is_empty() {
                    self.draining.store(false, Ordering::SeqCst);
                    return;
                }
            }
            batch.sort_by_key(Wake::order);
            for w in batch.drain(..) {
                w.wake();
            }
        }
    }

    fn wake_all(&self) {
        let mut all: Vec<Waiter> = {
            let mut waiters = self.lock_waiters();
            self.registered.store(0, Ordering::SeqCst);
            std::mem::take(&mut *waiters)
        };
        all.sort_by_key(|w| w.wake.order());
        for w in all {
            match w.wake {
                Wake::Call { f, .. } => call(f, Err(self.check_usable().err().unwrap_or(Error::Closed))),
                wake => wake.wake(),
            }
        }
        self.admission.wake_all();
    }

    /// Calls `f` once the `target` watermark reaches `lsn`, in LSN order
    /// with the other callbacks, by whichever thread holds the right to run
    /// them (see [`Shared::drain_calls`]): this one if the watermark is
    /// reached already and nobody else does, else the one that does or the
    /// I/O thread once it publishes. If the log failed or closed before
    /// `lsn` was reached: now, on this thread, with the error.
    pub fn call_when(&self, lsn: u64, target: Target, f: Callback) {
        if self.value(target) < lsn
            && let Err(e) = self.check_usable()
        {
            return call(f, Err(e));
        }
        let token = self.new_token();
        {
            let mut waiters = self.lock_waiters();
            waiters.push(Waiter { lsn, target, token, wake: Wake::Call { lsn, token, f } });
            self.registered.store(waiters.len(), Ordering::SeqCst);
        }
        // Re-check after registering (see the module comment). Reached: run
        // it (with any other reached callback, in LSN order) unless another
        // thread runs callbacks now, which then runs it after the lower ones
        // it holds. Whoever takes the entry out of the list calls it,
        // exactly once.
        if self.value(target) >= lsn {
            let waiters = self.lock_waiters();
            if self.draining.load(Ordering::SeqCst) {
                return;
            }
            self.draining.store(true, Ordering::SeqCst);
            drop(waiters);
            self.drain_calls();
            return;
        }
        if self.check_usable().is_err()
            && let Some(Waiter { wake: Wake::Call { f, .. }, .. }) = self.take_waiter(token)
        {
            call(f, Err(self.check_usable().err().unwrap_or(Error::Closed)));
        }
    }

    /// Removes and returns the waiter registered under `token`, if any.
    fn take_waiter(&self, token: u64) -> Option<Waiter> {
        let mut waiters = self.lock_waiters();
        let i = waiters.iter().position(|w| w.token == token)?;
        let w = waiters.swap_remove(i);
        self.registered.store(waiters.len(), Ordering::SeqCst);
        Some(w)
    }

    /// I/O thread: a write or sync failed. Nothing more is acknowledged.
    pub fn poison(&self, failure: Arc<Failure>) {
        let _ = self.failure.set(failure);
        self.wake_all();
    }

    /// The log is closing: wake everyone still waiting.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake_all();
    }

    /// Outcome of a wait: reached (Ok(true)), timed out (Ok(false)), or the
    /// log failed or closed first.
    pub fn wait_for(&self, lsn: u64, target: Target, deadline: Option<Instant>) -> Result<bool> {
        if self.value(target) >= lsn {
            return Ok(true);
        }
        if !self.spin.is_zero() && self.spin_slot() {
            // Never past the caller's deadline: a short timed wait stays short.
            let spin_end = Instant::now() + self.spin;
            let until = deadline.map_or(spin_end, |d| d.min(spin_end));
            let mut reached = false;
            // Spinning pays only for an appender that is alone: once others
            // wait too, the CPU is worth more to them and the I/O thread.
            while Instant::now() < until && self.registered.load(Ordering::Relaxed) == 0 {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
                if self.value(target) >= lsn {
                    reached = true;
                    break;
                }
            }
            self.spinners.fetch_sub(1, Ordering::Relaxed);
            if reached {
                return Ok(true);
            }
        }
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut registered = false;
        loop {
            // Reached: if our entry is still listed, the publish that moved
            // the watermark is removing it right now.
            if self.value(target) >= lsn {
                return Ok(true);
            }
            // Poisoned or closed: wake_all clears the list.
            self.check_usable()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if registered {
                    self.deregister(token);
                }
                return Ok(false);
            }
            if !registered {
                let mut waiters = self.lock_waiters();
                waiters.push(Waiter { lsn, target, token, wake: Wake::Thread(thread::current()) });
                self.registered.store(waiters.len(), Ordering::SeqCst);
                registered = true;
                // Re-check after registering (see the module comment).
                continue;
            }
            self.counters.parks.fetch_add(1, Ordering::Relaxed);
            match deadline {
                Some(d) => thread::park_timeout(d.saturating_duration_since(Instant::now())),
                None => thread::park(),
            }
            // Spurious wake-ups keep the entry listed: the I/O thread removes
            // only entries it satisfies (or all, on poison or close).
        }
    }

    /// Takes one of the spinning slots: only while no other waiter sleeps,
    /// and at most one spinner per CPU the I/O thread does not need, so
    /// spinning never starves the thread that completes the waits.
    fn spin_slot(&self) -> bool {
        if !self.is_lonely() || self.registered.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let mut n = self.spinners.load(Ordering::Relaxed);
        loop {
            if n >= self.spinners_max {
                return false;
            }
            match self.spinners.compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
    }

    /// A token identifying one waiter (a future) across polls.
    pub fn new_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Async waiting: `Ok(true)` if `lsn` is reached, an error if the log
    /// failed or closed, else registers (or refreshes) `waker` under `token`
    /// and returns `Ok(false)`; the I/O thread wakes it when `lsn` is reached.
    pub fn poll_reached(&self, lsn: u64, target: Target, token: u64, waker: &Waker) -> Result<bool> {
        if self.value(target) >= lsn {
            return Ok(true);
        }
        self.check_usable()?;
        {
            let mut waiters = self.lock_waiters();
            match waiters.iter_mut().find(|w| w.token == token) {
                Some(w) => {
                    if !matches!(&w.wake, Wake::Waker(old) if old.will_wake(waker)) {
                        w.wake = Wake::Waker(waker.clone());
                    }
                }
                None => {
                    waiters.push(Waiter { lsn, target, token, wake: Wake::Waker(waker.clone()) });
                    self.registered.store(waiters.len(), Ordering::SeqCst);
                }
            }
        }
        // Re-check after registering (see the module comment).
        if self.value(target) >= lsn {
            return Ok(true);
        }
        self.check_usable()?;
        Ok(false)
    }

    /// Removes the waiter registered under `token`, if any.
    pub fn deregister(&self, token: u64) {
        if self.registered.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut waiters = self.lock_waiters();
        if let Some(i) = waiters.iter().position(|w| w.token == token) {
            waiters.swap_remove(i);
            self.registered.store(waiters.len(), Ordering::SeqCst);
        }
    }
}

/// Waiting for a watermark (acknowledged or synced) to reach an LSN, by
/// blocking or as a future. Deregisters its waker when dropped.
#[derive(Debug)]
pub(crate) struct LsnWait {
    shared: Arc<Shared>,
    lsn: u64,
    target: Target,
    /// Identifies this waiter across polls; 0 until first polled.
    token: u64,
}

impl LsnWait {
    pub fn new(shared: Arc<Shared>, lsn: u64, target: Target) -> LsnWait {
        LsnWait { shared, lsn, target, token: 0 }
    }

    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    pub fn reached(&self) -> bool {
        self.shared.value(self.target) >= self.lsn
    }

    /// Blocks until reached (`Ok(true)`) or `timeout` (`Ok(false)`).
    pub fn blocking(&self, timeout: Option<Duration>) -> Result<bool> {
        self.shared.wait_for(self.lsn, self.target, timeout.map(|t| Instant::now() + t))
    }
}

impl Future for LsnWait {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        let this = self.get_mut();
        if this.token == 0 {
            this.token = this.shared.new_token();
        }
        match this.shared.poll_reached(this.lsn, this.target, this.token, cx.waker()) {
            Ok(true) => Poll::Ready(Ok(this.lsn)),
            Ok(false) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for LsnWait {
    fn drop(&mut self) {
        if self.token != 0 {
            self.shared.deregister(self.token);
        }
    }
}
