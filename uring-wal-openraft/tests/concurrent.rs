//! Readers running while the store appends, truncates and purges: every
//! read is a run of consecutive entries, each the one that was at its index
//! at some moment (its value names its index and term), never a mix with a
//! hole. The cache is tiny, so most reads go back to the log and race with
//! purges dropping its segments.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use openraft::storage::{RaftLogReader, RaftLogStorage};
use support::{append, entry, log_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_have_no_hole_while_the_log_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = support::open_with_cache(dir.path(), 8 << 10);
    let stop = Arc::new(AtomicBool::new(false));
    let pad = "r".repeat(2000);
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let stop = stop.clone();
            let reader = futures_util::FutureExt::now_or_never(store.get_log_reader()).unwrap();
            // Runtime tasks, as openraft's replication tasks are: a read
            // that misses the cache awaits a blocking thread.
            tokio::spawn(async move {
                let mut reader = reader;
                let (mut reads, mut entries) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let start = if r == 0 { 0 } else { reads % 500 };
                    let got = reader.try_get_log_entries(start..).await.expect("read entries");
                    for (k, e) in got.iter().enumerate() {
                        assert_eq!(e.log_id.index, got[0].log_id.index + k as u64, "a hole in one read");
                        let openraft::EntryPayload::Normal(set) = &e.payload else { panic!("a normal entry") };
                        let want = format!("{}@{}:", e.log_id.index, e.log_id.leader_id.term);
                        assert!(set.value.starts_with(&want), "entry {} holds {want}", e.log_id.index);
                    }
                    reads += 1;
                    entries += got.len() as u64;
                    tokio::task::yield_now().await;
                }
                (reads, entries)
            })
        })
        .collect();

    let mut next = 1u64;
    let mut purged = 0u64;
    for round in 1..=150u64 {
        let term = round;
        let batch: Vec<_> = (next..next + 8).map(|i| entry(term, i, &format!("{i}@{term}:{pad}"))).collect();
        append(&mut store, batch).await;
        next += 8;
        if round % 5 == 0 {
            // The new leader of the next term overwrites the last three.
            store.truncate_after(Some(log_id(term, next - 4))).await.unwrap();
            next -= 3;
        }
        if round % 7 == 0 && next > purged + 60 {
            purged = next - 40;
            store.purge(log_id(term, purged)).await.unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = (0, 0);
    for r in readers {
        let (reads, entries) = r.await.unwrap();
        total = (total.0 + reads, total.1 + entries);
    }
    assert!(total.0 > 10 && total.1 > 0, "the readers read: {total:?}");
    tokio::task::spawn_blocking(move || store.close()).await.unwrap().unwrap();
}
