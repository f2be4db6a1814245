//! What a segment zero-fill costs one durable writer, measured on the device
//! alone, without the log: a closed loop of 4 KiB O_DIRECT writes, each
//! followed by `fdatasync`, at increasing offsets of a pre-written file
//! (what the raw baseline of bench-harness does), while another thread
//! does what the segment preparer does (docs/BENCHMARKS.md, "What was
//! tried").
//!
//! `cargo run --release --example zero_fill_probe -- MODE [SECONDS] [DIR]`
//!
//! MODE:
//! - `alone`: the writer only;
//! - `zero-fill`: plus a thread zero-filling fresh 64 MiB files in 64 KiB
//!   writes paced over 1 s, with an `fdatasync` every 4 MiB, then waiting
//!   until the writer has written as much (one segment per segment used);
//! - `zero-fill-idle`: the same with that thread in the idle I/O class;
//! - `zero-fill-idle-nosync`: the same, syncing each file only once full;
//! - `same-block`: the writer rewrites one block instead of moving on.
//!
//! DIR must be on the file system to measure (default: the temporary
//! directory); the probe writes about 64 MiB plus one file per segment
//! there and removes them.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use uring_wal::storage::AlignedBuf;

const FILE_BYTES: u64 = 64 << 20;
const BLOCK_BYTES: usize = 4096;
const FILL_CHUNK_BYTES: usize = 64 << 10;
const FILL_SYNC_BYTES: u64 = 4 << 20;
const FILL_BUDGET: Duration = Duration::from_secs(1);

fn open_direct(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create_new(true).custom_flags(libc::O_DIRECT).open(path)
}

fn allocate(file: &File) -> std::io::Result<()> {
    // SAFETY: plain system call on an open descriptor.
    let ret = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, FILE_BYTES as libc::off_t) };
    if ret == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

fn set_idle_io_class() -> std::io::Result<()> {
    // SAFETY: ioprio_set takes integers only; `who` 0 with
    // IOPRIO_WHO_PROCESS (1) names the calling thread; class 3 is idle.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, 1 as libc::c_long, 0 as libc::c_long, 3 << 13) };
    if ret == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Zero-fills fresh files as the segment preparer does, one per
/// `FILE_BYTES` the writer has written, until `stop`.
fn zero_filler(
    dir: PathBuf,
    idle: bool,
    sync_bytes: u64,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    if idle {
        set_idle_io_class()?;
    }
    let zeros = AlignedBuf::zeroed(FILL_CHUNK_BYTES);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let path = dir.join(format!("spare-{n}"));
        let file = open_direct(&path)?;
        allocate(&file)?;
        let started = Instant::now();
        let (mut offset, mut unsynced) = (0u64, 0u64);
        while offset < FILE_BYTES && !stop.load(Ordering::Relaxed) {
            file.write_all_at(&zeros, offset)?;
            offset += FILL_CHUNK_BYTES as u64;
            unsynced += FILL_CHUNK_BYTES as u64;
            if unsynced >= sync_bytes {
                file.sync_data()?;
                unsynced = 0;
            }
            let due = FILL_BUDGET.mul_f64(offset as f64 / FILE_BYTES as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        file.sync_data()?;
        drop(file);
        std::fs::remove_file(&path)?;
        n += 1;
        let next = written.load(Ordering::Relaxed) + FILE_BYTES;
        while written.load(Ordering::Relaxed) < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

fn cpu_us() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF covers every thread of the process.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let t = |v: libc::timeval| v.tv_sec as f64 * 1e6 + v.tv_usec as f64;
    t(r.ru_utime) + t(r.ru_stime)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "alone".into());
    let secs: f64 = match args.next() {
        None => 8.0,
        Some(s) => match s.parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => v,
            _ => {
                eprintln!("SECONDS must be a positive number, not {s:?}");
                std::process::exit(2);
            }
        },
    };
    let base = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let modes = ["alone", "zero-fill", "zero-fill-idle", "zero-fill-idle-nosync", "same-block"];
    if !modes.contains(&mode.as_str()) {
        eprintln!("MODE is one of {}", modes.join(", "));
        std::process::exit(2);
    }
    let dir = base.join(format!("zero-fill-probe-{}", std::process::id()));
    std::fs::create_dir(&dir)?;
    // The writer's file is written in full first, as a recycled segment
    // (or the harness's raw baseline) would be.
    let log = open_direct(&dir.join("log"))?;
    allocate(&log)?;
    let prewrite = AlignedBuf::zeroed(1 << 20);
    for off in (0..FILE_BYTES).step_by(prewrite.len()) {
        log.write_all_at(&prewrite, off)?;
    }
    log.sync_data()?;

    let (written, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let filler = mode.starts_with("zero-fill").then(|| {
        let (dir, written, stop) = (dir.clone(), written.clone(), stop.clone());
        let idle = mode.starts_with("zero-fill-idle");
        let sync_bytes = if mode.ends_with("nosync") { FILE_BYTES } else { FILL_SYNC_BYTES };
        std::thread::spawn(move || zero_filler(dir, idle, sync_bytes, written, stop))
    });
    let mut block = AlignedBuf::zeroed(BLOCK_BYTES);
    block.fill(7);
    let mut latencies_ns = Vec::with_capacity((secs * 20_000.0) as usize);
    let (started, cpu0) = (Instant::now(), cpu_us());
    let mut offset = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        log.write_all_at(&block, offset)?;
        log.sync_data()?;
        latencies_ns.push(t.elapsed().as_nanos() as u64);
        if mode != "same-block" {
            offset = (offset + BLOCK_BYTES as u64) % FILE_BYTES;
        }
        written.fetch_add(BLOCK_BYTES as u64, Ordering::Relaxed);
    }
    let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu_us() - cpu0);
    stop.store(true, Ordering::Relaxed);
    if let Some(f) = filler {
        f.join().expect("zero-filler panicked")?;
    }
    std::fs::remove_dir_all(&dir)?;

    latencies_ns.sort_unstable();
    let n = latencies_ns.len();
    if n == 0 {
        eprintln!("no write completed in {secs} s");
        std::process::exit(1);
    }
    let q = |p: f64| latencies_ns[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0;
    println!(
        "{mode:<15} ops/s {:>6.0}  p50 {:>6.1}  p99 {:>6.1}  p99.9 {:>6.1}  max {:>8.1} us  CPU {:.1} us/op",
        n as f64 / elapsed,
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0),
        cpu / n as f64
    );
    Ok(())
}
