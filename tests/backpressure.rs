//! Producers and a full queue, on the real kernel: the FUSE file system of
//! `tests/fusefs` holds the answer to one segment `fdatasync` (done, only
//! late), so the I/O thread, which issues it, cannot drain the queue until
//! the test lets it go.
//!
//! - `try_submit` fails at once with `QueueFull` and queues nothing;
//! - `submit_async` awaits room without blocking its runtime's thread (a
//!   timer on a one-thread runtime keeps ticking), and goes through once
//!   the queue drains;
//! - dropping a pending `submit_async` queues nothing.

mod common;
mod fusefs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fusefs::{Faults, FsOptions};
use uring_wal::{Error, Options, RecordType, Wal};

const QUEUE: usize = 4;
/// Large enough that the I/O thread's buffers (a few flushes of 1 MiB) fill
/// after a few dozen records.
static RECORD: [u8; 64 << 10] = [7; 64 << 10];

#[test]
fn a_full_queue_fails_try_submit_at_once_and_submit_async_awaits_room() {
    let Some(mount) = fusefs::mount_or_skip(FsOptions { threads: 4, ..FsOptions::default() }) else { return };
    let o = Options::new(mount.path().join("wal"))
        .segment_bytes(1 << 20)
        .queue_requests_max(QUEUE)
        .io_timeout(Duration::from_secs(10));
    let wal = Arc::new(Wal::open(o).unwrap());
    wal.append(RecordType::Put, b"before").unwrap();
    mount.fs.set_faults(Faults { hold_fsync: Some(mount.fs.stats().segment_fsyncs), ..Faults::default() });
    // The I/O thread is held in the next flush's fdatasync: the queue fills
    // and stays full.
    let mut tickets = vec![wal.submit(RecordType::Put, b"held").unwrap()];
    let t0 = Instant::now();
    let mut full_since: Option<Instant> = None;
    while full_since.is_none_or(|t| t.elapsed() < Duration::from_millis(100)) {
        match wal.try_submit(RecordType::Put, &RECORD) {
            Ok(t) => {
                tickets.push(t);
                full_since = None;
            }
            Err(Error::QueueFull { requests_max, .. }) => {
                assert_eq!(requests_max, QUEUE);
                full_since.get_or_insert_with(Instant::now);
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("try_submit: {e}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "the queue never stayed full ({} queued)", tickets.len());
    }
    let queued = wal.next_lsn();
    let started = Instant::now();
    let refused = wal.try_submit(RecordType::Put, b"refused");
    assert!(matches!(refused, Err(Error::QueueFull { .. })), "{:?}", refused.map(|_| ()));
    assert!(started.elapsed() < Duration::from_millis(50), "try_submit waited {:?}", started.elapsed());
    assert_eq!(wal.next_lsn(), queued, "a refused try_submit took an LSN");

    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let fs = mount.fs.clone();
    let (ticks, lsn) = rt.block_on(async {
        // Dropped while pending: nothing is queued.
        let dropped = tokio::time::timeout(Duration::from_millis(50), wal.submit_async(RecordType::Put, b"gone")).await;
        assert!(dropped.is_err(), "room appeared while the sync was held");
        let ticker = tokio::spawn(async {
            let mut ticks = 0u32;
            let mut every = tokio::time::interval(Duration::from_millis(10));
            for _ in 0..20 {
                every.tick().await;
                ticks += 1;
            }
            ticks
        });
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            fs.release();
        });
        let ticket = wal.submit_async(RecordType::Put, b"awaited").await.unwrap();
        let lsn = ticket.await.unwrap();
        releaser.await.unwrap();
        (ticker.await.unwrap(), lsn)
    });
    assert_eq!(ticks, 20, "the runtime's only thread was blocked");
    assert_eq!(lsn, queued, "the dropped submit_async took no LSN");
    for t in tickets {
        t.wait().unwrap();
    }
    assert_eq!(wal.last_lsn(), queued);
}

#[test]
fn behind_a_write_that_does_not_complete_the_log_writes_a_bounded_amount() {
    // Later flushes complete, but none is acknowledged before the held one:
    // the log must stop taking requests after a bounded number of them,
    // not write on (and remember each flush) until io_timeout.
    let Some(mount) = fusefs::mount_or_skip(FsOptions { threads: 4, ..FsOptions::default() }) else { return };
    let o = Options::new(mount.path().join("wal")).segment_bytes(16 << 20).io_timeout(Duration::from_secs(20));
    let wal = Wal::open(o).unwrap();
    wal.append(RecordType::Put, b"before").unwrap();
    mount.fs.set_faults(Faults { hang_write: Some(mount.fs.stats().data_writes), ..Faults::default() });
    let mut tickets = Vec::new();
    let t0 = Instant::now();
    let mut full_since: Option<Instant> = None;
    while full_since.is_none_or(|t| t.elapsed() < Duration::from_millis(200)) {
        match wal.try_submit(RecordType::Put, &RECORD[..4096]) {
            Ok(t) => {
                tickets.push(t);
                full_since = None;
            }
            Err(Error::QueueFull { .. }) => {
                full_since.get_or_insert_with(Instant::now);
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("try_submit: {e}"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{} records of 4 KiB taken behind a held write, and more still",
            tickets.len()
        );
    }
    // 256 flushes of at most 1 MiB, and a full queue (16 MiB), at most.
    let taken_bytes = tickets.len() * 4096;
    assert!(taken_bytes <= (256 << 20) + (16 << 20), "{} records taken", tickets.len());
    assert_eq!(wal.last_lsn(), 1, "nothing acknowledged past the held write");
    mount.fs.release();
    for t in tickets {
        t.wait().unwrap();
    }
    eprintln!("taken behind the held write: {} KiB", taken_bytes / 1024);
}
