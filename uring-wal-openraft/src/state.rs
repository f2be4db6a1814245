//! One Raft group's state, as its records in the log make it: the live
//! entries (log id and where each lies in the log), a cache of the newest,
//! the vote, the committed log id, the purge point.

use std::collections::VecDeque;
use std::io;

use openraft::RaftTypeConfig;
use openraft::entry::RaftEntry;
use openraft::type_config::alias::{LogIdOf, VoteOf};
use uring_wal::Lsn;

use crate::records::{decode, invalid, kinds};

/// One live entry: its log id, and its records: `parts` of them, the last
/// at `lsn` (consecutive LSNs).
pub(crate) struct Slot<C: RaftTypeConfig> {
    pub log_id: LogIdOf<C>,
    pub lsn: Lsn,
    pub parts: u32,
}

impl<C: RaftTypeConfig> Slot<C> {
    /// LSN of its first record.
    pub fn first_lsn(&self) -> Lsn {
        self.lsn + 1 - Lsn::from(self.parts)
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
}

impl<C: RaftTypeConfig> Entries<C> {
    fn new() -> Entries<C> {
        Entries { first: 0, slots: VecDeque::new(), cache: VecDeque::new(), cache_bytes: 0 }
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
        self.slots.drain(..drop);
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

    pub fn push(&mut self, entry: C::Entry, lsn: Lsn, parts: u32, bytes: usize) {
        let log_id = entry.log_id();
        if self.slots.is_empty() {
            self.first = log_id.index();
        }
        debug_assert!(self.end().is_none_or(|end| end == log_id.index()), "a hole before {log_id}");
        self.slots.push_back(Slot { log_id, lsn, parts });
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
    /// Parts of an entry being replayed: its bytes, how many records, and
    /// the LSN its next record must have.
    parts: Option<(Vec<u8>, u32, Lsn)>,
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
            parts: None,
        }
    }

    /// The oldest LSN this group still needs: its first live entry's first
    /// record, and its vote and committed records (`Lsn::MAX`: none).
    pub fn needed_from(&self) -> Lsn {
        let first_entry = self.entries.slots.front().map_or(Lsn::MAX, Slot::first_lsn);
        let anchor = |lsn: Lsn| if lsn == 0 { Lsn::MAX } else { lsn };
        first_entry.min(anchor(self.vote_lsn)).min(anchor(self.committed_lsn))
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
            kinds::ENTRY => {
                let (entry, parts, bytes): (C::Entry, u32, usize) = match self.parts.take() {
                    Some((mut whole, parts, _)) => {
                        whole.extend_from_slice(body);
                        (decode(&whole, lsn, "entry")?, parts + 1, whole.len())
                    }
                    None => (decode(body, lsn, "entry")?, 1, body.len()),
                };
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
            }
            other => return Err(invalid(format!("record type {other:?} at LSN {lsn} is not one of this store's"))),
        }
        if kind != kinds::ENTRY_PART {
            self.parts = None;
        }
        Ok(())
    }
}
