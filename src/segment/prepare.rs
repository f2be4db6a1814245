//! Preparing segment files ahead of need, and retiring old ones, on a
//! background thread so neither ever stalls an append.
//!
//! A fresh segment is zero-filled by default, not only fallocated:
//! overwriting written blocks syncs without a metadata journal commit, which
//! on the development disk made each sync about 1.6x cheaper than syncing
//! into unwritten extents. `Options::prewrite_segments(false)` only
//! allocates, for logs that stream near the device's bandwidth and would
//! rather not write every byte twice. A zero-fill that the I/O thread
//! catches up with is cut short: the segment is handed over allocated,
//! zeros where they were written and unwritten extents after them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

use super::SegmentMeta;
use super::names::{segment_path, temp_path};
use crate::commit::watchdog::OpClock;
use crate::error::{Error, Result};
use crate::storage::{
    AlignedBuf, IoPriority, OpenHow, Storage, StorageFile, set_thread_io_priority, thread_io_priority, write_all_at,
};

/// Zero-fill write size when paced: small, so that an append queued behind
/// one waits little (64 KiB: p99 ~140 us and p99.9 ~200 us for single
/// appends on the development disk, against ~180 us and ~300 us with
/// 256 KiB, and a p99.9 of ~550 us with 1 MiB).
const ZERO_FILL_PACED_CHUNK_BYTES: usize = 64 << 10;

/// Zero-fill write size when in a hurry.
const ZERO_FILL_CHUNK_BYTES: usize = 1 << 20;

/// Zeros are synced every this many bytes, so that no single sync (and no
/// append's sync behind it) has a whole segment to flush.
const ZERO_FILL_SYNC_BYTES: u64 = 4 << 20;

/// A paced zero-fill aims to finish in this fraction of the time the
/// previous segment lasted, or of the runway (the segment bytes the log
/// consumes before it needs the next segment), whichever comes first,
/// leaving the rest as margin.
const ZERO_FILL_BUDGET_FRACTION: f64 = 0.5;

/// The longest a zero-fill is spread over in time. The fill also keeps pace
/// with what the log consumes, so a log that speeds up has its next segment
/// in time, and a slow one does not pay for zeros in a burst: a lone
/// appender whose flushes share blocks takes a 64 MiB segment in tens of
/// seconds, and writing its successor's zeros within a second stalled its
/// appends (a truncate call or a waiting I/O thread hurries the fill).
const ZERO_FILL_BUDGET_MAX: Duration = Duration::from_secs(30);

/// While paced, the fill looks at what the log consumed at least this often.
const ZERO_FILL_POLL: Duration = Duration::from_millis(5);

/// How long the zero-fill of a segment requested at `now` may take, the
/// previous request (when the segment now active was asked for) at `last`.
/// The first request has no history: it is paced as slowly as any, since
/// a burst of a whole segment's zeros right after opening is what the first
/// appends of a fresh log would wait behind (if the log needs the segment
/// sooner, the I/O thread hurries the fill, and a fill it catches up with
/// is cut short).
fn fill_budget(last: Option<Instant>, now: Instant) -> Duration {
    match last {
        Some(t) => now.duration_since(t).mul_f64(ZERO_FILL_BUDGET_FRACTION).min(ZERO_FILL_BUDGET_MAX),
        None => ZERO_FILL_BUDGET_MAX,
    }
}

/// Pacing below this is not worth a sleep.
const ZERO_FILL_SLEEP_MIN: Duration = Duration::from_micros(200);

/// A segment file ready to be activated.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub id: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
}

/// What preparation and retirement need.
#[derive(Clone, Debug)]
pub(crate) struct PrepareConfig {
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub direct: bool,
    pub spare_segments_max: usize,
    pub recycle: bool,
    /// Zero-fill fresh files (else only allocate them).
    pub prewrite: bool,
    pub counters: Arc<PrepareCounters>,
    /// When the system call the preparer is in started, for the watchdog:
    /// a call that never returns poisons the log like a stuck write.
    pub clock: Arc<OpClock>,
}

impl PrepareConfig {
    /// Runs `op`, a system call that may block, on the watchdog's clock.
    fn timed<T>(&self, op: impl FnOnce() -> T) -> T {
        self.clock.time(op)
    }

    fn sync_dir(&self) -> Result<()> {
        self.timed(|| self.storage.sync_dir(&self.dir)).map_err(io_err("fsync directory", &self.dir))
    }

    fn remove(&self, what: &'static str, path: &Path) -> Result<()> {
        self.timed(|| self.storage.remove_file(path)).map_err(io_err(what, path))
    }
}

/// What preparation did, for `Wal::stats`.
#[derive(Debug, Default)]
pub(crate) struct PrepareCounters {
    /// Fresh segment files created (zero-filled unless pre-writing is off).
    pub created: std::sync::atomic::AtomicU64,
    /// Retired segments renamed to be reused.
    pub recycled: std::sync::atomic::AtomicU64,
    /// Fresh segments handed over before their zero-fill finished, because
    /// the I/O thread waited for them.
    pub fills_cut: std::sync::atomic::AtomicU64,
}

/// Spare files on disk and the highest id handed out; owned by one thread.
#[derive(Debug, Default)]
pub(crate) struct Spares {
    /// Prepared files (zero or stale header) by the id their name carries.
    pub files: BTreeMap<u64, PathBuf>,
    /// Highest segment id in use, prepared or requested.
    pub highest_id: u64,
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |e| Error::io(op, path, e)
}

/// Whether someone waits for the preparer: the I/O thread for its next
/// segment, a `truncate_before` call, or the log closing. A paced sleep
/// ends as soon as it is set.
#[derive(Debug, Default)]
pub(crate) struct Hurry {
    state: Mutex<HurryState>,
    cv: Condvar,
    /// Segment bytes the log's flushes took since opening (bumped by the I/O
    /// thread): what paces a zero-fill besides time.
    consumed: AtomicU64,
}

#[derive(Debug, Default)]
struct HurryState {
    /// Cleared when the next preparation starts.
    now: bool,
    /// The I/O thread waits for the segment being prepared (implies `now`).
    /// Cleared when the next preparation starts.
    needed: bool,
    /// Never cleared: the log is closing. A fill in progress is abandoned
    /// and nothing more is prepared: nobody will append to it.
    closing: bool,
}

impl HurryState {
    fn hurried(&self) -> bool {
        self.now || self.closing
    }
}

impl Hurry {
    fn lock(&self) -> MutexGuard<'_, HurryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_set(&self) -> bool {
        self.lock().hurried()
    }

    fn set(&self) {
        self.lock().now = true;
        self.cv.notify_all();
    }

    fn set_needed(&self) {
        let mut state = self.lock();
        state.now = true;
        state.needed = true;
        self.cv.notify_all();
    }

    fn is_needed(&self) -> bool {
        self.lock().needed
    }

    fn is_closing(&self) -> bool {
        self.lock().closing
    }

    fn close(&self) {
        self.lock().closing = true;
        self.cv.notify_all();
    }

    fn reset(&self) {
        let mut state = self.lock();
        state.now = false;
        state.needed = false;
    }

    fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// Sleeps for `d` or until hurried, whichever comes first.
    fn sleep(&self, d: Duration) {
        let guard = self.lock();
        let _ = self.cv.wait_timeout_while(guard, d, |s| !s.hurried());
    }
}

/// How fast a zero-fill may go.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace<'a> {
    /// Spread the writes over this long (zero: as fast as possible).
    pub budget: Duration,
    /// Set when someone waits for the preparer: stop pacing.
    pub hurry: &'a Hurry,
    /// Segment bytes the log may consume before it needs this segment (the
    /// rest of the active one when asked): the fill goes at least as fast
    /// as to finish when half of it is consumed.
    pub runway: u64,
}

impl Pace<'_> {
    /// Whether to go slowly: there is a budget and nobody waits.
    fn is_paced(&self) -> bool {
        !self.budget.is_zero() && !self.hurry.is_set()
    }

    /// Sleeps until `done` of `total` bytes is due, by time since `started`
    /// or by what the log consumed since `consumed_at_start`, whichever is
    /// first; unless hurried (also part-way through the sleep) or done.
    fn wait(&self, started: Instant, consumed_at_start: u64, done: u64, total: u64) {
        loop {
            if done >= total || !self.is_paced() {
                return;
            }
            let consumed = self.hurry.consumed().saturating_sub(consumed_at_start);
            let half_runway = (self.runway as f64 * ZERO_FILL_BUDGET_FRACTION).max(1.0);
            if consumed as f64 / half_runway >= done as f64 / total.max(1) as f64 {
                return;
            }
            let due = self.budget.mul_f64(done as f64 / total.max(1) as f64);
            let ahead = due.saturating_sub(started.elapsed());
            if ahead < ZERO_FILL_SLEEP_MIN {
                return;
            }
            self.hurry.sleep(ahead.min(ZERO_FILL_POLL));
        }
    }
}

/// Makes segment `id` ready: reuses a spare of that id, or creates a fresh
/// file (zero-filled when `cfg.prewrite`, paced by `pace`). The file and its
/// directory entry are durable on return.
pub(crate) fn prepare_segment(cfg: &PrepareConfig, spares: &mut Spares, id: u64, pace: Pace<'_>) -> Result<Prepared> {
    spares.highest_id = spares.highest_id.max(id);
    // Spares with lower ids can never be used: the log has moved past them.
    while spares.files.first_key_value().is_some_and(|(&k, _)| k < id) {
        let Some((_, path)) = spares.files.pop_first() else { break };
        cfg.remove("remove stale spare", &path)?;
        cfg.sync_dir()?;
    }
    if let Some(path) = spares.files.remove(&id) {
        let file = cfg
            .timed(|| cfg.storage.open_file(&path, OpenHow::write(cfg.direct)))
            .map_err(io_err("open spare", &path))?;
        if cfg.timed(|| file.size()).map_err(io_err("stat", &path))? == cfg.segment_bytes {
            return Ok(Prepared { id, path, file });
        }
        drop(file);
        cfg.remove("remove odd-sized spare", &path)?;
        cfg.sync_dir()?;
    }
    create_segment(cfg, id, pace)
}

/// The calling thread's I/O priority while it zero-fills: idle while
/// paced; the thread's own priority (saved on going idle) when hurried and
/// when dropped, also on an error part-way.
struct IdleIo(Option<IoPriority>);

impl IdleIo {
    fn set(&mut self, idle: bool) {
        match (idle, self.0) {
            (true, None) => {
                // Best effort: where the priority cannot be read or set (a
                // seccomp filter), the fill is only paced.
                if let Ok(saved) = thread_io_priority()
                    && set_thread_io_priority(IoPriority::IDLE).is_ok()
                {
                    self.0 = Some(saved);
                }
            }
            (false, Some(saved)) => {
                // Some kernels report a thread whose priority was never set
                // as class none at a nonzero level, which ioprio_set refuses
                // (class none takes level 0 only): fall back to no class.
                if set_thread_io_priority(saved).is_err() {
                    let _ = set_thread_io_priority(IoPriority::NONE);
                }
                self.0 = None;
            }
            _ => {}
        }
    }
}

impl Drop for IdleIo {
    fn drop(&mut self) {
        self.set(false);
    }
}

fn create_segment(cfg: &PrepareConfig, id: u64, pace: Pace<'_>) -> Result<Prepared> {
    let tmp = temp_path(&cfg.dir, id);
    let path = segment_path(&cfg.dir, id);
    let file =
        cfg.timed(|| cfg.storage.open_file(&tmp, OpenHow::create(cfg.direct))).map_err(io_err("create", &tmp))?;
    let filled = (|| {
        cfg.timed(|| file.allocate(cfg.segment_bytes))?;
        // Without pre-writing, an allocated file of full size is enough. A
        // file system that cannot allocate leaves it short: fill it then.
        let allocated = cfg.timed(|| file.size())? == cfg.segment_bytes;
        if !cfg.prewrite && allocated {
            return cfg.timed(|| file.sync_data());
        }
        // Small writes, synced in pieces and spread over time: a burst of a
        // whole segment's zeros would stall every append behind it (p99.9
        // of single appends went from ~0.3 ms to ~0.7 ms on the development
        // disk).
        let zeros = AlignedBuf::zeroed(ZERO_FILL_CHUNK_BYTES);
        let started = Instant::now();
        let consumed_at_start = pace.hurry.consumed();
        let mut offset = 0u64;
        let mut unsynced = 0u64;
        // Paced zeros go in the idle I/O class, so the block layer's
        // scheduler (mq-deadline, bfq) serves them only while no append of
        // ours waits in its queue; hurried ones at the thread's own
        // priority, since someone waits for them. An unpaced preparation
        // (on the opening thread) never touches the priority.
        let mut priority = IdleIo(None);
        while offset < cfg.segment_bytes {
            // Closing: nobody will append to this segment. A clean close
            // must not wait for its zeros (nor fail, on a slow device,
            // because they took longer than `io_timeout`).
            if pace.hurry.is_closing() {
                return Err(std::io::Error::other(ABANDONED));
            }
            // Appends wait while the I/O thread waits for this segment.
            // Allocated, it is usable now: the rest stays unwritten extents,
            // whose syncs cost a metadata commit each (~1.6x) for this
            // segment's life, against a stall of every append for up to a
            // whole segment's zeros. A truncate call only hurries.
            if allocated && pace.hurry.is_needed() {
                cfg.counters.fills_cut.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                break;
            }
            let paced = pace.is_paced();
            priority.set(paced);
            let chunk = if paced { ZERO_FILL_PACED_CHUNK_BYTES } else { ZERO_FILL_CHUNK_BYTES };
            let n = (cfg.segment_bytes - offset).min(chunk as u64) as usize;
            cfg.timed(|| write_all_at(file.as_ref(), &zeros[..n], offset, false))?;
            offset += n as u64;
            unsynced += n as u64;
            if unsynced >= ZERO_FILL_SYNC_BYTES && offset < cfg.segment_bytes {
                cfg.timed(|| file.sync_data())?;
                unsynced = 0;
            }
            pace.wait(started, consumed_at_start, offset, cfg.segment_bytes);
        }
        drop(priority);
        cfg.timed(|| file.sync_data())
    })();
    if let Err(e) = filled {
        // Do not leave a half-written file behind (recovery would remove it
        // anyway; removing it now gives the space back at once).
        drop(file);
        let _ = cfg.timed(|| cfg.storage.remove_file(&tmp));
        return Err(Error::io("zero-fill", &tmp, e));
    }
    cfg.timed(|| cfg.storage.rename_no_replace(&tmp, &path)).map_err(io_err("rename", &path))?;
    cfg.sync_dir()?;
    cfg.counters.created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Prepared { id, path, file })
}

/// Why a preparation stopped: the log is closing.
const ABANDONED: &str = "abandoned: the log is closing";

/// Removes retired segments from the log durably, oldest first, so that a
/// crash part-way leaves a log that starts later but has no hole. Each is
/// renamed to a future id (recycled) while fewer than the allowed spares
/// exist, else deleted.
pub(crate) fn retire_segments(cfg: &PrepareConfig, spares: &mut Spares, retired: &[SegmentMeta]) -> Result<()> {
    for seg in retired {
        if cfg.recycle && spares.files.len() < cfg.spare_segments_max && seg.segment_bytes == cfg.segment_bytes {
            spares.highest_id += 1;
            let to = segment_path(&cfg.dir, spares.highest_id);
            cfg.timed(|| cfg.storage.rename_no_replace(&seg.path, &to))
                .map_err(io_err("rename retired segment", &seg.path))?;
            spares.files.insert(spares.highest_id, to);
            cfg.counters.recycled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            cfg.remove("remove retired segment", &seg.path)?;
        }
        cfg.sync_dir()?;
    }
    Ok(())
}

/// Retired segments and where to say that they are gone.
type Retire = (Vec<SegmentMeta>, Sender<Result<()>>);

/// Sends work to the preparer thread.
#[derive(Clone, Debug)]
pub(crate) struct PreparerClient {
    /// Segment ids the I/O thread asks for. It asks for the next one only
    /// once the last was handed over, so one is outstanding at most (one
    /// more at open): sending never blocks.
    prepare: Sender<(u64, u64)>,
    retire: Sender<Retire>,
    hurry: Arc<Hurry>,
    /// Dropped at close: ends the thread's wait for work even while a
    /// stuck I/O thread still holds a client.
    stop: Arc<Mutex<Option<Sender<()>>>>,
}

impl PreparerClient {
    /// Asks the preparer to finish what it does at full speed: a truncate
    /// call waits behind it.
    pub fn hurry(&self) {
        self.hurry.set();
    }

    /// The I/O thread waits for the segment being prepared: a fresh one is
    /// handed over at once, its zero-fill cut short (see `create_segment`).
    pub fn needed_now(&self) {
        self.hurry.set_needed();
    }

    /// The log is closing: a preparation in progress is abandoned, and
    /// nothing more is prepared.
    pub fn close(&self) {
        self.hurry.close();
        drop(self.stop.lock().unwrap_or_else(PoisonError::into_inner).take());
    }

    /// The log's flushes took `bytes` more of its segments.
    pub fn consumed(&self, bytes: u64) {
        self.hurry.consumed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Asks for segment `id`, needed once the log consumed `runway` more
    /// bytes of segment; the answer arrives on the ready channel.
    pub fn request(&self, id: u64, runway: u64) -> Result<()> {
        self.prepare.try_send((id, runway)).map_err(|e| match e {
            TrySendError::Full(_) => Error::io(
                "ask for the next segment",
                PathBuf::new(),
                std::io::Error::other("more segments asked for than were handed over"),
            ),
            TrySendError::Disconnected(_) => Error::Closed,
        })
    }

    /// Queues segments to retire durably. Returns where the outcome will
    /// arrive, or `Ok(None)` if the queue stayed full for `wait` (the
    /// caller checks the log and tries again: a stuck preparer must not
    /// hold it).
    pub fn retire(&self, segments: Vec<SegmentMeta>, wait: Duration) -> Result<RetireSent> {
        self.hurry();
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        match self.retire.send_timeout((segments, reply_tx), wait) {
            Ok(()) => Ok(RetireSent::Queued(reply_rx)),
            Err(SendTimeoutError::Timeout((segments, _))) => Ok(RetireSent::Full(segments)),
            Err(SendTimeoutError::Disconnected(_)) => Err(Error::Closed),
        }
    }
}

/// What [`PreparerClient::retire`] did.
#[derive(Debug)]
pub(crate) enum RetireSent {
    /// Queued: the outcome arrives here.
    Queued(Receiver<Result<()>>),
    /// The queue is full; these are handed back.
    Full(Vec<SegmentMeta>),
}

/// Starts the preparer thread. It stops once every client is dropped, or
/// once the log closes and what it was doing is done (or abandoned).
pub(crate) fn spawn(
    cfg: PrepareConfig,
    mut spares: Spares,
) -> std::io::Result<(PreparerClient, Receiver<Result<Prepared>>, JoinHandle<()>)> {
    let (prepare_tx, prepare_rx) = crossbeam_channel::bounded::<(u64, u64)>(2);
    // Retirements are one per truncate call; the bound only keeps callers
    // of a stuck preparer from queueing without end.
    let (retire_tx, retire_rx) = crossbeam_channel::bounded::<Retire>(64);
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(4);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let hurry = Arc::new(Hurry::default());
    let stop = Arc::new(Mutex::new(Some(stop_tx)));
    let client = PreparerClient { prepare: prepare_tx, retire: retire_tx, hurry: hurry.clone(), stop };
    let thread = std::thread::Builder::new().name("uring-wal-prepare".into()).spawn(move || {
        // A segment is requested when the one before it is activated, so
        // the time between requests is how long a segment lasts: the
        // zero-fill of the next one is spread over part of that.
        let mut last_request: Option<Instant> = None;
        loop {
            crossbeam_channel::select! {
                recv(prepare_rx) -> asked => {
                    let Ok((id, runway)) = asked else { break };
                    if hurry.is_closing() {
                        break;
                    }
                    let now = Instant::now();
                    let budget = fill_budget(last_request, now);
                    last_request = Some(now);
                    hurry.reset();
                    let result = prepare_segment(&cfg, &mut spares, id, Pace { budget, hurry: &hurry, runway });
                    if ready_tx.send(result).is_err() {
                        break;
                    }
                }
                recv(retire_rx) -> retire => {
                    let Ok((segments, reply)) = retire else { break };
                    let _ = reply.send(retire_segments(&cfg, &mut spares, &segments));
                }
                recv(stop_rx) -> _ => break,
            }
        }
    })?;
    Ok((client, ready_rx, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::storage::{CompletionOrder, DeviceFacts, DirEntry, DirLock, OsStorage};

    /// What the hook of [`Watched`] does after each write of a fill (the
    /// first ends its hour-long pacing).
    #[derive(Clone, Copy, Debug)]
    enum Then {
        /// The I/O thread waits for the segment.
        Needed,
        /// A truncate call waits behind the fill.
        Hurried,
    }

    /// Real files that count the bytes written and, after each write, set
    /// the hurry as `then` says; `allocates: false` plays a file system that
    /// cannot preallocate.
    #[derive(Debug)]
    struct Watched {
        written: Arc<AtomicU64>,
        hurry: Arc<Hurry>,
        then: Then,
        allocates: bool,
    }

    #[derive(Debug)]
    struct WatchedFile {
        inner: Arc<dyn StorageFile>,
        written: Arc<AtomicU64>,
        hurry: Arc<Hurry>,
        then: Then,
        allocates: bool,
    }

    impl StorageFile for WatchedFile {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            self.inner.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64, dsync: bool) -> std::io::Result<usize> {
            let n = self.inner.write_at(buf, offset, dsync)?;
            self.written.fetch_add(n as u64, Ordering::SeqCst);
            match self.then {
                Then::Needed => self.hurry.set_needed(),
                Then::Hurried => self.hurry.set(),
            }
            Ok(n)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.inner.sync_data()
        }
        fn size(&self) -> std::io::Result<u64> {
            self.inner.size()
        }
        fn allocate(&self, len: u64) -> std::io::Result<()> {
            if self.allocates { self.inner.allocate(len) } else { Ok(()) }
        }
        fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
            self.inner.raw_fd()
        }
        fn is_direct(&self) -> bool {
            self.inner.is_direct()
        }
    }

    impl Storage for Watched {
        fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
            OsStorage.create_dir_all(dir)
        }
        fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<DirEntry>> {
            OsStorage.list_dir(dir)
        }
        fn open_file(&self, path: &Path, how: OpenHow) -> std::io::Result<Arc<dyn StorageFile>> {
            Ok(Arc::new(WatchedFile {
                inner: OsStorage.open_file(path, how)?,
                written: self.written.clone(),
                hurry: self.hurry.clone(),
                then: self.then,
                allocates: self.allocates,
            }))
        }
        fn rename_no_replace(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            OsStorage.rename_no_replace(from, to)
        }
        fn remove_file(&self, path: &Path) -> std::io::Result<()> {
            OsStorage.remove_file(path)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            OsStorage.sync_dir(dir)
        }
        fn lock(&self, path: &Path) -> std::result::Result<Box<dyn DirLock>, (std::io::Error, Option<u32>)> {
            OsStorage.lock(path)
        }
        fn device_facts(&self, file: &Path) -> DeviceFacts {
            OsStorage.device_facts(file)
        }
        fn completion_order(&self) -> CompletionOrder {
            CompletionOrder::Submission
        }
    }

    #[test]
    fn the_first_fill_after_opening_is_paced_like_the_slowest() {
        let now = Instant::now();
        assert_eq!(fill_budget(None, now), ZERO_FILL_BUDGET_MAX);
        let t = now.checked_sub(Duration::from_millis(100)).unwrap();
        assert_eq!(fill_budget(Some(t), now), Duration::from_millis(100).mul_f64(ZERO_FILL_BUDGET_FRACTION));
        let long_ago = now.checked_sub(Duration::from_secs(60)).unwrap();
        assert_eq!(fill_budget(Some(long_ago), now), ZERO_FILL_BUDGET_MAX);
    }

    /// Creates segment 1 with a paced fill (an hour's budget) under `then`;
    /// the bytes written, the fills cut, and the file's size.
    fn create_watched(then: Then, allocates: bool) -> (u64, u64, u64) {
        const SEGMENT_BYTES: u64 = 8 << 20;
        let dir = tempfile::tempdir().unwrap();
        let hurry = Arc::new(Hurry::default());
        let written = Arc::new(AtomicU64::new(0));
        let storage = Arc::new(Watched { written: written.clone(), hurry: hurry.clone(), then, allocates });
        let cfg = PrepareConfig {
            storage,
            dir: dir.path().to_path_buf(),
            segment_bytes: SEGMENT_BYTES,
            direct: false,
            spare_segments_max: 1,
            recycle: true,
            prewrite: true,
            counters: Arc::default(),
            clock: Arc::default(),
        };
        let prepared =
            create_segment(&cfg, 1, Pace { budget: Duration::from_secs(3600), hurry: &hurry, runway: 1 << 40 })
                .unwrap();
        assert_eq!(prepared.path, segment_path(dir.path(), 1));
        let size = std::fs::metadata(&prepared.path).unwrap().len();
        (written.load(Ordering::SeqCst), cfg.counters.fills_cut.load(Ordering::SeqCst), size)
    }

    #[test]
    fn a_fill_the_io_thread_waits_for_is_cut_short_and_the_segment_handed_over_allocated() {
        let (written, cut, size) = create_watched(Then::Needed, true);
        assert_eq!(cut, 1);
        assert_eq!(written, ZERO_FILL_PACED_CHUNK_BYTES as u64, "no zeros written after the I/O thread asked");
        assert_eq!(size, 8 << 20, "allocated to full size");
    }

    #[test]
    fn a_fill_only_hurried_or_on_a_file_system_that_cannot_allocate_writes_every_zero() {
        let (written, cut, size) = create_watched(Then::Hurried, true);
        assert_eq!((written, cut, size), (8 << 20, 0, 8 << 20), "a truncate call waiting does not cut the fill");
        let (written, cut, size) = create_watched(Then::Needed, false);
        assert_eq!((written, cut, size), (8 << 20, 0, 8 << 20), "unallocated: the zeros are what gives it its size");
    }

    #[test]
    fn a_pace_sleeps_until_its_share_is_due_unless_hurried() {
        let hurry = Hurry::default();
        let pace = Pace { budget: Duration::from_millis(40), hurry: &hurry, runway: 1 << 40 };
        assert!(pace.is_paced());
        let started = Instant::now();
        pace.wait(started, 0, 1, 2);
        // Half the budget was due; a sleep never ends early.
        assert!(started.elapsed() >= Duration::from_millis(20));

        // Hurried, with no budget, or done, it never sleeps: a budget of an
        // hour would otherwise hold the test for that long.
        let long = Pace { budget: Duration::from_secs(3600), hurry: &hurry, runway: 1 << 40 };
        long.wait(Instant::now(), 0, 2, 2);
        hurry.set();
        assert!(!long.is_paced());
        long.wait(Instant::now(), 0, 1, 2);
        let unpaced = Pace { budget: Duration::ZERO, hurry: &Hurry::default(), runway: 0 };
        assert!(!unpaced.is_paced());
        unpaced.wait(Instant::now(), 0, 1, 2);
    }

    #[test]
    fn a_pace_keeps_up_with_what_the_log_consumes() {
        // An hour's budget, a runway of 1 MiB: the fill may be half done
        // once a quarter of the runway (half of its half) is consumed, and
        // done once half is; it waits while nothing is consumed.
        let hurry = Arc::new(Hurry::default());
        let pace = Pace { budget: Duration::from_secs(3600), hurry: &hurry, runway: 1 << 20 };
        let client_side = hurry.clone();
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                client_side.consumed.fetch_add(256 << 10, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
                client_side.consumed.fetch_add(256 << 10, Ordering::Relaxed);
            });
            pace.wait(started, 0, 1, 2);
            let half = started.elapsed();
            assert!(half >= Duration::from_millis(50) && half < Duration::from_secs(5), "{half:?}");
            pace.wait(started, 0, 2 * 1024 - 1, 2 * 1024);
            let all = started.elapsed();
            assert!(all >= Duration::from_millis(100) && all < Duration::from_secs(5), "{all:?}");
        });
        // Consumption before the fill started does not count.
        let before = hurry.consumed();
        let quick = Pace { budget: Duration::from_millis(30), hurry: &hurry, runway: 1 << 20 };
        let t = Instant::now();
        quick.wait(t, before, 1, 2);
        assert!(t.elapsed() >= Duration::from_millis(15));
    }

    #[test]
    fn a_fill_goes_idle_while_paced_and_gives_the_thread_its_own_priority_back() {
        std::thread::spawn(|| {
            // A priority of the thread's own, which a fill must not lose.
            let own = IoPriority::best_effort(7);
            if let Err(e) = set_thread_io_priority(own) {
                eprintln!("SKIPPED: ioprio_set refused here ({e})");
                return;
            }
            let now = || thread_io_priority().unwrap();
            let mut fill = IdleIo(None);
            fill.set(true);
            assert_eq!(now(), IoPriority::IDLE);
            fill.set(false);
            assert_eq!(now(), own, "hurried: the thread's own priority");
            fill.set(true);
            drop(fill);
            assert_eq!(now(), own, "a fill that ends (or fails) part-way gives it back too");

            // A saved priority the kernel refuses to set back (class none
            // at level 4): the thread ends with no class, never idle.
            let refused = IoPriority::from_raw(4);
            if set_thread_io_priority(refused).is_ok() {
                eprintln!("SKIPPED: this kernel accepts class none at level 4");
                return;
            }
            set_thread_io_priority(IoPriority::IDLE).unwrap();
            let mut fill = IdleIo(Some(refused));
            fill.set(false);
            assert_ne!(now(), IoPriority::IDLE, "out of the idle class after a refused restore");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_hurry_ends_a_paced_sleep_part_way_and_closing_outlasts_a_reset() {
        let hurry = Arc::new(Hurry::default());
        let waker = {
            let hurry = hurry.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                hurry.set();
            })
        };
        // An hour's budget: only the hurry can end this sleep.
        Pace { budget: Duration::from_secs(3600), hurry: &hurry, runway: 1 << 40 }.wait(Instant::now(), 0, 1, 2);
        waker.join().unwrap();

        hurry.reset();
        assert!(!hurry.is_set());
        hurry.close();
        hurry.reset();
        assert!(hurry.is_set(), "a new preparation does not undo closing");
    }
}
