//! Faults the kernel itself returns through the io_uring ring, on the default
//! path (io_uring, `O_DIRECT`; and io_uring with buffered I/O).
//!
//! The simulated storage cannot reach the io_uring backend (its files have no
//! descriptors), so these tests use `Options::ring_faults`: the queue hands
//! the kernel a request it must refuse (a write to a read-only descriptor, an
//! `fdatasync` of a pipe, a buffer that ends in an inaccessible page). The
//! results are the kernel's own.
//!
//! Every scenario: writers append until the fault; the failing append returns
//! an error within a bound; the log is poisoned; nothing at or after the failed
//! flush's first LSN was acknowledged; a later append fails; `close()`
//! returns; a reopen recovers every acknowledged record with its payload.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::payload;
use uring_wal::{
    Backend, BackendKind, BlockSize, DirectIo, Durability, Error, Options, RecordType, RingFault, RingFaultPlan,
    RingTarget, Wal,
};

/// Longest any step may take before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(10);
const WRITERS: u64 = 4;
/// Records each writer tries to append.
const PER_WRITER: u64 = 150;

/// Runs `f` on a thread; panics if it does not return within `BOUND`.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    common::within(what, BOUND, f)
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    direct: bool,
    durability: Durability,
    in_flight: usize,
    faults: &'static [(RingFault, RingTarget)],
    /// The fault must poison the log (a short write alone may not: its rest
    /// is written again).
    must_poison: bool,
}

fn options(dir: &Path, s: &Scenario, plan: RingFaultPlan) -> Options {
    Options::new(dir)
        .durability(s.durability)
        .backend(Backend::IoUring)
        .direct_io(if s.direct { DirectIo::Required } else { DirectIo::Off })
        .block_size(BlockSize::Bytes(4096))
        .segment_bytes(256 * 1024)
        .record_bytes_max(16 * 1024)
        .flushes_in_flight_max(s.in_flight)
        .ring_faults(plan)
}

fn len_of(lsn: u64) -> usize {
    // Some records span several blocks, so flushes are long enough to be cut
    // short at a page boundary.
    if lsn % 7 == 0 { 9000 } else { 200 + (lsn as usize * 131) % 3000 }
}

/// Appends from several threads until each has done `PER_WRITER` or failed.
/// Returns the acknowledged LSNs and the errors seen.
fn run_writers(wal: &Arc<Wal>) -> (BTreeMap<u64, usize>, Vec<Error>) {
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (wal, acked, errors) = (wal.clone(), acked.clone(), errors.clone());
        handles.push(std::thread::spawn(move || {
            for i in 0..PER_WRITER {
                // The LSN is known only after the append, so the payload is
                // derived from its length and the acknowledged LSN's length
                // is remembered.
                let len = len_of(w * 1000 + i);
                let body = payload(len as u64, len);
                match wal.append(RecordType::Put, &body) {
                    Ok(lsn) => {
                        acked.lock().unwrap().insert(lsn, len);
                    }
                    Err(e) => {
                        errors.lock().unwrap().push(e);
                        return;
                    }
                }
            }
        }));
    }
    within("appends", move || {
        for h in handles {
            h.join().unwrap();
        }
    });
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let errors = std::mem::take(&mut *errors.lock().unwrap());
    (acked, errors)
}

fn check(s: Scenario) {
    let ctx = format!("{s:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut plan = RingFaultPlan::new();
    for &(f, t) in s.faults {
        plan = plan.fail(f, t);
    }
    let wal = Arc::new(Wal::open(options(dir.path(), &s, plan.clone())).unwrap());
    assert_eq!(wal.backend().kind, BackendKind::IoUring, "{ctx}: the test needs io_uring");
    assert_eq!(wal.backend().direct_io, s.direct, "{ctx}");
    let (acked, errors) = run_writers(&wal);
    assert!(plan.fired() >= 1, "{ctx}: no fault reached the kernel; the test proves nothing");

    let poison = wal.poisoned();
    if s.must_poison {
        assert!(!errors.is_empty(), "{ctx}: no append failed");
        let Some(Error::Poisoned(failure)) = &poison else { panic!("{ctx}: not poisoned: {poison:?}") };
        for e in &errors {
            assert!(matches!(e, Error::Poisoned(_)), "{ctx}: append error {e:?}");
        }
        // Nothing at or after the failed flush was acknowledged.
        if let Some((&last, _)) = acked.iter().next_back() {
            assert!(last < failure.lsn, "{ctx}: LSN {last} acknowledged, but LSN {} failed: {failure}", failure.lsn);
        }
        common::assert_refuses_after_poison(&wal, BOUND, &ctx);
    } else if let Some(p) = &poison {
        // O_DIRECT may turn the short write into EFAULT: then it must
        // poison like any failed write.
        eprintln!("{ctx}: the kernel failed the write: {p}");
        assert!(errors.iter().all(|e| matches!(e, Error::Poisoned(_))), "{ctx}: {p:?}");
    } else {
        eprintln!("{ctx}: the kernel cut the write short; the rest was written again");
        assert!(errors.is_empty(), "{ctx}: errors without poison: {errors:?}");
        assert_eq!(acked.len() as u64, WRITERS * PER_WRITER, "{ctx}: a continued short write must ack all");
    }
    let wal = Arc::try_unwrap(wal).unwrap_or_else(|_| panic!("{ctx}: handles left"));
    let closed = within("close", move || wal.close());
    if s.must_poison {
        assert!(closed.is_err(), "{ctx}: close of a poisoned log reports the failure");
    }

    // Reopen without faults: every acknowledged record is there.
    let reopened = Options::new(dir.path())
        .block_size(BlockSize::Bytes(4096))
        .segment_bytes(256 * 1024)
        .record_bytes_max(16 * 1024)
        .direct_io(if s.direct { DirectIo::Required } else { DirectIo::Off });
    let wal = Wal::open(reopened).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let mut found = BTreeMap::new();
    for r in wal.read_from(wal.first_lsn()).unwrap() {
        let r = r.unwrap();
        found.insert(r.lsn, r.payload);
    }
    assert_eq!(wal.first_lsn(), 1, "{ctx}: recovery dropped the start of the log");
    for (lsn, len) in &acked {
        let got = found.get(lsn).unwrap_or_else(|| panic!("{ctx}: acknowledged LSN {lsn} lost"));
        assert_eq!(got, &payload(*len as u64, *len), "{ctx}: payload of LSN {lsn}");
    }
    wal.close().unwrap();
}

fn scenarios(faults: &'static [(RingFault, RingTarget)], must_poison: bool, durabilities: &[Durability]) {
    if let Some(reason) = uring_wal::io_uring_unavailable_reason() {
        eprintln!("SKIPPED: io_uring unavailable here ({reason})");
        return;
    }
    let started = Instant::now();
    let mut n = 0;
    for &durability in durabilities {
        for direct in [true, false] {
            for in_flight in 1..=4 {
                check(Scenario { direct, durability, in_flight, faults, must_poison });
                n += 1;
            }
        }
    }
    eprintln!("{n} scenarios in {:?}", started.elapsed());
}

const BOTH: &[Durability] = &[Durability::GroupSync, Durability::Dsync];

#[test]
fn a_failed_write_poisons_within_a_bound() {
    scenarios(&[(RingFault::WriteError, RingTarget::Flush(40))], true, BOTH);
}

#[test]
fn a_failed_fdatasync_poisons_within_a_bound() {
    scenarios(&[(RingFault::SyncError, RingTarget::Flush(40))], true, &[Durability::GroupSync]);
}

#[test]
fn a_short_write_is_continued_or_poisons() {
    scenarios(&[(RingFault::ShortWrite, RingTarget::Flush(30))], false, BOTH);
}

#[test]
fn a_failed_continuation_of_a_short_write_poisons() {
    // Attempt 31 is the short write's continuation when one flush is in
    // flight, or another flush otherwise: either way a write fails.
    scenarios(
        &[(RingFault::ShortWrite, RingTarget::Flush(30)), (RingFault::WriteError, RingTarget::Flush(31))],
        true,
        BOTH,
    );
}

#[test]
fn a_failed_segment_header_write_during_rotation_poisons() {
    scenarios(&[(RingFault::WriteError, RingTarget::SegmentHeader(0))], true, BOTH);
}

/// After `sync()` synced everything, the sync marker's own write and sync
/// fail: the failure names the first LSN that is not durable, not one that is.
#[test]
fn a_failed_sync_marker_poisons_and_names_the_first_lsn_not_durable() {
    if let Some(reason) = uring_wal::io_uring_unavailable_reason() {
        eprintln!("SKIPPED: io_uring unavailable here ({reason})");
        return;
    }
    for direct in [true, false] {
        let s = Scenario { direct, durability: Durability::None, in_flight: 4, faults: &[], must_poison: true };
        // One appender, one record per flush: flushes 0..20 hold the
        // records, flush 20 is the marker.
        let plan = RingFaultPlan::new().fail(RingFault::SyncError, RingTarget::Flush(20));
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(options(dir.path(), &s, plan.clone())).unwrap());
        for i in 0..20u64 {
            wal.append(RecordType::Put, &payload(i, 300)).unwrap();
        }
        let w = wal.clone();
        let result = within("sync", move || w.sync());
        assert_eq!(plan.fired(), 1, "{s:?}");
        assert!(result.is_err(), "{s:?}: sync() succeeded over a failed marker");
        let Some(Error::Poisoned(failure)) = wal.poisoned() else { panic!("{s:?}: not poisoned") };
        assert_eq!(wal.durable_lsn(), 20, "{s:?}: the round before the marker synced every record");
        assert_eq!(failure.lsn, 21, "{s:?}: the first LSN not durable: {failure}");
        let wal = Arc::try_unwrap(wal).unwrap();
        assert!(within("close", move || wal.close()).is_err(), "{s:?}");
    }
}

#[test]
fn a_failed_sync_round_poisons() {
    if let Some(reason) = uring_wal::io_uring_unavailable_reason() {
        eprintln!("SKIPPED: io_uring unavailable here ({reason})");
        return;
    }
    for direct in [true, false] {
        for durability in [Durability::None, Durability::Periodic { interval: Duration::from_millis(2) }] {
            let s = Scenario { direct, durability, in_flight: 4, faults: &[], must_poison: true };
            let plan = RingFaultPlan::new().fail(RingFault::SyncError, RingTarget::RoundSync(0));
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(options(dir.path(), &s, plan.clone())).unwrap();
            // A periodic round may fail while these are appended.
            for i in 0..20u64 {
                if wal.append(RecordType::Put, &payload(i, 300)).is_err() {
                    break;
                }
            }
            let synced = within("sync", {
                let wal = Arc::new(wal);
                let w = wal.clone();
                move || (w.sync(), wal)
            });
            let (result, wal) = synced;
            assert_eq!(plan.fired(), 1, "{s:?}");
            assert!(result.is_err(), "{s:?}: sync() succeeded over a failed fdatasync");
            assert!(wal.durable_lsn() < 20, "{s:?}: durable_lsn {} after a failed sync", wal.durable_lsn());
            let Some(Error::Poisoned(failure)) = wal.poisoned() else { panic!("{s:?}: not poisoned") };
            assert_eq!(failure.lsn, wal.durable_lsn() + 1, "{s:?}: the first LSN not durable: {failure}");
            let wal = Arc::try_unwrap(wal).unwrap();
            assert!(within("close", move || wal.close()).is_err(), "{s:?}");
        }
    }
}

/// The real file system, reported as FUSE.
#[derive(Debug)]
struct ReportsFuse(uring_wal::storage::OsStorage);

impl uring_wal::storage::Storage for ReportsFuse {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.0.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<uring_wal::storage::DirEntry>> {
        self.0.list_dir(dir)
    }
    fn open_file(
        &self,
        path: &Path,
        how: uring_wal::storage::OpenHow,
    ) -> std::io::Result<Arc<dyn uring_wal::storage::StorageFile>> {
        self.0.open_file(path, how)
    }
    fn rename_no_replace(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.rename_no_replace(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.0.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> Result<Box<dyn uring_wal::storage::DirLock>, (std::io::Error, Option<u32>)> {
        self.0.lock(path)
    }
    fn device_facts(&self, file: &Path) -> uring_wal::storage::DeviceFacts {
        let mut facts = self.0.device_facts(file);
        facts.fs_type = "fuse".into();
        facts
    }
}

#[test]
fn dsync_on_fuse_uses_an_fdatasync_not_rwf_dsync() {
    if let Some(reason) = uring_wal::io_uring_unavailable_reason() {
        eprintln!("SKIPPED: io_uring unavailable here ({reason})");
        return;
    }
    for direct in [true, false] {
        let s = Scenario { direct, durability: Durability::Dsync, in_flight: 2, faults: &[], must_poison: true };
        // A failing fdatasync is seen only if Dsync is carried by one.
        let plan = RingFaultPlan::new().fail(RingFault::SyncError, RingTarget::Flush(10));
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(ReportsFuse(uring_wal::storage::OsStorage));
        let wal = Wal::open_with_storage(options(dir.path(), &s, plan.clone()), storage).unwrap();
        assert_eq!(wal.backend().kind, BackendKind::IoUring);
        assert!(!wal.backend().rwf_dsync, "RWF_DSYNC trusted on FUSE");
        let mut failed = None;
        for i in 0..40u64 {
            if let Err(e) = wal.append(RecordType::Put, &payload(i, 500)) {
                failed = Some(e);
                break;
            }
        }
        assert_eq!(plan.fired(), 1);
        match failed {
            Some(Error::Poisoned(f)) => assert_eq!(f.op, "fdatasync", "{f}"),
            other => panic!("direct {direct}: Dsync on FUSE was not carried by an fdatasync: {other:?}"),
        }
        drop(wal);
    }
    // The control: on the real file system RWF_DSYNC is trusted where it
    // should be.
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(Options::new(dir.path()).durability(Durability::Dsync).backend(Backend::IoUring)).unwrap();
    let fs = wal.backend().device.fs_type.clone();
    let btrfs_trusted = wal.backend().device.kernel.is_some_and(|v| !((5, 16)..(6, 2)).contains(&v));
    let trusted = matches!(fs.as_str(), "ext4" | "xfs" | "tmpfs") || (fs == "btrfs" && btrfs_trusted);
    assert_eq!(wal.backend().rwf_dsync, trusted, "{fs}");
}

#[test]
fn an_operation_the_kernel_never_completes_poisons_and_close_returns() {
    if let Some(reason) = uring_wal::io_uring_unavailable_reason() {
        eprintln!("SKIPPED: io_uring unavailable here ({reason})");
        return;
    }
    let timeout = Duration::from_millis(300);
    for durability in [Durability::GroupSync, Durability::Dsync] {
        for direct in [true, false] {
            let s = Scenario { direct, durability, in_flight: 2, faults: &[], must_poison: true };
            let plan = RingFaultPlan::new().fail(RingFault::Hang, RingTarget::Flush(5));
            let dir = tempfile::tempdir().unwrap();
            let wal = Arc::new(Wal::open(options(dir.path(), &s, plan.clone()).io_timeout(timeout)).unwrap());
            let (acked, errors) = run_writers(&wal);
            assert_eq!(plan.fired(), 1, "{s:?}");
            assert!(!errors.is_empty(), "{s:?}: no append failed");
            let Some(Error::Poisoned(failure)) = wal.poisoned() else { panic!("{s:?}: not poisoned") };
            assert_eq!(failure.op, "I/O timeout", "{s:?}: {failure}");
            for lsn in acked.keys() {
                assert!(*lsn < failure.lsn, "{s:?}: LSN {lsn} acknowledged after the stuck flush ({failure})");
            }
            let wal = Arc::try_unwrap(wal).unwrap_or_else(|_| panic!("handles left"));
            let started = Instant::now();
            let closed = within("close", move || wal.close());
            let Err(e) = closed else { panic!("{s:?}: close of a stuck log succeeded") };
            // The cause, not the thread it left behind.
            assert!(matches!(&e, Error::Poisoned(f) if f.op == "I/O timeout"), "{s:?}: {e}");
            assert!(started.elapsed() < timeout * 4, "{s:?}: close took {:?}", started.elapsed());
            // The I/O thread is still stuck in the kernel: the directory stays
            // locked, so no other opener recovers a log still being written.
            // In this process it says why; another process would get Locked.
            match Wal::open(Options::new(dir.path())) {
                Err(e @ Error::AlreadyOpen { left_behind: true, .. }) => {
                    assert!(e.to_string().contains("stuck in the kernel"), "{e}");
                }
                other => panic!("{s:?}: expected AlreadyOpen (left behind), got {:?}", other.map(|_| ())),
            }
        }
    }
}

/// A sync round syncs every segment written since the last one; when the
/// older segment's `fdatasync` fails, the failure names that segment, not
/// the active one.
#[test]
fn a_failed_sync_of_an_older_segment_names_that_segment() {
    if let Some(reason) = uring_wal::io_uring_unavailable_reason() {
        eprintln!("SKIPPED: io_uring unavailable here ({reason})");
        return;
    }
    let s = Scenario { direct: true, durability: Durability::None, in_flight: 4, faults: &[], must_poison: true };
    // The round's first sync is the older segment's: the segments are synced
    // in the order their flushes completed.
    let plan = RingFaultPlan::new().fail(RingFault::SyncError, RingTarget::RoundSync(0));
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(options(dir.path(), &s, plan.clone())).unwrap();
    let first = wal.stats().segments;
    let mut i = 0u64;
    while wal.stats().segments < first + 1 {
        wal.append(RecordType::Put, &payload(i, 3000)).unwrap();
        i += 1;
        assert!(i < 1000, "no new segment after {i} records");
    }
    wal.append(RecordType::Put, &payload(i, 3000)).unwrap();
    let wal = Arc::new(wal);
    let w = wal.clone();
    let result = within("sync", move || w.sync());
    assert!(result.is_err(), "sync() succeeded over a failed fdatasync");
    assert_eq!(plan.fired(), 1);
    let Some(Error::Poisoned(failure)) = wal.poisoned() else { panic!("not poisoned") };
    let segments: Vec<_> = common::segment_files(dir.path());
    assert!(segments.len() >= 2, "the round spans two segments: {segments:?}");
    assert_eq!(failure.path, segments[0], "the failure names another segment: {failure}");
    assert_eq!(failure.segment, 1, "{failure}");
    let wal = Arc::try_unwrap(wal).unwrap();
    assert!(within("close", move || wal.close()).is_err());
}
