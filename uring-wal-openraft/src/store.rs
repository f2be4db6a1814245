//! [`LogStore`] and [`LogReader`]: openraft's storage traits for one group
//! of a log.
//!
//! Nothing here waits on the disk on the caller's task: records are queued
//! with `submit_async` (awaiting room in a full queue), durability is
//! awaited on tickets, entries missing from the cache are read back on a
//! blocking thread of the runtime, and segments are dropped by the log's
//! purge thread. The group's state lock is held only for in-memory updates.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds, RangeInclusive};
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::async_runtime::Mutex as _;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::{LogIdOf, VoteOf};
use uring_wal::{Lsn, Wal};

use crate::Config;
use crate::log::{Group, Log, io_err};
use crate::records::{StoreFormat, decode, encode, invalid, kinds, push_entry, split_group};
use crate::state::Slot;

/// openraft log storage for one Raft group on a uring-wal log.
///
/// # Memory
///
/// - Per live entry (appended and not purged): its log id, the LSN of its
///   record and how many records it took, `size_of::<LogId>() + 16` bytes
///   (40 with openraft's default `u64` term and node id).
/// - The entry cache: at most [`crate::StoreConfig::cache_bytes`] of
///   encoded entries (plus those not yet acknowledged by the log), measured
///   by their encoded size.
/// - The log's own buffers (`uring_wal::Options`).
///
/// The index grows with the entries not yet purged: openraft purges after
/// each snapshot (`Config::max_in_snapshot_log_to_keep`), which bounds it.
pub struct LogStore<C: Config> {
    pub(crate) log: Arc<Log<C>>,
    pub(crate) group: Arc<Group<C>>,
}

impl<C: Config> Drop for LogStore<C> {
    fn drop(&mut self) {
        // Another store of the group may be opened from now on.
        self.log.release(&self.group);
    }
}

impl<C: Config> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.log.wal.dir()).field("group", &self.group.id).finish()
    }
}

impl<C: Config> LogStore<C> {
    /// The log underneath (for its statistics and LSNs).
    pub fn wal(&self) -> &Wal {
        &self.log.wal
    }

    /// Index of the first entry held in memory (the rest is read back from
    /// the log), and the number of entries held there; for tests and
    /// monitoring.
    pub fn cached(&self) -> (u64, usize) {
        let st = self.group.lock();
        (st.entries.cached_from(), st.entries.cache.len())
    }

    /// The group of the log this store is for.
    pub fn group_id(&self) -> u64 {
        self.group.id
    }

    /// Closes the log now, readers or not (they fail from then on), after
    /// everything queued is written; the callbacks of appends made before
    /// fire. Every other group's store of a shared log fails from then on
    /// too. It waits for the disk: from async code call it on a blocking
    /// thread, or drop the store instead (the log then closes on a thread
    /// of its own once its last store, reader and [`crate::MultiLog`] are
    /// gone).
    pub fn close(self) -> io::Result<()> {
        self.log.wal.shutdown().map_err(io_err)
    }
}

/// Reads entries and the vote of one group; any number of them, alongside
/// the store.
pub struct LogReader<C: Config> {
    log: Arc<Log<C>>,
    group: Arc<Group<C>>,
}

impl<C: Config> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader { log: self.log.clone(), group: self.group.clone() }
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

/// Where the records of the entries not in the cache lie: the first and
/// last LSN of each.
type Places = Vec<(Lsn, Lsn)>;

impl<C: Config> LogReader<C> {
    pub(crate) fn new(log: Arc<Log<C>>, group: Arc<Group<C>>) -> LogReader<C> {
        LogReader { log, group }
    }

    /// Entries `start..end` (clamped to what the group holds), from the
    /// cache or read back from the log on a blocking thread, with no hole:
    /// a consistent view of one moment.
    pub(crate) async fn read_entries(&self, start: u64, end: u64) -> io::Result<Vec<C::Entry>> {
        loop {
            // Under the lock: the cached entries, and where the rest lie.
            let (cached, places): (Vec<C::Entry>, Places) = {
                let st = self.group.lock();
                let e = &st.entries;
                let (Some(log_end), false) = (e.end(), start >= end) else {
                    return Ok(Vec::new());
                };
                let (from, to) = (start.max(e.first), end.min(log_end));
                if from >= to {
                    return Ok(Vec::new());
                }
                let cached_from = e.cached_from().clamp(from, to);
                let places = (from..cached_from)
                    .map(|i| &e.slots[(i - e.first) as usize])
                    .map(|s: &Slot<C>| (s.first_lsn(), s.lsn))
                    .collect();
                let skip = cached_from.saturating_sub(e.cached_from()) as usize;
                let cached =
                    e.cache.iter().skip(skip).take((to - cached_from) as usize).map(|(x, _)| x.clone()).collect();
                (cached, places)
            };
            if places.is_empty() {
                // As a read from the log would: a closed log's files may
                // belong to a new opener by now.
                if self.log.wal.is_closed() {
                    return Err(io_err(uring_wal::Error::Closed));
                }
                return Ok(cached);
            }
            let (log, group) = (self.log.clone(), self.group.id);
            let read = C::spawn_blocking(move || read_places::<C>(&log.wal, group, &places)).await?;
            match read {
                Ok(mut out) => {
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
}

/// Reads the entries whose records lie at `places` (ascending) back from
/// the log: each entry's parts, concatenated.
fn read_places<C: Config>(wal: &Wal, group: u64, places: &Places) -> Result<Vec<C::Entry>, ReadError> {
    let mut out = Vec::with_capacity(places.len());
    // Bounded to the LSNs wanted; the log's sparse index starts the read
    // near the first of them.
    let (Some(&(first, _)), Some(&(_, last))) = (places.first(), places.last()) else { return Ok(out) };
    let mut reader = wal.read_range(first..=last)?;
    let mut whole = Vec::new();
    for &(from, to) in places {
        whole.clear();
        let mut lsn = from;
        while lsn <= to {
            let Some(rec) = reader.next_record()? else {
                return Err(ReadError::Failed(invalid(format!("the entry at LSN {lsn} is past the log's end"))));
            };
            if rec.lsn < lsn {
                continue;
            }
            let (g, body) = split_group(rec.payload, rec.lsn)?;
            // An entry's last record is an ENTRY, or a COPY once a rewrite
            // moved it.
            let kind_ok = match lsn == to {
                true => rec.kind == kinds::ENTRY || rec.kind == kinds::COPY,
                false => rec.kind == kinds::ENTRY_PART,
            };
            if rec.lsn != lsn || !kind_ok || g != group {
                let msg = format!(
                    "LSN {lsn} should hold an entry (or part) of group {group}, found {:?} of group {g} at {}",
                    rec.kind, rec.lsn
                );
                return Err(ReadError::Failed(invalid(msg)));
            }
            whole.extend_from_slice(body);
            lsn += 1;
        }
        out.push(decode(&whole, to, "entry")?);
    }
    Ok(out)
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

impl<C: Config> RaftLogReader<C> for LogReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let (start, end) = bounds(&range);
        self.read_entries(start, end).await
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.group.lock().vote.clone())
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
            let st = self.group.lock();
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
        let st = self.group.lock();
        let last_purged_log_id = st.purged.clone();
        let last_log_id = st.entries.last_log_id().cloned().or_else(|| last_purged_log_id.clone());
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader { log: self.log.clone(), group: self.group.clone() }
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        // The writer lock until the state says so: a rewrite of the group
        // must not re-state the older vote after this record.
        let _writer = self.group.writer.lock().await;
        let ticket = self.log.wal.submit_async(kinds::VOTE, &encode(self.group.id, vote)?).await.map_err(io_err)?;
        let lsn = self.log.durable(ticket).await?;
        let mut st = self.group.lock();
        st.vote = Some(vote.clone());
        st.vote_lsn = lsn;
        Ok(())
    }

    /// Durable before it returns (it rides on the log's next sync): openraft
    /// applies up to it right after, and a restart must not bring back an
    /// older committed log id than a read was served at.
    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let _writer = self.group.writer.lock().await;
        let payload = encode(self.group.id, &committed)?;
        let ticket = self.log.wal.submit_async(kinds::COMMITTED, &payload).await.map_err(io_err)?;
        let lsn = self.log.durable(ticket).await?;
        let mut st = self.group.lock();
        st.committed = committed;
        st.committed_lsn = lsn;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.group.lock().committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let group = self.group.clone();
        let Some(first) = entries.first().map(RaftEntry::index) else {
            // Answered after every earlier append's callback, in order.
            self.log.when_durable(None, callback, group);
            return Ok(());
        };
        let mut batch = self.log.wal.batch();
        let mut placed = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if entry.index() != first + i as u64 {
                return Err(invalid(format!("entries to append are not consecutive at {}", entry.index())));
            }
            let encoded = postcard::to_stdvec(entry).map_err(|e| invalid(format!("encode an entry: {e}")))?;
            let max = self.log.config.entry_bytes_max;
            if encoded.len() > max {
                return Err(invalid(format!(
                    "entry {} is {} bytes encoded, above StoreConfig::entry_bytes_max ({max}): refuse such \
                     proposals before client_write (LogStore::entry_bytes_max)",
                    entry.index(),
                    encoded.len()
                )));
            }
            let parts = push_entry(&mut batch, group.id, &encoded, self.log.record_bytes_max, kinds::ENTRY)?;
            placed.push((parts, encoded.len()));
        }
        let writer = group.writer.lock().await;
        let overwrite = {
            let st = group.lock();
            let overwrite = st.entries.end().is_some_and(|end| first < end);
            if !overwrite {
                st.check_append(first, true)?;
            } else if st.purged.as_ref().is_some_and(|p| first <= p.index()) {
                return Err(invalid(format!("entry {first} is at or below the purge point")));
            }
            overwrite
        };
        // The writer lock: nothing changes the group between the check and
        // here, nor until the index holds the entries.
        let bytes = batch.payload_bytes() as u64;
        #[expect(clippy::expect_used, reason = "the batch holds a record per entry, and there is one")]
        let ticket = self.log.wal.submit_batch_async(&mut batch).await.map_err(io_err)?.expect("not empty");
        {
            let mut st = group.lock();
            if overwrite {
                st.entries.truncate_from(first);
            }
            let mut lsn = *ticket.lsns().start() - 1;
            for (entry, (parts, bytes)) in entries.into_iter().zip(placed) {
                lsn += Lsn::from(parts);
                st.entries.push(entry, lsn, parts, bytes);
            }
            st.entries.evict(self.log.cache_budget(), self.log.wal.last_lsn());
        }
        drop(writer);
        self.log.when_durable(Some(ticket), callback, group);
        self.log.appended(bytes);
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let since: u64 = last_log_id.as_ref().map_or(0, |l| l.index() + 1);
        let _writer = self.group.writer.lock().await;
        if self.group.lock().entries.end().is_none_or(|end| since >= end) {
            return Ok(());
        }
        let ticket =
            self.log.wal.submit_async(kinds::TRUNCATE, &encode(self.group.id, &since)?).await.map_err(io_err)?;
        // The index drops the entries once the record is durable: it
        // decides which segments purges may drop, and the entries must stay
        // in the log until their truncation is.
        self.log.durable(ticket).await?;
        self.group.lock().entries.truncate_from(since);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        // What to write: the purge record, and again every record the group
        // (or the log) still needs that lies below its new first live
        // entry, so that dropping whole segments keeps them.
        let writer = self.group.writer.lock().await;
        // Before the group's lock: it takes every other group's.
        let others_need = self.log.groups_need_from(Some(self.group.id));
        let (mut batch, rewrite_vote, rewrite_committed, rewrite_format) = {
            let st = self.group.lock();
            if st.purged.as_ref().is_some_and(|p| p >= &log_id) {
                return Ok(());
            }
            let first_live =
                st.entries.slots.iter().find(|s| s.log_id.index() > log_id.index()).map_or(Lsn::MAX, Slot::first_lsn);
            let mut batch = self.log.wal.batch();
            batch.push(kinds::PURGE, &encode(self.group.id, &log_id)?).map_err(io_err)?;
            let rewrite_vote = st.vote.is_some() && st.vote_lsn < first_live;
            if let Some(vote) = st.vote.as_ref().filter(|_| rewrite_vote) {
                batch.push(kinds::VOTE, &encode(self.group.id, vote)?).map_err(io_err)?;
            }
            let rewrite_committed = st.committed_lsn != 0 && st.committed_lsn < first_live;
            if rewrite_committed {
                batch.push(kinds::COMMITTED, &encode(self.group.id, &st.committed)?).map_err(io_err)?;
            }
            // Only if the format record is all that holds the log's first
            // segments (other groups may still need them anyway).
            let format_lsn = self.log.format_lsn();
            let rewrite_format = format_lsn < first_live && format_lsn < others_need;
            if rewrite_format {
                let format = encode(crate::records::SINGLE_GROUP, &StoreFormat::current())?;
                batch.push(kinds::FORMAT, &format).map_err(io_err)?;
            }
            (batch, rewrite_vote, rewrite_committed, rewrite_format)
        };
        let batch_bytes = batch.payload_bytes() as u64;
        #[expect(clippy::expect_used, reason = "the batch holds the purge record")]
        let ticket = self.log.wal.submit_batch_async(&mut batch).await.map_err(io_err)?.expect("not empty");
        self.log.appended(batch_bytes);
        let lsns = ticket.lsns();
        self.log.durable(ticket).await?;
        // Durable: now the state may say so. Not before: the index decides
        // which segments every group's purges may drop, and the records
        // this one supersedes must stay until it is durable.
        {
            let mut st = self.group.lock();
            st.entries.purge_to(log_id.index());
            st.purged = Some(log_id);
            st.purged_lsn = *lsns.start();
            let mut lsns = lsns.skip(1);
            if rewrite_vote {
                st.vote_lsn = lsns.next().unwrap_or(st.vote_lsn);
            }
            if rewrite_committed {
                st.committed_lsn = lsns.next().unwrap_or(st.committed_lsn);
            }
            if rewrite_format && let Some(lsn) = lsns.next() {
                self.log.set_format_lsn(lsn);
            }
        }
        drop(writer);
        // Dropping the segments renames or deletes files and syncs the
        // directory: the log's purge thread does it, RaftCore goes on.
        self.log.purge_before(self.log.needed_from())
    }
}
