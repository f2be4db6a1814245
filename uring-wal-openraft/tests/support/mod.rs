//! Test support: the key-value state machine, and stores in temporary
//! directories.

#![allow(dead_code)]

pub mod kv;
pub mod net;

use std::path::Path;

use uring_wal::Options;
use uring_wal_openraft::{LogStore, StoreConfig};

/// Small segments, so that purges drop whole segments in short tests.
pub fn options(dir: &Path) -> Options {
    Options::durable(dir).segment_bytes(256 << 10).record_bytes_max(64 << 10)
}

pub fn open(dir: &Path) -> LogStore<kv::Kv> {
    LogStore::open(options(dir)).expect("open the log store")
}

pub fn open_with_cache(dir: &Path, cache_bytes: usize) -> LogStore<kv::Kv> {
    LogStore::open_with(options(dir), StoreConfig::default().cache_bytes(cache_bytes)).expect("open the log store")
}

use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::vote::RaftLeaderIdExt;
use openraft::{RaftTypeConfig, Vote};

pub type Entry = <kv::Kv as RaftTypeConfig>::Entry;
pub type VoteT = openraft::type_config::alias::VoteOf<kv::Kv>;

/// The log id of `index` written by node 1's leader of `term`.
pub fn log_id(term: u64, index: u64) -> kv::LogId {
    kv::LogId::new(<kv::Kv as RaftTypeConfig>::LeaderId::new_committed(term, 1), index)
}

/// An entry setting `k<index>` to `value`.
pub fn entry(term: u64, index: u64, value: &str) -> Entry {
    Entry::new_normal(log_id(term, index), kv::Set { key: format!("k{index}"), value: value.to_owned() })
}

/// Entries `range` of `term`, each naming its index and term.
pub fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(term, i, &format!("v{i}t{term}"))).collect()
}

/// What [`contents`] returns for [`entries`] of `range` and `term`.
pub fn values(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<(u64, u64, String)> {
    range.map(|i| (term, i, format!("v{i}t{term}"))).collect()
}

pub fn vote(term: u64) -> VoteT {
    Vote::new(term, 1)
}

/// Appends and waits for the callback.
pub async fn append(store: &mut LogStore<kv::Kv>, entries: impl IntoIterator<Item = Entry>) {
    store.blocking_append(entries.into_iter().collect::<Vec<_>>()).await.expect("append");
}

/// Every entry of the store, as (term, index, value).
pub async fn contents(store: &mut LogStore<kv::Kv>) -> Vec<(u64, u64, String)> {
    let mut reader = store.get_log_reader().await;
    let entries = reader.try_get_log_entries(..).await.expect("read entries");
    entries
        .into_iter()
        .map(|e| {
            let id = e.log_id();
            let value = match e.payload {
                openraft::EntryPayload::Normal(set) => set.value,
                other => format!("{other:?}"),
            };
            (id.leader_id.term, id.index, value)
        })
        .collect()
}

/// Opens right after a kill: the open waits while the dead process's last
/// writes drain (`Options::lock_wait`).
pub fn reopen_after_kill(dir: &Path) -> LogStore<kv::Kv> {
    LogStore::open(options(dir)).unwrap_or_else(|e| panic!("reopen right after kill: {e}"))
}

/// The store's vote, as its readers see it.
pub async fn read_vote(store: &mut LogStore<kv::Kv>) -> Option<VoteT> {
    store.get_log_reader().await.read_vote().await.expect("read the vote")
}

/// A 10 ms timer on the runtime until `stop`: records in `late_us` how late
/// its latest tick came (a worker blocked on the disk shows as seconds).
pub async fn tick_every_10ms(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    late_us: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let mut due = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        due += Duration::from_millis(10);
        tokio::time::sleep_until(due.into()).await;
        let late = Instant::now().saturating_duration_since(due);
        late_us.fetch_max(late.as_micros() as u64, Ordering::Relaxed);
        due = Instant::now().max(due);
    }
}
