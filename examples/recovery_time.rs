//! Times recovery of an existing log: opens it (the scan checks every
//! record), reports the bytes read and MB/s, and closes it. Opening changes
//! what opening always does: a torn tail is cut, and the next segment is
//! prepared (zero-filled if no spare exists). The time is the whole
//! `Wal::open` (lock, scan, directory sync); the raw read covers every
//! `*.wal` file, spares included, so the two byte counts differ slightly.
//!
//! After each opening it also reads every record back in order (a replay,
//! `Wal::read_from`) and reports its rate, timed on its own.
//!
//! `cargo run --release --example recovery_time -- DIR [RUNS]`
//!
//! Opening the same log again reads it again from the device: recovery
//! reads through the page cache but drops what it read. With `RUNS` > 1 it
//! also reads every segment file twice before each open, with plain 1 MiB
//! `O_DIRECT` reads and with 1 MiB reads through the (emptied) page cache
//! and the kernel's read-ahead, dropped behind every 8 MiB, the way
//! recovery reads; so the rates come
//! from the same moment, and recovery is compared with the faster read.
//! `bench-harness --keep --dir D recovery` leaves such a log in
//! `D/recovery`.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use uring_wal::{Options, Wal};

/// Reads every `*.wal` file of `dir` with 1 MiB reads, `O_DIRECT` or
/// through the page cache (emptied before, and after); MB/s.
fn raw_read(dir: &Path, direct: bool) -> std::io::Result<f64> {
    let mut buf = AlignedMiB::new();
    let started = Instant::now();
    let mut bytes = 0u64;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "wal") {
            continue;
        }
        let flags = if direct { libc::O_DIRECT } else { 0 };
        let mut f = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(&path)?;
        let fd = f.as_raw_fd();
        let advise = |offset: u64, len: u64, advice| {
            if !direct {
                // SAFETY: an advisory system call on an open descriptor.
                unsafe { libc::posix_fadvise(fd, offset as libc::off_t, len as libc::off_t, advice) };
            }
        };
        advise(0, 0, libc::POSIX_FADV_DONTNEED);
        advise(0, 0, libc::POSIX_FADV_SEQUENTIAL);
        // Dropped behind every 8 MiB, as recovery does: pages reused at once
        // are cheaper here than pages the guest has not touched for a while.
        let (mut at, mut dropped_to) = (0u64, 0u64);
        loop {
            let n = f.read(buf.as_mut())?;
            if n == 0 {
                break;
            }
            at += n as u64;
            if at >= dropped_to + (8 << 20) {
                advise(dropped_to, at - dropped_to, libc::POSIX_FADV_DONTNEED);
                dropped_to = at;
            }
        }
        bytes += at;
        advise(0, 0, libc::POSIX_FADV_DONTNEED);
    }
    Ok(bytes as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// CPU time of the process so far (user and system, all threads).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A 1 MiB buffer aligned for `O_DIRECT`.
struct AlignedMiB(Vec<u8>, usize);

impl AlignedMiB {
    fn new() -> AlignedMiB {
        let v = vec![0u8; (1 << 20) + 4096];
        let skip = v.as_ptr().align_offset(4096);
        AlignedMiB(v, skip)
    }

    fn as_mut(&mut self) -> &mut [u8] {
        let skip = self.1;
        &mut self.0[skip..skip + (1 << 20)]
    }
}

/// Reads every record of the open log in order; records and MB/s of the
/// segment bytes read.
fn replay(wal: &Wal) -> Result<(u64, f64), uring_wal::Error> {
    let started = Instant::now();
    let mut reader = wal.read_from(wal.first_lsn())?;
    let mut records = 0u64;
    while let Some(r) = reader.next_record()? {
        std::hint::black_box(r.payload);
        records += 1;
    }
    Ok((records, reader.bytes_read() as f64 / started.elapsed().as_secs_f64() / 1e6))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: recovery_time DIR [RUNS]")?;
    let runs: usize = match args.next() {
        Some(r) => r.parse().ok().filter(|&n| n > 0).ok_or("RUNS must be a positive number")?,
        None => 1,
    };
    let mut ratios = Vec::new();
    for run in 1..=runs {
        let raw =
            if runs > 1 { Some((raw_read(Path::new(&dir), true)?, raw_read(Path::new(&dir), false)?)) } else { None };
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let wal = Wal::open(Options::durable(&dir).create_if_missing(false))?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_before;
        let r = wal.recovery_report().clone();
        let (replayed, replay_mb_s) = replay(&wal)?;
        wal.close()?;
        let mb_s = r.bytes_read as f64 / seconds / 1e6;
        print!(
            "run {run}: {} records, {} segments, {:.0} MB in {seconds:.3} s (scan {:.3} s, CPU {cpu:.3} s): \
             {mb_s:.0} MB/s; replay of {replayed} records {replay_mb_s:.0} MB/s",
            r.records,
            r.segments,
            r.bytes_read as f64 / 1e6,
            r.duration.as_secs_f64()
        );
        match raw {
            Some((direct, cached)) => {
                let best = direct.max(cached);
                println!(
                    "; raw read O_DIRECT {direct:.0} MB/s, cached {cached:.0} MB/s; ratio to the faster {:.2}",
                    mb_s / best
                );
                ratios.push(mb_s / best);
            }
            None => println!(),
        }
    }
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        println!(
            "recovery / faster raw read: median {:.2} (min {:.2}, max {:.2}) over {runs} runs",
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    Ok(())
}
