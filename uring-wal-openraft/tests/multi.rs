//! Many Raft groups on one log (`MultiLog`): openraft's suite for a group
//! among others, each group's state kept apart and across reopen, one store
//! per group, removal, and the space an idle group may hold.

mod support;

use std::path::Path;

use openraft::StorageError;
use openraft::storage::RaftLogStorage;
use openraft::testing::log::{StoreBuilder, Suite};
use support::kv::{Kv, KvStateMachine};
use support::{append, contents, entries, entry, log_id, read_vote, values, vote};
use tempfile::TempDir;
use uring_wal_openraft::{LogStore, MultiLog, StoreConfig};

fn open_multi(dir: &Path, config: StoreConfig) -> MultiLog<Kv> {
    MultiLog::open_with(support::options(dir), config).expect("open the shared log")
}

/// Entries of `group`: values that name it.
fn group_entries(group: u64, range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<support::Entry> {
    range.map(|i| entry(term, i, &format!("g{group}-{i}"))).collect()
}

fn group_values(group: u64, range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<(u64, u64, String)> {
    range.map(|i| (term, i, format!("g{group}-{i}"))).collect()
}

/// The suite's store is group 9 of a log where groups 1 and 2 hold entries,
/// votes and purge points of their own, and stay open throughout.
struct Builder {
    cache_bytes: usize,
}

impl StoreBuilder<Kv, LogStore<Kv>, KvStateMachine, (TempDir, Vec<LogStore<Kv>>)> for Builder {
    async fn build(&self) -> Result<((TempDir, Vec<LogStore<Kv>>), LogStore<Kv>, KvStateMachine), StorageError<Kv>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let multi = open_multi(dir.path(), StoreConfig::default().cache_bytes(self.cache_bytes));
        let mut others = Vec::new();
        for group in [1, 2] {
            let mut store = multi.group(group).expect("a group");
            store.save_vote(&vote(7)).await.expect("vote");
            append(&mut store, group_entries(group, 1..=20, 7)).await;
            store.purge(log_id(7, 5)).await.expect("purge");
            others.push(store);
        }
        let store = multi.group(9).expect("the suite's group");
        Ok(((dir, others), store, KvStateMachine::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_on_a_group_among_others() -> Result<(), StorageError<Kv>> {
    Suite::test_all(Builder { cache_bytes: 64 << 20 }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_on_a_group_among_others_reading_back_from_the_log() -> Result<(), StorageError<Kv>> {
    Suite::test_all(Builder { cache_bytes: 0 }).await
}

#[tokio::test]
async fn each_group_keeps_its_own_state_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let multi = open_multi(dir.path(), StoreConfig::default());
    for group in 1..=3u64 {
        let mut store = multi.group(group).unwrap();
        store.save_vote(&vote(group)).await.unwrap();
        append(&mut store, group_entries(group, 1..=(10 * group), 1)).await;
        store.truncate_after(Some(log_id(1, 8 * group))).await.unwrap();
        store.save_committed(Some(log_id(1, 2 * group))).await.unwrap();
        store.purge(log_id(1, group)).await.unwrap();
    }
    assert_eq!(multi.groups(), vec![1, 2, 3]);
    multi.close().unwrap();

    let multi = open_multi(dir.path(), StoreConfig::default());
    assert_eq!(multi.groups(), vec![1, 2, 3]);
    for group in 1..=3u64 {
        let mut store = multi.group(group).unwrap();
        assert_eq!(contents(&mut store).await, group_values(group, group + 1..=8 * group, 1), "group {group}");
        assert_eq!(read_vote(&mut store).await, Some(vote(group)));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 2 * group)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, group)));
    }
    // A group the log never held starts empty.
    let mut fresh = multi.group(4).unwrap();
    assert!(contents(&mut fresh).await.is_empty());
    assert_eq!(read_vote(&mut fresh).await, None);
    multi.close().unwrap();
}

#[tokio::test]
async fn one_store_per_group_and_a_shared_log_is_not_a_single_store() {
    let dir = tempfile::tempdir().unwrap();
    let multi = open_multi(dir.path(), StoreConfig::default());
    let mut store = multi.group(5).unwrap();
    let err = multi.group(5).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
    append(&mut store, group_entries(5, 1..=3, 1)).await;
    drop(store);
    let mut again = multi.group(5).unwrap();
    assert_eq!(contents(&mut again).await, group_values(5, 1..=3, 1));
    let err = multi.remove_group(5).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy, "removal while a store is open: {err}");
    drop(again);
    multi.close().unwrap();
    let err = LogStore::<Kv>::open(support::options(dir.path())).unwrap_err().to_string();
    assert!(err.contains("MultiLog") && err.contains('5'), "{err}");
}

#[tokio::test]
async fn a_removed_group_is_gone_across_reopen_and_its_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::default().rewrite_segments_min(0);
    let multi = open_multi(dir.path(), config.clone());
    // Group 1 fills a few segments (256 KiB each); group 2 writes after it.
    let mut big = multi.group(1).unwrap();
    big.save_vote(&vote(1)).await.unwrap();
    let pad = "x".repeat(4000);
    append(&mut big, (1..=200).map(|i| entry(1, i, &pad))).await;
    let mut small = multi.group(2).unwrap();
    small.save_vote(&vote(1)).await.unwrap();
    append(&mut small, group_entries(2, 1..=3, 1)).await;
    let before = multi.wal().segment_first_lsns().len();
    assert!(before >= 3, "group 1 spans {before} segments");
    drop(big);
    assert!(multi.remove_group(1).await.unwrap());
    assert!(!multi.remove_group(1).await.unwrap(), "removing it again finds nothing");
    assert_eq!(multi.groups(), vec![2]);
    // The purge thread drops the segments only group 1 needed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while multi.wal().segment_first_lsns().len() >= before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let after = multi.wal().segment_first_lsns().len();
    assert!(after < before, "segments: {before} before the removal, {after} after");
    drop(small);
    multi.close().unwrap();

    let multi = open_multi(dir.path(), config);
    assert_eq!(multi.groups(), vec![2]);
    let mut small = multi.group(2).unwrap();
    assert_eq!(contents(&mut small).await, group_values(2, 1..=3, 1));
    let mut again = multi.group(1).unwrap();
    assert!(contents(&mut again).await.is_empty(), "a group made again after its removal starts empty");
    assert_eq!(read_vote(&mut again).await, None);
    drop((small, again));
    multi.close().unwrap();
}

/// A group's purge point is a record of its own: once its entries, vote and
/// committed id all lie after it, other groups' purges must still keep it,
/// or the group reopens with its entries and no purge point (a log that
/// seems to start past its beginning).
#[tokio::test]
async fn a_groups_purge_point_stays_while_other_groups_free_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::default().rewrite_segments_min(0);
    let multi = open_multi(dir.path(), config.clone());
    let mut a = multi.group(1).unwrap();
    a.save_vote(&vote(1)).await.unwrap();
    append(&mut a, group_entries(1, 1..=10, 1)).await;
    a.purge(log_id(1, 10)).await.unwrap();
    // Group 2 fills the segment of that purge record and more; then
    // everything else of group 1 moves to a later segment.
    let mut b = multi.group(2).unwrap();
    let pad = "y".repeat(4000);
    append(&mut b, (1..=100).map(|i| entry(1, i, &pad))).await;
    a.save_vote(&vote(2)).await.unwrap();
    a.save_committed(Some(log_id(2, 11))).await.unwrap();
    append(&mut a, group_entries(1, 11..=12, 2)).await;
    // Group 2 writes a few segments more and purges, freeing what it can.
    for round in 1..5u64 {
        let first = round * 100 + 1;
        append(&mut b, (first..first + 100).map(|i| entry(1, i, &pad))).await;
        b.purge(log_id(1, first + 98)).await.unwrap();
    }
    drop((a, b));
    multi.close().unwrap();

    let multi = open_multi(dir.path(), config);
    let mut a = multi.group(1).unwrap();
    let state = a.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 10)), "group 1's purge point");
    assert_eq!(contents(&mut a).await, group_values(1, 11..=12, 2));
    drop(a);
    multi.close().unwrap();
}

/// Segments of 256 KiB; groups 1-3 write and purge as Raft groups do, group
/// 0 wrote once and then nothing. Returns the most segments the log held
/// over the bound it stated, and how many rewrites it made.
async fn idle_group_among_writers(dir: &Path, config: StoreConfig) -> (i64, u64) {
    let multi = open_multi(dir, config);
    let mut idle = multi.group(0).unwrap();
    idle.save_vote(&vote(1)).await.unwrap();
    append(&mut idle, group_entries(0, 1..=20, 1)).await;
    idle.save_committed(Some(log_id(1, 20))).await.unwrap();
    let mut writers: Vec<LogStore<Kv>> = (1..=3).map(|g| multi.group(g).unwrap()).collect();
    let pad = "w".repeat(1000);
    let mut over_max = i64::MIN;
    for index in 1..=3000u64 {
        for w in &mut writers {
            append(w, [entry(1, index, &pad)]).await;
            if index % 50 == 0 {
                w.save_committed(Some(log_id(1, index))).await.unwrap();
                w.purge(log_id(1, index - 20)).await.unwrap();
            }
        }
        if index % 25 == 0 {
            let space = multi.space();
            over_max = over_max.max(space.segments as i64 - space.segments_bound as i64);
        }
    }
    let rewrites = multi.space().rewrites;
    eprintln!("{}", multi.space());
    drop((idle, writers));
    multi.close().unwrap();

    // Everything is still there.
    let multi = open_multi(dir, StoreConfig::default());
    let mut idle = multi.group(0).unwrap();
    assert_eq!(contents(&mut idle).await, group_values(0, 1..=20, 1));
    assert_eq!(read_vote(&mut idle).await, Some(vote(1)));
    assert_eq!(idle.read_committed().await.unwrap(), Some(log_id(1, 20)));
    let mut w = multi.group(2).unwrap();
    assert_eq!(contents(&mut w).await.first().map(|e| e.1), Some(2981));
    drop((idle, w));
    multi.close().unwrap();
    (over_max, rewrites)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_group_does_not_hold_the_log_past_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (over, rewrites) = idle_group_among_writers(dir.path(), StoreConfig::default()).await;
    // A rewrite starts each quarter segment appended and runs alongside
    // the writers: a segment or two more while it does.
    assert!(over <= 2, "the log held {over} segments more than its bound");
    assert!(rewrites > 0);

    // Without rewrites, the idle group holds every segment after its own.
    let dir = tempfile::tempdir().unwrap();
    let (over, rewrites) = idle_group_among_writers(dir.path(), StoreConfig::default().rewrite_segments_min(0)).await;
    assert_eq!(rewrites, 0);
    assert!(over > 10, "without rewrites the log held only {over} segments over the bound");
}

#[tokio::test]
async fn stores_of_a_single_group_and_of_group_zero_are_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut single = support::open(dir.path());
    append(&mut single, entries(1..=3, 1)).await;
    single.close().unwrap();
    let multi = open_multi(dir.path(), StoreConfig::default());
    assert_eq!(multi.groups(), vec![0]);
    let mut zero = multi.group(0).unwrap();
    assert_eq!(contents(&mut zero).await, values(1..=3, 1));
    drop(zero);
    multi.close().unwrap();
}
