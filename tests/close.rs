//! A clean close is quick and leaves the directory ready to reopen, however
//! slow the device is at preparing segments nobody will use.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{FaultPlan, FaultyStorage, IoPath, options, payload};
use uring_wal::storage::OsStorage;
use uring_wal::{RecordType, Wal};

#[test]
fn a_clean_close_abandons_a_slow_zero_fill_instead_of_waiting_for_it() {
    // Opening asks at once for the next segment; here its zero-fill (8 MiB
    // in 1 MiB writes of 100 ms each) outlasts io_timeout. Nobody appends
    // to it: waiting for it made close fail with "left behind" and keep
    // the directory locked for the rest of the process.
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    *plan.slow_fill_write.lock().unwrap() = Some(Duration::from_millis(100));
    let storage = Arc::new(FaultyStorage { inner: OsStorage, plan });
    let io_timeout = Duration::from_millis(300);
    let o = options(dir.path(), IoPath::ThreadedDirect).segment_bytes(8 << 20).io_timeout(io_timeout);
    let wal = Wal::open_with_storage(o.clone(), storage).unwrap();
    wal.append(RecordType::Put, &payload(1, 100)).unwrap();
    let started = Instant::now();
    let closed = common::within("close", Duration::from_secs(10), move || wal.close());
    let took = started.elapsed();
    assert!(closed.is_ok(), "a clean close failed: {closed:?}");
    assert!(took < io_timeout, "close waited {took:?} for a zero-fill nobody needs");
    // Nothing of the abandoned preparation stays, and the directory is free.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let wal = Wal::open(o).unwrap();
    assert_eq!(wal.last_lsn(), 1);
}

#[test]
fn a_log_shared_in_an_arc_closes_through_any_reference() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), IoPath::UringDirect);
    let wal = Arc::new(Wal::open(o.clone()).unwrap());
    let other = wal.clone();
    wal.append(RecordType::Put, &payload(1, 100)).unwrap();
    wal.shutdown().unwrap();
    assert!(matches!(other.append(RecordType::Put, &payload(2, 100)), Err(uring_wal::Error::Closed)));
    assert!(matches!(other.sync(), Err(uring_wal::Error::Closed)));
    assert!(matches!(other.truncate_before(1), Err(uring_wal::Error::Closed)));
    other.shutdown().unwrap();
    // Released although references remain: the directory reopens.
    let reopened = Wal::open(o).unwrap();
    assert_eq!(reopened.last_lsn(), 1);
    drop((wal, other));
}
