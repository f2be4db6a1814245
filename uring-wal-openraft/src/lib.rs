//! openraft's log storage on a uring-wal write-ahead log: one log per Raft
//! group, or one log shared by many groups.
//!
//! [`LogStore`] implements openraft's [`RaftLogStorage`](openraft::storage::RaftLogStorage) and its
//! [`LogReader`] implements [`RaftLogReader`](openraft::storage::RaftLogReader), for any type config whose
//! entries, votes and log ids are serde types (openraft's `serde` feature).
//!
//! # Design
//!
//! Everything a Raft log stores goes into one append-only uring-wal log, in
//! the order it was asked for (so votes and entries are never reordered, as
//! openraft requires): entries, truncation markers, votes, committed log ids
//! and purge points, each as a record of its own [`RecordType::Application`]
//! kind ([`kinds`]), after a format record ([`StoreFormat`]). Opening
//! replays the log from its first record:
//!
//! - an entry at index `i` that is not past the last entry drops every entry
//!   at `i` and after (a new leader overwriting a suffix), then is appended;
//! - a truncation marker drops every entry from its index on;
//! - a purge record drops every entry up to its log id and is the new purge
//!   point;
//! - the last vote and committed records win.
//!
//! Raft indexes are not LSNs: the store keeps, for each live entry, its log
//! id and where its records lie ([`LogStore`] documents the memory this
//! costs), and a cache of the newest entries bounded in bytes. Entries that
//! fell out of the cache are read back from the log, on a blocking thread.
//!
//! # Never blocking the runtime
//!
//! `append` queues its entries as one batch (awaiting room if the log's
//! queue is full, never blocking the thread) and returns once they are in
//! the index and the cache, so readers see them at once; the log's I/O
//! thread fires each callback once its entries are durable, in log order.
//! `save_vote`, `save_committed`, `truncate_after` and `purge` await their
//! records' durability; the index changes only then, so that no purge ever
//! drops a record that a newer, not yet durable one supersedes. `purge`
//! leaves dropping segments (renames, deletes, a directory sync) to the
//! log's purge thread. A dropped store closes its log on a thread of its
//! own, once the log's last store, reader and [`MultiLog`] are gone.
//!
//! # Many groups (Multi-Raft)
//!
//! [`MultiLog`] shares one log, one I/O thread and each sync among many
//! Raft groups, with a [`LogStore`] per group; every record carries its
//! group. It creates and removes groups at run time, and rewrites groups
//! that hold old segments forward so that the log's size stays bounded
//! (its documentation states the bound, and the memory per group).
//! [`LogStore::open`] is a log of one group (group 0).
//!
//! # Large entries
//!
//! An entry larger than a record (the log's `Options::record_bytes_max`)
//! is written as several records in one request, and read back whole.
//! Entries above [`StoreConfig::entry_bytes_max`] (64 MiB by default) are
//! refused by `append`, which openraft treats as fatal: check proposals
//! against it before `client_write`.
//!
//! # Format
//!
//! The first record of a log (and the first after a purge that dropped it)
//! states the store's format version and the openraft version the entries
//! are encoded for; a log written by another is refused with an error that
//! names both. Format 2 (removed and rewritten groups) reads logs of format
//! 1 and marks them with its own format record at open.
//!
//! [`RecordType::Application`]: uring_wal::RecordType::Application

#![deny(missing_docs)]

mod log;
mod multi;
mod records;
mod rewrite;
mod state;
mod store;

use std::io;
use std::sync::Arc;

use openraft::RaftTypeConfig;
use uring_wal::Options;
use uring_wal::storage::{OsStorage, Storage};

pub use multi::{GROUP_BYTES, Memory, MultiLog, Space};
pub use records::{OPENRAFT_VERSION, STORE_FORMAT_READ_MIN, STORE_FORMAT_VERSION, StoreFormat, kinds};
pub use store::{LogReader, LogStore};

/// Default size of the entry cache: 64 MiB of encoded entries.
pub const CACHE_BYTES_DEFAULT: usize = 64 << 20;

/// Default largest entry: 64 MiB encoded.
pub const ENTRY_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// Default of [`StoreConfig::rewrite_segments_min`].
pub const REWRITE_SEGMENTS_MIN_DEFAULT: usize = 4;

/// Settings of a [`LogStore`] beyond those of its log.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Encoded bytes of the newest entries kept in memory, shared evenly by
    /// the log's groups. Entries older than that are read back from the
    /// log. Entries not yet acknowledged by the log are always kept,
    /// whatever this says.
    pub cache_bytes: usize,
    /// The largest entry `append` takes, encoded: larger ones are refused
    /// (fatal to openraft), and replay refuses an entry whose parts add up
    /// to more. An entry larger than a record is split across records.
    pub entry_bytes_max: usize,
    /// Segments the log may hold before old ones are freed by rewriting the
    /// groups that still need them (see [`MultiLog`], "Space"); 0: never
    /// rewrite (each group's purges alone free segments).
    pub rewrite_segments_min: usize,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            cache_bytes: CACHE_BYTES_DEFAULT,
            entry_bytes_max: ENTRY_BYTES_MAX_DEFAULT,
            rewrite_segments_min: REWRITE_SEGMENTS_MIN_DEFAULT,
        }
    }
}

impl StoreConfig {
    /// Sets [`StoreConfig::cache_bytes`].
    #[must_use]
    pub fn cache_bytes(mut self, bytes: usize) -> StoreConfig {
        self.cache_bytes = bytes;
        self
    }

    /// Sets [`StoreConfig::entry_bytes_max`].
    #[must_use]
    pub fn entry_bytes_max(mut self, bytes: usize) -> StoreConfig {
        self.entry_bytes_max = bytes;
        self
    }

    /// Sets [`StoreConfig::rewrite_segments_min`].
    #[must_use]
    pub fn rewrite_segments_min(mut self, segments: usize) -> StoreConfig {
        self.rewrite_segments_min = segments;
        self
    }
}

/// What the store needs of a type config: entries it can clone out of its
/// cache. (Serde for entries, votes and log ids comes with openraft's
/// `serde` feature, which this crate turns on.)
pub trait Config: RaftTypeConfig<Entry: Clone> {}

impl<C> Config for C where C: RaftTypeConfig<Entry: Clone> {}

impl<C: Config> LogStore<C> {
    /// Opens (creating or recovering) the log described by `options` and
    /// replays it.
    ///
    /// `Durability::None` is refused: its appends never become durable
    /// before a close, so no callback would fire. Opening reads the whole
    /// log: call it where blocking is fine (before the runtime, or on a
    /// blocking thread).
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
        let log = log::Log::open(options, storage, config)?;
        let others: Vec<u64> =
            log.all_groups().iter().map(|g| g.id).filter(|&id| id != records::SINGLE_GROUP).take(4).collect();
        if !others.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} holds the records of several Raft groups (such as {others:?}): open it with MultiLog",
                    log.wal.dir().display()
                ),
            ));
        }
        let group = log.take_group(records::SINGLE_GROUP)?;
        Ok(LogStore { log, group })
    }

    /// The largest entry `append` takes, encoded
    /// ([`StoreConfig::entry_bytes_max`]): refuse larger proposals before
    /// `client_write`, as openraft stops on a storage error.
    pub fn entry_bytes_max(&self) -> usize {
        self.log.config.entry_bytes_max
    }
}
