//! Tickets and durable waits as futures (a minimal executor, and tokio),
//! and following the log as it grows.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use common::{IoPath, options, payload};
use uring_wal::{Durability, Error, RecordType, Wal};

/// The smallest executor: poll, park until woken.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn tickets_are_futures_for_any_executor() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    let t = wal.submit(RecordType::Put, b"one").unwrap();
    assert_eq!(block_on(t).unwrap(), 1);
    // Many in flight, awaited in reverse order.
    let tickets: Vec<_> = (2..=200).map(|l| wal.submit(RecordType::Put, &payload(l, 100)).unwrap()).collect();
    for (i, t) in tickets.into_iter().enumerate().rev() {
        assert_eq!(block_on(t).unwrap(), i as u64 + 2);
    }
    // A future dropped after it registered its waker neither loses its
    // record nor leaves anything behind.
    let t = wal.submit(RecordType::Put, b"dropped while pending").unwrap();
    {
        let mut t = pin!(t);
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let _ = t.as_mut().poll(&mut Context::from_waker(&waker));
    }
    assert_eq!(wal.append(RecordType::Put, b"next").unwrap(), 202);
    assert_eq!(wal.read_from(201).unwrap().next().unwrap().unwrap().payload, b"dropped while pending");
}

#[test]
fn durable_futures_resolve_when_the_periodic_sync_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), IoPath::UringDirect)
        .durability(Durability::Periodic { interval: Duration::from_millis(30) });
    let wal = Wal::open(opts).unwrap();
    let lsn = wal.append(RecordType::Put, b"x").unwrap();
    assert_eq!(block_on(wal.durable(lsn)).unwrap(), lsn);
    assert!(wal.durable_lsn() >= lsn);
}

#[test]
fn tokio_tasks_await_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let total: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let wal = wal.clone();
                tokio::spawn(async move {
                    let mut n = 0;
                    for i in 0..50u64 {
                        let ticket = wal.submit(RecordType::Put, &((t << 32) | i).to_le_bytes()).unwrap();
                        ticket.await.unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        total
    });
    assert_eq!(total, 400);
    assert_eq!(wal.last_lsn(), 400);
}

#[test]
fn a_failure_wakes_pending_futures_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let plan = common::FaultPlan::new();
    plan.fail_sync_after.store(3, std::sync::atomic::Ordering::SeqCst);
    plan.distrust_rwf_dsync.store(true, std::sync::atomic::Ordering::SeqCst);
    let storage = Arc::new(common::FaultyStorage { inner: uring_wal::storage::OsStorage, plan });
    let wal = Wal::open_with_storage(options(dir.path(), IoPath::ThreadedDirect), storage).unwrap();
    let mut results = Vec::new();
    for i in 0..10u64 {
        match wal.submit(RecordType::Put, &i.to_le_bytes()) {
            Ok(t) => results.push(block_on(t)),
            Err(e) => results.push(Err(e)),
        }
    }
    assert!(results.iter().any(|r| matches!(r, Err(Error::Poisoned(_)))), "{results:?}");
    let first_err = results.iter().position(|r| r.is_err()).unwrap();
    assert!(results[first_err..].iter().all(|r| r.is_err()), "nothing acknowledged after the failure");
}

#[test]
fn a_follower_sees_every_durable_record_across_segments_and_survives_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap());
    let mut follower = wal.follow(1).unwrap();
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            for lsn in 1..=600u64 {
                wal.append(RecordType::Put, &payload(lsn, 700)).unwrap();
                if lsn % 150 == 0 {
                    // Behind the follower's reach by now or not: only whole
                    // segments it has passed may go.
                    let _ = wal.truncate_before(lsn.saturating_sub(400));
                }
            }
        })
    };
    let mut got = 0u64;
    while got < 600 {
        match follower.next_timeout(Some(Duration::from_secs(10))).unwrap() {
            Some(rec) => {
                assert_eq!(rec.lsn, got + 1);
                assert_eq!(rec.payload, &payload(rec.lsn, 700)[..]);
                got += 1;
            }
            None => panic!("follower stalled at {}", got + 1),
        }
    }
    writer.join().unwrap();
    assert!(wal.stats().segments_activated >= 3, "the follower crossed segment rotations");
    assert_eq!(follower.next_timeout(Some(Duration::from_millis(50))).unwrap(), None, "waits at the end");
    // Async: the next record arrives after the wait started.
    let w2 = wal.clone();
    let appender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        w2.append(RecordType::Put, b"later").unwrap()
    });
    let rec = block_on(follower.next_async()).unwrap();
    assert_eq!((rec.lsn, rec.payload.as_slice()), (601, &b"later"[..]));
    appender.join().unwrap();
    // A follower whose position was truncated away says so.
    let mut behind = wal.follow(wal.first_lsn()).unwrap();
    for lsn in 602..=1200u64 {
        wal.append(RecordType::Put, &payload(lsn, 700)).unwrap();
    }
    wal.truncate_before(1100).unwrap();
    match behind.next_timeout(Some(Duration::from_secs(1))) {
        Err(Error::Truncated { .. }) => {}
        other => panic!("expected Truncated, got {:?}", other.map(|r| r.map(|r| r.lsn))),
    }
}
