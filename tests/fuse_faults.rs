//! Faults returned by a real file system through the real kernel and the
//! io_uring ring, on the library's default path (io_uring, `O_DIRECT`), from
//! the in-process FUSE file system of `tests/fusefs`:
//!
//! - the n-th data write fails with EIO;
//! - the n-th sync of a segment file fails with EIO (nothing becomes
//!   durable);
//! - the n-th data write is short (the server reports half the bytes).
//!
//! Each for `GroupSync` and `Dsync` (which on FUSE is a write followed by an
//! `fdatasync`), with 1 and 4 flushes in flight. Writers append until the
//! fault; then:
//!
//! - an EIO poisons the log within a bound, the failure names the operation,
//!   nothing at or after the failed flush's first LSN was acknowledged, and
//!   later appends and `sync()` fail;
//! - a short write is either carried on (every append acknowledged) or
//!   poisons like a failed write; which one happened is printed. Measured on
//!   Linux 6.18: on the default path (`O_DIRECT`, with `FUSE_ASYNC_DIO`,
//!   which libfuse offers by default) the kernel turns the server's short
//!   count into EIO; without `FUSE_ASYNC_DIO` it writes the rest itself and
//!   the ring reports the full length; buffered, the ring reports the short
//!   count and the log writes the rest. All three are covered;
//! - `close()` returns (an error after a poison);
//! - a reopen on the same file system without faults, and a reopen after a
//!   power loss right after the close (durable images only), recover every
//!   acknowledged record with its payload.

mod common;
mod fusefs;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{tag_of, tagged};
use fusefs::{Faults, FopenDirectIo, FsOptions, Mount};
use uring_wal::{BackendKind, DirectIo, Durability, Error, Options, RecordType, Wal};

/// Longest any step may take before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(10);
const WRITERS: u64 = 4;
/// Records each writer tries to append.
const PER_WRITER: u64 = 100;

fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    common::within(what, BOUND, f)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    WriteEio,
    FsyncEio,
    ShortWrite,
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    fault: Fault,
    durability: Durability,
    in_flight: usize,
    direct: DirectIo,
    fs: FsOptions,
}

impl Scenario {
    fn faults(&self) -> Faults {
        match self.fault {
            Fault::WriteEio => Faults { write_eio: Some(40), ..Faults::default() },
            // Under Periodic and None a segment sync covers many flushes.
            Fault::FsyncEio if !self.durable_on_ack() => Faults { fsync_eio: Some(3), ..Faults::default() },
            Fault::FsyncEio => Faults { fsync_eio: Some(25), ..Faults::default() },
            Fault::ShortWrite => Faults { short_write: Some(30), ..Faults::default() },
        }
    }
}

impl Scenario {
    /// An acknowledged append is durable.
    fn durable_on_ack(&self) -> bool {
        matches!(self.durability, Durability::GroupSync | Durability::Dsync)
    }
}

fn options(dir: &std::path::Path, s: &Scenario) -> Options {
    Options::new(dir)
        .durability(s.durability)
        .direct_io(s.direct)
        .segment_bytes(256 * 1024)
        .record_bytes_max(16 * 1024)
        .flushes_in_flight_max(s.in_flight)
}

fn len_of(id: u64) -> usize {
    // Some records span several blocks, so a flush can be cut short.
    if id % 7 == 0 { 9000 } else { 8 + (id as usize * 131) % 3000 }
}

/// What the writers saw.
struct Appends {
    acked: BTreeMap<u64, u64>,
    errors: Vec<Error>,
    first_error_at: Option<Instant>,
    /// Highest `durable_lsn()` (or `sync()` result, under `None`) read.
    watermark: u64,
}

/// Appends from `WRITERS` threads until each has done `PER_WRITER` or
/// failed; meanwhile reads `durable_lsn()`, and under `None` calls `sync()`.
fn run_writers(wal: &Arc<Wal>, durability: Durability) -> Appends {
    let out = Arc::new(Mutex::new(Appends {
        acked: BTreeMap::new(),
        errors: Vec::new(),
        first_error_at: None,
        watermark: 0,
    }));
    let done = Arc::new(AtomicBool::new(false));
    let watermark = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (wal, out, done, watermark) = (wal.clone(), out.clone(), done.clone(), watermark.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if durability == Durability::None {
                    match wal.sync() {
                        Ok(lsn) => {
                            watermark.fetch_max(lsn, Ordering::SeqCst);
                        }
                        Err(e) => {
                            let mut o = out.lock().unwrap();
                            o.first_error_at.get_or_insert_with(Instant::now);
                            o.errors.push(e);
                            return;
                        }
                    }
                }
                watermark.fetch_max(wal.durable_lsn(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (wal, out) = (wal.clone(), out.clone());
        handles.push(std::thread::spawn(move || {
            for i in 0..PER_WRITER {
                let id = (w << 32) | i;
                match wal.append(RecordType::Put, &tagged(id, len_of(id))) {
                    Ok(lsn) => {
                        out.lock().unwrap().acked.insert(lsn, id);
                    }
                    Err(e) => {
                        let mut o = out.lock().unwrap();
                        o.first_error_at.get_or_insert_with(Instant::now);
                        o.errors.push(e);
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
        done.store(true, Ordering::SeqCst);
        watcher.join().unwrap();
    });
    let mut out = Arc::try_unwrap(out).unwrap_or_else(|_| unreachable!("threads joined")).into_inner().unwrap();
    out.watermark = watermark.load(Ordering::SeqCst);
    out
}

/// Reopens the log on `mount` and checks that every record in `must_have`
/// is there with its payload.
fn recovers(mount: &Mount, s: &Scenario, must_have: &BTreeMap<u64, u64>, ctx: &str) -> u64 {
    let o = options(&mount.path().join("wal"), s);
    let wal = within("reopen", move || Wal::open(o)).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let mut found = BTreeMap::new();
    for r in wal.read_from(wal.first_lsn()).unwrap() {
        let r = r.unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
        let id = tag_of(&r.payload).unwrap_or_else(|| panic!("{ctx}: LSN {} holds a payload nobody appended", r.lsn));
        found.insert(r.lsn, id);
    }
    for (lsn, id) in must_have {
        let got =
            found.get(lsn).unwrap_or_else(|| panic!("{ctx}: LSN {lsn} lost ({} had to survive)", must_have.len()));
        assert_eq!(got, id, "{ctx}: LSN {lsn} holds another append's payload");
    }
    within("close", move || wal.close()).unwrap_or_else(|e| panic!("{ctx}: close after reopen: {e}"));
    must_have.len() as u64
}

#[derive(Debug, Default)]
struct Totals {
    scenarios: u64,
    faults_injected: u64,
    poisoned: u64,
    short_writes_carried_on: u64,
    acknowledged_checked: u64,
    poison_latency_max: Duration,
}

/// Runs one scenario; returns what it did for the totals.
fn check(s: Scenario, totals: &mut Totals) {
    let ctx = format!("{s:?}");
    let Some(mount) = fusefs::mount_or_skip(s.fs) else { return };
    mount.fs.set_faults(s.faults());
    let wal = {
        let o = options(&mount.path().join("wal"), &s);
        Arc::new(within("open", move || Wal::open(o)).unwrap_or_else(|e| panic!("{ctx}: open: {e}")))
    };
    let b = wal.backend();
    assert_eq!(b.kind, BackendKind::IoUring, "{ctx}: not the default io_uring path: {b:?}");
    assert_eq!(b.direct_io, s.direct != DirectIo::Off, "{ctx}: FUSE accepts O_DIRECT: {b:?}");
    assert!(!b.rwf_dsync, "{ctx}: RWF_DSYNC trusted on FUSE");

    let appends = run_writers(&wal, s.durability);
    let (faults, first_fault_at) = {
        let st = mount.fs.lock();
        (st.stats.faults, st.first_fault_at)
    };
    assert_eq!(faults, 1, "{ctx}: the fault was not injected exactly once; the test proves nothing");
    totals.faults_injected += faults;

    let poison = wal.poisoned();
    let must_poison = s.fault != Fault::ShortWrite;
    let outcome = match &poison {
        Some(Error::Poisoned(failure)) => {
            totals.poisoned += 1;
            assert!(!appends.errors.is_empty(), "{ctx}: poisoned, but every append and sync succeeded");
            for e in &appends.errors {
                assert!(matches!(e, Error::Poisoned(_)), "{ctx}: append error {e:?}");
            }
            let expected_op = match s.fault {
                Fault::FsyncEio => "fdatasync",
                Fault::WriteEio | Fault::ShortWrite => "write",
            };
            assert_eq!(failure.op, expected_op, "{ctx}: {failure}");
            assert_eq!(failure.error.raw_os_error(), Some(libc::EIO), "{ctx}: {failure}");
            if s.durable_on_ack()
                && let Some((&last, _)) = appends.acked.iter().next_back()
            {
                assert!(
                    last < failure.lsn,
                    "{ctx}: LSN {last} acknowledged, but LSN {} failed: {failure}",
                    failure.lsn
                );
            }
            let durable = wal.durable_lsn().max(appends.watermark);
            assert!(
                durable < failure.lsn,
                "{ctx}: LSN {durable} reported durable, but LSN {} failed: {failure}",
                failure.lsn
            );
            let latency = appends.first_error_at.unwrap().saturating_duration_since(first_fault_at.unwrap());
            assert!(latency < BOUND, "{ctx}: poisoned {latency:?} after the fault");
            totals.poison_latency_max = totals.poison_latency_max.max(latency);
            common::assert_refuses_after_poison(&wal, BOUND, &ctx);
            format!("poisoned after {latency:?}: {failure}")
        }
        Some(other) => panic!("{ctx}: poisoned with {other:?}"),
        None => {
            assert!(!must_poison, "{ctx}: the fault did not poison the log");
            assert!(appends.errors.is_empty(), "{ctx}: errors without poison: {:?}", appends.errors);
            assert_eq!(
                appends.acked.len() as u64,
                WRITERS * PER_WRITER,
                "{ctx}: a carried-on short write must ack all"
            );
            totals.short_writes_carried_on += 1;
            "carried on".to_owned()
        }
    };
    let wal = Arc::try_unwrap(wal).unwrap_or_else(|_| panic!("{ctx}: handles left"));
    let closed = within("close", move || wal.close());
    if poison.is_some() {
        assert!(closed.is_err(), "{ctx}: close of a poisoned log reports the failure");
    } else {
        closed.unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
    }
    eprintln!("{ctx}: {} acknowledged; {outcome}", appends.acked.len());

    // A power loss right after the close: only what was synced.
    let (image, ()) = mount.fs.freeze(|| ());
    // Without faults, on the same file system (live images, kernel caches):
    // every acknowledged record was written.
    mount.fs.set_faults(Faults::default());
    totals.acknowledged_checked += recovers(&mount, &s, &appends.acked, &format!("{ctx}, live reopen"));
    drop(mount);
    // After the power loss: every record acknowledged as durable, or at or
    // below a durable LSN that was reported.
    let durable: BTreeMap<u64, u64> = if s.durable_on_ack() {
        appends.acked.clone()
    } else {
        appends.acked.range(..=appends.watermark).map(|(l, i)| (*l, *i)).collect()
    };
    let after = fusefs::mount(image, s.fs).unwrap_or_else(|e| panic!("{ctx}: remount: {e}"));
    totals.acknowledged_checked += recovers(&after, &s, &durable, &format!("{ctx}, reopen after a power loss"));
    totals.scenarios += 1;
}

fn run(name: &str, list: &[Scenario]) {
    let started = Instant::now();
    let mut totals = Totals::default();
    for &s in list {
        check(s, &mut totals);
        if totals.scenarios == 0 {
            return; // skipped
        }
    }
    eprintln!("{name}: {totals:?} in {:?}", started.elapsed());
    assert_eq!(totals.scenarios, list.len() as u64);
}

/// The default path (`DirectIo::Auto`: `O_DIRECT` on FUSE), `GroupSync` and
/// `Dsync`, 1 and 4 flushes in flight; the server's open flags alternate.
fn default_path(fault: Fault) -> Vec<Scenario> {
    let mut list = Vec::new();
    for durability in [Durability::GroupSync, Durability::Dsync] {
        for in_flight in [1, 4] {
            let fopen_direct_io = if list.len() % 2 == 0 { FopenDirectIo::Never } else { FopenDirectIo::WhenODirect };
            let fs = FsOptions { fopen_direct_io, ..FsOptions::default() };
            list.push(Scenario { fault, durability, in_flight, direct: DirectIo::Auto, fs });
        }
    }
    list
}

#[test]
fn a_data_write_failing_with_eio_poisons_and_loses_no_acknowledged_record() {
    run("write EIO", &default_path(Fault::WriteEio));
}

#[test]
fn a_segment_fsync_failing_with_eio_poisons_and_loses_no_acknowledged_record() {
    let mut list = default_path(Fault::FsyncEio);
    // A sync round of the modes that acknowledge before syncing.
    for durability in [Durability::Periodic { interval: Duration::from_millis(3) }, Durability::None] {
        let fs = FsOptions::default();
        list.push(Scenario { fault: Fault::FsyncEio, durability, in_flight: 4, direct: DirectIo::Auto, fs });
    }
    run("fsync EIO", &list);
}

#[test]
fn a_short_write_is_carried_on_or_poisons_and_loses_no_acknowledged_record() {
    let mut list = default_path(Fault::ShortWrite);
    // On the default path the kernel turns the short count into EIO. Without
    // FUSE_ASYNC_DIO it writes the rest itself; buffered, the ring reports
    // the short count and the log must write the rest.
    for durability in [Durability::GroupSync, Durability::Dsync] {
        let sync_dio = FsOptions { async_dio: false, ..FsOptions::default() };
        list.push(Scenario {
            fault: Fault::ShortWrite,
            durability,
            in_flight: 4,
            direct: DirectIo::Auto,
            fs: sync_dio,
        });
        let fs = FsOptions::default();
        list.push(Scenario { fault: Fault::ShortWrite, durability, in_flight: 4, direct: DirectIo::Off, fs });
    }
    run("short write", &list);
}

/// An operation the kernel never answers, where the I/O thread itself is
/// blocked in it: a write under the threaded backend (`pwritev2`), and a
/// flush's `fdatasync` on the default io_uring path (issued by the I/O
/// thread), with one flush in flight and with four (whose writes are in the
/// ring while the thread is stuck in the sync). The watchdog poisons
/// the log after `io_timeout`: every appender gets an error in bounded time,
/// and `sync()` and `close()` return, though a thread may still be stuck.
/// Then the operation is let go.
#[test]
fn an_operation_hanging_in_the_kernel_poisons_in_bounded_time_on_both_paths() {
    let hung_write = Faults { hang_write: Some(20), ..Faults::default() };
    let hung_sync = Faults { hang_fsync: Some(20), ..Faults::default() };
    for durability in [Durability::GroupSync, Durability::Dsync] {
        hang(&format!("threaded {durability:?}, hung write"), uring_wal::Backend::Threaded, durability, 4, hung_write);
    }
    for in_flight in [1, 4] {
        let ctx = format!("io_uring GroupSync, {in_flight} in flight, hung fdatasync");
        hang(&ctx, uring_wal::Backend::IoUring, Durability::GroupSync, in_flight, hung_sync);
    }
}

fn hang(ctx: &str, backend: uring_wal::Backend, durability: Durability, in_flight: usize, faults: Faults) {
    let Some(mount) = fusefs::mount_or_skip(FsOptions::default()) else { return };
    mount.fs.set_faults(faults);
    let io_timeout = Duration::from_millis(300);
    let o = Options::new(mount.path().join("wal"))
        .durability(durability)
        .backend(backend)
        .flushes_in_flight_max(in_flight)
        .segment_bytes(256 * 1024)
        .record_bytes_max(16 * 1024)
        .io_timeout(io_timeout);
    let wal = Arc::new(Wal::open(o).unwrap_or_else(|e| panic!("{ctx}: open: {e}")));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0..PER_WRITER {
                    if let Err(e) = wal.append(RecordType::Put, &tagged((w << 32) | i, 100)) {
                        return Some(e);
                    }
                }
                None
            })
        })
        .collect();
    let errors = common::within("appends over a hung operation", BOUND, move || {
        writers.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    let waited = started.elapsed();
    assert_eq!(mount.fs.stats().faults, 1, "{ctx}: nothing hung");
    for e in &errors {
        match e {
            Some(Error::Poisoned(f)) => assert_eq!(f.op, "I/O timeout", "{ctx}: {f}"),
            other => panic!("{ctx}: an appender got {other:?} over an operation that never returned"),
        }
    }
    assert!(waited >= io_timeout, "{ctx}: poisoned after {waited:?}, before io_timeout");
    let w = wal.clone();
    common::within("sync after the timeout", BOUND, move || assert!(w.sync().is_err()));
    let wal = Arc::try_unwrap(wal).unwrap_or_else(|_| panic!("{ctx}: still shared"));
    let closed = common::within("close over a hung operation", BOUND, move || wal.close());
    assert!(closed.is_err(), "{ctx}: close reported success over a failed log");
    eprintln!("{ctx}: every appender failed {waited:?} after the start; close returned {closed:?}");
    mount.fs.release();
    // The closed log may keep its lock file open (a thread left behind);
    // only an aborted connection lets the process exit.
    assert!(mount.abort(), "{ctx}: could not abort the FUSE connection (fusectl)");
}
