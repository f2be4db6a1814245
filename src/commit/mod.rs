//! The commit pipeline: the I/O thread that turns requests into durable
//! flushes.
//!
//! ```text
//! producers --(bounded channel, LSN order)--> I/O thread
//!   encode records into the open flush buffer
//!   seal: pad to a block edge            (group commit: whatever queued up
//!   submit write + sync                   while earlier flushes were in
//!   reap completions, in any order        flight goes into the next one)
//!   advance the watermark contiguously --> wake the waiters it satisfies
//! ```
//!
//! Producers assign LSNs under one lock while they queue a request, so the
//! channel delivers requests in LSN order and the I/O thread only checks it.
//! At most `flushes_in_flight_max` flushes are in flight; buffers are a fixed
//! set, so memory is bounded and a full pipeline pushes back on producers.
//!
//! A segment is activated (its header written and synced) before any flush
//! into it is submitted. Any failed write or sync poisons the log: nothing
//! after it is acknowledged, nothing is retried.

pub(crate) mod admission;
pub(crate) mod metrics;
pub(crate) mod policy;
pub(crate) mod shared;
pub(crate) mod watchdog;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::error::{Error, Failure};
use crate::format::data_offset;
use crate::format::flush::{Fit, FlushLayout};
use crate::format::record::{self, EncodeHeader, sync_lag};
use crate::io::{Completion, IoBuf, IoQueue, OpError, SyncMode, WriteOp};
use crate::segment::prepare::{Prepared, PreparerClient};
use crate::segment::{self, Geometry, LiveSegments, SegmentMeta};
use crate::storage::{Storage, StorageFile};
use policy::SyncPolicy;
use shared::{Shared, Wake};

/// A record as queued: its type code and payload length. The payloads of a
/// request lie back to back in its byte buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub kind: u16,
    pub len: u32,
    /// CRC32C of the payload, computed by the producer so that checksumming
    /// runs on many threads and the I/O thread only copies.
    pub payload_crc: u32,
}

/// One or more records queued together; reused through a pool so that
/// steady-state appends do not allocate.
#[derive(Debug, Default)]
pub(crate) struct BatchBufs {
    pub entries: Vec<Entry>,
    pub bytes: Vec<u8>,
    /// When it was queued (for the queue-wait histogram).
    pub enqueued: Option<Instant>,
}

impl BatchBufs {
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes.clear();
        self.enqueued = None;
    }
}

/// Batches larger than this are not returned to the pool.
pub(crate) const POOLED_BATCH_BYTES_MAX: usize = 64 * 1024;
/// Batches kept in the pool.
pub(crate) const POOLED_BATCHES_MAX: usize = 256;

/// Flushes not yet acknowledged, at most. Flushes complete in any order but
/// are acknowledged in log order: behind one that does not complete (a
/// write the device holds), later ones would otherwise go on being written,
/// each kept in memory, until `io_timeout`. Far above what a pipeline of
/// `flushes_in_flight_max` (at most 64) completing out of order needs.
const FLUSHES_UNACKED_MAX: usize = 256;

/// What producers send to the I/O thread.
#[derive(Debug)]
pub(crate) enum Request {
    /// Records with LSNs `first_lsn..first_lsn + batch.entries.len()`.
    Append { first_lsn: u64, batch: BatchBufs },
    /// Sync everything written (Periodic / None durability).
    Sync,
    /// Finish what was queued, then stop.
    Shutdown,
}

/// Settings of the I/O thread.
#[derive(Clone, Debug)]
pub(crate) struct EngineConfig {
    /// What the durability mode asks for.
    pub policy: SyncPolicy,
    pub flush_bytes_max: usize,
    pub flushes_in_flight_max: usize,
    /// Padding unit, size and record limit of segments this run creates.
    pub geometry: Geometry,
    /// Poll for requests this long before sleeping, with nothing in flight.
    pub io_spin: Duration,
    /// A write or sync in flight longer than this poisons the log.
    pub io_timeout: Duration,
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct Active {
    pub meta: SegmentMeta,
    pub file: Arc<dyn StorageFile>,
    pub path: Arc<Path>,
    /// Where the next flush starts (a block boundary).
    pub write_pos: u64,
    /// Header durable; flushes into it may be submitted.
    pub activated: bool,
}

impl Active {
    /// A segment whose header was just written: appends start at its first
    /// record.
    pub fn new(meta: SegmentMeta, file: Arc<dyn StorageFile>, activated: bool) -> Active {
        let (path, write_pos) = (Arc::from(meta.path.as_path()), data_offset(meta.block_bytes));
        Active { meta, file, path, write_pos, activated }
    }
}

/// Everything the I/O thread owns.
pub(crate) struct Parts {
    pub cfg: EngineConfig,
    pub shared: Arc<Shared>,
    pub live: Arc<LiveSegments>,
    pub requests: Receiver<Request>,
    pub pool: Sender<BatchBufs>,
    pub preparer: PreparerClient,
    pub prepared: Receiver<crate::error::Result<Prepared>>,
    pub active: Active,
    pub next_lsn: u64,
    pub buffers: Vec<IoBuf>,
    /// Told of every watermark published ([`Storage::acknowledged`]).
    pub storage: Arc<dyn Storage>,
}

#[derive(Debug)]
struct OpenFlush {
    buf: IoBuf,
    layout: FlushLayout,
    first_lsn: u64,
    last_lsn: u64,
    record_bytes: usize,
    /// A rewrite of the tail block whose first slot is at this offset.
    rewrite_of: Option<u64>,
}

/// The partly filled last block of the latest flush (format version 2):
/// the next flush may rewrite it with more records, into the slot that does
/// not hold its latest copy, once that copy is durable. So a lone appender's
/// small records take a block per block's worth of records, not one each,
/// and the segment space the preparer zero-fills shrinks accordingly.
#[derive(Debug)]
struct TailBlock {
    /// Offset of its first slot; the second is the block after it.
    home: u64,
    /// Its latest copy is in the second slot.
    in_second: bool,
    /// Its last record: the latest copy is durable once this is synced.
    last_lsn: u64,
    /// Bytes of records it holds (a copy is in `Engine::tail_bytes`).
    records_len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlushState {
    Sealed,
    InFlight,
    Done,
    Failed,
}

#[derive(Debug)]
struct Flush {
    token: u64,
    segment_id: u64,
    file: Arc<dyn StorageFile>,
    path: Arc<Path>,
    offset: u64,
    len: usize,
    first_lsn: u64,
    last_lsn: u64,
    buf: Option<IoBuf>,
    state: FlushState,
    submitted: Option<Instant>,
    /// A sync marker (no records) stating that this LSN was synced.
    marker: Option<u64>,
    /// Its write carries a sync (`fdatasync` after it, or `RWF_DSYNC`).
    syncs: bool,
}

#[derive(Debug)]
struct Activation {
    token: u64,
    meta: SegmentMeta,
    submitted: Instant,
}

/// A request taken off the channel but not fully encoded (the pipeline was
/// full, or the next segment was not ready).
#[derive(Debug)]
struct Carry {
    first_lsn: u64,
    batch: BatchBufs,
    index: usize,
    byte_offset: usize,
}

/// Sync rounds of `Periodic` and `None` durability: every file written since
/// the last round is synced; when all are done, everything acknowledged when
/// the round began is durable.
#[derive(Debug, Default)]
struct SyncRounds {
    interval: Option<Duration>,
    next_due: Option<Instant>,
    /// Segments written since the last round: id, path, file.
    dirty: Vec<(u64, Arc<Path>, Arc<dyn StorageFile>)>,
    /// The segments the round in flight syncs (its syncs' tags index this),
    /// so a failed sync names its own segment; and whether each sync is
    /// still in flight.
    syncing: Vec<(u64, Arc<Path>, bool)>,
    in_flight: usize,
    covers: u64,
    failed: bool,
    started: Option<Instant>,
}

/// Outcome of trying to place one record.
enum Placed {
    Yes,
    Blocked,
}

pub(crate) struct Engine<Q: IoQueue> {
    cfg: EngineConfig,
    shared: Arc<Shared>,
    live: Arc<LiveSegments>,
    queue: Q,
    requests: Receiver<Request>,
    pool: Sender<BatchBufs>,
    preparer: PreparerClient,
    prepared: Receiver<crate::error::Result<Prepared>>,
    next_segment: Option<Prepared>,
    awaiting_segment: bool,
    active: Active,
    open: Option<OpenFlush>,
    tail: Option<TailBlock>,
    /// The records of `tail` (allocated once, up to a block).
    tail_bytes: Vec<u8>,
    flushes: VecDeque<Flush>,
    flushes_in_flight: usize,
    free: Vec<IoBuf>,
    next_lsn: u64,
    acked: u64,
    synced: u64,
    carry: Option<Carry>,
    incoming: Option<Request>,
    next_token: u64,
    activation: Option<Activation>,
    rounds: SyncRounds,
    /// Highest LSN a `Wal::sync` call waits to see synced.
    sync_target: u64,
    /// Highest LSN a durable sync marker states as synced.
    marked: u64,
    /// A marker is sealed or in flight.
    marker_pending: bool,
    shutting_down: bool,
    poisoned: bool,
    completions: Vec<Completion>,
    wake_scratch: Vec<Wake>,
    /// Records in the last flush sealed (for batch sizing).
    last_flush_records: u64,
    /// Requests taken since the last seal, and the run of flushes that each
    /// carried one (a lone appender).
    requests_since_seal: u32,
    lonely_streak: u32,
    /// The queue's `syncs_issued` already added to the counters.
    queue_syncs: u64,
    storage: Arc<dyn Storage>,
}

/// However the thread ends, a panic included: the waiters a publish took off
/// the list are woken (their LSNs were published; a panic between taking and
/// waking them would leave them parked for good, out of reach of the poison
/// that follows, and their callbacks never called).
impl<Q: IoQueue> Drop for Engine<Q> {
    fn drop(&mut self) {
        self.shared.wake(&mut self.wake_scratch);
    }
}

impl<Q: IoQueue> Engine<Q> {
    pub fn new(parts: Parts, queue: Q) -> Engine<Q> {
        let rounds = SyncRounds { interval: parts.cfg.policy.round_interval(), ..SyncRounds::default() };
        let last = parts.next_lsn - 1;
        let block_bytes = parts.cfg.geometry.block_bytes.max(parts.active.meta.block_bytes) as usize;
        Engine {
            cfg: parts.cfg,
            shared: parts.shared,
            live: parts.live,
            queue,
            requests: parts.requests,
            pool: parts.pool,
            preparer: parts.preparer,
            prepared: parts.prepared,
            next_segment: None,
            awaiting_segment: false,
            active: parts.active,
            open: None,
            tail: None,
            tail_bytes: Vec::with_capacity(block_bytes),
            flushes: VecDeque::with_capacity(parts.buffers.len()),
            flushes_in_flight: 0,
            free: parts.buffers,
            next_lsn: parts.next_lsn,
            acked: last,
            synced: last,
            carry: None,
            incoming: None,
            next_token: 1,
            activation: None,
            rounds,
            sync_target: 0,
            marked: 0,
            marker_pending: false,
            shutting_down: false,
            poisoned: false,
            completions: Vec::new(),
            wake_scratch: Vec::new(),
            last_flush_records: 0,
            requests_since_seal: 0,
            lonely_streak: 0,
            queue_syncs: 0,
            storage: parts.storage,
        }
    }

    /// Runs until shut down (or the channel closes) and everything queued
    /// before that is flushed.
    pub fn run(mut self) {
        loop {
            // The watchdog thread may have poisoned the log while this thread
            // was blocked in the kernel: from then on nothing is acknowledged.
            self.poisoned |= self.shared.failure().is_some();
            let mut progress = self.reap();
            if self.queue.runs_inline() {
                // Submitting below does the I/O: wake first.
                self.shared.wake(&mut self.wake_scratch);
            }
            if self.poisoned {
                progress |= self.discard_requests();
            } else {
                progress |= self.take_requests();
                progress |= self.maybe_seal();
                progress |= self.sync_round();
                progress |= self.maybe_mark();
                progress |= self.submit_sealed();
            }
            // Waiters satisfied by this round's completions are woken only
            // now, after the next flush was queued. On io_uring it reaches
            // the kernel at the next poll; entering the kernel before the
            // wakes instead measured no faster (dsync, 16 and 64 writers)
            // and ~6% slower for group sync at 64 writers.
            self.shared.wake(&mut self.wake_scratch);
            if self.finished() {
                break;
            }
            if !progress && self.spin_for_request() {
                continue;
            }
            if !progress {
                // Only before waiting: while it makes progress the thread
                // does not pay for the clock, and a wait wakes at the
                // deadline of the oldest operation in flight.
                self.check_stuck();
                let deadline = self.deadline();
                // Requests are wanted only when one could be taken now: never
                // while one is held back (it would be overwritten, or the wait
                // would return at once and spin).
                let want = self.carry.is_none() && self.incoming.is_none() && !self.shutting_down;
                match self.queue.wait(&self.requests, want, deadline) {
                    Ok(Some(req)) => {
                        debug_assert!(self.incoming.is_none());
                        self.incoming = Some(req);
                    }
                    Ok(None) => {}
                    Err(e) => self.poison_io("io_uring wait", e),
                }
            }
        }
    }

    /// With nothing in flight, polls the channel for up to `io_spin`: a
    /// request that arrives meanwhile is taken without a wake-up. Returns
    /// whether one arrived.
    fn spin_for_request(&mut self) -> bool {
        if self.cfg.io_spin.is_zero()
            || !self.shared.may_spin()
            || self.queue.in_flight() > 0
            || self.carry.is_some()
            || self.shutting_down
            || !self.shared.is_lonely()
            || self.shared.has_sleepers()
        {
            return false;
        }
        let until = Instant::now() + self.cfg.io_spin;
        while Instant::now() < until {
            if !self.requests.is_empty() {
                return true;
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
        false
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn finished(&self) -> bool {
        if !self.shutting_down || self.queue.in_flight() > 0 || self.activation.is_some() {
            return false;
        }
        self.poisoned
            || (self.carry.is_none()
                && self.incoming.is_none()
                && self.open.as_ref().is_none_or(|o| o.layout.is_empty())
                && self.flushes.is_empty()
                && self.rounds.in_flight == 0
                && (self.cfg.policy.syncs_each_flush() || self.rounds.dirty.is_empty() || self.rounds.failed)
                && self.marked >= self.acked)
    }

    /// Whether nothing is queued, open, sealed or in flight.
    fn drained(&self) -> bool {
        self.carry.is_none()
            && self.incoming.is_none()
            && self.open.as_ref().is_none_or(|o| o.layout.is_empty())
            && self.flushes.is_empty()
    }

    /// After `Wal::sync`, and at a clean close: once everything asked for is
    /// synced, writes a *sync marker* (a block of padding whose `sync_lag`
    /// states the synced LSN) and syncs it. Recovery then reports damage to
    /// any of those records as corruption instead of cutting it as a torn
    /// tail, even when no later record exists to prove they were synced.
    fn maybe_mark(&mut self) -> bool {
        // Not while a round's sync runs: a marker is a synced write, and
        // with buffered I/O one sync per file at a time (the round started
        // after the sync() it answers may be syncing this very file).
        if self.marker_pending || self.poisoned || self.rounds.in_flight > 0 {
            return false;
        }
        let target = if self.shutting_down && self.drained() { self.acked } else { self.sync_target };
        if target <= self.marked || self.synced < target {
            return false;
        }
        // The marker is a flush of its own, after every record encoded so far.
        self.seal();
        self.place_marker()
    }

    fn place_marker(&mut self) -> bool {
        debug_assert!(self.open.is_none());
        loop {
            if self.open.is_none() && !self.start_flush(false) {
                return false;
            }
            #[expect(clippy::expect_used, reason = "start_flush returned true, so a flush is open")]
            let open = self.open.as_mut().expect("started above");
            match open.layout.fits(0, open.buf.len()) {
                Fit::Yes => break,
                Fit::BufferFull => unreachable!("an empty flush buffer holds a block"),
                Fit::BlockFull => unreachable!("a marker is never a rewrite"),
                Fit::SegmentFull => {
                    #[expect(clippy::expect_used, reason = "matched on this open flush just above")]
                    let open = self.open.take().expect("checked");
                    self.free.push(open.buf);
                    if !self.roll() {
                        return false;
                    }
                }
            }
        }
        #[expect(clippy::expect_used, reason = "the loop breaks only with a flush open")]
        let mut open = self.open.take().expect("placed above");
        let (next, synced) = (self.next_lsn, self.synced);
        let len = open.layout.finish_marker(&mut open.buf, next, synced);
        // No records: its LSN range is empty, ending at the last one encoded.
        (open.first_lsn, open.last_lsn) = (next - 1, next - 1);
        self.queue_sealed(open, len, Some(synced));
        // The marker may lie in the tail block's second slot: no rewrite
        // may go over it. Flushes after a marker start fresh.
        self.tail = None;
        self.marker_pending = true;
        true
    }

    /// Counts the syncs in flight on segment `id` (flushes that carry one,
    /// and round syncs) for [`crate::Stats::syncs_in_flight_per_file_max`]:
    /// with buffered I/O never more than one (see
    /// `SyncPolicy::flushes_in_flight_max`), which tests check.
    fn note_syncs_in_flight(&self, id: u64) {
        let flushes = self.flushes.iter().filter(|f| f.state == FlushState::InFlight && f.syncs && f.segment_id == id);
        let rounds = self.rounds.syncing.iter().filter(|(s, _, in_flight)| *in_flight && *s == id);
        let on_file = flushes.count() + rounds.count();
        self.shared.counters.syncs_in_flight_per_file_max.fetch_max(on_file as u64, Ordering::Relaxed);
    }

    /// When the oldest write or sync in flight was submitted.
    fn oldest_in_flight(&self) -> Option<Instant> {
        let flushes = self.flushes.iter().filter(|f| f.state == FlushState::InFlight).filter_map(|f| f.submitted);
        let activation = self.activation.as_ref().map(|a| a.submitted);
        let round = self.rounds.started.filter(|_| self.rounds.in_flight > 0);
        flushes.chain(activation).chain(round).min()
    }

    /// A kernel that does not answer must not hang the log: past
    /// `io_timeout` the log is poisoned, so every waiting append fails. The
    /// operation itself cannot be taken back; its buffer stays with it.
    fn check_stuck(&mut self) {
        if let Some(t) = self.oldest_in_flight() {
            if t.elapsed() >= self.cfg.io_timeout {
                let error = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("a write or sync stayed in flight longer than io_timeout ({:?})", self.cfg.io_timeout),
                );
                self.poison_io("I/O timeout", error);
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        // A round in flight ends with a completion, not a deadline.
        let mut deadline =
            self.rounds.next_due.filter(|_| self.rounds.interval.is_some() && self.rounds.in_flight == 0);
        if let Some(t) = self.oldest_in_flight().filter(|_| !self.poisoned) {
            let stuck = t + self.cfg.io_timeout;
            deadline = Some(deadline.map_or(stuck, |d| d.min(stuck)));
        }
        if self.awaiting_segment {
            // The preparer has no way to ring the doorbell; poll for it.
            let poll = Instant::now() + Duration::from_micros(200);
            deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
        }
        deadline
    }

    /// Takes requests off the channel and encodes them until it runs dry or
    /// the pipeline is full.
    fn take_requests(&mut self) -> bool {
        let mut progress = false;
        loop {
            if let Some(carry) = self.carry.take() {
                let before = (carry.index, self.next_lsn);
                match self.encode(carry) {
                    Ok(()) => progress = true,
                    Err(carry) => {
                        progress |= (carry.index, self.next_lsn) != before;
                        self.carry = Some(carry);
                        return progress;
                    }
                }
                continue;
            }
            if self.shutting_down {
                return progress;
            }
            let req = match self.next_request() {
                Ok(r) => r,
                Err(TryRecvError::Empty) => return progress,
                Err(TryRecvError::Disconnected) => {
                    self.shutting_down = true;
                    return true;
                }
            };
            progress = true;
            match req {
                Request::Append { first_lsn, batch } => {
                    assert_eq!(first_lsn, self.next_lsn, "requests arrive in LSN order");
                    if let Some(t) = batch.enqueued {
                        self.shared.counters.queue_wait.record(t.elapsed());
                    }
                    self.requests_since_seal = self.requests_since_seal.saturating_add(1);
                    self.carry = Some(Carry { first_lsn, batch, index: 0, byte_offset: 0 });
                }
                // Everything queued before it: LSNs up to next_lsn - 1.
                Request::Sync => self.sync_target = self.sync_target.max(self.next_lsn - 1),
                Request::Shutdown => self.shutting_down = true,
            }
        }
    }

    /// The request held back, else the next one on the channel. Each
    /// request passes here once: its admission slot is given back (the
    /// shutdown took none).
    fn next_request(&mut self) -> Result<Request, TryRecvError> {
        let req = match self.incoming.take() {
            Some(r) => r,
            None => self.requests.try_recv()?,
        };
        if !matches!(req, Request::Shutdown) {
            self.shared.admission.release_request();
        }
        Ok(req)
    }

    /// After a failure: take requests off the channel so producers blocked
    /// on a full channel return (their waits see the poison).
    fn discard_requests(&mut self) -> bool {
        let mut progress = false;
        if let Some(carry) = self.carry.take() {
            self.shared.admission.release_bytes(carry.batch.bytes.len() as u64);
            progress = true;
        }
        loop {
            let req = match self.next_request() {
                Ok(r) => r,
                Err(TryRecvError::Empty) => return progress,
                Err(TryRecvError::Disconnected) => {
                    self.shutting_down = true;
                    return true;
                }
            };
            progress = true;
            match req {
                Request::Append { batch, .. } => self.shared.admission.release_bytes(batch.bytes.len() as u64),
                Request::Sync => {}
                Request::Shutdown => self.shutting_down = true,
            }
        }
    }

    fn encode(&mut self, carry: Carry) -> Result<(), Carry> {
        let Carry { first_lsn, batch, mut index, mut byte_offset } = carry;
        while index < batch.entries.len() {
            let entry = batch.entries[index];
            debug_assert_eq!(first_lsn + index as u64, self.next_lsn);
            let payload = &batch.bytes[byte_offset..byte_offset + entry.len as usize];
            match self.place(entry, payload) {
                Placed::Yes => {
                    index += 1;
                    byte_offset += entry.len as usize;
                }
                Placed::Blocked => {
                    return Err(Carry { first_lsn, batch, index, byte_offset });
                }
            }
        }
        let counters = &self.shared.counters;
        counters.appends.fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
        counters.append_bytes.fetch_add(batch.bytes.len() as u64, Ordering::Relaxed);
        self.shared.admission.release_bytes(batch.bytes.len() as u64);
        self.recycle(batch);
        Ok(())
    }

    fn recycle(&self, mut batch: BatchBufs) {
        if batch.bytes.capacity() <= POOLED_BATCH_BYTES_MAX && batch.entries.capacity() <= 4096 {
            batch.clear();
            let _ = self.pool.try_send(batch);
        }
    }

    /// Encodes one record into the open flush, sealing and rolling as needed.
    fn place(&mut self, entry: Entry, payload: &[u8]) -> Placed {
        loop {
            if self.open.is_none() && !self.start_flush(true) {
                return Placed::Blocked;
            }
            #[expect(clippy::expect_used, reason = "start_flush returned true, so a flush is open")]
            let open = self.open.as_mut().expect("started above");
            // A segment holds records up to the limit its header declares (a
            // log reopened with a larger limit continues in a segment written
            // under a smaller one): larger ones go to the next segment.
            let fit = if payload.len() > self.active.meta.record_bytes_max as usize {
                Fit::SegmentFull
            } else {
                open.layout.fits(payload.len() as u32, open.buf.len())
            };
            match fit {
                Fit::Yes => {
                    let lsn = self.next_lsn;
                    let header = EncodeHeader {
                        lsn,
                        segment_id: self.active.meta.id,
                        kind: entry.kind,
                        sync_lag: sync_lag(lsn, self.synced),
                    };
                    let before = open.layout.len;
                    open.layout.push_with_payload_crc(&mut open.buf, header, payload, entry.payload_crc);
                    open.record_bytes += open.layout.len - before;
                    if open.first_lsn == 0 {
                        open.first_lsn = lsn;
                    }
                    open.last_lsn = lsn;
                    self.next_lsn += 1;
                    if open.layout.len >= self.cfg.flush_bytes_max {
                        self.seal();
                    }
                    return Placed::Yes;
                }
                Fit::BlockFull => {
                    // The block keeps its latest copy; what was laid out for
                    // it goes to fresh blocks after both its slots, with this
                    // record, where the segment has room for both. Else the
                    // rewrite goes as it is, and the record to the next flush.
                    let moved = (open.layout.len - open.layout.carried) as u64;
                    let room = self.active.meta.segment_bytes.saturating_sub(self.active.write_pos);
                    if open.layout.is_empty() || moved + record::encoded_len(payload.len() as u32) <= room {
                        open.layout.move_to(&mut open.buf, self.active.write_pos);
                        open.rewrite_of = None;
                    } else {
                        self.seal();
                    }
                }
                Fit::BufferFull => {
                    // Buffers hold the largest record plus padding, so only a
                    // flush that already has records can be too full.
                    assert!(!open.layout.is_empty(), "flush buffer smaller than the largest record");
                    self.seal();
                }
                Fit::SegmentFull => {
                    self.seal();
                    if !self.roll() {
                        return Placed::Blocked;
                    }
                }
            }
        }
    }

    /// Opens a flush: a rewrite of the tail block when `rewrite` allows it
    /// and the tail's latest copy is durable, else fresh blocks at
    /// `write_pos`.
    fn start_flush(&mut self, rewrite: bool) -> bool {
        if self.flushes.len() >= FLUSHES_UNACKED_MAX {
            return false;
        }
        let Some(mut buf) = self.free.pop() else {
            return false;
        };
        let meta = &self.active.meta;
        let block = u64::from(meta.block_bytes);
        // The slot written now is never the one holding the latest copy, and
        // that copy is durable (synced, whatever the durability mode): a torn
        // rewrite leaves it whole. Nothing is in flight into either slot then,
        // since flushes complete in order.
        let slot = self
            .tail
            .as_ref()
            .filter(|t| rewrite && self.synced >= t.last_lsn)
            .map(|t| (t, if t.in_second { t.home } else { t.home + block }))
            .filter(|(_, slot)| slot + block <= meta.segment_bytes);
        let (layout, rewrite_of) = match slot {
            Some((t, slot)) => {
                buf[..t.records_len].copy_from_slice(&self.tail_bytes[..t.records_len]);
                let layout = FlushLayout::rewrite(slot, t.records_len, meta.id, meta.block_bytes, meta.segment_bytes);
                (layout, Some(t.home))
            }
            None => (FlushLayout::new(self.active.write_pos, meta.id, meta.block_bytes, meta.segment_bytes), None),
        };
        self.open = Some(OpenFlush { buf, layout, first_lsn: 0, last_lsn: 0, record_bytes: 0, rewrite_of });
        true
    }

    /// After sealing a flush: the block its records fill only partly, for
    /// the next flush to rewrite (segments of format version 2 only, and
    /// only where the options create such segments).
    fn note_tail(&mut self, open: &OpenFlush) {
        let rewrites = self.active.meta.version >= 2 && self.cfg.geometry.format_version >= 2;
        let tail = open.layout.tail().filter(|_| rewrites);
        self.tail = tail.map(|t| {
            self.tail_bytes.clear();
            self.tail_bytes.extend_from_slice(&open.buf[t.offset..t.offset + t.records_len]);
            let slot = open.layout.file_offset + t.offset as u64;
            let home = open.rewrite_of.unwrap_or(slot);
            TailBlock { home, in_second: slot != home, last_lsn: open.last_lsn, records_len: t.records_len }
        });
    }

    /// Pads the open flush and queues it for submission.
    fn seal(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        if open.layout.is_empty() {
            self.free.push(open.buf);
            return;
        }
        let next = self.next_lsn;
        self.last_flush_records = open.last_lsn + 1 - open.first_lsn;
        self.shared.note_flush_requests(std::mem::take(&mut self.requests_since_seal), &mut self.lonely_streak);
        let len = open.layout.finish(&mut open.buf, next, sync_lag(next, self.synced));
        if open.rewrite_of.is_none() {
            // A rewrite's records are found from the flush the block began in.
            self.active.meta.index.note(open.first_lsn, open.layout.file_offset);
        }
        let counters = &self.shared.counters;
        let carried = open.layout.carried;
        counters.padding_bytes.fetch_add((len - carried - open.record_bytes) as u64, Ordering::Relaxed);
        counters.tail_rewrites.fetch_add(u64::from(open.rewrite_of.is_some()), Ordering::Relaxed);
        self.note_tail(&open);
        self.queue_sealed(open, len, None);
    }

    /// Queues a laid-out flush of the active segment for submission.
    fn queue_sealed(&mut self, open: OpenFlush, len: usize, marker: Option<u64>) {
        // Before writing (the reader and recovery check the same after
        // reading): flushes follow each other, cover whole blocks inside the
        // segment, and, in debug builds, read back as the records sealed.
        let (offset, meta) = (open.layout.file_offset, &self.active.meta);
        let block = u64::from(meta.block_bytes);
        match open.rewrite_of {
            // A rewrite goes to one of its block's two slots, the second
            // at `write_pos` the first time (fresh blocks start after both).
            Some(home) => assert!(
                (offset == home || offset == home + block) && len as u64 == block && offset <= self.active.write_pos
            ),
            None => assert_eq!(offset, self.active.write_pos, "flushes follow each other"),
        }
        let end = offset + len as u64;
        assert!(end <= meta.segment_bytes, "flush past the segment's end");
        assert!(end % u64::from(meta.block_bytes) == 0 || end == meta.segment_bytes, "flush ends inside a block");
        #[cfg(debug_assertions)]
        {
            // A marker holds no records; its padding carries the next LSN.
            let records = if marker.is_some() { 0 } else { open.last_lsn + 1 - open.first_lsn };
            let first = open.last_lsn + 1 - records;
            // A rewrite's head is a copy of records written before.
            let new = &open.buf[open.layout.carried..len];
            let read_back = crate::format::flush::verify(new, first, meta.id, meta.record_bytes_max, meta.block_bytes);
            assert_eq!(read_back, Ok(records), "a sealed flush reads back as its records");
        }
        let used = end.saturating_sub(self.active.write_pos);
        self.shared.counters.segment_bytes_used.fetch_add(used, Ordering::Relaxed);
        self.preparer.consumed(used);
        self.active.write_pos = self.active.write_pos.max(end);
        let token = self.token();
        if self.flushes.is_empty() {
            // Before any later segment is activated (see `LiveSegments`).
            self.live.set_busy_from(Some(self.active.meta.id));
        }
        self.flushes.push_back(Flush {
            token,
            segment_id: self.active.meta.id,
            file: self.active.file.clone(),
            path: self.active.path.clone(),
            offset: open.layout.file_offset,
            len,
            first_lsn: open.first_lsn,
            last_lsn: open.last_lsn,
            buf: Some(open.buf),
            state: FlushState::Sealed,
            submitted: None,
            marker,
            syncs: false,
        });
    }

    /// Group commit: seal the open flush as soon as it could be submitted,
    /// instead of waiting for it to fill.
    fn maybe_seal(&mut self) -> bool {
        let Some(open) = &self.open else { return false };
        if open.layout.is_empty() || !self.active.activated {
            return false;
        }
        let backlog = self.flushes.iter().any(|f| f.state == FlushState::Sealed);
        if backlog || self.flushes_in_flight >= self.cfg.flushes_in_flight_max {
            return false;
        }
        // Batch by what is waiting: with a flush already in flight, a much
        // smaller one would cost a device round trip for little; let records
        // gather until it completes or this one is worth its own trip. With
        // nothing in flight, go at once (a lone writer waits for no one).
        let records = open.last_lsn + 1 - open.first_lsn;
        if self.flushes_in_flight > 0 && records * 2 < self.last_flush_records {
            return false;
        }
        self.seal();
        true
    }

    fn submit_sealed(&mut self) -> bool {
        let mut progress = false;
        for i in 0..self.flushes.len() {
            if self.flushes_in_flight >= self.cfg.flushes_in_flight_max {
                break;
            }
            let lone = self.queue.in_flight() == 0 && self.shared.is_lonely();
            let f = &mut self.flushes[i];
            if f.state != FlushState::Sealed {
                continue;
            }
            if f.segment_id == self.active.meta.id && !self.active.activated {
                break;
            }
            #[expect(clippy::expect_used, reason = "a flush owns its buffer from seal to submission")]
            let buf = f.buf.take().expect("sealed flush owns its buffer");
            let op = WriteOp {
                token: f.token,
                file: f.file.clone(),
                offset: f.offset,
                buf,
                len: f.len,
                sync: self.cfg.policy.flush_sync(f.marker.is_some(), lone),
            };
            f.state = FlushState::InFlight;
            f.submitted = Some(Instant::now());
            f.syncs = op.sync != SyncMode::None;
            let segment_id = f.segment_id;
            self.flushes_in_flight += 1;
            if op.sync != SyncMode::None {
                self.note_syncs_in_flight(segment_id);
            }
            let counters = &self.shared.counters;
            counters.flushes.fetch_add(1, Ordering::Relaxed);
            counters.rwf_dsync_flushes.fetch_add(u64::from(op.sync == SyncMode::Dsync), Ordering::Relaxed);
            counters.flush_bytes.fetch_add(op.len as u64, Ordering::Relaxed);
            self.shared.set_oldest_io(self.oldest_in_flight());
            self.queue.submit_write(op);
            progress = true;
        }
        progress
    }

    /// Moves to the next segment: writes and syncs its header. Flushes into
    /// it wait until that completed.
    fn roll(&mut self) -> bool {
        debug_assert!(self.open.is_none());
        if self.activation.is_some() {
            return false;
        }
        if self.next_segment.is_none() {
            match self.prepared.try_recv() {
                Ok(Ok(p)) => self.next_segment = Some(p),
                Ok(Err(e)) => {
                    self.poison_error("prepare next segment", e);
                    return false;
                }
                Err(TryRecvError::Empty) => {
                    // Every time, not once: a preparation that started after
                    // the first call would have cleared it.
                    self.preparer.needed_now();
                    if !self.awaiting_segment {
                        self.awaiting_segment = true;
                        self.shared.counters.segment_stalls.fetch_add(1, Ordering::Relaxed);
                    }
                    return false;
                }
                Err(TryRecvError::Disconnected) => {
                    self.poison_error("prepare next segment", Error::Closed);
                    return false;
                }
            }
        }
        self.awaiting_segment = false;
        let Some(mut buf) = self.free.pop() else {
            return false;
        };
        #[expect(clippy::expect_used, reason = "the branch above filled next_segment or returned")]
        let next = self.next_segment.take().expect("checked above");
        assert_eq!(next.id, self.active.meta.id + 1, "segments are activated in id order");
        let (header, meta) =
            segment::activation(next.id, next.path.clone(), self.next_lsn, self.active.write_pos, self.cfg.geometry);
        self.tail = None;
        let header_len = segment::encode_header_block(&header, &mut buf);
        let token = self.token();
        let sync = self.cfg.policy.header_sync();
        self.activation = Some(Activation { token, meta: meta.clone(), submitted: Instant::now() });
        self.shared.set_oldest_io(self.oldest_in_flight());
        self.queue.submit_write(WriteOp { token, file: next.file.clone(), offset: 0, buf, len: header_len, sync });
        self.active = Active::new(meta, next.file, false);
        // The preparer answers on its channel; an error surfaces at the next roll.
        let runway = self.active.meta.segment_bytes - data_offset(self.active.meta.block_bytes);
        let _ = self.preparer.request(next.id + 1, runway);
        true
    }

    fn reap(&mut self) -> bool {
        let mut done = std::mem::take(&mut self.completions);
        if let Err(e) = self.queue.poll(&mut done) {
            self.poison_io("io_uring poll", e);
        }
        let progress = !done.is_empty();
        let syncs = self.queue.syncs_issued();
        if syncs != self.queue_syncs {
            self.shared.counters.syncs.fetch_add(syncs - self.queue_syncs, Ordering::Relaxed);
            self.queue_syncs = syncs;
        }
        for c in done.drain(..) {
            self.complete(c);
        }
        self.completions = done;
        if progress {
            self.shared.set_oldest_io(self.oldest_in_flight());
            self.advance();
        }
        progress
    }

    fn complete(&mut self, completion: Completion) {
        match completion {
            Completion::Write { token, buf, result } => {
                self.free.push(buf);
                match self.activation.take_if(|a| a.token == token) {
                    Some(act) => self.complete_activation(act, result),
                    None => self.complete_flush(token, result),
                }
            }
            Completion::Sync { tag, result } => self.complete_round_sync(tag, result),
        }
    }

    /// A segment header is durable (or failed): flushes into it may go.
    fn complete_activation(&mut self, act: Activation, result: Result<(), OpError>) {
        match result {
            Ok(()) => {
                if act.meta.id == self.active.meta.id {
                    self.active.activated = true;
                }
                self.shared.counters.segments_activated.fetch_add(1, Ordering::Relaxed);
                crate::events::event!(debug, "activated segment {} at LSN {}", act.meta.id, act.meta.first_lsn);
                self.live.push(act.meta);
            }
            Err(e) => self.poison_op(e, &act.meta.path, act.meta.id, 0, act.meta.first_lsn),
        }
    }

    /// A flush's write (and its sync, if it carries one) completed or failed;
    /// `advance` acknowledges it once every earlier flush is done too.
    fn complete_flush(&mut self, token: u64, result: Result<(), OpError>) {
        #[expect(
            clippy::expect_used,
            reason = "every write token not an activation's belongs to a flush in the queue until it completes"
        )]
        let i = self.flushes.iter().position(|f| f.token == token).expect("completion of a known flush");
        self.flushes_in_flight -= 1;
        let f = &mut self.flushes[i];
        match result {
            Ok(()) => {
                f.state = FlushState::Done;
                if let Some(t) = f.submitted {
                    self.shared.counters.flush.record(t.elapsed());
                }
                if !self.cfg.policy.syncs_each_flush() && f.marker.is_none() {
                    let (id, path, file) = (f.segment_id, f.path.clone(), f.file.clone());
                    self.mark_dirty(id, path, file);
                }
            }
            Err(e) => {
                f.state = FlushState::Failed;
                // A marker holds no records: what it fails to persist starts
                // after the last LSN encoded.
                let lsn = if f.marker.is_some() { f.last_lsn + 1 } else { f.first_lsn };
                let (path, id, offset) = (f.path.clone(), f.segment_id, f.offset);
                self.poison_op(e, &path, id, offset, lsn);
            }
        }
    }

    /// One file's sync of a round completed; the round's LSN is durable once
    /// all did.
    fn complete_round_sync(&mut self, tag: u64, result: Result<(), OpError>) {
        self.rounds.in_flight -= 1;
        #[expect(clippy::expect_used, reason = "sync_round tags each sync with its index in `syncing`")]
        let (id, path, in_flight) = self.rounds.syncing.get_mut(tag as usize).expect("a round sync's tag");
        *in_flight = false;
        let (id, path) = (*id, path.clone());
        if let Err(e) = result {
            self.rounds.failed = true;
            // The first LSN not durable: a round may cover nothing past what
            // an earlier round synced (its files were dirtied by flushes not
            // yet acknowledged).
            let lsn = self.synced + 1;
            self.poison_op(e, &path, id, 0, lsn);
        } else if self.rounds.in_flight == 0 && !self.rounds.failed && !self.poisoned {
            if let Some(t) = self.rounds.started.take() {
                self.shared.counters.sync_round.record(t.elapsed());
            }
            self.synced = self.synced.max(self.rounds.covers);
            self.publish();
        }
    }

    fn mark_dirty(&mut self, id: u64, path: Arc<Path>, file: Arc<dyn StorageFile>) {
        if !self.rounds.dirty.iter().any(|(d, _, _)| *d == id) {
            self.rounds.dirty.push((id, path, file));
        }
        if let (Some(interval), None) = (self.rounds.interval, self.rounds.next_due) {
            self.rounds.next_due = Some(Instant::now() + interval);
        }
    }

    /// Acknowledges the longest prefix of completed flushes.
    fn advance(&mut self) {
        // After a failure nothing more is acknowledged: a later sync may have
        // reported success only because an earlier one consumed the error.
        self.poisoned |= self.shared.failure().is_some();
        if self.poisoned {
            return;
        }
        let (mut acked, marked) = (self.acked, self.marked);
        while let Some(front) = self.flushes.front() {
            if front.state != FlushState::Done {
                break;
            }
            match front.marker {
                Some(synced) => {
                    self.marked = self.marked.max(synced);
                    self.marker_pending = false;
                }
                None => acked = front.last_lsn,
            }
            self.flushes.pop_front();
        }
        self.live.set_busy_from(self.flushes.front().map(|f| f.segment_id));
        if acked != self.acked || marked != self.marked {
            self.acked = acked;
            if self.cfg.policy.syncs_each_flush() {
                self.synced = acked;
            }
            self.publish();
        }
    }

    fn publish(&mut self) {
        // Before the watermarks are visible: a test storage logs what was
        // promised no later than anyone could have seen it.
        self.storage.acknowledged(self.acked, self.synced);
        self.shared.publish(self.acked, self.synced, self.marked, &mut self.wake_scratch);
    }

    /// Starts a sync round when one is due (Periodic / None durability).
    /// Under GroupSync and Dsync every acknowledgement is a sync already.
    fn sync_round(&mut self) -> bool {
        // Not while a marker's sync is in flight either: one sync per
        // file at a time (see the buffered-I/O note in `Wal::open`).
        if self.cfg.policy.syncs_each_flush()
            || self.rounds.in_flight > 0
            || self.rounds.failed
            || self.poisoned
            || self.marker_pending
        {
            return false;
        }
        let draining = self.shutting_down && self.flushes.is_empty() && self.carry.is_none();
        // A sync() waits for everything queued before it: wait until that is
        // written, then sync.
        let requested = self.sync_target > self.synced && self.acked >= self.sync_target;
        let due = requested || draining || self.rounds.next_due.is_some_and(|d| Instant::now() >= d);
        if !due {
            return false;
        }
        if self.rounds.dirty.is_empty() {
            // Every completed write was synced by an earlier round.
            if self.synced < self.acked {
                self.synced = self.acked;
                self.publish();
            }
            return false;
        }
        self.rounds.next_due = None;
        self.rounds.started = Some(Instant::now());
        self.rounds.covers = self.acked;
        let dirty = std::mem::take(&mut self.rounds.dirty);
        // The round counts as in flight from now, before its first sync
        // (which may block) is submitted.
        let started = self.rounds.started.unwrap_or_else(Instant::now);
        self.shared.set_oldest_io(Some(self.oldest_in_flight().map_or(started, |t| t.min(started))));
        self.rounds.syncing.clear();
        for (id, path, file) in &dirty {
            let tag = self.rounds.syncing.len() as u64;
            self.rounds.syncing.push((*id, path.clone(), true));
            self.rounds.in_flight += 1;
            self.note_syncs_in_flight(*id);
            self.shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
            self.queue.submit_sync(tag, file.clone());
        }
        self.rounds.dirty = dirty;
        self.rounds.dirty.clear();
        true
    }

    fn poison_op(&mut self, e: OpError, path: &Path, segment: u64, offset: u64, lsn: u64) {
        self.poison(Failure { op: e.op, path: path.to_path_buf(), segment, offset, lsn, error: e.error });
    }

    fn poison_io(&mut self, op: &'static str, error: std::io::Error) {
        let (path, segment) = (self.active.path.to_path_buf(), self.active.meta.id);
        self.poison(Failure { op, path, segment, offset: 0, lsn: self.acked + 1, error });
    }

    fn poison_error(&mut self, op: &'static str, error: Error) {
        let error = std::io::Error::other(error.to_string());
        self.poison_io(op, error);
    }

    fn poison(&mut self, failure: Failure) {
        if !self.poisoned {
            crate::events::event!(error, "poisoned: {failure}");
            self.poisoned = true;
            self.shared.poison(Arc::new(failure));
        }
    }
}
