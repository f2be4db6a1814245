//! [`MultiLog`]: one log shared by many Raft groups (Multi-Raft), a store
//! for each.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use uring_wal::storage::{OsStorage, Storage};
use uring_wal::{Options, Wal};

use crate::log::{Log, io_err};
use crate::{Config, LogStore, StoreConfig};

/// One uring-wal log shared by many Raft groups: one I/O thread, and one
/// sync per round for the records of every group, where a log per group
/// would sync each on its own.
///
/// [`MultiLog::group`] gives the [`LogStore`] of a group (openraft's
/// `RaftLogStorage`), created on first use; each group has its own entries,
/// vote, committed log id and purge point, and replay rebuilds every group.
/// One store of a group is open at a time. [`MultiLog::remove_group`]
/// removes a group durably and frees the space only it needed.
///
/// # Space
///
/// A segment file goes once no group needs a record in it. Groups that
/// write rarely would otherwise hold every later segment: when the log
/// holds at least [`StoreConfig::rewrite_segments_min`] segments of `S`
/// bytes and more than `2L + 2S` bytes, `L` the size of the records replay
/// needs (each group's live entries, vote, committed id and purge point),
/// the groups holding the oldest half of the segments are re-stated after
/// the log's tail (a group whose entries lie there is copied whole), and
/// that half is freed. So the log holds at most
/// `max(rewrite_segments_min, 2L/S + 2)` segments, plus what is appended
/// while a rewrite runs, and rewriting never writes more than it frees.
/// [`MultiLog::space`] reports `L`, the segments and the rewrites.
///
/// # Memory
///
/// [`MultiLog::memory`] reports it; per group:
///
/// - its state: [`GROUP_BYTES`] (about 0.4 KiB) whatever it holds;
/// - its index: 40 bytes per live entry (with openraft's default `u64`
///   term and node id), so the entries a group keeps after a purge
///   (openraft's `max_in_snapshot_log_to_keep`, and those since its last
///   snapshot) cost memory whether it is idle or not;
/// - its cache: [`StoreConfig::cache_bytes`] is shared by all groups, each
///   keeping the newest of its entries up to its share (the total may reach
///   twice the setting while groups are being added), plus entries not yet
///   durable.
pub struct MultiLog<C: Config> {
    log: Arc<Log<C>>,
}

impl<C: Config> Clone for MultiLog<C> {
    fn clone(&self) -> Self {
        MultiLog { log: self.log.clone() }
    }
}

impl<C: Config> fmt::Debug for MultiLog<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiLog").field("dir", &self.log.wal.dir()).field("groups", &self.log.group_count()).finish()
    }
}

/// Memory a group's state takes whatever it holds (its entry in the map of
/// groups, its locks, its vote, committed id and purge point), about.
pub const GROUP_BYTES: usize = 416;

/// The memory of a [`MultiLog`]'s groups, about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Memory {
    /// Groups in the log.
    pub groups: usize,
    /// Live entries, all groups together.
    pub entries: u64,
    /// The groups' states ([`GROUP_BYTES`] each).
    pub group_bytes: usize,
    /// The groups' indexes: where each live entry lies.
    pub index_bytes: usize,
    /// The groups' caches of entries (their encoded size, and the cache's
    /// own buffer).
    pub cache_bytes: usize,
}

impl Memory {
    /// Everything above.
    pub fn total_bytes(&self) -> usize {
        self.group_bytes + self.index_bytes + self.cache_bytes
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |b: usize| b as f64 / 1024.0;
        write!(
            f,
            "{} groups, {} entries: {:.1} KiB ({:.1} KiB of group states, {:.1} KiB of index, {:.1} KiB of cache)",
            self.groups,
            self.entries,
            kib(self.total_bytes()),
            kib(self.group_bytes),
            kib(self.index_bytes),
            kib(self.cache_bytes)
        )
    }
}

/// The space a [`MultiLog`] takes on disk, and what rewrites did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Space {
    /// Segment files of the log.
    pub segments: usize,
    /// Size of each.
    pub segment_bytes: u64,
    /// Bytes of the records replay needs, about (`L`).
    pub live_bytes: u64,
    /// The most segments the log holds once a rewrite caught up:
    /// `max(rewrite_segments_min, 2L/S + 2)`.
    pub segments_bound: u64,
    /// Rewrites since opening.
    pub rewrites: u64,
    /// Groups copied whole by them.
    pub groups_rewritten: u64,
    /// Groups whose vote, committed id or purge point they re-stated.
    pub groups_restated: u64,
    /// Entries they copied.
    pub entries_copied: u64,
    /// Encoded bytes of those entries.
    pub bytes_copied: u64,
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} segments of {} KiB (bound {}), {:.1} MiB live; {} rewrites: {} groups copied ({} entries, {:.1} MiB), \
             {} re-stated",
            self.segments,
            self.segment_bytes >> 10,
            self.segments_bound,
            self.live_bytes as f64 / f64::from(1 << 20),
            self.rewrites,
            self.groups_rewritten,
            self.entries_copied,
            self.bytes_copied as f64 / f64::from(1 << 20),
            self.groups_restated
        )
    }
}

impl<C: Config> MultiLog<C> {
    /// Opens (creating or recovering) the log described by `options` and
    /// replays every group in it. As [`LogStore::open`]: `Durability::None`
    /// is refused, and opening reads the whole log (call it where blocking
    /// is fine).
    pub fn open(options: Options) -> io::Result<MultiLog<C>> {
        MultiLog::open_with(options, StoreConfig::default())
    }

    /// [`MultiLog::open`] with store settings.
    pub fn open_with(options: Options, config: StoreConfig) -> io::Result<MultiLog<C>> {
        MultiLog::open_with_storage(options, Arc::new(OsStorage), config)
    }

    /// [`MultiLog::open_with`] on another [`Storage`] (a simulated one in
    /// tests).
    pub fn open_with_storage(
        options: Options,
        storage: Arc<dyn Storage>,
        config: StoreConfig,
    ) -> io::Result<MultiLog<C>> {
        Ok(MultiLog { log: Log::open(options, storage, config)? })
    }

    /// The store of group `id`, created empty if the log holds nothing of
    /// it. One store of a group is open at a time: this fails with
    /// `ResourceBusy` while another is (drop it first), or while the group
    /// is being removed.
    pub fn group(&self, id: u64) -> io::Result<LogStore<C>> {
        let group = self.log.take_group(id)?;
        self.log.trim_caches();
        Ok(LogStore { log: self.log.clone(), group })
    }

    /// Removes group `id` durably: once this returns, a restart does not
    /// bring it back, and the segments only it needed are freed (by the
    /// purge thread). Shut the group's `Raft` down and drop its store
    /// first: this fails with `ResourceBusy` while a store of it is open.
    /// Returns whether the log held the group. A group created with the
    /// same id afterwards starts empty.
    pub async fn remove_group(&self, id: u64) -> io::Result<bool> {
        self.log.remove_group(id).await
    }

    /// The ids of the groups in the log, ascending.
    pub fn groups(&self) -> Vec<u64> {
        self.log.all_groups().iter().map(|g| g.id).collect()
    }

    /// The memory the groups take, about.
    pub fn memory(&self) -> Memory {
        let mut m = Memory::default();
        for group in self.log.all_groups() {
            let st = group.lock();
            let (index, cache) = st.entries.memory_bytes();
            m.groups += 1;
            m.entries += st.entries.slots.len() as u64;
            m.group_bytes += GROUP_BYTES;
            m.index_bytes += index;
            m.cache_bytes += cache;
        }
        m
    }

    /// The space the log takes, and what rewrites did to bound it.
    pub fn space(&self) -> Space {
        let r = &self.log.rewrites;
        let segment_bytes = self.log.wal.segment_bytes();
        let live_bytes = self.log.live_bytes();
        let bound = (2 * live_bytes).div_ceil(segment_bytes.max(1)) + 2;
        Space {
            segments: self.log.wal.segment_first_lsns().len(),
            segment_bytes,
            live_bytes,
            segments_bound: bound.max(self.log.config.rewrite_segments_min as u64),
            rewrites: r.runs.load(Ordering::Relaxed),
            groups_rewritten: r.groups_rewritten.load(Ordering::Relaxed),
            groups_restated: r.groups_restated.load(Ordering::Relaxed),
            entries_copied: r.entries_copied.load(Ordering::Relaxed),
            bytes_copied: r.bytes_copied.load(Ordering::Relaxed),
        }
    }

    /// The log underneath (its statistics and LSNs).
    pub fn wal(&self) -> &Wal {
        &self.log.wal
    }

    /// Closes the log now, for every group: their stores and readers fail
    /// from then on. It waits for the disk: from async code call it on a
    /// blocking thread, or drop everything instead (the log then closes on
    /// a thread of its own once its last store, reader and `MultiLog` are
    /// gone).
    pub fn close(self) -> io::Result<()> {
        self.log.wal.shutdown().map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Group;

    openraft::declare_raft_types!(Cfg: D = u64, R = u64);

    #[test]
    fn a_group_state_takes_what_group_bytes_says() {
        // The group, its Arc's counts, and its share of the map's nodes.
        let measured = size_of::<Group<Cfg>>() + 2 * size_of::<usize>() + 2 * size_of::<(u64, usize)>();
        assert!(measured <= GROUP_BYTES, "a group takes {measured} bytes, GROUP_BYTES says {GROUP_BYTES}");
        assert!(measured + 64 >= GROUP_BYTES, "GROUP_BYTES ({GROUP_BYTES}) overstates {measured} bytes");
    }
}
