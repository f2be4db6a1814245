//! `Ticket::on_durable` and `Wal::on_durable`: each callback runs once,
//! those a thread registers in the order of their LSNs, with the error when
//! the log fails first.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{FaultPlan, FaultyStorage, IoPath, options, payload};
use uring_wal::storage::OsStorage;
use uring_wal::{Error, RecordType, Wal};

type Seen = Arc<Mutex<Vec<Result<u64, String>>>>;

fn recorder(seen: &Seen) -> impl FnOnce(uring_wal::Result<u64>) + Send + 'static {
    let seen = seen.clone();
    move |r| seen.lock().unwrap().push(r.map_err(|e| e.to_string()))
}

#[test]
fn callbacks_run_once_each_in_lsn_order_from_many_producers() {
    for path in [IoPath::UringDirect, IoPath::ThreadedDirect] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(options(dir.path(), path)).unwrap());
        let seen: Seen = Arc::default();
        // Which producer each callback belongs to, in the order they ran.
        let by: Arc<Mutex<Vec<u64>>> = Arc::default();
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let (wal, seen, by) = (wal.clone(), seen.clone(), by.clone());
                std::thread::spawn(move || {
                    for i in 0..500u64 {
                        let ticket = wal.submit(RecordType::Put, &payload(p * 1000 + i, 200)).unwrap();
                        let (record, by) = (recorder(&seen), by.clone());
                        ticket.on_durable(move |r| {
                            by.lock().unwrap().push(p);
                            record(r);
                        });
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        // After everything queued: runs once all before it did.
        let last = wal.next_lsn() - 1;
        wal.on_durable(last, recorder(&seen));
        wal.sync().unwrap();
        let t0 = std::time::Instant::now();
        while seen.lock().unwrap().len() < 2001 {
            assert!(t0.elapsed() < Duration::from_secs(10), "{path:?}: callbacks missing");
            std::thread::sleep(Duration::from_millis(1));
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2001, "{path:?}: each callback once");
        let lsns: Vec<u64> = seen.iter().map(|r| *r.as_ref().unwrap()).collect();
        // Each producer's callbacks ran in the order of its LSNs (another
        // producer's may run between them: one registered after its LSN
        // became durable runs then, after higher LSNs of others).
        let by = by.lock().unwrap().clone();
        for p in 0..4u64 {
            let mine: Vec<u64> = lsns.iter().zip(&by).filter(|(_, q)| **q == p).map(|(l, _)| *l).collect();
            assert_eq!(mine.len(), 500, "{path:?}: producer {p}'s callbacks, once each");
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{path:?}: producer {p}'s callbacks out of LSN order");
        }
        assert_eq!(lsns.last(), Some(&last));
        // Already durable: called at once, on this thread.
        let now: Seen = Arc::default();
        wal.on_durable(1, recorder(&now));
        assert_eq!(*now.lock().unwrap(), vec![Ok(1)]);
    }
}

#[test]
fn callbacks_get_the_failure_when_the_log_is_poisoned_first() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    plan.distrust_rwf_dsync.store(true, std::sync::atomic::Ordering::SeqCst);
    let storage = Arc::new(FaultyStorage { inner: OsStorage, plan: plan.clone() });
    let wal = Wal::open_with_storage(options(dir.path(), IoPath::ThreadedDirect), storage).unwrap();
    wal.append(RecordType::Put, &payload(1, 100)).unwrap();
    plan.fail_sync_after.store(0, std::sync::atomic::Ordering::SeqCst);
    let seen: Seen = Arc::default();
    for i in 2..=20u64 {
        match wal.submit(RecordType::Put, &payload(i, 100)) {
            Ok(t) => t.on_durable(recorder(&seen)),
            Err(Error::Poisoned(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let t0 = std::time::Instant::now();
    while wal.poisoned().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "never poisoned");
        std::thread::sleep(Duration::from_millis(1));
    }
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|r| r.as_ref().is_err_and(|e| e.contains("poisoned"))), "{seen:?}");
    // Registered after the failure: called at once with it.
    let late: Seen = Arc::default();
    wal.on_durable(wal.next_lsn(), recorder(&late));
    assert!(late.lock().unwrap()[0].as_ref().is_err());
}
