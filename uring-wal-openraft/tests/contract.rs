//! openraft's contract for a log store, where its own Suite does not look:
//! the committed id durable before `save_committed` returns, callbacks in
//! the order of their appends (an empty append too), a failed purge that
//! changes nothing, and a close that closes with a reader alive.

mod support;

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use support::kv::Kv;
use support::{append, entries, log_id};
use uring_wal::Durability;
use uring_wal_openraft::LogStore;

fn periodic(dir: &std::path::Path, interval_ms: u64) -> LogStore<Kv> {
    let o = support::options(dir).durability(Durability::Periodic { interval: Duration::from_millis(interval_ms) });
    LogStore::open(o).unwrap()
}

#[tokio::test]
async fn save_committed_returns_once_its_record_is_durable() {
    // Under Periodic a record is acknowledged before it is synced: the
    // committed id must wait for the sync, as openraft applies up to it
    // right after.
    let dir = tempfile::tempdir().unwrap();
    let mut store = periodic(dir.path(), 300);
    append(&mut store, entries(1..=3, 1)).await;
    let started = Instant::now();
    store.save_committed(Some(log_id(1, 3))).await.unwrap();
    // The committed record is the last one queued.
    let lsn = store.wal().next_lsn() - 1;
    assert!(
        store.wal().durable_lsn() >= lsn,
        "save_committed returned after {:?} with LSN {lsn} not durable (durable: {})",
        started.elapsed(),
        store.wal().durable_lsn()
    );
    store.close().unwrap();
}

#[tokio::test]
async fn an_empty_append_is_answered_after_the_appends_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = periodic(dir.path(), 300);
    let (first_tx, mut first_rx) = Kv::oneshot();
    store.append(entries(1..=2, 1), IOFlushed::signal(first_tx)).await.unwrap();
    let (empty_tx, empty_rx) = Kv::oneshot();
    store.append(Vec::new(), IOFlushed::signal(empty_tx)).await.unwrap();
    empty_rx.await.unwrap().unwrap();
    // By the time the empty append is answered, the one before it is.
    let first = (&mut first_rx).now_or_never();
    assert!(matches!(first, Some(Ok(Ok(())))), "the empty append was answered before the append before it");
    store.close().unwrap();
}

#[tokio::test]
async fn a_purge_that_fails_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = support::open(dir.path());
    append(&mut store, entries(1..=10, 1)).await;
    let before = store.get_log_state().await.unwrap();
    let cached = store.cached();
    // The log is closed under the store: the purge's records cannot be
    // queued.
    store.wal().shutdown().unwrap();
    assert!(store.purge(log_id(1, 5)).await.is_err());
    let after = store.get_log_state().await.unwrap();
    assert_eq!(
        (after.last_purged_log_id, after.last_log_id),
        (before.last_purged_log_id, before.last_log_id),
        "the failed purge changed the store's state"
    );
    assert_eq!(store.cached(), cached, "the failed purge dropped entries from memory");
}

#[tokio::test]
async fn close_closes_with_a_reader_alive() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = support::open_with_cache(dir.path(), 0);
    append(&mut store, entries(1..=5, 1)).await;
    let mut reader = store.get_log_reader().await;
    store.close().unwrap();
    // Closed: the directory opens again at once, in this very process.
    let mut again = support::open(dir.path());
    assert_eq!(support::contents(&mut again).await.len(), 5);
    // The old reader fails instead of reading a log that is closed.
    assert!(reader.try_get_log_entries(1..=5).await.is_err(), "a reader of a closed store still read");
    again.close().unwrap();
}
