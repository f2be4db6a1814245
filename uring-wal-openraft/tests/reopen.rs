//! What openraft's suite never does: close the store and open it again.
//! Each reopen must give back exactly the entries, vote, committed id and
//! purge point that were there, replaying truncation markers, overwritten
//! suffixes and purges.

mod support;

use openraft::storage::RaftLogStorage;
use support::{append, contents, entries, entry, log_id, open, open_with_cache, read_vote, values, vote};

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
    // The log's purge thread drops the segments, after purge returned.
    let t0 = std::time::Instant::now();
    while store.wal().first_lsn() == first_lsn {
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "old segments were never dropped");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
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

/// An entry larger than the log's `record_bytes_max` (64 KiB here) is
/// written as several records and read back whole, from the cache and from
/// the log, also after a reopen; one above `entry_bytes_max` is refused
/// before anything is written, and the store goes on.
#[tokio::test]
async fn an_entry_larger_than_a_record_is_split_and_one_above_the_entry_limit_is_refused() {
    use openraft::storage::IOFlushed;
    use uring_wal_openraft::{LogStore, StoreConfig};

    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::default().cache_bytes(0).entry_bytes_max(1 << 20);
    let open = || LogStore::<support::kv::Kv>::open_with(support::options(dir.path()), config.clone()).unwrap();
    let mut store = open();
    append(&mut store, entries(1..=2, 1)).await;
    let big = format!("3{}", "b".repeat(300 << 10));
    append(&mut store, [entry(1, 3, &big)]).await;
    // LSN 1 is the format record, 2 and 3 the first two entries.
    let parts = store.wal().last_lsn() - 3;
    assert!(parts >= 5, "300 KiB in records of 64 KiB: {parts} records");
    let huge = entry(1, 4, &"h".repeat(2 << 20));
    let err = store.append([huge], IOFlushed::noop()).await.unwrap_err();
    assert!(err.to_string().contains("entry_bytes_max"), "{err}");
    append(&mut store, entries(4..=4, 1)).await;
    let expect = |v: Vec<(u64, u64, String)>| {
        assert_eq!(v.len(), 4);
        assert_eq!(v[2], (1, 3, big.clone()), "the split entry, whole");
        assert_eq!(v[3].1, 4);
    };
    expect(contents(&mut store).await);
    store.close().unwrap();
    let mut store = open();
    expect(contents(&mut store).await);
    store.close().unwrap();
}

/// A log written by another store format, or for another openraft
/// version, is refused with both named; a fresh log starts with the format
/// record.
#[tokio::test]
async fn a_log_of_another_format_is_refused_naming_both() {
    use uring_wal::{RecordType, Wal};
    use uring_wal_openraft::{StoreFormat, kinds};

    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    append(&mut store, entries(1..=2, 1)).await;
    let first = store.wal().read_from(0).unwrap().next().unwrap().unwrap();
    assert_eq!(first.kind, kinds::FORMAT, "the first record states the format");
    store.close().unwrap();

    // A log whose format record says another openraft.
    let other = tempfile::tempdir().unwrap();
    let wal = Wal::open(support::options(other.path())).unwrap();
    let format = StoreFormat { openraft: "0.9.21".into(), ..StoreFormat::current() };
    let mut payload = vec![0u8];
    payload.extend(postcard::to_stdvec(&format).unwrap());
    wal.append(kinds::FORMAT, &payload).unwrap();
    wal.close().unwrap();
    let err = LogStoreKv::open(support::options(other.path())).unwrap_err().to_string();
    assert!(err.contains("0.9.21") && err.contains(uring_wal_openraft::OPENRAFT_VERSION), "{err}");

    // A log with records and no format record at all.
    let bare = tempfile::tempdir().unwrap();
    let wal = Wal::open(support::options(bare.path())).unwrap();
    wal.append(RecordType::Application(1), b"\0garbage").unwrap();
    wal.close().unwrap();
    let err = LogStoreKv::open(support::options(bare.path())).unwrap_err().to_string();
    assert!(err.contains("no format record"), "{err}");
}

/// A log of the previous store format opens, and gets this build's format
/// record before anything else is written; one of a newer format is
/// refused.
#[tokio::test]
async fn a_log_of_the_previous_format_is_read_and_marked_with_the_current_one() {
    use uring_wal::Wal;
    use uring_wal_openraft::{STORE_FORMAT_READ_MIN, STORE_FORMAT_VERSION, StoreFormat, kinds};

    let format_record = |version: u32| {
        let mut payload = vec![0u8];
        payload.extend(postcard::to_stdvec(&StoreFormat { version, ..StoreFormat::current() }).unwrap());
        payload
    };
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(support::options(dir.path())).unwrap();
    wal.append(kinds::FORMAT, &format_record(STORE_FORMAT_READ_MIN)).unwrap();
    wal.close().unwrap();
    let mut store = open(dir.path());
    let last = store.wal().read_from(2).unwrap().next().unwrap().unwrap();
    let mut current = vec![0u8];
    current.extend(postcard::to_stdvec(&StoreFormat::current()).unwrap());
    assert_eq!((last.lsn, last.kind, &last.payload[..]), (2, kinds::FORMAT, &current[..]));
    append(&mut store, entries(1..=2, 1)).await;
    store.close().unwrap();
    assert_eq!(contents(&mut open(dir.path())).await, values(1..=2, 1));

    let newer = tempfile::tempdir().unwrap();
    let wal = Wal::open(support::options(newer.path())).unwrap();
    wal.append(kinds::FORMAT, &format_record(STORE_FORMAT_VERSION + 1)).unwrap();
    wal.close().unwrap();
    let err = LogStoreKv::open(support::options(newer.path())).unwrap_err().to_string();
    assert!(err.contains(&format!("store format {}", STORE_FORMAT_VERSION + 1)), "{err}");
}

type LogStoreKv = uring_wal_openraft::LogStore<support::kv::Kv>;
