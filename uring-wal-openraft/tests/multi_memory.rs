//! The memory of 10,000 idle groups on one log, as `MultiLog::memory`
//! reports it and as the process's resident memory grows. Alone in its test
//! binary, so that no other test's allocations count.

mod support;

use futures_util::future::join_all;
use openraft::storage::RaftLogStorage;
use support::kv::Kv;
use support::{append, entry, log_id, vote};
use uring_wal_openraft::{LogStore, MultiLog, StoreConfig};

const GROUPS: u64 = 10_000;

/// What the docs state for an idle group holding its vote, committed id
/// and two entries: at most 1 KiB.
const IDLE_GROUP_BYTES_MAX: usize = 1024;

/// Resident memory of this process, in bytes.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_groups_take_less_than_a_kib_each() {
    let dir = tempfile::tempdir().unwrap();
    let multi: MultiLog<Kv> = MultiLog::open_with(support::options(dir.path()), StoreConfig::default()).unwrap();
    let before = rss_bytes();
    let mut stores: Vec<LogStore<Kv>> = Vec::with_capacity(GROUPS as usize);
    for chunk in (0..GROUPS).collect::<Vec<_>>().chunks(500) {
        let made = join_all(chunk.iter().map(|&group| {
            let multi = multi.clone();
            async move {
                let mut store = multi.group(group).unwrap();
                store.save_vote(&vote(1)).await.unwrap();
                append(&mut store, [entry(1, 1, "a"), entry(1, 2, "b")]).await;
                store.save_committed(Some(log_id(1, 2))).await.unwrap();
                store
            }
        }))
        .await;
        stores.extend(made);
    }
    let memory = multi.memory();
    let grown = rss_bytes().saturating_sub(before);
    eprintln!("{memory}; resident memory grew by {:.1} MiB", grown as f64 / f64::from(1 << 20));
    assert_eq!((memory.groups, memory.entries), (GROUPS as usize, 2 * GROUPS));
    let per_group = memory.total_bytes() / GROUPS as usize;
    assert!(per_group <= IDLE_GROUP_BYTES_MAX, "{per_group} bytes per idle group");
    // The report does not understate: the process grew by little more
    // (the allocator's own rounding, the stores, the log's queues).
    assert!(
        grown <= 2 * memory.total_bytes() + (16 << 20),
        "resident memory grew by {grown} bytes, the report says {}",
        memory.total_bytes()
    );
    drop(stores);
    multi.close().unwrap();
}
