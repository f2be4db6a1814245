//! openraft's log storage on a uring-wal write-ahead log.
//!
//! [`LogStore`] implements openraft's [`RaftLogStorage`] and its
//! [`LogReader`] implements [`RaftLogReader`], for any type config whose
//! entries, votes and log ids are serde types (openraft's `serde` feature).
//!
//! # Design
//!
//! Everything a Raft log stores goes into one append-only uring-wal log, in
//! the order it was asked for (so votes and entries are never reordered, as
//! openraft requires): entries, truncation markers, votes, committed log ids
//! and purge points, each as a record of its own [`RecordType::Application`]
//! kind ([`kinds`]). Opening replays the log from its first record:
//!
//! - an entry at index `i` that is not past the last entry drops every entry
//!   at `i` and after (a new leader overwriting a suffix), then is appended;
//! - a truncation marker drops every entry from its index on;
//! - a purge record drops every entry up to its log id and is the new purge
//!   point;
//! - the last vote and committed records win.
//!
//! Raft indexes are not LSNs: the store keeps, for each live entry, its log
//! id and the LSN of its record ([`LogStore`] documents the memory this
//! costs), and a cache of the newest entries bounded in bytes. Entries that
//! fell out of the cache are read back from the log by LSN.
//!
//! `append` hands its entries to the log as one batch and returns once they
//! are in the index and the cache, so readers see them at once; one
//! completion thread per store waits for the batches' tickets in order and
//! fires each callback once its entries are durable. Votes are durable
//! before `save_vote` returns.
//!
//! Each entry is one record of the log: an entry whose encoding is larger
//! than the log's `Options::record_bytes_max` (1 MiB by default, at most
//! the segment size less its header and two blocks) is refused by `append`
//! with an error, before anything is written. Raise it for large payloads.
//!
//! `purge` drops whole segments below the first live entry
//! ([`Wal::truncate_before`]); the vote and committed records that lived
//! there are written again first, so they survive it.
//!
//! [`RecordType::Application`]: uring_wal::RecordType::Application

#![deny(missing_docs)]

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds, RangeInclusive};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::{OptionalSend, RaftTypeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uring_wal::storage::{OsStorage, Storage};
use uring_wal::{Batch, Durability, Lsn, Options, Ticket, Wal};

/// The record types this store writes. A store owns its log directory: every
/// record in it is one of these.
pub mod kinds {
    use uring_wal::RecordType;

    /// A log entry (payload: the entry, postcard-encoded).
    pub const ENTRY: RecordType = RecordType::Application(1);
    /// Drops every entry from an index on (payload: that index, `u64`).
    pub const TRUNCATE: RecordType = RecordType::Application(2);
    /// The vote (payload: the vote).
    pub const VOTE: RecordType = RecordType::Application(3);
    /// The committed log id (payload: `Option<LogId>`).
    pub const COMMITTED: RecordType = RecordType::Application(4);
    /// The purge point: entries up to it are gone (payload: the log id).
    pub const PURGE: RecordType = RecordType::Application(5);
}

/// Default size of the entry cache: 64 MiB of encoded entries.
pub const CACHE_BYTES_DEFAULT: usize = 64 << 20;

/// Settings of a [`LogStore`] beyond those of its log.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Encoded bytes of the newest entries kept in memory. Entries older
    /// than that are read back from the log. Entries not yet acknowledged by
    /// the log are always kept, whatever this says.
    pub cache_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig { cache_bytes: CACHE_BYTES_DEFAULT }
    }
}

impl StoreConfig {
    /// Sets [`StoreConfig::cache_bytes`].
    #[must_use]
    pub fn cache_bytes(mut self, bytes: usize) -> StoreConfig {
        self.cache_bytes = bytes;
        self
    }
}

fn io_err(e: uring_wal::Error) -> io::Error {
    io::Error::other(e)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| invalid(format!("encode: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], lsn: Lsn, what: &str) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| invalid(format!("decode the {what} at LSN {lsn}: {e}")))
}

/// What the store needs of a type config: entries it can clone out of its
/// cache. (Serde for entries, votes and log ids comes with openraft's
/// `serde` feature, which this crate turns on.)
pub trait Config: RaftTypeConfig<Entry: Clone> {}

impl<C> Config for C where C: RaftTypeConfig<Entry: Clone> {}

/// One live entry: its log id and the LSN of its record.
struct Slot<C: RaftTypeConfig> {
    log_id: LogIdOf<C>,
    lsn: Lsn,
}

/// The live entries, consecutive by index, and a cache of the newest ones.
struct Entries<C: RaftTypeConfig> {
    /// Index of `slots[0]`.
    first: u64,
    slots: VecDeque<Slot<C>>,
    /// The entries of the last `cache.len()` slots, with their encoded size.
    cache: VecDeque<(C::Entry, usize)>,
    cache_bytes: usize,
}

impl<C: RaftTypeConfig> Entries<C> {
    fn new() -> Entries<C> {
        Entries { first: 0, slots: VecDeque::new(), cache: VecDeque::new(), cache_bytes: 0 }
    }

    /// Index one past the last entry, if any.
    fn end(&self) -> Option<u64> {
        (!self.slots.is_empty()).then(|| self.first + self.slots.len() as u64)
    }

    fn last_log_id(&self) -> Option<&LogIdOf<C>> {
        self.slots.back().map(|s| &s.log_id)
    }

    /// Drops every entry at `index` and after.
    fn truncate_from(&mut self, index: u64) {
        let keep = index.saturating_sub(self.first).min(self.slots.len() as u64) as usize;
        let drop = self.slots.len() - keep;
        self.slots.truncate(keep);
        for _ in 0..drop.min(self.cache.len()) {
            let (_, bytes) = self.cache.pop_back().expect("counted");
            self.cache_bytes -= bytes;
        }
    }

    /// Drops every entry up to `index`, inclusive.
    fn purge_to(&mut self, index: u64) {
        let drop = (index + 1).saturating_sub(self.first).min(self.slots.len() as u64) as usize;
        self.slots.drain(..drop);
        self.first += drop as u64;
        while self.cache.len() > self.slots.len() {
            let (_, bytes) = self.cache.pop_front().expect("longer than slots");
            self.cache_bytes -= bytes;
        }
        if self.slots.is_empty() {
            self.first = 0;
        }
    }

    fn push(&mut self, entry: C::Entry, lsn: Lsn, bytes: usize) {
        let log_id = entry.log_id();
        if self.slots.is_empty() {
            self.first = log_id.index();
        }
        debug_assert!(self.end().is_none_or(|end| end == log_id.index()), "a hole before {log_id}");
        self.slots.push_back(Slot { log_id, lsn });
        self.cache.push_back((entry, bytes));
        self.cache_bytes += bytes;
    }

    /// Drops the oldest cached entries while the cache is over `budget`,
    /// keeping every entry above `acked` (a reader could not read it back).
    fn evict(&mut self, budget: usize, acked: Lsn) {
        while self.cache_bytes > budget && !self.cache.is_empty() {
            let oldest = self.slots.len() - self.cache.len();
            if self.slots[oldest].lsn > acked {
                break;
            }
            let (_, bytes) = self.cache.pop_front().expect("not empty");
            self.cache_bytes -= bytes;
        }
    }

    /// The index the cache starts at.
    fn cached_from(&self) -> u64 {
        self.first + (self.slots.len() - self.cache.len()) as u64
    }
}

/// The store's state, mirrored by the records in the log.
struct State<C: RaftTypeConfig> {
    entries: Entries<C>,
    vote: Option<VoteOf<C>>,
    /// LSN of the record holding `vote` (0: none).
    vote_lsn: Lsn,
    committed: Option<LogIdOf<C>>,
    committed_lsn: Lsn,
    purged: Option<LogIdOf<C>>,
}

impl<C: Config> State<C> {
    fn new() -> State<C> {
        State { entries: Entries::new(), vote: None, vote_lsn: 0, committed: None, committed_lsn: 0, purged: None }
    }

    /// Checks that entries from `first` on may be appended now: no hole,
    /// nothing at or below the purge point. `after_purge` also checks that
    /// the first entry after the purge point follows it, which holds once
    /// the whole log is replayed but not on the way: segments dropped by a
    /// purge may leave the replay starting past an older purge point, until
    /// the newer purge record is replayed.
    fn check_append(&self, first: u64, after_purge: bool) -> io::Result<()> {
        let purged = self.purged.as_ref().map(|p| p.index());
        if purged.is_some_and(|p| first <= p) {
            return Err(invalid(format!("entry {first} is at or below the purge point {purged:?}")));
        }
        match self.entries.end() {
            Some(end) if first > end => Err(invalid(format!("entry {first} would leave a hole after {}", end - 1))),
            None if after_purge && purged.is_some_and(|p| first != p + 1) => {
                Err(invalid(format!("entry {first} would leave a hole after the purge point {purged:?}")))
            }
            _ => Ok(()),
        }
    }

    /// Checks, once the log is replayed, that the entries follow the purge
    /// point.
    fn check_replayed(&self) -> io::Result<()> {
        match (&self.purged, self.entries.end()) {
            (Some(p), Some(_)) if self.entries.first != p.index() + 1 => Err(invalid(format!(
                "the log's entries start at {} but its purge point is {}: a hole",
                self.entries.first,
                p.index()
            ))),
            _ => Ok(()),
        }
    }

    /// Applies one record of the log, at open.
    fn replay(&mut self, lsn: Lsn, kind: uring_wal::RecordType, payload: &[u8], cache_bytes: usize) -> io::Result<()> {
        match kind {
            kinds::ENTRY => {
                let entry: C::Entry = decode(payload, lsn, "entry")?;
                let index = entry.index();
                if self.entries.end().is_some_and(|end| index < end) {
                    self.entries.truncate_from(index);
                }
                self.check_append(index, false).map_err(|e| invalid(format!("at LSN {lsn}: {e}")))?;
                self.entries.push(entry, lsn, payload.len());
                self.entries.evict(cache_bytes, Lsn::MAX);
            }
            kinds::TRUNCATE => {
                let since: u64 = decode(payload, lsn, "truncation marker")?;
                self.entries.truncate_from(since);
            }
            kinds::VOTE => {
                self.vote = Some(decode(payload, lsn, "vote")?);
                self.vote_lsn = lsn;
            }
            kinds::COMMITTED => {
                self.committed = decode(payload, lsn, "committed log id")?;
                self.committed_lsn = lsn;
            }
            kinds::PURGE => {
                let log_id: LogIdOf<C> = decode(payload, lsn, "purge point")?;
                self.entries.purge_to(log_id.index());
                self.purged = Some(log_id);
            }
            other => return Err(invalid(format!("record type {other:?} at LSN {lsn} is not one of this store's"))),
        }
        Ok(())
    }
}

/// What a store and its readers share.
struct Shared<C: RaftTypeConfig> {
    wal: Wal,
    state: Mutex<State<C>>,
    cache_budget: usize,
}

impl<C: Config> Shared<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the records of `ticket` are durable; returns the last LSN.
    async fn durable(&self, ticket: Ticket) -> io::Result<Lsn> {
        let lsn = ticket.await.map_err(io_err)?;
        // Acknowledged is durable under GroupSync and Dsync; under Periodic
        // this waits for the next sync.
        self.wal.durable(lsn).await.map_err(io_err)?;
        Ok(lsn)
    }

    fn submit(&self, kind: uring_wal::RecordType, payload: &[u8]) -> io::Result<Ticket> {
        self.wal.submit(kind, payload).map_err(io_err)
    }

    /// Entries `start..end` (clamped to what the log holds), from the cache
    /// or read back from the log, with no hole: a consistent view of one
    /// moment.
    fn read_entries(&self, start: u64, end: u64) -> io::Result<Vec<C::Entry>> {
        loop {
            // Under the lock: the cached entries, and the LSNs of the rest.
            let (from, cached, lsns) = {
                let st = self.lock();
                let e = &st.entries;
                let (Some(log_end), false) = (e.end(), start >= end) else {
                    return Ok(Vec::new());
                };
                let (from, to) = (start.max(e.first), end.min(log_end));
                if from >= to {
                    return Ok(Vec::new());
                }
                let cached_from = e.cached_from().clamp(from, to);
                let lsns: Vec<Lsn> = (from..cached_from).map(|i| e.slots[(i - e.first) as usize].lsn).collect();
                let skip = cached_from.saturating_sub(e.cached_from()) as usize;
                let cached: Vec<C::Entry> =
                    e.cache.iter().skip(skip).take((to - cached_from) as usize).map(|(x, _)| x.clone()).collect();
                (from, cached, lsns)
            };
            if lsns.is_empty() {
                return Ok(cached);
            }
            match self.read_lsns(&lsns) {
                Ok(mut out) => {
                    debug_assert!(out.first().is_none_or(|e| e.index() == from));
                    out.extend(cached);
                    return Ok(out);
                }
                // A purge dropped those segments meanwhile: those entries are
                // gone; read again what is left.
                Err(ReadError::Truncated) => continue,
                Err(ReadError::Failed(e)) => return Err(e),
            }
        }
    }

    /// Reads the entries at `lsns` (ascending) back from the log.
    fn read_lsns(&self, lsns: &[Lsn]) -> Result<Vec<C::Entry>, ReadError> {
        let mut out = Vec::with_capacity(lsns.len());
        // Bounded to the LSNs wanted; the log's sparse index starts the read
        // near the first of them.
        let mut reader = self.wal.read_range(lsns[0]..=lsns[lsns.len() - 1])?;
        let mut want = lsns.iter().copied().peekable();
        while let Some(&next) = want.peek() {
            let Some(rec) = reader.next_record()? else {
                return Err(ReadError::Failed(invalid(format!("the entry at LSN {next} is past the log's end"))));
            };
            if rec.lsn < next {
                continue;
            }
            if rec.kind != kinds::ENTRY || rec.lsn != next {
                let msg = format!("LSN {next} should hold an entry, found {:?} at {}", rec.kind, rec.lsn);
                return Err(ReadError::Failed(invalid(msg)));
            }
            out.push(decode(rec.payload, rec.lsn, "entry")?);
            want.next();
        }
        Ok(out)
    }
}

/// Why entries could not be read back from the log.
enum ReadError {
    /// Their segments were dropped by a purge since they were looked up.
    Truncated,
    Failed(io::Error),
}

impl From<uring_wal::Error> for ReadError {
    fn from(e: uring_wal::Error) -> ReadError {
        match e {
            uring_wal::Error::Truncated { .. } => ReadError::Truncated,
            e => ReadError::Failed(io_err(e)),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Failed(e)
    }
}

/// An append waiting to become durable.
struct Pending<C: RaftTypeConfig> {
    ticket: Ticket,
    callback: IOFlushed<C>,
}

/// openraft log storage on a uring-wal log.
///
/// # Memory
///
/// - Per live entry (appended and not purged): its log id and the LSN of its
///   record, `size_of::<LogId>() + 8` bytes (32 with openraft's default
///   `u64` term and node id).
/// - The entry cache: at most [`StoreConfig::cache_bytes`] of encoded
///   entries (plus those not yet acknowledged by the log), measured by their
///   encoded size.
/// - The log's own buffers (`uring_wal::Options`).
///
/// The index grows with the entries not yet purged: openraft purges after
/// each snapshot (`Config::max_in_snapshot_log_to_keep`), which bounds it.
pub struct LogStore<C: Config> {
    shared: Arc<Shared<C>>,
    completions: Option<mpsc::Sender<Pending<C>>>,
    completer: Option<JoinHandle<()>>,
}

impl<C: Config> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.shared.wal.dir()).finish()
    }
}

impl<C: Config> LogStore<C> {
    /// Opens (creating or recovering) the log described by `options` and
    /// replays it.
    ///
    /// `Durability::None` is refused: its appends never become durable
    /// before a close, so no callback would fire.
    pub fn open(options: Options) -> io::Result<LogStore<C>> {
        LogStore::open_with(options, StoreConfig::default())
    }

    /// [`LogStore::open`] with store settings.
    pub fn open_with(options: Options, config: StoreConfig) -> io::Result<LogStore<C>> {
        LogStore::open_with_storage(options, Arc::new(OsStorage), config)
    }

    /// [`LogStore::open_with`] on another [`Storage`] (a simulated one in
    /// tests).
    pub fn open_with_storage(
        options: Options,
        storage: Arc<dyn Storage>,
        config: StoreConfig,
    ) -> io::Result<LogStore<C>> {
        if options.durability_mode() == Durability::None {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Durability::None never makes an append durable while open; a Raft log needs it durable",
            ));
        }
        let wal = Wal::open_with_storage(options, storage).map_err(io_err)?;
        let mut state = State::new();
        let mut reader = wal.read_from(wal.first_lsn()).map_err(io_err)?;
        while let Some(rec) = reader.next_record().map_err(io_err)? {
            state.replay(rec.lsn, rec.kind, rec.payload, config.cache_bytes)?;
        }
        drop(reader);
        state.check_replayed()?;
        let shared = Arc::new(Shared { wal, state: Mutex::new(state), cache_budget: config.cache_bytes });
        let (tx, rx) = mpsc::channel::<Pending<C>>();
        let completer = {
            let shared = shared.clone();
            std::thread::Builder::new().name("uring-wal-raft-done".into()).spawn(move || complete(&shared, &rx))?
        };
        Ok(LogStore { shared, completions: Some(tx), completer: Some(completer) })
    }

    /// The log underneath (for its statistics and LSNs).
    pub fn wal(&self) -> &Wal {
        &self.shared.wal
    }

    /// Index of the first entry held in memory (the rest is read back from
    /// the log), and the number of entries held there; for tests and
    /// monitoring.
    pub fn cached(&self) -> (u64, usize) {
        let st = self.shared.lock();
        (st.entries.cached_from(), st.entries.cache.len())
    }

    /// Waits for every pending append's callback, then closes the log if no
    /// reader is left (otherwise the last reader's drop closes it).
    pub fn close(mut self) -> io::Result<()> {
        self.stop_completer();
        let shared = self.shared.clone();
        drop(self);
        match Arc::try_unwrap(shared) {
            Ok(shared) => shared.wal.close().map_err(io_err),
            Err(_) => Ok(()),
        }
    }

    fn stop_completer(&mut self) {
        drop(self.completions.take());
        if let Some(t) = self.completer.take() {
            let _ = t.join();
        }
    }
}

impl<C: Config> Drop for LogStore<C> {
    fn drop(&mut self) {
        self.stop_completer();
    }
}

/// The completion thread: waits for each append's ticket, in submission
/// order, and fires its callback once the entries are durable.
fn complete<C: Config>(shared: &Shared<C>, rx: &mpsc::Receiver<Pending<C>>) {
    while let Ok(Pending { ticket, callback }) = rx.recv() {
        let result = ticket.wait().and_then(|lsn| shared.wal.wait_durable(lsn, None).map(|_| lsn));
        match result {
            Ok(lsn) => {
                callback.io_completed(Ok(()));
                let mut st = shared.lock();
                st.entries.evict(shared.cache_budget, lsn);
            }
            Err(e) => callback.io_completed(Err(io_err(e))),
        }
    }
}

/// Reads entries and the vote; any number of them, alongside the store.
pub struct LogReader<C: Config> {
    shared: Arc<Shared<C>>,
}

impl<C: Config> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader { shared: self.shared.clone() }
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl<C: Config> RaftLogReader<C> for LogReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let (start, end) = bounds(&range);
        self.shared.read_entries(start, end)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.shared.lock().vote.clone())
    }

    /// The last log id of each leader in `range`, from the in-memory index:
    /// what openraft's default finds by binary search over reads, which
    /// here could each read an evicted entry back from the log.
    async fn get_key_log_ids(&mut self, range: RangeInclusive<LogIdOf<C>>) -> Result<Vec<LogIdOf<C>>, io::Error> {
        let (first, last) = range.into_inner();
        let mut out: Vec<LogIdOf<C>> = Vec::new();
        let mut push = |id: LogIdOf<C>| match out.last_mut() {
            Some(prev) if prev.committed_leader_id() == id.committed_leader_id() => *prev = id,
            _ => out.push(id),
        };
        let (from, to) = (first.index(), last.index());
        push(first);
        {
            let st = self.shared.lock();
            let e = &st.entries;
            for slot in e.slots.iter().skip(from.saturating_add(1).saturating_sub(e.first) as usize) {
                if slot.log_id.index() >= to {
                    break;
                }
                if slot.log_id.index() > from {
                    push(slot.log_id.clone());
                }
            }
        }
        push(last);
        Ok(out)
    }
}

impl<C: Config> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let st = self.shared.lock();
        let last_purged_log_id = st.purged.clone();
        let last_log_id = st.entries.last_log_id().cloned().or_else(|| last_purged_log_id.clone());
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader { shared: self.shared.clone() }
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        let payload = encode(vote)?;
        let ticket = {
            let _st = self.shared.lock();
            self.shared.submit(kinds::VOTE, &payload)?
        };
        let lsn = self.shared.durable(ticket).await?;
        let mut st = self.shared.lock();
        st.vote = Some(vote.clone());
        st.vote_lsn = lsn;
        Ok(())
    }

    /// Written in order with everything else, not waited for: a later
    /// durable append or vote implies it is durable too.
    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let payload = encode(&committed)?;
        let mut st = self.shared.lock();
        let ticket = self.shared.submit(kinds::COMMITTED, &payload)?;
        st.committed = committed;
        st.committed_lsn = ticket.lsn();
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.shared.lock().committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let Some(first) = entries.first().map(RaftEntry::index) else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        let mut batch = Batch::new();
        let mut sizes = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if entry.index() != first + i as u64 {
                return Err(invalid(format!("entries to append are not consecutive at {}", entry.index())));
            }
            let payload = encode(entry)?;
            batch.push(kinds::ENTRY, &payload).map_err(io_err)?;
            sizes.push(payload.len());
        }
        let ticket = {
            let mut st = self.shared.lock();
            let overwrite = st.entries.end().is_some_and(|end| first < end);
            if !overwrite {
                st.check_append(first, true)?;
            } else if st.purged.as_ref().is_some_and(|p| first <= p.index()) {
                return Err(invalid(format!("entry {first} is at or below the purge point")));
            }
            let ticket = self.shared.wal.submit_batch(&mut batch).map_err(io_err)?.expect("not empty");
            if overwrite {
                st.entries.truncate_from(first);
            }
            for ((entry, bytes), lsn) in entries.into_iter().zip(sizes).zip(ticket.lsns()) {
                st.entries.push(entry, lsn, bytes);
            }
            st.entries.evict(self.shared.cache_budget, self.shared.wal.last_lsn());
            ticket
        };
        let tx = self.completions.as_ref().expect("open until dropped");
        tx.send(Pending { ticket, callback }).map_err(|_| io::Error::other("the completion thread is gone"))?;
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let since: u64 = match &last_log_id {
            Some(l) => l.index() + 1,
            None => 0,
        };
        let ticket = {
            let mut st = self.shared.lock();
            if st.entries.end().is_none_or(|end| since >= end) {
                return Ok(());
            }
            let ticket = self.shared.submit(kinds::TRUNCATE, &encode(&since)?)?;
            st.entries.truncate_from(since);
            ticket
        };
        self.shared.durable(ticket).await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let (ticket, keep_from) = {
            let mut st = self.shared.lock();
            if st.purged.as_ref().is_some_and(|p| p >= &log_id) {
                return Ok(());
            }
            st.entries.purge_to(log_id.index());
            st.purged = Some(log_id.clone());
            // Segments wholly below the first live entry go. The vote and
            // committed records there are written again, after the purge
            // record, so that the log still holds them.
            let first_live = st.entries.slots.front().map_or(Lsn::MAX, |s| s.lsn);
            let mut batch = Batch::new();
            batch.push(kinds::PURGE, &encode(&log_id)?).map_err(io_err)?;
            let rewrite_vote = st.vote.is_some() && st.vote_lsn < first_live;
            if rewrite_vote {
                batch.push(kinds::VOTE, &encode(st.vote.as_ref().expect("checked"))?).map_err(io_err)?;
            }
            let rewrite_committed = st.committed_lsn != 0 && st.committed_lsn < first_live;
            if rewrite_committed {
                batch.push(kinds::COMMITTED, &encode(&st.committed)?).map_err(io_err)?;
            }
            let ticket = self.shared.wal.submit_batch(&mut batch).map_err(io_err)?.expect("not empty");
            let mut lsns = ticket.lsns();
            let purge_lsn = lsns.next().expect("one record at least");
            if rewrite_vote {
                st.vote_lsn = lsns.next().expect("vote record");
            }
            if rewrite_committed {
                st.committed_lsn = lsns.next().expect("committed record");
            }
            (ticket, first_live.min(purge_lsn))
        };
        self.shared.durable(ticket).await?;
        self.shared.wal.truncate_before(keep_from).map_err(io_err)?;
        Ok(())
    }
}
