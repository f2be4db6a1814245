//! What openraft's suite never does: close the store and open it again.
//! Each reopen must give back exactly the entries, vote, committed id and
//! purge point that were there, replaying truncation markers, overwritten
//! suffixes and purges.

mod support;

use openraft::storage::RaftLogStorage;
use support::{append, contents, entry, log_id, open, open_with_cache, read_vote, vote};

fn values(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<(u64, u64, String)> {
    range.map(|i| (term, i, format!("v{i}t{term}"))).collect()
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<support::Entry> {
    range.map(|i| entry(term, i, &format!("v{i}t{term}"))).collect()
}

#[tokio::test]
async fn reopen_keeps_entries_truncations_vote_committed_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.save_vote(&vote(1)).await.unwrap();
    append(&mut store, entries(1..=10, 1)).await;
    store.truncate_after(Some(log_id(1, 6))).await.unwrap();
    store.save_vote(&vote(2)).await.unwrap();
    // Indexes 7 and 8 again, from the new leader.
    append(&mut store, entries(7..=8, 2)).await;
    store.save_committed(Some(log_id(2, 7))).await.unwrap();
    store.purge(log_id(1, 3)).await.unwrap();
    store.close().unwrap();

    let mut store = open(dir.path());
    let state = store.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 3)), Some(log_id(2, 8))));
    let mut want = values(4..=6, 1);
    want.extend(values(7..=8, 2));
    assert_eq!(contents(&mut store).await, want);
    assert_eq!(read_vote(&mut store).await, Some(vote(2)));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 7)));

    // A truncation with nothing appended after it, then a reopen.
    store.truncate_after(Some(log_id(1, 5))).await.unwrap();
    store.close().unwrap();
    let mut store = open(dir.path());
    assert_eq!(contents(&mut store).await, values(4..=5, 1));
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 5)));

    // Purge past the last entry: nothing left, and the next index follows it.
    store.purge(log_id(1, 9)).await.unwrap();
    store.close().unwrap();
    let mut store = open(dir.path());
    let state = store.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 9)), Some(log_id(1, 9))));
    assert!(contents(&mut store).await.is_empty());
    append(&mut store, entries(10..=11, 3)).await;
    store.close().unwrap();
    let mut store = open(dir.path());
    assert_eq!(contents(&mut store).await, values(10..=11, 3));
    assert_eq!(read_vote(&mut store).await, Some(vote(2)));
    store.close().unwrap();
}

#[tokio::test]
async fn an_append_at_an_existing_index_overwrites_the_suffix_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    append(&mut store, entries(1..=5, 1)).await;
    // No truncate_after: the entry at 3 alone drops 3..=5.
    append(&mut store, entries(3..=3, 2)).await;
    assert_eq!(contents(&mut store).await, [values(1..=2, 1), values(3..=3, 2)].concat());
    store.close().unwrap();
    let mut store = open(dir.path());
    assert_eq!(contents(&mut store).await, [values(1..=2, 1), values(3..=3, 2)].concat());
    // Truncating everything, then reopening: no entry comes back.
    store.truncate_after(None).await.unwrap();
    store.close().unwrap();
    let mut store = open(dir.path());
    assert!(contents(&mut store).await.is_empty());
    assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
    store.close().unwrap();
}

/// A purge drops whole segments; the vote and committed id written before
/// them survive, and the entries left are read back from the log (the cache
/// holds almost nothing).
#[tokio::test]
async fn purge_drops_segments_but_not_the_vote_or_the_committed_id() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(4000);
    let mut store = open_with_cache(dir.path(), 16 << 10);
    store.save_vote(&vote(7)).await.unwrap();
    store.save_committed(Some(log_id(7, 1))).await.unwrap();
    for chunk in (1..=400u64).collect::<Vec<_>>().chunks(16) {
        append(&mut store, chunk.iter().map(|&i| entry(7, i, &format!("{i}{big}")))).await;
    }
    let first_lsn = store.wal().first_lsn();
    store.purge(log_id(7, 350)).await.unwrap();
    assert!(store.wal().first_lsn() > first_lsn, "old segments were dropped");
    assert!(store.cached().1 < 10, "the cache is bounded");
    store.close().unwrap();

    let mut store = open_with_cache(dir.path(), 16 << 10);
    assert_eq!(read_vote(&mut store).await, Some(vote(7)));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(7, 1)));
    let got = contents(&mut store).await;
    assert_eq!(got.iter().map(|e| e.1).collect::<Vec<_>>(), (351..=400).collect::<Vec<_>>());
    assert!(got.iter().all(|(t, i, v)| *t == 7 && *v == format!("{i}{big}")));
    let state = store.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(7, 350)), Some(log_id(7, 400))));
    store.close().unwrap();
}

/// Under `Periodic` an append is acknowledged before it is synced: the
/// callback waits for the sync. `None` never syncs while open: refused.
#[tokio::test]
async fn callbacks_wait_for_the_periodic_sync_and_none_is_refused() {
    use std::time::{Duration, Instant};
    use uring_wal::Durability;
    use uring_wal_openraft::LogStore;

    let dir = tempfile::tempdir().unwrap();
    let periodic = Durability::Periodic { interval: Duration::from_millis(200) };
    let mut store = LogStore::<support::kv::Kv>::open(support::options(dir.path()).durability(periodic)).unwrap();
    let started = Instant::now();
    append(&mut store, entries(1..=3, 1)).await;
    assert!(store.wal().durable_lsn() >= store.wal().last_lsn(), "durable when the callback fired");
    assert!(started.elapsed() < Duration::from_secs(5));
    store.close().unwrap();

    let none = support::options(dir.path()).durability(Durability::None);
    let err = LogStore::<support::kv::Kv>::open(none).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

/// An entry larger than the log's `record_bytes_max` is refused before
/// anything is written; the store goes on.
#[tokio::test]
async fn an_entry_above_record_bytes_max_is_refused_and_nothing_is_written() {
    use openraft::storage::IOFlushed;

    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    append(&mut store, entries(1..=2, 1)).await;
    let huge = entry(1, 3, &"h".repeat(100 << 10)); // record_bytes_max is 64 KiB here
    let err = store.append([huge], IOFlushed::noop()).await.unwrap_err();
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");
    append(&mut store, entries(3..=3, 1)).await;
    store.close().unwrap();
    let mut store = open(dir.path());
    assert_eq!(contents(&mut store).await, values(1..=3, 1));
    store.close().unwrap();
}
