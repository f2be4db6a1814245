//! The public handle: open, append, wait, read, truncate, close.

use std::future::Future;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::commit::metrics::LatencyStats;
use crate::commit::shared::{LsnWait, Shared, Target};
use crate::commit::watchdog::{self, Watchdog};
use crate::commit::{BatchBufs, Entry, POOLED_BATCHES_MAX, Parts, Request};
use crate::error::{Error, Result};
use crate::format::{self, RecordType};
use crate::io::{self, BackendKind};
use crate::lock::HeldDir;
use crate::open;
use crate::options::Options;
use crate::reader::follow::Follower;
use crate::reader::{Reader, RecordRef};
use crate::recovery::RecoveryReport;
use crate::segment::LiveSegments;
use crate::segment::names::LOCK_FILE;
use crate::segment::prepare::{self, PrepareCounters, PreparerClient, RetireSent};
use crate::storage::{DeviceFacts, OsStorage, Storage};

pub use crate::format::Lsn;

/// How a log runs: backend, I/O mode, padding unit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// io_uring or the threaded fallback.
    pub kind: BackendKind,
    /// Why io_uring is not used, when it is not.
    pub fallback_reason: Option<String>,
    /// Whether segment files are opened with O_DIRECT.
    pub direct_io: bool,
    /// Why O_DIRECT is not used, when it is not.
    pub buffered_reason: Option<String>,
    /// Padding unit of new segments.
    pub block_bytes: u32,
    /// io_uring set up with `SINGLE_ISSUER` + `DEFER_TASKRUN`.
    pub defer_taskrun: bool,
    /// io_uring writes from registered buffers.
    pub fixed_buffers: bool,
    /// How `Durability::Dsync` makes a write durable: `true`, with
    /// `RWF_DSYNC` on the write itself; `false`, with a write followed by an
    /// `fdatasync`, because on this file system the kernel may not honour
    /// `RWF_DSYNC` (see
    /// [`DeviceFacts::trusts_rwf_dsync`]).
    pub rwf_dsync: bool,
    /// The directory is on a file system that keeps files in memory only
    /// (tmpfs, ramfs): every mode's syncs succeed, and nothing survives a
    /// reboot or power loss. Fine for tests and caches; never for data
    /// that must outlive the machine's uptime.
    pub volatile: bool,
    /// What the device under the directory offers.
    pub device: DeviceFacts,
}

impl BackendInfo {
    fn new(started: open::Started, plan: open::IoPlan) -> BackendInfo {
        BackendInfo {
            kind: started.kind,
            fallback_reason: started.fallback_reason,
            direct_io: plan.direct,
            buffered_reason: plan.buffered_reason,
            block_bytes: plan.block_bytes,
            defer_taskrun: started.defer_taskrun,
            fixed_buffers: started.fixed_buffers,
            rwf_dsync: plan.device.trusts_rwf_dsync(),
            volatile: plan.device.is_volatile(),
            device: plan.device,
        }
    }
}

/// Counters and latency distributions since the log was opened. Reading
/// them costs a snapshot of atomic counters; keeping them costs a relaxed
/// increment per sample.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Records appended (encoded by the I/O thread).
    pub appends: u64,
    /// Payload bytes appended.
    pub append_bytes: u64,
    /// Flushes submitted.
    pub flushes: u64,
    /// Flushes written with `RWF_DSYNC`: durable when the write completes,
    /// with no `fdatasync` of their own (every `Dsync` flush where the file
    /// system is trusted with it, and a lone appender's `GroupSync` flushes
    /// and sync markers there; see `Durability`).
    pub rwf_dsync_flushes: u64,
    /// Bytes written by flushes, padding included.
    pub flush_bytes: u64,
    /// Bytes of padding written.
    pub padding_bytes: u64,
    /// Flushes that rewrote the partly filled last block of the flush before
    /// them into its other slot (format version 2), instead of taking a
    /// block of their own; their bytes copied from that block count in
    /// `flush_bytes` and not as padding.
    pub tail_rewrites: u64,
    /// Segment bytes the flushes took (a rewrite takes a block only the
    /// first time it uses the block's second slot): the space the log
    /// consumed, and zero-filled before it.
    pub segment_bytes_used: u64,
    /// Syncs issued: `fdatasync` calls (one shared by several flushes counts
    /// once), `RWF_DSYNC` writes, and the syncs of periodic rounds.
    pub syncs: u64,
    /// Segments activated since opening.
    pub segments_activated: u64,
    /// Times the I/O thread had to wait for the next segment to be prepared.
    pub segment_stalls: u64,
    /// Most flushes carrying a sync (`fdatasync` or `RWF_DSYNC`) that
    /// were in flight on one segment file at once. Always 1 with buffered
    /// I/O, where two could hide a writeback error from each other.
    pub syncs_in_flight_per_file_max: u64,
    /// Times a producer went to sleep waiting for its record.
    pub parks: u64,
    /// Live segments now.
    pub segments: usize,
    /// Highest acknowledged LSN, as [`Wal::last_lsn`].
    pub last_lsn: Lsn,
    /// Highest LSN on stable storage, as [`Wal::durable_lsn`].
    pub durable_lsn: Lsn,
    /// Requests (single records or batches) queued since opening.
    pub requests: u64,
    /// Mean records per flush (group-commit batch size).
    pub records_per_flush: f64,
    /// Requests waiting for the I/O thread now.
    pub queue_requests: usize,
    /// Payload bytes waiting for the I/O thread now.
    pub queue_bytes: u64,
    /// Fresh segment files created (zero-filled) since opening.
    pub segments_created: u64,
    /// Retired segments renamed for reuse since opening.
    pub segments_recycled: u64,
    /// Fresh segments handed over before their zero-fill finished, because
    /// the I/O thread waited for them: the rest of each is allocated but
    /// unwritten, and its syncs update extent metadata (dearer).
    pub segment_fills_cut: u64,
    /// io_uring or the threaded fallback.
    pub backend: Option<BackendKind>,
    /// Whether segments are written with O_DIRECT.
    pub direct_io: bool,
    /// From queued to taken by the I/O thread.
    pub queue_wait: LatencyStats,
    /// A flush from submission to written and synced.
    pub flush: LatencyStats,
    /// A periodic or requested sync round (Periodic / None durability).
    pub sync_round: LatencyStats,
    /// An append from submission to acknowledgement, as appenders saw it.
    pub end_to_end: LatencyStats,
    /// What the device under the directory offers.
    pub device: DeviceFacts,
}

/// A dozen lines for a person: what was appended, flushed and synced, the
/// queue, the segments, and the latency of each stage (`{:?}` prints every
/// field).
impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match (self.backend, self.direct_io) {
            (Some(b), true) => format!("{b:?}, O_DIRECT"),
            (Some(b), false) => format!("{b:?}, buffered"),
            (None, _) => "unknown".into(),
        };
        writeln!(f, "LSN: last {}, durable {}  ({backend})", self.last_lsn, self.durable_lsn)?;
        writeln!(
            f,
            "appended: {} records, {} payload bytes, in {} requests",
            self.appends, self.append_bytes, self.requests
        )?;
        writeln!(
            f,
            "flushed: {} flushes ({:.1} records each, {} rewrote a tail block), {} bytes of which {} padding, \
             taking {} bytes of segments; {} syncs ({} by RWF_DSYNC)",
            self.flushes,
            self.records_per_flush,
            self.tail_rewrites,
            self.flush_bytes,
            self.padding_bytes,
            self.segment_bytes_used,
            self.syncs,
            self.rwf_dsync_flushes
        )?;
        writeln!(
            f,
            "queue now: {} requests, {} bytes; producers went to sleep {} times",
            self.queue_requests, self.queue_bytes, self.parks
        )?;
        writeln!(
            f,
            "segments: {} live; {} activated, {} created ({} fills cut short), {} recycled; \
             {} waits for the next one",
            self.segments,
            self.segments_activated,
            self.segments_created,
            self.segment_fills_cut,
            self.segments_recycled,
            self.segment_stalls
        )?;
        for (name, l) in [
            ("append, end to end", &self.end_to_end),
            ("queue wait", &self.queue_wait),
            ("flush", &self.flush),
            ("sync round", &self.sync_round),
        ] {
            if l.count > 0 {
                writeln!(f, "{name}: {l}")?;
            }
        }
        Ok(())
    }
}

/// Records to append together: one request, consecutive LSNs, one wait.
///
/// A batch keeps its memory across uses: after [`Wal::append_batch`] it is
/// empty and ready to be filled again without allocating.
#[derive(Debug)]
pub struct Batch {
    inner: BatchBufs,
    /// Largest payload [`Batch::push`] takes.
    record_bytes_max: u32,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch { inner: BatchBufs::default(), record_bytes_max: format::RECORD_PAYLOAD_BYTES_LIMIT }
    }
}

impl Batch {
    /// An empty batch that takes records up to the format's limit; a log
    /// refuses larger ones than its own `record_bytes_max` when the batch
    /// is submitted. [`Wal::batch`] makes one that refuses them at
    /// [`Batch::push`].
    #[must_use]
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a record, refusing one larger than the batch takes
    /// ([`Error::RecordTooLarge`]; nothing is added).
    pub fn push(&mut self, kind: RecordType, payload: &[u8]) -> Result<()> {
        let code = kind.to_raw().ok_or(Error::InvalidRecordType(kind))?;
        let max = self.record_bytes_max;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= max)
            .ok_or(Error::RecordTooLarge { len: payload.len() as u64, max })?;
        self.inner.entries.push(Entry { kind: code, len, payload_crc: crc32c::crc32c(payload) });
        self.inner.bytes.extend_from_slice(payload);
        Ok(())
    }

    /// Records in the batch.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.entries.len()
    }

    /// Whether the batch is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// Payload bytes in the batch.
    #[must_use]
    pub fn payload_bytes(&self) -> usize {
        self.inner.bytes.len()
    }

    /// Removes every record, keeping the memory.
    pub fn clear(&mut self) {
        self.inner.clear();
    }
}

/// A submitted append: its LSNs, and a way to wait until it is acknowledged,
/// by blocking ([`Ticket::wait`]) or as a `Future` (no runtime needed: any
/// executor's waker is woken by the I/O thread). Dropping a ticket neither
/// cancels nor blocks the append.
#[derive(Debug)]
#[must_use = "an append is acknowledged only once its ticket says so"]
pub struct Ticket {
    first: Lsn,
    wait: LsnWait,
    shared: Arc<Shared>,
    /// Submitted at; taken when the end-to-end latency is recorded.
    submitted: Option<Instant>,
}

impl Ticket {
    fn new(shared: Arc<Shared>, first: Lsn, last: Lsn) -> Ticket {
        Ticket {
            first,
            wait: LsnWait::new(shared.clone(), last, Target::Acked),
            shared,
            submitted: Some(Instant::now()),
        }
    }

    fn record_latency(&mut self) {
        if let Some(t) = self.submitted.take() {
            self.shared.counters.end_to_end.record(t.elapsed());
        }
    }

    /// LSN of the last (or only) record.
    #[must_use]
    pub fn lsn(&self) -> Lsn {
        self.wait.lsn()
    }

    /// LSNs of all records of the submission.
    #[must_use]
    pub fn lsns(&self) -> RangeInclusive<Lsn> {
        self.first..=self.wait.lsn()
    }

    /// Whether the append is acknowledged.
    #[must_use]
    pub fn is_acknowledged(&self) -> bool {
        self.wait.reached()
    }

    /// Blocks until acknowledged; returns the last LSN.
    pub fn wait(mut self) -> Result<Lsn> {
        self.wait.blocking(None)?;
        self.record_latency();
        Ok(self.wait.lsn())
    }

    /// Blocks until acknowledged or `timeout`; `Ok(None)` on timeout (the
    /// append goes on).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<Lsn>> {
        let reached = self.wait.blocking(Some(timeout))?;
        if reached {
            self.record_latency();
        }
        Ok(reached.then_some(self.wait.lsn()))
    }
}

impl Ticket {
    /// Calls `f` once the records are durable (synced; under `GroupSync`
    /// and `Dsync` that is when they are acknowledged), with the last LSN,
    /// or with the error if the log fails or closes first. It runs on the
    /// log's I/O thread, or on this one if the records are durable already
    /// and no other thread is running callbacks; one thread at a time runs
    /// callbacks, in LSN order, so `f` runs after every callback of a lower
    /// LSN registered before it (callbacks a thread registers run in the
    /// order of their LSNs). Keep it short and never block in it (send on
    /// a channel, wake a task). For callers that would otherwise keep a
    /// thread waiting on tickets.
    pub fn on_durable(self, f: impl FnOnce(Result<Lsn>) + Send + 'static) {
        self.shared.call_when(self.wait.lsn(), Target::Synced, Box::new(f));
    }
}

impl Future for Ticket {
    type Output = Result<Lsn>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Lsn>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.wait).poll(cx);
        if matches!(polled, Poll::Ready(Ok(_))) {
            this.record_latency();
        }
        polled
    }
}

/// A future that resolves once an LSN is durable (synced); see
/// [`Wal::durable`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Durable {
    wait: LsnWait,
}

impl Future for Durable {
    type Output = Result<Lsn>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Lsn>> {
        Pin::new(&mut self.get_mut().wait).poll(cx)
    }
}

/// Waiting for room in the request queue as a future.
#[derive(Debug)]
struct Admit<'a> {
    shared: &'a Shared,
    bytes: u64,
    token: u64,
    waiting: bool,
}

impl Future for Admit<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let shared = this.shared;
        shared.admission.poll_admit(this.bytes, this.token, &mut this.waiting, cx, || shared.check_usable())
    }
}

impl Drop for Admit<'_> {
    fn drop(&mut self) {
        self.shared.admission.forget(self.token, &mut self.waiting);
    }
}

#[derive(Debug)]
struct Submitter {
    next_lsn: Lsn,
    requests: Option<Sender<Request>>,
}

/// A write-ahead log in one directory.
///
/// `Wal` is `Send + Sync`: share it (in an `Arc`) between any number of
/// producer threads. Appends from all of them are committed together.
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Shared>,
    live: Arc<LiveSegments>,
    submitter: Mutex<Submitter>,
    pool: Receiver<BatchBufs>,
    /// Taken by the first close.
    threads: Mutex<Threads>,
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    record_bytes_max: u32,
    segment_bytes: u64,
    backend: BackendInfo,
    report: RecoveryReport,
    prepare_counters: Arc<PrepareCounters>,
    /// Longest wait for a thread at close.
    io_timeout: Duration,
}

/// What closing stops and releases; empty once closed.
#[derive(Debug, Default)]
struct Threads {
    preparer: Option<PreparerClient>,
    io_thread: Option<JoinHandle<()>>,
    prepare_thread: Option<JoinHandle<()>>,
    watchdog: Option<Watchdog>,
    /// Leaked instead of released if a thread is left behind.
    lock: Option<HeldDir>,
}

impl Wal {
    /// Opens the log in `options.dir()`, creating or recovering it.
    pub fn open(options: Options) -> Result<Wal> {
        Wal::open_with_storage(options, Arc::new(OsStorage))
    }

    /// Opens the log on another [`Storage`] (a simulated one in tests).
    pub fn open_with_storage(options: Options, storage: Arc<dyn Storage>) -> Result<Wal> {
        options.validate()?;
        let dir = options.dir.clone();
        crate::lock::check_is_dir(&dir)?;
        if !dir.is_dir() && storage.list_dir(&dir).is_err() {
            if !options.create_if_missing {
                return Err(Error::io("open log directory", &dir, std::io::ErrorKind::NotFound.into()));
            }
            storage.create_dir_all(&dir).map_err(|e| Error::io("create log directory", &dir, e))?;
        }
        let lock = crate::lock::lock(storage.as_ref(), &dir, options.lock_wait)?;
        Wal::open_locked(options, storage, lock)
    }

    /// Opens the log under a lock the caller already holds (`repair` keeps
    /// it from its scan to its end, so nothing changes in between).
    pub(crate) fn open_locked(options: Options, storage: Arc<dyn Storage>, lock: HeldDir) -> Result<Wal> {
        options.validate()?;
        let dir = options.dir.clone();
        let lock_path = dir.join(LOCK_FILE);
        let plan = open::plan_io(&options, storage.as_ref(), &lock_path)?;
        let mut recovered = open::recover_durably(&options, &storage, &plan)?;
        let prep_cfg = open::prepare_config(&options, &plan, &storage);
        let prepare_counters = prep_cfg.counters.clone();
        let active = open::first_segment(&options, storage.as_ref(), &prep_cfg, &plan, &mut recovered)?;
        let next_lsn = recovered.next_lsn;
        let spares = std::mem::take(&mut recovered.spares);
        let live_segments = std::mem::take(&mut recovered.live);
        let next_id = active.meta.id + 1;
        let live = Arc::new(LiveSegments::new(live_segments));
        let shared = Arc::new(Shared::new(
            next_lsn - 1,
            options.queue_requests_max,
            options.queue_bytes_max as u64,
            options.wait_spin,
        ));
        let prepare_clock = prep_cfg.clock.clone();
        let (prep_client, prepared_rx, prepare_thread) =
            prepare::spawn(prep_cfg, spares).map_err(|e| Error::io("spawn preparer thread", &dir, e))?;
        prep_client.request(next_id, active.meta.segment_bytes.saturating_sub(active.write_pos))?;

        // Admission keeps at most `queue_requests_max` requests in the
        // channel; the one more is the shutdown: sending never blocks.
        let (req_tx, req_rx) = crossbeam_channel::bounded(options.queue_requests_max + 1);
        let (pool_tx, pool_rx) = crossbeam_channel::bounded(POOLED_BATCHES_MAX);
        let buffers =
            io::buffers::make_set(options.flushes_in_flight_max + 2, open::buffer_bytes(&options, plan.block_bytes));
        let parts = Parts {
            cfg: open::engine_config(&options, &plan),
            shared: shared.clone(),
            live: live.clone(),
            requests: req_rx,
            pool: pool_tx,
            preparer: prep_client.clone(),
            prepared: prepared_rx,
            active,
            next_lsn,
            buffers,
            storage: storage.clone(),
        };
        let io = open::backend_choice(&options, storage.as_ref(), lock.raw_fd(), &lock_path)?;
        // Before the I/O thread, so no operation runs unwatched; it stops
        // when its sender is dropped (by close, or here if opening fails).
        let watchdog = watchdog::spawn(shared.clone(), prepare_clock, options.io_timeout, dir.clone())
            .map_err(|e| Error::io("spawn watchdog thread", &dir, e))?;
        let (io_thread, started) = open::start_io_thread(parts, io, &dir)?;
        #[cfg(feature = "log")]
        open::log_opened(&dir, &started, &plan, &recovered.report);
        let backend = BackendInfo::new(started, plan);
        Ok(Wal {
            shared,
            live,
            submitter: Mutex::new(Submitter { next_lsn, requests: Some(req_tx) }),
            pool: pool_rx,
            threads: Mutex::new(Threads {
                preparer: Some(prep_client),
                io_thread: Some(io_thread),
                prepare_thread: Some(prepare_thread),
                watchdog: Some(watchdog),
                lock: Some(lock),
            }),
            storage,
            dir,
            record_bytes_max: options.record_bytes_max,
            segment_bytes: options.segment_bytes,
            backend,
            report: recovered.report,
            prepare_counters,
            io_timeout: options.io_timeout,
        })
    }

    fn take_batch(&self) -> BatchBufs {
        self.pool.try_recv().unwrap_or_default()
    }

    fn check_record(&self, kind: RecordType, len: usize) -> Result<u16> {
        if len > self.record_bytes_max as usize {
            return Err(Error::RecordTooLarge { len: len as u64, max: self.record_bytes_max });
        }
        kind.to_raw().ok_or(Error::InvalidRecordType(kind))
    }

    /// Queues a request; returns the LSNs it got. Waits for room first, in
    /// admission, where the log's failure or close wakes it.
    fn send(&self, batch: BatchBufs) -> Result<(Lsn, Lsn)> {
        self.shared.check_usable()?;
        let bytes = batch.bytes.len() as u64;
        self.shared.admission.admit(bytes, || self.shared.check_usable())?;
        self.send_admitted(batch)
    }

    /// Queues a request that holds an admission slot.
    fn send_admitted(&self, mut batch: BatchBufs) -> Result<(Lsn, Lsn)> {
        let n = batch.entries.len() as u64;
        debug_assert!(n > 0);
        batch.enqueued = Some(Instant::now());
        let bytes = batch.bytes.len() as u64;
        let mut sub = self.submitter.lock().unwrap_or_else(PoisonError::into_inner);
        let first = sub.next_lsn;
        let sent = match &sub.requests {
            // Admission left room: this never waits.
            Some(tx) => tx.try_send(Request::Append { first_lsn: first, batch }).is_ok(),
            None => false,
        };
        if !sent {
            drop(sub);
            self.shared.admission.release_request();
            self.shared.admission.release_bytes(bytes);
            self.shared.check_usable()?;
            return Err(Error::Closed);
        }
        sub.next_lsn += n;
        drop(sub);
        self.shared.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.shared.wake_io();
        Ok((first, first + n - 1))
    }

    /// Appends one record and returns its LSN once it is acknowledged under
    /// the configured [`crate::Durability`].
    pub fn append(&self, kind: RecordType, payload: &[u8]) -> Result<Lsn> {
        self.submit(kind, payload)?.wait()
    }

    /// An empty batch whose [`Batch::push`] refuses records larger than
    /// this log takes.
    #[must_use]
    pub fn batch(&self) -> Batch {
        Batch { inner: BatchBufs::default(), record_bytes_max: self.record_bytes_max }
    }

    /// Queues one record and returns with a [`Ticket`] to wait on, without
    /// waiting for it to be acknowledged. While the queue is full
    /// ([`Options::queue_requests_max`], [`Options::queue_bytes_max`]) it
    /// blocks until there is room: use [`Wal::try_submit`] never to wait,
    /// or [`Wal::submit_async`] to await room in async code.
    pub fn submit(&self, kind: RecordType, payload: &[u8]) -> Result<Ticket> {
        let batch = self.one_record(kind, payload)?;
        let (first, last) = self.send(batch)?;
        Ok(Ticket::new(self.shared.clone(), first, last))
    }

    /// Queues one record if the queue has room now, else fails at once with
    /// [`Error::QueueFull`] (nothing queued); never waits.
    pub fn try_submit(&self, kind: RecordType, payload: &[u8]) -> Result<Ticket> {
        let batch = self.one_record(kind, payload)?;
        self.try_admit(batch.bytes.len() as u64)?;
        let (first, last) = self.send_admitted(batch)?;
        Ok(Ticket::new(self.shared.clone(), first, last))
    }

    /// Queues one record, awaiting room in the queue without blocking the
    /// thread: the async [`Wal::submit`], for async runtimes. The returned
    /// ticket is a future too. Dropped before it resolves, nothing is queued.
    pub async fn submit_async(&self, kind: RecordType, payload: &[u8]) -> Result<Ticket> {
        let batch = self.one_record(kind, payload)?;
        self.admit_async(batch.bytes.len() as u64).await?;
        let (first, last) = self.send_admitted(batch)?;
        Ok(Ticket::new(self.shared.clone(), first, last))
    }

    /// [`Wal::submit_batch`] if the queue has room now, else
    /// [`Error::QueueFull`], with the batch left as it was.
    pub fn try_submit_batch(&self, batch: &mut Batch) -> Result<Option<Ticket>> {
        if batch.is_empty() {
            return Ok(None);
        }
        self.check_batch(batch)?;
        self.try_admit(batch.payload_bytes() as u64)?;
        let filled = std::mem::replace(&mut batch.inner, self.take_batch());
        let (first, last) = self.send_admitted(filled)?;
        Ok(Some(Ticket::new(self.shared.clone(), first, last)))
    }

    /// [`Wal::submit_batch`], awaiting room in the queue without blocking
    /// the thread. Dropped before it resolves, nothing is queued and the
    /// batch keeps its records.
    pub async fn submit_batch_async(&self, batch: &mut Batch) -> Result<Option<Ticket>> {
        if batch.is_empty() {
            return Ok(None);
        }
        self.check_batch(batch)?;
        self.admit_async(batch.payload_bytes() as u64).await?;
        let filled = std::mem::replace(&mut batch.inner, self.take_batch());
        let (first, last) = self.send_admitted(filled)?;
        Ok(Some(Ticket::new(self.shared.clone(), first, last)))
    }

    /// One record as a request, checked against the log's limits.
    fn one_record(&self, kind: RecordType, payload: &[u8]) -> Result<BatchBufs> {
        let code = self.check_record(kind, payload.len())?;
        let mut batch = self.take_batch();
        batch.entries.push(Entry { kind: code, len: payload.len() as u32, payload_crc: crc32c::crc32c(payload) });
        batch.bytes.extend_from_slice(payload);
        Ok(batch)
    }

    fn check_batch(&self, batch: &Batch) -> Result<()> {
        match batch.inner.entries.iter().find(|e| e.len > self.record_bytes_max) {
            Some(e) => Err(Error::RecordTooLarge { len: u64::from(e.len), max: self.record_bytes_max }),
            None => Ok(()),
        }
    }

    fn try_admit(&self, bytes: u64) -> Result<()> {
        self.shared.check_usable()?;
        let admission = &self.shared.admission;
        if admission.try_admit(bytes) {
            Ok(())
        } else {
            Err(Error::QueueFull { requests_max: admission.requests_max(), bytes_max: admission.bytes_max() })
        }
    }

    fn admit_async(&self, bytes: u64) -> Admit<'_> {
        Admit { shared: &self.shared, bytes, token: self.shared.new_token(), waiting: false }
    }

    /// Appends every record of `batch` with consecutive LSNs and returns them
    /// once all are acknowledged. The batch is left empty. An empty batch
    /// returns `None` at once.
    pub fn append_batch(&self, batch: &mut Batch) -> Result<Option<RangeInclusive<Lsn>>> {
        match self.submit_batch(batch)? {
            Some(ticket) => {
                let range = ticket.lsns();
                ticket.wait()?;
                Ok(Some(range))
            }
            None => Ok(None),
        }
    }

    /// Queues every record of `batch` and returns at once with a ticket; the
    /// batch is left empty (holding recycled memory).
    pub fn submit_batch(&self, batch: &mut Batch) -> Result<Option<Ticket>> {
        if batch.is_empty() {
            return Ok(None);
        }
        self.check_batch(batch)?;
        let filled = std::mem::replace(&mut batch.inner, self.take_batch());
        let (first, last) = self.send(filled)?;
        Ok(Some(Ticket::new(self.shared.clone(), first, last)))
    }

    /// Makes every acknowledged record durable and returns the durable LSN.
    ///
    /// Under [`crate::Durability::Periodic`] and [`crate::Durability::None`]
    /// this syncs what was written. In every mode it then writes and syncs a
    /// *sync marker* (one block, `docs/FORMAT.md`) stating that those records
    /// were synced, so that from now on recovery reports damage to any of
    /// them as corruption instead of cutting it off as a torn tail. A clean
    /// [`Wal::close`] does the same.
    pub fn sync(&self) -> Result<Lsn> {
        self.shared.check_usable()?;
        self.shared.admission.admit(0, || self.shared.check_usable())?;
        let target = {
            let sub = self.submitter.lock().unwrap_or_else(PoisonError::into_inner);
            let target = sub.next_lsn - 1;
            // Admission left room: this never waits.
            let sent = sub.requests.as_ref().is_some_and(|tx| tx.try_send(Request::Sync).is_ok());
            if !sent {
                drop(sub);
                self.shared.admission.release_request();
                self.shared.check_usable()?;
                return Err(Error::Closed);
            }
            target
        };
        self.shared.wake_io();
        self.shared.wait_for(target, Target::Marked, None)?;
        Ok(self.shared.synced_lsn())
    }

    /// Blocks until `lsn` is durable (synced), or `timeout` passes; returns
    /// whether it is.
    pub fn wait_durable(&self, lsn: Lsn, timeout: Option<Duration>) -> Result<bool> {
        self.shared.wait_for(lsn, Target::Synced, timeout.map(|t| Instant::now() + t))
    }

    /// Calls `f` once `lsn` is durable, as [`Ticket::on_durable`] does: one
    /// thread at a time, in LSN order with the other callbacks.
    pub fn on_durable(&self, lsn: Lsn, f: impl FnOnce(Result<Lsn>) + Send + 'static) {
        self.shared.call_when(lsn, Target::Synced, Box::new(f));
    }

    /// A future that resolves once `lsn` is durable (synced).
    pub fn durable(&self, lsn: Lsn) -> Durable {
        Durable { wait: LsnWait::new(self.shared.clone(), lsn, Target::Synced) }
    }

    /// Highest LSN acknowledged to an appender (0: none).
    #[must_use]
    pub fn last_lsn(&self) -> Lsn {
        self.shared.acked_lsn()
    }

    /// Highest LSN on stable storage (0: none). Equals [`Wal::last_lsn`]
    /// except under `Periodic` and `None` durability.
    #[must_use]
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.synced_lsn()
    }

    /// The largest payload a record takes ([`Options::record_bytes_max`]).
    #[must_use]
    pub fn record_bytes_max(&self) -> u32 {
        self.record_bytes_max
    }

    /// Size of each segment file this run creates
    /// ([`Options::segment_bytes`]).
    #[must_use]
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// The LSN the next append will get.
    #[must_use]
    pub fn next_lsn(&self) -> Lsn {
        self.submitter.lock().unwrap_or_else(PoisonError::into_inner).next_lsn
    }

    /// First LSN still in the log.
    #[must_use]
    pub fn first_lsn(&self) -> Lsn {
        self.live.first_lsn().unwrap_or_else(|| self.next_lsn())
    }

    /// The first LSN of each live segment file, oldest first: how the log's
    /// records are spread over its files (`truncate_before(lsn)` removes
    /// the files whose records all lie below `lsn`). An application that
    /// rewrites old records forward to free old files chooses `lsn` from
    /// this. Each file is [`Wal::segment_bytes`] on disk.
    #[must_use]
    pub fn segment_first_lsns(&self) -> Vec<Lsn> {
        self.live.first_lsns()
    }

    /// Backend, I/O mode and device facts of this log.
    #[must_use]
    pub fn backend(&self) -> &BackendInfo {
        &self.backend
    }

    /// What recovery found when the log was opened.
    #[must_use]
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The log directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the log was closed ([`Wal::close`], [`Wal::shutdown`]): from
    /// then on appends and reads fail with [`Error::Closed`].
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The failure that poisoned the log, if any.
    #[must_use]
    pub fn poisoned(&self) -> Option<Error> {
        self.shared.failure().map(|f| Error::Poisoned(f.clone()))
    }

    /// Counters since opening.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            appends: get(&c.appends),
            append_bytes: get(&c.append_bytes),
            flushes: get(&c.flushes),
            flush_bytes: get(&c.flush_bytes),
            padding_bytes: get(&c.padding_bytes),
            tail_rewrites: get(&c.tail_rewrites),
            segment_bytes_used: get(&c.segment_bytes_used),
            syncs: get(&c.syncs),
            rwf_dsync_flushes: get(&c.rwf_dsync_flushes),
            segments_activated: get(&c.segments_activated),
            segment_stalls: get(&c.segment_stalls),
            syncs_in_flight_per_file_max: get(&c.syncs_in_flight_per_file_max),
            parks: get(&c.parks),
            segments: self.live.len(),
            last_lsn: self.shared.acked_lsn(),
            durable_lsn: self.shared.synced_lsn(),
            requests: get(&c.requests),
            records_per_flush: get(&c.appends) as f64 / get(&c.flushes).max(1) as f64,
            queue_requests: self.shared.admission.requests(),
            queue_bytes: self.shared.admission.bytes(),
            segments_created: self.prepare_counters.created.load(Ordering::Relaxed),
            segments_recycled: self.prepare_counters.recycled.load(Ordering::Relaxed),
            segment_fills_cut: self.prepare_counters.fills_cut.load(Ordering::Relaxed),
            backend: Some(self.backend.kind),
            direct_io: self.backend.direct_io,
            queue_wait: c.queue_wait.stats(),
            flush: c.flush.stats(),
            sync_round: c.sync_round.stats(),
            end_to_end: c.end_to_end.stats(),
            device: self.backend.device.clone(),
        }
    }

    /// Reads acknowledged records from `lsn` on, in order, with checksums
    /// verified (`lsn` 0: from the first record still in the log). The
    /// reader stops at the last record acknowledged when it was created;
    /// appends continue meanwhile.
    pub fn read_from(&self, lsn: Lsn) -> Result<Reader> {
        // The end first, then the segments: a segment joins the list before
        // any record in it is acknowledged, so the list covers the end. The
        // other order could end in a segment activated in between.
        self.check_open()?;
        let end = self.last_lsn();
        let segments = self.live.snapshot();
        let first = segments.first().map_or(self.next_lsn(), |s| s.first_lsn);
        let lsn = from_start(lsn, first)?;
        Ok(Reader::new(self.storage.clone(), segments, lsn, end, self.backend.direct_io, Some(self.live.clone())))
    }

    /// Reads exactly the records `range` (both ends included; a start of 0:
    /// from the first record still in the log), in order, with checksums
    /// verified. Fails with [`Error::Truncated`] if the start was
    /// removed by [`Wal::truncate_before`], and with [`Error::BeyondEnd`] if
    /// the end was not acknowledged yet. An empty range reads nothing.
    ///
    /// A read starts at the sparse index's nearest point before its first
    /// LSN, so it costs the same wherever the range lies in the log (at most
    /// 64 KiB plus one flush is walked before the first record).
    pub fn read_range(&self, range: RangeInclusive<Lsn>) -> Result<Reader> {
        self.check_open()?;
        let (start, end) = range.into_inner();
        let last = self.last_lsn();
        if start <= end && end > last {
            return Err(Error::BeyondEnd { requested: end, last_lsn: last });
        }
        let segments = self.live.snapshot();
        let first = segments.first().map_or(self.next_lsn(), |s| s.first_lsn);
        if start <= end {
            // An empty range reads nothing, wherever it lies.
            from_start(start, first)?;
        }
        let start = if start == 0 { first } else { start };
        let end = if start <= end { end } else { start.saturating_sub(1) };
        let direct = self.backend.direct_io;
        Ok(Reader::new(self.storage.clone(), segments, start, end, direct, Some(self.live.clone())))
    }

    /// Follows the log from `lsn` on (0: from its first record): yields each
    /// record once it is durable, waiting for more as the log grows.
    pub fn follow(&self, lsn: Lsn) -> Result<Follower> {
        // Durable records only: the reader ends at the synced LSN, read
        // before the segments for the reason `read_from` gives.
        self.check_open()?;
        let synced = self.shared.synced_lsn();
        let segments = self.live.snapshot();
        let first = segments.first().map_or(self.next_lsn(), |s| s.first_lsn);
        let lsn = from_start(lsn, first)?;
        let reader =
            Reader::new(self.storage.clone(), segments, lsn, synced, self.backend.direct_io, Some(self.live.clone()));
        Ok(Follower::new(reader, self.shared.clone(), self.live.clone()))
    }

    /// Calls `apply` for each acknowledged record from `lsn` on (0: from the
    /// first record still in the log), in LSN order; stops at the first
    /// error. Returns the number of records applied.
    pub fn replay_from<E, F>(&self, lsn: Lsn, mut apply: F) -> Result<u64, E>
    where
        E: From<Error>,
        F: FnMut(RecordRef<'_>) -> Result<(), E>,
    {
        let mut reader = self.read_from(lsn)?;
        let mut n = 0;
        while let Some(rec) = reader.next_record()? {
            apply(rec)?;
            n += 1;
        }
        Ok(n)
    }

    /// Removes, durably, every segment that holds only records below `lsn`
    /// (the application no longer needs them, e.g. after a checkpoint).
    /// The segment being written is never removed, nor one holding records
    /// not yet acknowledged. Returns the number of segments removed.
    ///
    /// The renames, removals and directory syncs run on the segment
    /// preparer's thread; this waits for them, and fails as soon as the log
    /// does (a step that never returns poisons it after `io_timeout`).
    pub fn truncate_before(&self, lsn: Lsn) -> Result<usize> {
        self.shared.check_usable()?;
        let preparer = self.threads().preparer.clone().ok_or(Error::Closed)?;
        let mut retired = self.live.split_front(lsn, self.shared.acked_lsn());
        let n = retired.len();
        if n == 0 {
            return Ok(0);
        }
        let reply = loop {
            match preparer.retire(retired, WAIT_SLICE)? {
                RetireSent::Queued(reply) => break reply,
                RetireSent::Full(back) => retired = back,
            }
            self.shared.check_usable()?;
        };
        loop {
            match reply.recv_timeout(WAIT_SLICE) {
                Ok(result) => result?,
                Err(RecvTimeoutError::Timeout) => {
                    self.shared.check_usable()?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Err(Error::Closed),
            }
            break;
        }
        crate::events::event!(debug, "truncate_before({lsn}) removed {n} segments");
        Ok(n)
    }

    /// Flushes what was submitted, stops the I/O thread and releases the
    /// directory; reports a failure that happened on the way.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    /// [`Wal::close`] through a shared reference, for a log others still
    /// hold (in an `Arc`): from then on every call on it fails with
    /// [`Error::Closed`] (or the failure that poisoned it). A second call
    /// finds nothing left to stop and reports only a failure of the log.
    pub fn shutdown(&self) -> Result<()> {
        let Threads { preparer, io_thread, prepare_thread, watchdog, lock } = std::mem::take(&mut *self.threads());
        let mut lock = lock;
        let tx = self.submitter.lock().unwrap_or_else(PoisonError::into_inner).requests.take();
        if let Some(tx) = tx {
            // The channel keeps a place for it (see `open_locked`).
            let _ = tx.try_send(Request::Shutdown);
            self.shared.wake_io();
        }
        // Every wait below is bounded: a thread stuck in the kernel (an I/O
        // that never completes) is left behind rather than hanging close.
        // Once the log failed nothing new is submitted, and what was in
        // flight either completes soon or is what poisoned it after
        // io_timeout: waiting a whole io_timeout more would only delay the
        // error.
        let wait = match self.shared.failure() {
            Some(_) => self.io_timeout.min(FAILED_CLOSE_WAIT),
            None => self.io_timeout,
        };
        let deadline = Instant::now() + wait;
        let (mut panicked, mut stuck) = (false, Vec::new());
        if let Some(t) = io_thread {
            match join_within(t, deadline) {
                Some(p) => panicked |= p,
                None => stuck.push("I/O"),
            }
        }
        self.shared.close();
        if let Some(w) = watchdog {
            drop(w.stop);
            // It answers within one interval (at most a second).
            if join_within(w.thread, Instant::now() + Duration::from_secs(2)).is_none() {
                stuck.push("watchdog");
            }
        }
        if let Some(p) = preparer {
            // Nobody appends to what it prepares now: it abandons that.
            p.close();
        }
        if let Some(t) = prepare_thread {
            match join_within(t, deadline.max(Instant::now() + Duration::from_millis(100))) {
                Some(p) => panicked |= p,
                None => stuck.push("segment preparation"),
            }
        }
        crate::events::event!(info, "closed {} at LSN {}", self.dir.display(), self.shared.acked_lsn());
        if !stuck.is_empty() {
            // The thread may still have a write in flight: keep the directory
            // locked until the process exits, so no other opener recovers a
            // log that is still being written.
            if let Some(lock) = lock.take() {
                lock.leak();
            }
            crate::events::event!(
                error,
                "closing {}: the {} thread did not stop within {wait:?}; left behind, the directory stays locked",
                self.dir.display(),
                stuck.join(" and ")
            );
        }
        // The cause first: a thread left behind is what a failure (a stalled
        // device) leaves.
        if let Some(f) = self.shared.failure() {
            return Err(Error::Poisoned(f.clone()));
        }
        if !stuck.is_empty() {
            let error = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the {} thread did not stop within {wait:?}; left behind, the directory stays locked \
                     until this process exits",
                    stuck.join(" and ")
                ),
            );
            return Err(Error::io("close", &self.dir, error));
        }
        if panicked {
            return Err(Error::io("join I/O thread", &self.dir, std::io::Error::other("thread panicked")));
        }
        drop(lock);
        Ok(())
    }

    /// Reads refuse a closed log: its files may belong to a new opener.
    fn check_open(&self) -> Result<()> {
        if self.shared.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }

    fn threads(&self) -> std::sync::MutexGuard<'_, Threads> {
        // Only taken whole, or a clone read: never left half changed.
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Where a read from `lsn` starts: LSN 0, which no record has, means the
/// first record still in the log; an LSN below that was removed by
/// `truncate_before`.
fn from_start(lsn: Lsn, first: Lsn) -> Result<Lsn> {
    match lsn {
        0 => Ok(first),
        _ if lsn < first => Err(Error::Truncated { requested: lsn, first_available: first }),
        _ => Ok(lsn),
    }
}

/// How often a wait that the log's failure must end looks at the log.
const WAIT_SLICE: Duration = Duration::from_millis(10);

/// How long `close` waits for its threads once the log failed.
const FAILED_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Joins `thread` if it ends by `deadline` (`Some(panicked)`); otherwise
/// leaves it running (`None`).
fn join_within(thread: JoinHandle<()>, deadline: Instant) -> Option<bool> {
    let mut nap = Duration::from_micros(20);
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(5));
    }
    Some(thread.join().is_err())
}
