//! A stalled device never hangs the log (rule 7), on the real kernel: the
//! in-process FUSE file system of `tests/fusefs` holds one request and
//! never answers it (a hung disk, NFS server or cloud volume) until the
//! test lets it go.
//!
//! Stalled: the `fdatasync` of a segment, a segment write, or the
//! preparation of the next segment (its `fallocate`, a zero-fill write or
//! its `fsync`). For each, on io_uring and on the threaded backend, with a
//! queue of 2 requests and the default one: records are acknowledged
//! first, then many producers submit until the queue is full and wait on
//! every ticket, while (where a segment can be retired) `truncate_before`
//! runs. Every producer, `truncate_before`, then `sync()` and `close()` must
//! return an error within `io_timeout` plus a margin of the stall, caught by
//! the test's own timer otherwise. The held request is let go at the end,
//! so no thread is left in the kernel.

mod common;
mod fusefs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tagged;
use fusefs::{Faults, FileOp, FsOptions};
use uring_wal::{Backend, Error, Options, RecordType, Wal};

const IO_TIMEOUT: Duration = Duration::from_millis(700);
/// Longest anything may take once the stall began before the test calls it
/// a hang: the timeout, the watchdog's look (a quarter of it), a margin.
const BOUND: Duration = Duration::from_millis(700 * 2 + 2000);
const RECORD_BYTES: usize = 3 * 1024;
const PRODUCERS: u64 = 16;

#[derive(Clone, Copy, Debug)]
enum Stall {
    /// The next `fdatasync` of a segment holding records.
    SegmentSync,
    /// The next write of records into a segment.
    SegmentWrite,
    /// One step of preparing segment 3, which starts when segment 2 is
    /// activated (so segment 1 can be retired meanwhile).
    Prepare(FileOp),
}

#[derive(Clone, Copy, Debug)]
struct Case {
    stall: Stall,
    backend: Backend,
    /// `None`: the default queue.
    queue_requests_max: Option<usize>,
}

/// What one producer saw: acknowledged records, and the first error.
type Produced = (u64, Option<Error>);

fn produce(wal: &Arc<Wal>, id: u64, submits: u64) -> Produced {
    let mut tickets = Vec::new();
    let mut error = None;
    for i in 0..submits {
        match wal.submit(RecordType::Put, &tagged((id << 32) | i, RECORD_BYTES)) {
            Ok(t) => tickets.push(t),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let mut acked = 0;
    for t in tickets {
        match t.wait() {
            Ok(_) => acked += 1,
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    (acked, error)
}

fn is_timeout(e: &Error) -> bool {
    matches!(e, Error::Poisoned(f) if f.op == "I/O timeout")
}

fn run(case: Case) {
    let ctx = format!("{case:?}");
    let opts = FsOptions { threads: 4, ..FsOptions::default() };
    let Some(mount) = fusefs::mount_or_skip(opts) else { return };
    if let Stall::Prepare(op) = case.stall {
        mount.fs.set_faults(Faults { hang_file_op: Some(("00000000000000000003.wal.tmp", op)), ..Faults::default() });
    }
    let mut o = Options::new(mount.path().join("wal"))
        .backend(case.backend)
        .segment_bytes(256 * 1024)
        .record_bytes_max(16 * 1024)
        .io_timeout(IO_TIMEOUT);
    if let Some(q) = case.queue_requests_max {
        o = o.queue_requests_max(q);
    }
    let wal = Arc::new(Wal::open(o).unwrap_or_else(|e| panic!("{ctx}: open: {e}")));

    // Acknowledged before the stall: 40 records, or (to stall preparing
    // segment 3) until segment 2 is active.
    let mut n = 0u64;
    while n < 40 || (matches!(case.stall, Stall::Prepare(_)) && wal.stats().segments < 2) {
        wal.append(RecordType::Put, &tagged(n, RECORD_BYTES)).unwrap_or_else(|e| panic!("{ctx}: append {n}: {e}"));
        n += 1;
    }
    let stats = mount.fs.stats();
    match case.stall {
        Stall::SegmentSync => {
            mount.fs.set_faults(Faults { hang_fsync: Some(stats.segment_fsyncs), ..Faults::default() });
        }
        Stall::SegmentWrite => {
            mount.fs.set_faults(Faults { hang_write: Some(stats.data_writes), ..Faults::default() });
        }
        Stall::Prepare(_) => {}
    }
    let stall_at = Instant::now();
    let truncate_to = wal.last_lsn();

    // Enough to fill the queue: requests (a queue of 2) or bytes (the
    // default 16 MiB hold about 5,000 records of 3 KiB).
    let submits = if case.queue_requests_max.is_some() { 40 } else { 400 };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let wal = wal.clone();
            std::thread::spawn(move || produce(&wal, p + 1, submits))
        })
        .collect();
    let truncater = matches!(case.stall, Stall::Prepare(_)).then(|| {
        let wal = wal.clone();
        std::thread::spawn(move || wal.truncate_before(truncate_to))
    });
    let produced = common::within(&format!("{ctx}: producers over a stall"), BOUND, move || {
        producers.into_iter().map(|h| h.join().unwrap()).collect::<Vec<Produced>>()
    });
    let producers_done = stall_at.elapsed();
    assert_eq!(mount.fs.stats().faults, 1, "{ctx}: nothing stalled");
    let mut failed = 0;
    for (acked, error) in &produced {
        match error {
            Some(e) => {
                assert!(is_timeout(e), "{ctx}: a producer got {e:?}, not the I/O timeout");
                failed += 1;
            }
            None => assert_eq!(*acked, submits, "{ctx}: no error, yet not every record acknowledged"),
        }
    }
    assert!(failed > 0, "{ctx}: every producer succeeded over a stalled device");
    if let Some(t) = truncater {
        let r = common::within(&format!("{ctx}: truncate_before over a stall"), BOUND, move || t.join().unwrap());
        // It may have retired segment 1 before the log failed, or fail.
        if let Err(e) = &r {
            assert!(is_timeout(e), "{ctx}: truncate_before: {e:?}");
        }
    }
    let w = wal.clone();
    let synced = common::within(&format!("{ctx}: sync over a stall"), BOUND, move || w.sync());
    assert!(matches!(&synced, Err(e) if is_timeout(e)), "{ctx}: sync over a stall: {synced:?}");
    let w = wal.clone();
    let truncated = common::within(&format!("{ctx}: truncate_before after"), BOUND, move || w.truncate_before(n));
    assert!(truncated.is_err(), "{ctx}: truncate_before on a failed log: {truncated:?}");
    let wal = Arc::try_unwrap(wal).unwrap_or_else(|_| panic!("{ctx}: still shared"));
    let close_started = Instant::now();
    let closed = common::within(&format!("{ctx}: close over a stall"), BOUND, move || wal.close());
    assert!(matches!(&closed, Err(e) if is_timeout(e)), "{ctx}: close over a stalled device: {closed:?}");
    eprintln!(
        "{ctx}: producers failed {producers_done:?} after the stall ({failed} of {PRODUCERS}); close took {:?}: {}",
        close_started.elapsed(),
        closed.unwrap_err()
    );
    // Let the held request go: the threads left in it finish.
    mount.fs.release();
}

fn all(stall: Stall) {
    for backend in [Backend::IoUring, Backend::Threaded] {
        for queue_requests_max in [Some(2), None] {
            run(Case { stall, backend, queue_requests_max });
        }
    }
}

#[test]
fn a_segment_sync_that_never_answers_fails_every_caller_in_bounded_time() {
    all(Stall::SegmentSync);
}

#[test]
fn a_segment_write_that_never_answers_fails_every_caller_in_bounded_time() {
    all(Stall::SegmentWrite);
}

#[test]
fn a_preparation_fallocate_that_never_answers_fails_every_caller_in_bounded_time() {
    all(Stall::Prepare(FileOp::Fallocate));
}

#[test]
fn a_preparation_write_that_never_answers_fails_every_caller_in_bounded_time() {
    all(Stall::Prepare(FileOp::Write));
}

#[test]
fn a_preparation_sync_that_never_answers_fails_every_caller_in_bounded_time() {
    all(Stall::Prepare(FileOp::Fsync));
}

/// `truncate_before` retires a segment once every record in it is
/// acknowledged; a sync marker holds no record, yet is a write into the
/// segment. While that write is in flight (held here), the segment must
/// stay: renamed for reuse, the late write would land in another life.
#[test]
fn a_segment_with_a_sync_marker_in_flight_is_not_retired() {
    let Some(mount) = fusefs::mount_or_skip(FsOptions { threads: 4, ..FsOptions::default() }) else { return };
    let o = Options::new(mount.path().join("wal")).segment_bytes(256 * 1024).record_bytes_max(200 * 1024);
    let wal = Arc::new(Wal::open(o).unwrap());
    wal.append(RecordType::Put, &tagged(1, 100 * 1024)).unwrap();
    // The next data write is the marker of this sync().
    mount.fs.set_faults(Faults { hang_write: Some(mount.fs.stats().data_writes), ..Faults::default() });
    let w = wal.clone();
    let sync = std::thread::spawn(move || w.sync());
    let t0 = Instant::now();
    while mount.fs.stats().faults == 0 {
        assert!(t0.elapsed() < BOUND, "the marker was never written");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Too large for what is left of segment 1: it goes to segment 2, which
    // is activated while the marker is held (its record is not acknowledged
    // until the marker completes: acknowledgements follow the log's order).
    let big = wal.submit(RecordType::Put, &tagged(2, 200 * 1024)).unwrap();
    while wal.stats().segments < 2 {
        assert!(t0.elapsed() < BOUND, "segment 2 never activated");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(wal.last_lsn(), 1);
    let retired = wal.truncate_before(2).unwrap();
    assert_eq!(retired, 0, "segment 1 retired while its sync marker was being written");
    mount.fs.release();
    assert!(sync.join().unwrap().unwrap() >= 1);
    assert_eq!(big.wait().unwrap(), 2);
    assert_eq!(wal.truncate_before(2).unwrap(), 1, "once the marker is written, segment 1 goes");
}
