//! Power losses through the real kernel, on the library's default path
//! (io_uring; `O_DIRECT`, which the kernel accepts on FUSE; buffered in one
//! test), on the in-process FUSE file system of `tests/fusefs`, which keeps
//! per file a live and a durable image (durable = as of the file's last
//! `FUSE_FSYNC`; directory entries as of the directory's last
//! `FUSE_FSYNCDIR`).
//!
//! A run chains power losses: writers append on one mount; at a random
//! moment the durable images are frozen, atomically under the file system's
//! lock, while the writers keep going; then the log is closed, the mount
//! dropped, and a fresh file system whose live images are those durable ones
//! is mounted and the log reopened there. Each reopen checks:
//!
//! - the log is a gapless run of LSNs from 1, every record well formed and
//!   one that was appended (each payload names its writer and sequence);
//! - every record acknowledged before the freeze (`GroupSync`, `Dsync`), or
//!   at or below a `durable_lsn()` / `sync()` read before it (every mode), is
//!   there with its payload;
//! - every record that an earlier reopen found is still there (what recovery
//!   shows once must never vanish);
//! - a record at an LSN that an append returned carries that append's
//!   payload.
//!
//! The file system does not treat a write whose flags carry `O_DSYNC` as
//! durable: the kernel sets that flag on `RWF_DSYNC` writes, but for an
//! asynchronous direct write (io_uring's) it sends no `FUSE_FSYNC` (with
//! `FUSE_ASYNC_DIO`, which libfuse offers by default), and with
//! `FOPEN_DIRECT_IO` it sends none for any `RWF_DSYNC` write; many servers
//! ignore the flag. The `Dsync` test therefore fails if the library trusted
//! `RWF_DSYNC` on FUSE (checked by forcing it on: every acknowledged record
//! was lost).
//!
//! Rounds alternate the server's open flags (none / `FOPEN_DIRECT_IO` for
//! `O_DIRECT` opens) and the flushes in flight (4 / 1).
//! `URING_WAL_FUSE_POWER_LOSSES` sets the power losses per test (default 20).

mod common;
mod fusefs;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Rng;
use fusefs::{FopenDirectIo, FsOptions, Mount};
use uring_wal::{Backend, BackendKind, DirectIo, Durability, Options, RecordType, Wal};

/// Longest any step may take before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(10);
const WRITERS: u64 = 3;

fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    common::within(what, BOUND, f)
}

fn fs_options(round: usize) -> FsOptions {
    let fopen_direct_io = if round % 2 == 0 { FopenDirectIo::Never } else { FopenDirectIo::WhenODirect };
    FsOptions { fopen_direct_io, ..FsOptions::default() }
}

/// What a test runs: a durability mode on an I/O path.
#[derive(Clone, Copy, Debug)]
struct Mode {
    durability: Durability,
    direct: DirectIo,
    backend: Backend,
}

fn options(dir: &std::path::Path, mode: Mode, round: usize) -> Options {
    Options::new(dir)
        .durability(mode.durability)
        .direct_io(mode.direct)
        .backend(mode.backend)
        .segment_bytes(256 * 1024)
        .record_bytes_max(16 * 1024)
        .flushes_in_flight_max(if round % 4 < 2 { 4 } else { 1 })
}

#[derive(Debug, Default)]
struct Totals {
    power_losses: u64,
    /// Records that had to survive a power loss, checked at reopens (one
    /// record counts once per reopen that checked it).
    checked: u64,
    /// Of those, acknowledged before their freeze (durable by the append
    /// itself), or at or below a durable LSN read before it.
    acked_before_freeze: u64,
    durable_by_watermark: u64,
    appended: u64,
    /// Reopens whose recovery cut a torn tail: a freeze hit writes in flight.
    torn_tails: u64,
    /// Records written after the last durable point that still survived.
    survived_unsynced: u64,
    fsyncs: u64,
    fsyncdirs: u64,
    dsync_flag_writes: u64,
}

/// What one round's writers did.
struct Run {
    acked_at_freeze: BTreeMap<u64, u64>,
    watermark_at_freeze: u64,
    all_acked: BTreeMap<u64, u64>,
}

/// Appends from `WRITERS` threads (and, under `None`, calls `sync()` now and
/// then) until a random moment, freezes the durable images, lets the writers
/// go on a little, then stops them.
fn run_round(
    wal: &Arc<Wal>,
    mount: &Mount,
    durability: Durability,
    round: usize,
    rng: &mut Rng,
) -> (fusefs::State, Run) {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let watermark = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for w in 0..WRITERS {
        let (wal, stop, acked, errors) = (wal.clone(), stop.clone(), acked.clone(), errors.clone());
        let mut rng = Rng(rng.next() | 1);
        threads.push(std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let id = ((round as u64) << 40) | (w << 32) | seq;
                seq += 1;
                let len = if rng.below(10) == 0 { 4000 + rng.below(9000) } else { 8 + rng.below(700) } as usize;
                match wal.append(RecordType::Put, &common::tagged(id, len)) {
                    Ok(lsn) => {
                        acked.lock().unwrap().insert(lsn, id);
                    }
                    Err(e) => {
                        errors.lock().unwrap().push(e.to_string());
                        return;
                    }
                }
            }
        }));
    }
    {
        let (wal, stop, watermark, errors) = (wal.clone(), stop.clone(), watermark.clone(), errors.clone());
        let mut rng = Rng(rng.next() | 1);
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if durability == Durability::None && rng.below(3) == 0 {
                    match wal.sync() {
                        Ok(lsn) => {
                            watermark.fetch_max(lsn, Ordering::SeqCst);
                        }
                        Err(e) => {
                            errors.lock().unwrap().push(format!("sync: {e}"));
                            return;
                        }
                    }
                }
                watermark.fetch_max(wal.durable_lsn(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(500 + rng.below(3000)));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(20 + rng.below(150)));
    // The power loss: durable images as of now. What the writers and the
    // watcher recorded by now was acknowledged (or reported durable) by now.
    let (image, (acked_at_freeze, watermark_at_freeze)) =
        mount.fs.freeze(|| (acked.lock().unwrap().clone(), watermark.load(Ordering::SeqCst)));
    std::thread::sleep(Duration::from_millis(rng.below(20)));
    stop.store(true, Ordering::SeqCst);
    within("stopping the writers", move || {
        for t in threads {
            t.join().unwrap();
        }
    });
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "round {round}: appends failed without a fault: {errors:?}");
    let all_acked = acked.lock().unwrap().clone();
    (image, Run { acked_at_freeze, watermark_at_freeze, all_acked })
}

fn power_losses(name: &str, mode: Mode, seed: u64) {
    let Mode { durability, direct, backend } = mode;
    let started = Instant::now();
    let Some(mut mount) = fusefs::mount_or_skip(fs_options(0)) else { return };
    let losses: usize = std::env::var("URING_WAL_FUSE_POWER_LOSSES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut rng = Rng(seed);
    let mut totals = Totals::default();
    let mut must_have: BTreeMap<u64, u64> = BTreeMap::new();
    let mut appended: BTreeMap<u64, u64> = BTreeMap::new();
    // The records made durable by the last round's acknowledgements and
    // watermark, for the count of unsynced survivors.
    let mut durable_last = 0u64;
    // What the last power loss hit, for messages.
    let mut hit = String::from("none yet");
    for round in 0..=losses {
        let ctx = format!("{name}, reopen {round} (power losses so far: {round}; the last hit {hit})");
        let dir = mount.path().join("wal");
        let wal = {
            let o = options(&dir, mode, round);
            Arc::new(within("open", move || Wal::open(o)).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}")))
        };
        let b = wal.backend();
        assert_eq!(b.direct_io, direct != DirectIo::Off, "{ctx}: O_DIRECT: {b:?}");
        assert_eq!(b.device.fs_type, "fuse", "{ctx}");
        if backend == Backend::Threaded {
            assert_eq!(b.kind, BackendKind::Threaded, "{ctx}: {b:?}");
        } else {
            assert_eq!(b.kind, BackendKind::IoUring, "{ctx}: not the default io_uring path: {b:?}");
            assert!(!b.rwf_dsync, "{ctx}: RWF_DSYNC trusted on FUSE: {b:?}");
        }
        if round == 0 {
            eprintln!(
                "{name}: backend {:?}, O_DIRECT {}, RWF_DSYNC {}, block {} B, fs {}",
                b.kind, b.direct_io, b.rwf_dsync, b.block_bytes, b.device.fs_type
            );
        }
        if wal.recovery_report().torn_tail.is_some() {
            totals.torn_tails += 1;
        }
        let found = common::check_log(&wal, &ctx, &must_have, &appended);
        totals.checked += must_have.len() as u64;
        totals.survived_unsynced += found.keys().filter(|&&l| l > durable_last).count() as u64;
        if round == losses {
            let wal = Arc::try_unwrap(wal).unwrap_or_else(|_| panic!("handles left"));
            within("close", move || wal.close()).unwrap();
            break;
        }
        // What a reopen showed must stay.
        must_have = found;

        let (image, run) = run_round(&wal, &mount, durability, round, &mut rng);
        let wal = Arc::try_unwrap(wal).unwrap_or_else(|_| panic!("handles left"));
        within("close", move || wal.close()).unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
        let stats = mount.fs.stats();
        hit = format!(
            "a mount with {:?} after {} fsyncs, {} fsyncdirs, {} writes ({} with O_DSYNC, {} with O_DIRECT)",
            fs_options(round),
            stats.fsyncs,
            stats.fsyncdirs,
            stats.writes,
            stats.dsync_writes,
            stats.direct_writes
        );
        totals.fsyncs += stats.fsyncs;
        totals.fsyncdirs += stats.fsyncdirs;
        totals.dsync_flag_writes += stats.dsync_writes;
        totals.appended += run.all_acked.len() as u64;
        drop(mount);

        for (lsn, id) in &run.acked_at_freeze {
            if matches!(durability, Durability::GroupSync | Durability::Dsync) {
                must_have.insert(*lsn, *id);
                totals.acked_before_freeze += 1;
            }
        }
        for lsn in 1..=run.watermark_at_freeze {
            if must_have.contains_key(&lsn) {
                continue;
            }
            let id = run
                .all_acked
                .get(&lsn)
                .copied()
                .unwrap_or_else(|| panic!("{ctx}: LSN {lsn} reported durable, but no append returned it"));
            must_have.insert(lsn, id);
            totals.durable_by_watermark += 1;
        }
        durable_last = must_have.keys().next_back().copied().unwrap_or(0);
        appended = run.all_acked;
        totals.power_losses += 1;
        mount = fusefs::mount(image, fs_options(round + 1)).unwrap_or_else(|e| panic!("{ctx}: remount: {e}"));
    }
    eprintln!("{name}: {totals:?} in {:?}", started.elapsed());
    assert_eq!(totals.power_losses, losses as u64);
    assert!(totals.checked > 0 && totals.appended > 0, "{name}: nothing was checked: {totals:?}");
}

/// The default path: io_uring where the kernel allows it, `O_DIRECT` where
/// the file system accepts it (FUSE does).
fn default_path(durability: Durability) -> Mode {
    Mode { durability, direct: DirectIo::Auto, backend: Backend::Auto }
}

#[test]
fn group_sync_acknowledged_records_survive_power_losses() {
    power_losses("GroupSync", default_path(Durability::GroupSync), 0x5EED_0001);
}

#[test]
fn dsync_acknowledged_records_survive_power_losses() {
    power_losses("Dsync", default_path(Durability::Dsync), 0x5EED_0002);
}

#[test]
fn periodic_records_below_durable_lsn_survive_power_losses() {
    power_losses("Periodic", default_path(Durability::Periodic { interval: Duration::from_millis(10) }), 0x5EED_0003);
}

#[test]
fn none_records_synced_by_sync_survive_power_losses() {
    power_losses("None", default_path(Durability::None), 0x5EED_0004);
}

#[test]
fn buffered_group_sync_acknowledged_records_survive_power_losses() {
    let mode = Mode { direct: DirectIo::Off, ..default_path(Durability::GroupSync) };
    power_losses("GroupSync buffered", mode, 0x5EED_0005);
}

/// The threaded backend (what `Backend::Auto` falls back to where io_uring
/// is refused, as under Docker's seccomp profile) carried `Dsync` by a
/// synchronous `pwritev2(RWF_DSYNC)` on every file system. On FUSE, when the
/// server answers an `O_DIRECT` open with `FOPEN_DIRECT_IO`, the kernel
/// (6.18) sends no `FUSE_FSYNC` for such a write (only `O_DSYNC` in the
/// write's flags, which many servers ignore): every acknowledged record of
/// such a mount was lost at a power loss. It now uses a write and an
/// `fdatasync` wherever io_uring would.
#[test]
fn threaded_dsync_acknowledged_records_survive_power_losses() {
    let mode = Mode { backend: Backend::Threaded, ..default_path(Durability::Dsync) };
    power_losses("Dsync threaded", mode, 0x5EED_0006);
}
