//! A store whose disk stops answering never stalls the async runtime it
//! runs on, on the real kernel (the FUSE file system of the library's
//! tests holds a segment `fdatasync` until the test lets it go).
//!
//! A runtime of two workers runs what a Raft node does to its store: a task
//! appending entries without awaiting their callbacks (as RaftCore does),
//! a task reading the vote and an entry (as replication does), and a task
//! ticking a 10 ms timer (heartbeats and election timers). Once the sync
//! stalls, appends fill the log's queue and then fail when `io_timeout`
//! poisons the log; all along, the timer must keep ticking.

#[path = "../../tests/fusefs/mod.rs"]
mod fusefs;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fusefs::{Faults, FsOptions};
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
use support::{entry, vote};
use uring_wal::Options;
use uring_wal_openraft::LogStore;

/// How late a 10 ms tick may come while the disk stalls before the test
/// calls the runtime blocked. Generous for a shared 2-vCPU machine; a
/// blocked worker shows as seconds.
const TICK_LATE_MAX: Duration = Duration::from_millis(100);

#[test]
fn a_stalled_disk_never_stops_the_runtime() {
    for queue in [8, 4096] {
        stalled(queue);
    }
}

fn stalled(queue_requests_max: usize) {
    let Some(mount) = fusefs::mount_or_skip(FsOptions { threads: 4, ..FsOptions::default() }) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let o = Options::new(mount.path().join("raft"))
        .segment_bytes(1 << 20)
        .queue_requests_max(queue_requests_max)
        .io_timeout(Duration::from_secs(3));
    let mut store: LogStore<support::kv::Kv> = LogStore::open(o).unwrap();
    let fs = mount.fs.clone();
    let (late_max, appended, failed) = rt.block_on(async move {
        store.save_vote(&vote(1)).await.unwrap();
        store.append([entry(1, 1, "first")], IOFlushed::noop()).await.unwrap();
        let mut reader = store.get_log_reader().await;
        let stop = Arc::new(AtomicBool::new(false));
        // The timer: how late its ticks come.
        let late_us = Arc::new(AtomicU64::new(0));
        let ticker = tokio::spawn(support::tick_every_10ms(stop.clone(), late_us.clone()));
        let readers = {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    reader.read_vote().await.unwrap();
                    let _ = reader.try_get_log_entries(1..2).await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        // From the next segment sync on, the disk answers nothing.
        fs.set_faults(Faults { hang_fsync: Some(fs.stats().segment_fsyncs), ..Faults::default() });
        let appender = tokio::spawn(async move {
            let (mut appended, mut failed) = (0u64, false);
            let pad = "p".repeat(2000);
            for i in 2..100_000u64 {
                match store.append([entry(1, i, &pad)], IOFlushed::noop()).await {
                    Ok(()) => appended += 1,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            (appended, failed, store)
        });
        // io_timeout poisons the log after 3 s: watch twice that long.
        tokio::time::sleep(Duration::from_secs(6)).await;
        stop.store(true, Ordering::Relaxed);
        let (appended, failed, store) = appender.await.unwrap();
        ticker.await.unwrap();
        readers.await.unwrap();
        drop(store);
        (Duration::from_micros(late_us.load(Ordering::Relaxed)), appended, failed)
    });
    mount.fs.release();
    assert_eq!(mount.fs.stats().faults, 1, "queue {queue_requests_max}: the disk never stalled");
    assert!(failed, "queue {queue_requests_max}: appends went on over a stalled disk ({appended} taken)");
    eprintln!(
        "queue {queue_requests_max}: {appended} appends taken, then refused; the 10 ms timer was at most \
         {late_max:?} late"
    );
    assert!(
        late_max <= TICK_LATE_MAX,
        "queue {queue_requests_max}: a 10 ms timer was {late_max:?} late while the disk stalled: a worker was blocked"
    );
}
