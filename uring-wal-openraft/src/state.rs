//! One Raft group's state, as its records in the log make it: the live
//! entries (log id and where each lies in the log), a cache of the newest,
//! the vote, the committed log id, the purge point; and, while the log is
//! replayed, a rewrite of the group not yet seen whole.

use std::collections::VecDeque;
use std::io;

use openraft::RaftTypeConfig;
use openraft::entry::RaftEntry;
use openraft::type_config::alias::{LogIdOf, VoteOf};
use uring_wal::Lsn;

use crate::records::{RewriteHead, decode, invalid, kinds};

/// One live entry: its log id, and its records: `parts` of them, the last
/// at `lsn` (consecutive LSNs), holding `bytes` of encoded entry.
pub(crate) struct Slot<C: RaftTypeConfig> {
    pub log_id: LogIdOf<C>,
    pub lsn: Lsn,
    pub parts: u32,
    pub bytes: u32,
}

/// Bytes a record takes in the log beyond its share of the entry: the
/// record header, the group id (at most 10 bytes) and the alignment.
pub(crate) const RECORD_OVERHEAD_BYTES: u64 = uring_wal::format::RECORD_HEADER_BYTES as u64 + 16;

impl<C: RaftTypeConfig> Slot<C> {
    /// LSN of its first record.
    pub fn first_lsn(&self) -> Lsn {
        self.lsn + 1 - Lsn::from(self.parts)
    }

    /// Bytes its records take in the log, about.
    pub fn log_bytes(&self) -> u64 {
        u64::from(self.bytes) + u64::from(self.parts) * RECORD_OVERHEAD_BYTES
    }
}

/// The live entries, consecutive by index, and a cache of the newest ones.
pub(crate) struct Entries<C: RaftTypeConfig> {
    /// Index of `slots[0]`.
    pub first: u64,
    pub slots: VecDeque<Slot<C>>,
    /// The entries of the last `cache.len()` slots, with their encoded size.
    pub cache: VecDeque<(C::Entry, usize)>,
    pub cache_bytes: usize,
    /// Bytes the live entries' records take in the log, about.
    pub log_bytes: u64,
}

impl<C: RaftTypeConfig> Entries<C> {
    fn new() -> Entries<C> {
        Entries { first: 0, slots: VecDeque::new(), cache: VecDeque::new(), cache_bytes: 0, log_bytes: 0 }
    }

    /// Index one past the last entry, if any.
    pub fn end(&self) -> Option<u64> {
        (!self.slots.is_empty()).then(|| self.first + self.slots.len() as u64)
    }

    pub fn last_log_id(&self) -> Option<&LogIdOf<C>> {
        self.slots.back().map(|s| &s.log_id)
    }

    /// Drops every entry at `index` and after.
    pub fn truncate_from(&mut self, index: u64) {
        let keep = index.saturating_sub(self.first).min(self.slots.len() as u64) as usize;
        let drop = self.slots.len() - keep;
        self.log_bytes -= self.slots.range(keep..).map(Slot::log_bytes).sum::<u64>();
        self.slots.truncate(keep);
        for _ in 0..drop.min(self.cache.len()) {
            if let Some((_, bytes)) = self.cache.pop_back() {
                self.cache_bytes -= bytes;
            }
        }
    }

    /// Drops every entry up to `index`, inclusive.
    pub fn purge_to(&mut self, index: u64) {
        let drop = (index + 1).saturating_sub(self.first).min(self.slots.len() as u64) as usize;
        self.log_bytes -= self.slots.drain(..drop).map(|s| s.log_bytes()).sum::<u64>();
        self.first += drop as u64;
        while self.cache.len() > self.slots.len() {
            if let Some((_, bytes)) = self.cache.pop_front() {
                self.cache_bytes -= bytes;
            }
        }
        if self.slots.is_empty() {
            self.first = 0;
        }
    }

    /// Appends `entry`, whose `parts` records end at `lsn` and hold `bytes`
    /// (at most `StoreConfig::entry_bytes_max`, which fits a `u32`).
    pub fn push(&mut self, entry: C::Entry, lsn: Lsn, parts: u32, bytes: usize) {
        let log_id = entry.log_id();
        if self.slots.is_empty() {
            self.first = log_id.index();
        }
        debug_assert!(self.end().is_none_or(|end| end == log_id.index()), "a hole before {log_id}");
        let slot = Slot { log_id, lsn, parts, bytes: u32::try_from(bytes).unwrap_or(u32::MAX) };
        self.log_bytes += slot.log_bytes();
        self.slots.push_back(slot);
        self.cache.push_back((entry, bytes));
        self.cache_bytes += bytes;
    }

    /// Drops the oldest cached entries while the cache is over `budget`,
    /// keeping every entry above `acked` (a reader could not read it back).
    pub fn evict(&mut self, budget: usize, acked: Lsn) {
        while self.cache_bytes > budget && !self.cache.is_empty() {
            let oldest = self.slots.len() - self.cache.len();
            if self.slots[oldest].lsn > acked {
                break;
            }
            if let Some((_, bytes)) = self.cache.pop_front() {
                self.cache_bytes -= bytes;
            }
        }
    }

    /// The index the cache starts at.
    pub fn cached_from(&self) -> u64 {
        self.first + (self.slots.len() - self.cache.len()) as u64
    }

    /// The entry at `index`, if it is live.
    pub fn slot_mut(&mut self, index: u64) -> Option<&mut Slot<C>> {
        let i = index.checked_sub(self.first)?;
        self.slots.get_mut(usize::try_from(i).ok()?)
    }

    /// Memory the index and the cache hold, about: the slots' buffer, the
    /// cache's buffer and the cached entries' encoded size.
    pub fn memory_bytes(&self) -> (usize, usize) {
        let index = self.slots.capacity() * size_of::<Slot<C>>();
        let cache = self.cache.capacity() * size_of::<(C::Entry, usize)>() + self.cache_bytes;
        (index, cache)
    }
}

/// A group's state, mirrored by its records in the log.
pub(crate) struct GroupState<C: RaftTypeConfig> {
    pub entries: Entries<C>,
    pub vote: Option<VoteOf<C>>,
    /// LSN of the record holding `vote` (0: none).
    pub vote_lsn: Lsn,
    pub committed: Option<LogIdOf<C>>,
    /// LSN of the record holding `committed` (0: none).
    pub committed_lsn: Lsn,
    pub purged: Option<LogIdOf<C>>,
    /// LSN of the record holding `purged` (0: none).
    pub purged_lsn: Lsn,
    /// Parts of an entry being replayed: its bytes, how many records, and
    /// the LSN its next record must have.
    parts: Option<(Vec<u8>, u32, Lsn)>,
    /// A rewrite being replayed, until its last entry (replay only).
    rewrite: Option<Box<Rewrite<C>>>,
}

/// A rewrite of the group met in the replay: its head record, and the
/// entries of it seen so far.
struct Rewrite<C: RaftTypeConfig> {
    lsn: Lsn,
    vote: Option<VoteOf<C>>,
    committed: Option<LogIdOf<C>>,
    purged: Option<LogIdOf<C>>,
    entries: Entries<C>,
    /// Entries still to come.
    remaining: u64,
}

impl<C: RaftTypeConfig<Entry: Clone>> GroupState<C> {
    pub fn new() -> GroupState<C> {
        GroupState {
            entries: Entries::new(),
            vote: None,
            vote_lsn: 0,
            committed: None,
            committed_lsn: 0,
            purged: None,
            purged_lsn: 0,
            parts: None,
            rewrite: None,
        }
    }

    /// The oldest LSN this group still needs: its first live entry's first
    /// record, and its vote, committed and purge records (`Lsn::MAX`:
    /// none).
    pub fn needed_from(&self) -> Lsn {
        let first_entry = self.entries.slots.front().map_or(Lsn::MAX, Slot::first_lsn);
        let anchor = |lsn: Lsn| if lsn == 0 { Lsn::MAX } else { lsn };
        first_entry.min(anchor(self.vote_lsn)).min(anchor(self.committed_lsn)).min(anchor(self.purged_lsn))
    }

    /// Bytes the group's records that replay needs take in the log, about:
    /// its live entries, and its vote, committed and purge records.
    pub fn log_bytes(&self) -> u64 {
        self.entries.log_bytes + 3 * (RECORD_OVERHEAD_BYTES + 32)
    }

    /// Checks that entries from `first` on may be appended now: no hole,
    /// nothing at or below the purge point. `after_purge` also checks that
    /// the first entry after the purge point follows it, which holds once
    /// the whole log is replayed but not on the way: segments dropped by a
    /// purge may leave the replay starting past an older purge point, until
    /// the newer purge record is replayed.
    pub fn check_append(&self, first: u64, after_purge: bool) -> io::Result<()> {
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
    /// point; drops the parts of an entry whose last record never made it
    /// (a torn tail cut it: it was never acknowledged).
    pub fn finish_replay(&mut self) -> io::Result<()> {
        self.parts = None;
        // A rewrite whose last entry is not in the log never finished: the
        // records it re-states are all still in the log, before it.
        self.rewrite = None;
        match (&self.purged, self.entries.end()) {
            (Some(p), Some(_)) if self.entries.first != p.index() + 1 => Err(invalid(format!(
                "the log's entries start at {} but its purge point is {}: a hole",
                self.entries.first,
                p.index()
            ))),
            _ => Ok(()),
        }
    }

    /// Applies one of this group's records, at open. `body` is the payload
    /// after the group id; `entry_bytes_max` bounds an entry's parts.
    pub fn replay(
        &mut self,
        lsn: Lsn,
        kind: uring_wal::RecordType,
        body: &[u8],
        cache_bytes: usize,
        entry_bytes_max: usize,
    ) -> io::Result<()> {
        // An entry's parts have consecutive LSNs, its ENTRY record last:
        // parts not followed at once by the next one belong to an entry
        // whose last record was lost (cut as a torn tail, never
        // acknowledged); what follows was written after that recovery.
        if self.parts.as_ref().is_some_and(|(_, _, next)| *next != lsn) {
            self.parts = None;
        }
        // Nothing of the group comes between a rewrite's records: any other
        // record means the rewrite never finished (a crash cut it; the log
        // went on after recovery). What it re-states is still in the log.
        if !matches!(kind, kinds::ENTRY_PART | kinds::COPY) {
            self.rewrite = None;
        }
        match kind {
            kinds::ENTRY_PART => {
                let (bytes, parts, next) = self.parts.get_or_insert_with(|| (Vec::new(), 0, lsn));
                if bytes.len() + body.len() > entry_bytes_max {
                    return Err(invalid(format!(
                        "the entry ending after LSN {lsn} is larger than entry_bytes_max ({entry_bytes_max})"
                    )));
                }
                bytes.extend_from_slice(body);
                *parts += 1;
                *next = lsn + 1;
            }
            kinds::COPY if self.rewrite.is_some() => {
                let (entry, parts, bytes) = self.whole_entry(lsn, body)?;
                let done = {
                    #[expect(clippy::expect_used, reason = "matched as Some")]
                    let rw = self.rewrite.as_mut().expect("a rewrite");
                    if rw.entries.end().is_some_and(|end| end != entry.index()) || rw.remaining == 0 {
                        return Err(invalid(format!(
                            "at LSN {lsn}: entry {} of the rewrite at LSN {} is out of order",
                            entry.index(),
                            rw.lsn
                        )));
                    }
                    rw.entries.push(entry, lsn, parts, bytes);
                    rw.entries.evict(cache_bytes, Lsn::MAX);
                    rw.remaining -= 1;
                    rw.remaining == 0
                };
                if done {
                    self.finish_rewrite();
                }
            }
            kinds::REWRITE => {
                type Head<C> = RewriteHead<VoteOf<C>, LogIdOf<C>>;
                let head: Head<C> = decode(body, lsn, "rewrite")?;
                self.rewrite = Some(Box::new(Rewrite {
                    lsn,
                    vote: head.vote,
                    committed: head.committed,
                    purged: head.purged,
                    entries: Entries::new(),
                    remaining: head.entries,
                }));
                if head.entries == 0 {
                    self.finish_rewrite();
                }
            }
            // An entry, or a rewrite's entry whose head record is gone from
            // the log: the head goes only once nothing of the group before
            // it is needed, so every record of the group still in the log
            // is later than the ones the rewrite re-stated; its entries are
            // replayed as the entries they are.
            kinds::ENTRY | kinds::COPY => {
                let (entry, parts, bytes) = self.whole_entry(lsn, body)?;
                let index = entry.index();
                if self.entries.end().is_some_and(|end| index < end) {
                    self.entries.truncate_from(index);
                }
                self.check_append(index, false).map_err(|e| invalid(format!("at LSN {lsn}: {e}")))?;
                self.entries.push(entry, lsn, parts, bytes);
                self.entries.evict(cache_bytes, Lsn::MAX);
            }
            kinds::TRUNCATE => {
                let since: u64 = decode(body, lsn, "truncation marker")?;
                self.entries.truncate_from(since);
            }
            kinds::VOTE => {
                self.vote = Some(decode(body, lsn, "vote")?);
                self.vote_lsn = lsn;
            }
            kinds::COMMITTED => {
                self.committed = decode(body, lsn, "committed log id")?;
                self.committed_lsn = lsn;
            }
            kinds::PURGE => {
                let log_id: LogIdOf<C> = decode(body, lsn, "purge point")?;
                self.entries.purge_to(log_id.index());
                self.purged = Some(log_id);
                self.purged_lsn = lsn;
            }
            other => return Err(invalid(format!("record type {other:?} at LSN {lsn} is not one of this store's"))),
        }
        if kind != kinds::ENTRY_PART {
            self.parts = None;
        }
        Ok(())
    }

    /// The entry whose last record is `body` at `lsn`, with the parts
    /// before it: the entry, how many records, its encoded size.
    fn whole_entry(&mut self, lsn: Lsn, body: &[u8]) -> io::Result<(C::Entry, u32, usize)> {
        Ok(match self.parts.take() {
            Some((mut whole, parts, _)) => {
                whole.extend_from_slice(body);
                (decode(&whole, lsn, "entry")?, parts + 1, whole.len())
            }
            None => (decode(body, lsn, "entry")?, 1, body.len()),
        })
    }

    /// A rewrite seen whole replaces everything the group had.
    fn finish_rewrite(&mut self) {
        let Some(rw) = self.rewrite.take() else { return };
        self.entries = rw.entries;
        self.vote = rw.vote;
        self.committed = rw.committed;
        self.purged = rw.purged;
        let anchor = |present: bool| if present { rw.lsn } else { 0 };
        self.vote_lsn = anchor(self.vote.is_some());
        self.committed_lsn = anchor(self.committed.is_some());
        self.purged_lsn = anchor(self.purged.is_some());
    }
}
