//! The library's default path on ext4 (io_uring, `O_DIRECT`, and
//! `RWF_DSYNC`, which ext4 is trusted to honour), through the real kernel,
//! with power losses and a disk that dies: ext4 on a loop device whose
//! backing file is a disk image in the in-process FUSE file system of
//! `tests/fusefs`.
//!
//! That file system keeps a live and a durable image of the disk image
//! (durable = as of its last `FUSE_FSYNC`, which is what the loop device
//! sends for each cache flush it is asked for), so its durable image is the
//! disk after a power loss, and ext4 mounted on it replays its journal as
//! after a crash. The other FUSE tests (`fuse_power_loss.rs`,
//! `fuse_faults.rs`) cannot reach the `RWF_DSYNC` path: the library does not
//! trust FUSE with it and writes, then `fdatasync`s, there. These do: `Dsync`
//! writes every flush with `RWF_DSYNC` on ext4, and so does a lone
//! `GroupSync` appender.
//!
//! - Power losses: appends run from several threads (`Dsync`) or one
//!   (`GroupSync`); at a random moment the disk's durable image is frozen;
//!   the log is reopened on it. Every record acknowledged before the freeze
//!   must be there, with its payload, in a gapless log.
//! - A disk that dies: while appends run, every write (or every cache flush)
//!   of the disk image fails from some moment on. Each appender gets an
//!   error in bounded time, the log refuses what comes after, and every
//!   record it acknowledged is on the disk after a power loss.
//!
//! Needs root (loop devices, mounting ext4), `/dev/loop-control`,
//! `losetup`, `mkfs.ext4`, `mount` and `umount`. Where one is missing each
//! test prints SKIPPED, unless `URING_WAL_REQUIRE_LOOP` is set (CI sets it
//! where it runs as root), where it fails.

mod common;
mod fusefs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Rng;
use fusefs::{Faults, Fs, FsOptions, Mount, State};
use uring_wal::{Backend, BackendKind, Durability, Options, RecordType, Wal};

/// Longest any step may take before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(20);
/// The disk image: room for ext4's journal and a few small segments.
const IMAGE_BYTES: u64 = 32 << 20;
const IMAGE: &str = "disk.img";

fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    common::within(what, BOUND, f)
}

/// Prints why the test cannot run and returns `None`, or fails where
/// `URING_WAL_REQUIRE_LOOP` says it must run.
fn skip<T>(reason: &str) -> Option<T> {
    if std::env::var_os("URING_WAL_REQUIRE_LOOP").is_some_and(|v| v != "0") {
        panic!("URING_WAL_REQUIRE_LOOP is set, but: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

/// Runs a command; its trimmed standard output, or what went wrong.
fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?}: {} {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// ext4 on a loop device over the FUSE file system's disk image. Dropping it
/// unmounts ext4, detaches the loop device and unmounts the FUSE file
/// system, in that order.
struct Ext4 {
    fuse: Option<Mount>,
    loop_dev: Option<String>,
    mountpoint: tempfile::TempDir,
    mounted: bool,
}

impl Ext4 {
    /// Why ext4 on a loop device cannot be set up here for a test of
    /// `mode`, if it cannot.
    fn unavailable(mode: Mode) -> Option<String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Some("needs root (loop devices, mounting ext4)".into());
        }
        if !Path::new("/dev/loop-control").exists() {
            return Some("no loop devices here (/dev/loop-control missing)".into());
        }
        if !Path::new("/dev/fuse").exists() {
            return Some("/dev/fuse does not exist".into());
        }
        for tool in ["losetup", "mkfs.ext4", "mount", "umount"] {
            if Command::new(tool).arg("-V").output().is_err() {
                return Some(format!("{tool} is not installed (util-linux, e2fsprogs)"));
            }
        }
        // The threaded backend's tests run without io_uring.
        if mode.backend == Backend::Threaded {
            return None;
        }
        uring_wal::io_uring_unavailable_reason().map(|r| format!("io_uring unavailable here ({r})"))
    }

    /// A new, empty ext4 for a test of `mode`, or `None` (skipped).
    fn create(mode: Mode) -> Option<Ext4> {
        if let Some(reason) = Ext4::unavailable(mode) {
            return skip(&reason);
        }
        let fuse = match fusefs::mount(State::empty(), FsOptions::default()) {
            Ok(m) => m,
            Err(e) => return skip(&e),
        };
        // The image file and its directory entry are durable before mkfs.
        let image = fuse.path().join(IMAGE);
        let f = std::fs::File::create(&image).unwrap();
        f.set_len(IMAGE_BYTES).unwrap();
        f.sync_all().unwrap();
        drop(f);
        std::fs::File::open(fuse.path()).unwrap().sync_all().unwrap();
        // Loop devices or ext4 refused here (a container without loop
        // nodes, a user namespace): the test cannot run.
        let mut ext4 = match Ext4::attach(fuse) {
            Ok(e) => e,
            Err(e) => return skip(&e),
        };
        let dev = ext4.loop_dev.clone().unwrap();
        // No lazy initialisation: no kernel thread writes behind the test.
        let mkfs = ["-q", "-F", "-b", "4096", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", &dev];
        if let Err(e) = run("mkfs.ext4", &mkfs).and_then(|_| ext4.mount()) {
            return skip(&e);
        }
        Some(ext4)
    }

    /// The ext4 of a disk image after a power loss (mounting replays its
    /// journal).
    fn after_power_loss(image: State, ctx: &str) -> Ext4 {
        let fuse = fusefs::mount(image, FsOptions::default()).unwrap_or_else(|e| panic!("{ctx}: remount: {e}"));
        let mut ext4 = Ext4::attach(fuse).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        ext4.mount().unwrap_or_else(|e| panic!("{ctx}: mounting the image after the power loss: {e}"));
        ext4
    }

    fn attach(fuse: Mount) -> Result<Ext4, String> {
        let image = fuse.path().join(IMAGE);
        // The mount point first: nothing between losetup and the Ext4 that
        // detaches it can fail.
        let mountpoint =
            tempfile::Builder::new().prefix("uring-wal-ext4-").tempdir().map_err(|e| format!("mount point: {e}"))?;
        let dev = run("losetup", &["--find", "--show", &image.to_string_lossy()])?;
        Ok(Ext4 { fuse: Some(fuse), loop_dev: Some(dev), mountpoint, mounted: false })
    }

    fn mount(&mut self) -> Result<(), String> {
        let dev = self.loop_dev.clone().unwrap_or_default();
        run("mount", &["-t", "ext4", "-o", "nodiscard", &dev, &self.mountpoint.path().to_string_lossy()])?;
        self.mounted = true;
        Ok(())
    }

    fn fs(&self) -> &Fs {
        &self.fuse.as_ref().unwrap().fs
    }

    fn dir(&self) -> PathBuf {
        self.mountpoint.path().join("wal")
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let mut clean = true;
        if self.mounted {
            let point = self.mountpoint.path().to_string_lossy().into_owned();
            if let Err(e) = run("umount", &[&point]) {
                eprintln!("umount failed ({e}); detaching lazily");
                let _ = run("umount", &["-l", &point]);
                clean = false;
            }
        }
        if let Some(dev) = self.loop_dev.take() {
            if let Err(e) = run("losetup", &["-d", &dev]) {
                eprintln!("losetup -d failed: {e}");
                clean = false;
            }
        }
        if let Some(fuse) = self.fuse.take() {
            // A loop device still holding the image would keep the FUSE
            // connection (and its server thread) alive: abort it.
            if !clean {
                fuse.abort();
            }
            drop(fuse);
        }
    }
}

/// What a test runs: a durability mode on an I/O path.
#[derive(Clone, Copy, Debug)]
struct Mode {
    durability: Durability,
    backend: Backend,
    /// Fresh segments zero-filled (the default) or only allocated, as the
    /// rest of a segment whose fill was cut short is.
    prewrite: bool,
}

/// The default path: io_uring (`Backend::Auto` takes it where the kernel
/// allows), `O_DIRECT`.
fn default_path(durability: Durability) -> Mode {
    Mode { durability, backend: Backend::Auto, prewrite: true }
}

fn threaded(durability: Durability) -> Mode {
    Mode { durability, backend: Backend::Threaded, prewrite: true }
}

fn options(dir: &Path, mode: Mode) -> Options {
    Options::new(dir)
        .durability(mode.durability)
        .backend(mode.backend)
        .segment_bytes(256 * 1024)
        .record_bytes_max(16 * 1024)
        .prewrite_segments(mode.prewrite)
}

/// Opens the log and checks it takes the path under test: io_uring (or the
/// threaded backend where asked), `O_DIRECT`, `RWF_DSYNC` on ext4.
fn open(ext4: &Ext4, mode: Mode, ctx: &str) -> Arc<Wal> {
    let o = options(&ext4.dir(), mode);
    let wal = within("open", move || Wal::open(o)).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
    let b = wal.backend();
    let kind = if mode.backend == Backend::Threaded { BackendKind::Threaded } else { BackendKind::IoUring };
    assert_eq!(b.kind, kind, "{ctx}: not the path under test: {b:?}");
    assert!(b.direct_io, "{ctx}: not O_DIRECT: {b:?}");
    assert_eq!(b.device.fs_type, "ext4", "{ctx}: {b:?}");
    assert!(b.rwf_dsync, "{ctx}: RWF_DSYNC not used on ext4: {b:?}");
    Arc::new(wal)
}

/// Appenders, each recording what was acknowledged to it, until stopped or
/// until an append fails.
struct Appenders {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<u64, u64>>>,
    threads: Vec<std::thread::JoinHandle<Option<uring_wal::Error>>>,
}

impl Appenders {
    fn start(wal: &Arc<Wal>, writers: u64, round: u64, rng: &mut Rng) -> Appenders {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let threads = (0..writers)
            .map(|w| {
                let (wal, stop, acked) = (wal.clone(), stop.clone(), acked.clone());
                let mut rng = Rng(rng.next() | 1);
                std::thread::spawn(move || {
                    let mut seq = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let id = (round << 40) | (w << 32) | seq;
                        seq += 1;
                        let len = if rng.below(10) == 0 { 4000 + rng.below(9000) } else { 8 + rng.below(700) } as usize;
                        match wal.append(RecordType::Put, &common::tagged(id, len)) {
                            Ok(lsn) => {
                                acked.lock().unwrap().insert(lsn, id);
                            }
                            Err(e) => return Some(e),
                        }
                    }
                    None
                })
            })
            .collect();
        Appenders { stop, acked, threads }
    }

    /// Waits (bounded) until something was acknowledged, so that a slow
    /// machine's first flushes do not leave a round with nothing to check.
    fn wait_for_an_acknowledgement(&self, ctx: &str) {
        let deadline = Instant::now() + BOUND;
        while self.acked.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "{ctx}: nothing acknowledged within {BOUND:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the appenders; what each one's last append failed with, if it did.
    fn stop(self) -> Vec<Option<uring_wal::Error>> {
        self.stop.store(true, Ordering::SeqCst);
        let threads = self.threads;
        within("stopping the appenders", move || threads.into_iter().map(|t| t.join().unwrap()).collect())
    }
}

/// Checks that flushes were written with `RWF_DSYNC`, the path under
/// test: some for a lone `GroupSync` appender (it takes that path after a
/// few flushes alone), and, once appends are `quiet` (the two counters are
/// read one after the other), every one under `Dsync`. Several `GroupSync`
/// appenders share fdatasyncs instead: nothing to check.
fn assert_rwf_dsync_flushes(wal: &Wal, mode: Mode, writers: u64, quiet: bool, ctx: &str) {
    let s = wal.stats();
    if mode.durability == Durability::GroupSync && writers > 1 {
        return;
    }
    assert!(s.rwf_dsync_flushes > 0, "{ctx}: no flush carried RWF_DSYNC ({} flushes)", s.flushes);
    if quiet && mode.durability == Durability::Dsync {
        assert_eq!(s.rwf_dsync_flushes, s.flushes, "{ctx}: Dsync flushes without RWF_DSYNC");
    }
}

fn close(wal: Arc<Wal>, ctx: &str) -> uring_wal::Result<()> {
    let wal = Arc::try_unwrap(wal).unwrap_or_else(|_| panic!("{ctx}: handles left"));
    within("close", move || wal.close())
}

/// Rounds of appends, each ended by a power loss at a random moment and
/// checked on the reopened log.
fn power_losses(name: &str, mode: Mode, writers: u64, seed: u64) {
    let started = Instant::now();
    let Some(mut ext4) = Ext4::create(mode) else { return };
    let losses: u64 = std::env::var("URING_WAL_EXT4_POWER_LOSSES").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let mut rng = Rng(seed);
    let (mut must_have, mut appended) = (BTreeMap::new(), BTreeMap::new());
    let (mut checked, mut acked_total, mut fsyncs, mut created) = (0usize, 0usize, 0u64, 0u64);
    for round in 0..=losses {
        let ctx = format!("{name}, reopen {round}");
        let wal = open(&ext4, mode, &ctx);
        let found = common::check_log(&wal, &ctx, &must_have, &appended);
        checked += must_have.len();
        if round == losses {
            close(wal, &ctx).unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
            break;
        }
        must_have = found;
        let appenders = Appenders::start(&wal, writers, round, &mut rng);
        appenders.wait_for_an_acknowledgement(&ctx);
        std::thread::sleep(Duration::from_millis(100 + rng.below(300)));
        // The power loss: the disk's durable image as of now; what was
        // acknowledged by now had its cache flush answered by now.
        let (image, acked) = ext4.fs().freeze(|| appenders.acked.lock().unwrap().clone());
        let all_acked = appenders.acked.clone();
        let errors: Vec<_> = appenders.stop().into_iter().flatten().collect();
        assert!(errors.is_empty(), "{ctx}: appends failed without a fault: {errors:?}");
        assert_rwf_dsync_flushes(&wal, mode, writers, true, &ctx);
        created += wal.stats().segments_created;
        close(wal, &ctx).unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
        assert!(!acked.is_empty(), "{ctx}: nothing was acknowledged before the power loss");
        acked_total += acked.len();
        fsyncs += ext4.fs().stats().fsyncs;
        drop(ext4);
        must_have.extend(acked);
        appended = all_acked.lock().unwrap().clone();
        ext4 = Ext4::after_power_loss(image, &ctx);
    }
    eprintln!(
        "{name}: {losses} power losses, {acked_total} records acknowledged before them, {checked} checked at \
         reopens, {fsyncs} cache flushes of the disk, {created} fresh segments, in {:?}",
        started.elapsed()
    );
    assert!(checked > 0 && fsyncs > 0, "{name}: nothing was checked");
    assert!(created > 0, "{name}: the appends never reached a fresh segment");
}

#[test]
fn dsync_records_acknowledged_on_ext4_survive_power_losses() {
    power_losses("Dsync, 3 appenders", default_path(Durability::Dsync), 3, 0xE4_0001);
}

#[test]
fn dsync_records_in_allocated_only_segments_on_ext4_survive_power_losses() {
    // Every record lands in unwritten extents: each RWF_DSYNC write must
    // also make its extent conversion durable, or the records read back as
    // zeros after the power loss.
    let mode = Mode { prewrite: false, ..default_path(Durability::Dsync) };
    power_losses("Dsync, allocated-only segments, 3 appenders", mode, 3, 0xE4_0003);
}

#[test]
fn group_sync_records_in_allocated_only_segments_on_ext4_survive_power_losses() {
    // Several appenders share a write and a linked fdatasync, which must
    // commit the extent conversions of every write it covers.
    let mode = Mode { prewrite: false, ..default_path(Durability::GroupSync) };
    power_losses("GroupSync, allocated-only segments, 3 appenders", mode, 3, 0xE4_0004);
}

#[test]
fn a_lone_group_sync_appenders_records_on_ext4_survive_power_losses() {
    power_losses("GroupSync, 1 appender", default_path(Durability::GroupSync), 1, 0xE4_0002);
}

/// The disk dies while appends run: every write, or every cache flush, of
/// the disk image fails from a random moment on.
fn disk_dies(name: &str, mode: Mode, writers: u64, faults: Faults, seed: u64) {
    let Some(ext4) = Ext4::create(mode) else { return };
    let mut rng = Rng(seed);
    let ctx = name.to_string();
    let wal = open(&ext4, mode, &ctx);
    let appenders = Appenders::start(&wal, writers, 0, &mut rng);
    appenders.wait_for_an_acknowledgement(&ctx);
    std::thread::sleep(Duration::from_millis(100 + rng.below(200)));
    let before = appenders.acked.lock().unwrap().len();
    assert_rwf_dsync_flushes(&wal, mode, writers, false, &ctx);
    ext4.fs().set_faults(faults);
    let died = Instant::now();
    // Every appender must hear of it, in bounded time, without being told
    // to stop.
    let acked = appenders.acked.clone();
    let threads = appenders.threads;
    let errors: Vec<Option<uring_wal::Error>> =
        within("appenders failing", move || threads.into_iter().map(|t| t.join().unwrap()).collect());
    let noticed = died.elapsed();
    assert!(errors.iter().all(Option::is_some), "{ctx}: an appender ended without an error: {errors:?}");
    let injected = ext4.fs().stats().faults;
    assert!(injected > 0, "{ctx}: the appenders failed, but no fault was injected: {errors:?}");
    common::assert_refuses_after_poison(&wal, BOUND, &ctx);
    let Some(uring_wal::Error::Poisoned(failure)) = wal.poisoned() else { panic!("{ctx}: not poisoned") };
    // Dsync writes every flush with RWF_DSYNC: that write is what fails. A
    // lone GroupSync appender's flush carries it once the appender has been
    // alone a while, else it is written and then fdatasynced.
    let ops: &[&str] =
        if mode.durability == Durability::Dsync { &["write (RWF_DSYNC)"] } else { &["write (RWF_DSYNC)", "fdatasync"] };
    assert!(ops.contains(&failure.op), "{ctx}: the poison came from elsewhere: {failure}");
    // The disk's EIO; or EROFS when ext4 met a failed cache flush first in a
    // journal commit of its own (for one, the syncs of the preparer's
    // zero-fill, which converts extents while the appends run) and aborted
    // the journal: from then on it refuses writes.
    let errno = failure.error.raw_os_error();
    assert!(errno == Some(libc::EIO) || errno == Some(libc::EROFS), "{ctx}: {failure}");
    // A power loss now: nothing acknowledged may be missing.
    let (image, acked) = ext4.fs().freeze(|| acked.lock().unwrap().clone());
    // Closing a poisoned log reports the failure (or nothing); it returns.
    let closed = close(wal, &ctx);
    ext4.fs().set_faults(Faults::default());
    drop(ext4);
    let ext4 = Ext4::after_power_loss(image, &ctx);
    let wal = open(&ext4, mode, &ctx);
    let found = common::check_log(&wal, &ctx, &acked, &acked);
    eprintln!(
        "{name}: {} records acknowledged ({before} before the fault), all {} there after the power loss \
         ({} records recovered); every appender failed within {noticed:?} ({injected} faults), e.g. {}; close: {closed:?}",
        acked.len(),
        acked.len(),
        found.len(),
        errors[0].as_ref().map_or(String::new(), ToString::to_string)
    );
    assert!(before > 0, "{ctx}: nothing was acknowledged before the fault");
    close(wal, &ctx).unwrap();
}

#[test]
fn dsync_on_ext4_poisons_when_the_disks_writes_fail_and_loses_no_acknowledged_record() {
    let faults = Faults { all_writes_eio: true, ..Faults::default() };
    disk_dies("Dsync, writes fail", default_path(Durability::Dsync), 3, faults, 0xE4_0011);
}

#[test]
fn dsync_on_ext4_poisons_when_the_disks_cache_flushes_fail_and_loses_no_acknowledged_record() {
    let faults = Faults { all_fsyncs_eio: true, ..Faults::default() };
    disk_dies("Dsync, cache flushes fail", default_path(Durability::Dsync), 3, faults, 0xE4_0012);
}

#[test]
fn a_lone_group_sync_appender_on_ext4_poisons_when_the_disks_cache_flushes_fail() {
    let faults = Faults { all_fsyncs_eio: true, ..Faults::default() };
    disk_dies("GroupSync, 1 appender, cache flushes fail", default_path(Durability::GroupSync), 1, faults, 0xE4_0013);
}

/// The threaded backend (`Backend::Auto`'s fallback where io_uring is
/// refused) writes `Dsync` flushes with a blocking `pwritev2(RWF_DSYNC)`.
#[test]
fn threaded_dsync_records_acknowledged_on_ext4_survive_power_losses() {
    power_losses("Dsync threaded, 3 appenders", threaded(Durability::Dsync), 3, 0xE4_0021);
}

#[test]
fn threaded_dsync_on_ext4_poisons_when_the_disks_cache_flushes_fail_and_loses_no_acknowledged_record() {
    let faults = Faults { all_fsyncs_eio: true, ..Faults::default() };
    disk_dies("Dsync threaded, cache flushes fail", threaded(Durability::Dsync), 3, faults, 0xE4_0022);
}

/// Bytes an unprivileged writer may still allocate on the file system of
/// `path` (root may use ext4's reserve on top).
fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: all-zero is a valid statvfs; statvfs fills it from a valid
    // NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `st` outlives the call.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs {}", path.display());
    st.f_bavail * st.f_frsize
}

/// The disk fills up: the log cannot create its next segment. Appends fail
/// in bounded time with the file system's ENOSPC; nothing acknowledged is
/// lost, and once space is freed the log reopens and appends again.
#[test]
fn a_full_disk_stops_appends_at_the_next_segment_and_loses_nothing() {
    let mode = default_path(Durability::GroupSync);
    let Some(ext4) = Ext4::create(mode) else { return };
    let ctx = "full disk";
    let wal = open(&ext4, mode, ctx);
    // Leave 640 KiB, plus ext4's reserve that root may use (about 2 MiB in
    // all: several more 256 KiB segments), then append until refused.
    let filler = ext4.mountpoint.path().join("filler");
    let f = std::fs::File::create(&filler).unwrap();
    let fill = free_bytes(ext4.mountpoint.path()).saturating_sub(640 * 1024) as libc::off_t;
    // SAFETY: a valid descriptor; fallocate reserves blocks and touches no memory.
    assert_eq!(unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 0, fill) }, 0, "filling the disk");
    f.sync_all().unwrap();
    // Closed, so that removing it later frees its blocks.
    drop(f);
    let mut rng = Rng(0xE4_0031);
    let appenders = Appenders::start(&wal, 2, 0, &mut rng);
    let acked = appenders.acked.clone();
    let threads = appenders.threads;
    let errors: Vec<Option<uring_wal::Error>> =
        within("appenders refused", move || threads.into_iter().map(|t| t.join().unwrap()).collect());
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "{ctx}: nothing fitted");
    for e in &errors {
        let e = e.as_ref().unwrap_or_else(|| panic!("{ctx}: an appender ended without an error"));
        let text = e.to_string();
        assert!(text.contains("No space left on device"), "{ctx}: refused for another reason: {text}");
        assert!(text.contains(".wal"), "{ctx}: the error names no segment file: {text}");
    }
    eprintln!("{ctx}: {} records acknowledged, then: {}", acked.len(), errors[0].as_ref().unwrap());
    let _ = close(wal, ctx);
    std::fs::remove_file(&filler).unwrap();
    // ext4 reuses freed blocks only once the journal committed their
    // release: commit it now.
    let root = std::fs::File::open(ext4.mountpoint.path()).unwrap();
    // SAFETY: a valid descriptor; syncfs touches no memory of ours.
    assert_eq!(unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&root)) }, 0, "syncfs");
    let free = free_bytes(ext4.mountpoint.path());
    assert!(free >= 4 << 20, "{ctx}: only {free} bytes free after removing the filler");
    let wal = open(&ext4, mode, ctx);
    common::check_log(&wal, ctx, &acked, &acked);
    let lsn = wal.append(RecordType::Put, b"after room was made").unwrap();
    assert!(lsn > *acked.keys().next_back().unwrap(), "{ctx}: LSN {lsn} reused");
    close(wal, ctx).unwrap();
}
