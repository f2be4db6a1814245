//! The device with no log on top: the ceiling every report compares to.
//!
//! Writes go to a pre-written file (overwrites, like the log's pre-written
//! segments) through the same kind of io_uring ring the library uses
//! (`SINGLE_ISSUER` + `DEFER_TASKRUN` where available, a registered buffer),
//! and, for the sync-method table, through plain system calls.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use uring_wal::format::{data_offset, padded_end, record};
use uring_wal::storage::AlignedBuf;

use crate::model::{BandwidthResult, LatencySummary, LoadResult, TestKind, latency_histogram};
use crate::sys;
use crate::timeline;

/// Bytes the WAL writes for a flush holding one record of `record_bytes`:
/// the record, padded to the block.
pub fn padded_write_bytes(record_bytes: usize, block_bytes: u32) -> usize {
    let start = data_offset(block_bytes);
    let end = start + record::encoded_len(record_bytes as u32);
    (padded_end(end, block_bytes, u64::MAX / 2) - start) as usize
}

/// A pre-written file the raw tests write into and read from.
pub struct RawFile {
    pub path: PathBuf,
    file: File,
    pub size: u64,
    pub direct: bool,
}

impl Drop for RawFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn open_flags(direct: bool, extra: i32) -> i32 {
    extra | if direct { libc::O_DIRECT } else { 0 }
}

impl RawFile {
    /// Creates `raw-baseline.dat` in `dir`, `size` bytes, written with zeros
    /// and synced, so later writes are overwrites.
    pub fn prepare(dir: &Path, size: u64, direct: bool) -> Result<RawFile> {
        let path = dir.join("raw-baseline.dat");
        let _ = std::fs::remove_file(&path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(open_flags(direct, libc::O_NOFOLLOW))
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let chunk = AlignedBuf::zeroed(1 << 20);
        let mut off = 0;
        while off < size {
            let n = (size - off).min(chunk.len() as u64) as usize;
            file.write_all_at(&chunk[..n], off).with_context(|| format!("pre-writing {}", path.display()))?;
            off += n as u64;
        }
        file.sync_all().context("syncing the raw baseline file")?;
        Ok(RawFile { path, file, size, direct })
    }
}

/// Ways to make one write durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMethod {
    /// io_uring write linked to fdatasync: the device's write + cache flush,
    /// one at a time (GroupSync's cost per flush, without the log).
    UringFdatasync,
    /// io_uring write with RWF_DSYNC (what Dsync does).
    UringDsync,
    /// pwrite(2) then fdatasync(2).
    PwriteFdatasync,
    /// pwritev2(2) with RWF_DSYNC.
    PwriteDsync,
    /// pwrite(2) on a descriptor opened with O_DSYNC.
    OpenDsync,
    /// pwrite(2), no sync: not durable, the device's write latency.
    PwriteNoSync,
}

impl SyncMethod {
    pub const ALL: [SyncMethod; 6] = [
        SyncMethod::UringFdatasync,
        SyncMethod::UringDsync,
        SyncMethod::PwriteFdatasync,
        SyncMethod::PwriteDsync,
        SyncMethod::OpenDsync,
        SyncMethod::PwriteNoSync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SyncMethod::UringFdatasync => "raw/io_uring write+fdatasync",
            SyncMethod::UringDsync => "raw/io_uring write RWF_DSYNC",
            SyncMethod::PwriteFdatasync => "raw/pwrite+fdatasync",
            SyncMethod::PwriteDsync => "raw/pwritev2 RWF_DSYNC",
            SyncMethod::OpenDsync => "raw/pwrite O_DSYNC",
            SyncMethod::PwriteNoSync => "raw/pwrite, no sync",
        }
    }
}

type Ring = IoUring<squeue::Entry, cqueue::Entry>;

fn ring(entries: u32) -> Result<Ring> {
    IoUring::<squeue::Entry, cqueue::Entry>::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
        .or_else(|_| IoUring::new(entries))
        .context("setting up io_uring for the raw baseline")
}

/// One durable write at a time into a [`RawFile`], by one [`SyncMethod`].
struct Qd1<'a> {
    raw: &'a RawFile,
    method: SyncMethod,
    /// io_uring methods only. Declared before `buf`, so it is dropped
    /// first: the kernel may hold `buf` as a registered buffer until then.
    ring: Option<Ring>,
    /// `buf` is registered with `ring`: writes use WriteFixed.
    fixed: bool,
    buf: AlignedBuf,
    /// [`SyncMethod::OpenDsync`] only: the file opened again with O_DSYNC.
    dsync_file: Option<File>,
}

impl<'a> Qd1<'a> {
    fn new(raw: &'a RawFile, method: SyncMethod, write_bytes: usize) -> Result<Qd1<'a>> {
        if raw.direct && !write_bytes.is_multiple_of(512) {
            bail!("raw O_DIRECT writes must be a multiple of 512 bytes, got {write_bytes}");
        }
        let mut buf = AlignedBuf::zeroed(write_bytes);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i * 7 + 1) as u8;
        }
        let dsync_file = match method {
            SyncMethod::OpenDsync => Some(
                OpenOptions::new()
                    .write(true)
                    .custom_flags(open_flags(raw.direct, libc::O_DSYNC))
                    .open(&raw.path)
                    .context("opening with O_DSYNC")?,
            ),
            _ => None,
        };
        let ring = match method {
            SyncMethod::UringFdatasync | SyncMethod::UringDsync => Some(ring(8)?),
            _ => None,
        };
        let fixed = ring.as_ref().is_some_and(|r| {
            let iov = [libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() }];
            // SAFETY: buf's allocation outlives the registration: it does
            // not move when buf moves into Qd1, the ring is dropped before
            // buf (field order of Qd1), and writes only read it.
            unsafe { r.submitter().register_buffers(&iov) }.is_ok()
        });
        Ok(Qd1 { raw, method, ring, fixed, buf, dsync_file })
    }

    /// Writes the buffer at `offset` and makes it durable by the method.
    fn write(&mut self, offset: u64) -> Result<()> {
        let (file, fd, len) = (&self.raw.file, self.raw.file.as_raw_fd(), self.buf.len());
        match self.method {
            SyncMethod::UringFdatasync | SyncMethod::UringDsync => self.uring_write(offset)?,
            SyncMethod::PwriteFdatasync => {
                file.write_all_at(&self.buf, offset)?;
                file.sync_data()?;
            }
            SyncMethod::PwriteDsync => {
                let iov = libc::iovec { iov_base: self.buf.as_mut_ptr().cast(), iov_len: len };
                // SAFETY: iov describes buf, valid for the call.
                let n = unsafe { libc::pwritev2(fd, &iov, 1, offset as libc::off_t, libc::RWF_DSYNC) };
                if n != len as isize {
                    bail!("pwritev2: {}", std::io::Error::last_os_error());
                }
            }
            SyncMethod::OpenDsync => {
                self.dsync_file.as_ref().expect("opened in new").write_all_at(&self.buf, offset)?
            }
            SyncMethod::PwriteNoSync => file.write_all_at(&self.buf, offset)?,
        }
        Ok(())
    }

    /// A write with RWF_DSYNC, or a write linked to an fdatasync, through
    /// the ring; returns once every completion is reaped.
    fn uring_write(&mut self, offset: u64) -> Result<()> {
        let (fd, len) = (types::Fd(self.raw.file.as_raw_fd()), self.buf.len() as u32);
        let dsync = self.method == SyncMethod::UringDsync;
        let flags = if dsync { libc::RWF_DSYNC } else { 0 };
        let write = if self.fixed {
            opcode::WriteFixed::new(fd, self.buf.as_ptr(), len, 0).offset(offset).rw_flags(flags).build()
        } else {
            opcode::Write::new(fd, self.buf.as_ptr(), len).offset(offset).rw_flags(flags).build()
        };
        // No allocation per operation: two entries, one or both used.
        let mut entries = [opcode::Nop::new().build(), opcode::Nop::new().build()];
        let n = if dsync {
            entries[0] = write.user_data(1);
            1
        } else {
            entries[0] = write.flags(squeue::Flags::IO_LINK).user_data(1);
            entries[1] = opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(2);
            2
        };
        let ring = self.ring.as_mut().expect("a ring for io_uring methods");
        // SAFETY: the entries point at buf, alive until their completions
        // are reaped below, before this returns.
        unsafe { ring.submission().push_multiple(&entries[..n]) }.map_err(|_| anyhow::anyhow!("ring full"))?;
        ring.submit_and_wait(n).context("io_uring_enter")?;
        let mut seen = 0;
        while seen < n {
            let Some(cqe) = ring.completion().next() else {
                ring.submit_and_wait(1).context("io_uring_enter")?;
                continue;
            };
            seen += 1;
            let want = if cqe.user_data() == 1 { len as i32 } else { 0 };
            if cqe.result() != want {
                bail!("raw {}: completion {} (expected {want})", self.method.name(), cqe.result());
            }
        }
        Ok(())
    }
}

/// Writes `write_bytes` at a time, one at a time, each made durable by
/// `method`, for `duration` after `warmup` (or until Ctrl-C), cycling
/// through the file; with `interval`, a line per interval and the
/// result's `intervals`.
pub fn qd1(
    raw: &RawFile,
    method: SyncMethod,
    write_bytes: usize,
    warmup: Duration,
    duration: Duration,
    interval: Option<Duration>,
) -> Result<LoadResult> {
    let mut writer = Qd1::new(raw, method, write_bytes)?;
    let slots = (raw.size / write_bytes as u64).max(1);
    let mut hist = latency_histogram();
    let started = Instant::now();
    let (measure_from, stop) = (started + warmup, started + warmup + duration);
    let mut measuring: Option<(Instant, Duration)> = None;
    // With an interval: the device over time, as a load of the log has it
    // (one writer, so one slot; no log counters).
    let slot = [timeline::Slot::new()];
    let mut timeline: Option<(timeline::Sampler, Instant)> = None;
    for i in 0u64.. {
        let now = Instant::now();
        if now >= stop || sys::interrupted() {
            break;
        }
        if measuring.is_none() && now >= measure_from {
            measuring = Some((now, sys::cpu_time()));
            if let Some(interval) = interval {
                println!("\n{} {write_bytes} B, qd1\n{}", method.name(), timeline::header());
                timeline = Some((timeline::Sampler::new(write_bytes as f64, None), now + interval));
            }
        }
        let t0 = Instant::now();
        writer.write((i % slots) * write_bytes as u64)?;
        if let Some((from, _)) = measuring {
            let ns = (t0.elapsed().as_nanos().min(u128::from(crate::model::LATENCY_NS_MAX)) as u64).max(1);
            hist.saturating_record(ns);
            if let (Some((sampler, next)), Some(interval)) = (&mut timeline, interval) {
                slot[0].record(ns);
                if Instant::now() >= *next {
                    println!("{}", timeline::line(&sampler.sample(*next - from, hist.len(), None, &slot)));
                    *next += interval;
                }
            }
        }
    }
    drop(writer);
    let seconds = measuring.map_or(0.0, |(t, _)| t.elapsed().as_secs_f64()).max(1e-9);
    let cpu = measuring.map_or(Duration::ZERO, |(_, cpu0)| sys::cpu_time().saturating_sub(cpu0));
    let intervals = match (timeline, measuring) {
        (Some((mut sampler, _)), Some((from, _))) => {
            let last = sampler.points.last().map_or(0.0, |p| p.end_s);
            if seconds - last > 1e-3 {
                println!("{}", timeline::line(&sampler.sample(from.elapsed(), hist.len(), None, &slot)));
            }
            sampler.points
        }
        _ => Vec::new(),
    };
    let mut result = qd1_result(method, write_bytes, seconds, cpu, hist);
    result.intervals = intervals;
    Ok(result)
}

fn qd1_result(method: SyncMethod, write_bytes: usize, seconds: f64, cpu: Duration, hist: Histogram<u64>) -> LoadResult {
    let measured = hist.len();
    LoadResult {
        test: TestKind::Raw,
        backend: method.name().into(),
        writers: 1,
        record_bytes: write_bytes as f64,
        load: "closed".into(),
        rate_ops_per_sec: None,
        batch: 1,
        pipeline: 1,
        ops: measured,
        seconds,
        ops_per_sec: measured as f64 / seconds,
        mb_per_sec: measured as f64 * write_bytes as f64 / seconds / 1e6,
        latency: LatencySummary::of(&hist),
        latency_uncorrected: None,
        records_per_flush: Some(1.0),
        syncs_per_sec: (method != SyncMethod::PwriteNoSync).then(|| measured as f64 / seconds),
        raft_groups: None,
        segments: None,
        cpu_us_per_op: cpu.as_secs_f64() * 1e6 / measured.max(1) as f64,
        peak_rss_bytes: sys::peak_rss_bytes(),
        error: None,
        dir: None,
        intervals: Vec::new(),
        histogram: hist,
    }
}

/// What a sequential pass does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seq {
    /// Reads the file.
    Read,
    /// Writes the file, one fdatasync at the end.
    Write,
    /// Writes the file, each write followed by a linked fdatasync: the
    /// ceiling of a log that syncs every flush.
    WriteSynced,
}

impl Seq {
    fn name(self) -> &'static str {
        match self {
            Seq::Read => "read",
            Seq::Write => "write",
            Seq::WriteSynced => "write+fdatasync",
        }
    }
}

/// Sequential bandwidth over the whole file: `block_bytes` per operation,
/// `queue_depth` operations in flight. Writes end with an fdatasync, inside
/// the timed span.
pub fn sequential(raw: &RawFile, how: Seq, block_bytes: usize, queue_depth: usize) -> Result<BandwidthResult> {
    // Two entries per synced write; the ring rounds up to a power of two.
    let mut ring = ring(2 * queue_depth as u32)?;
    let mut bufs: Vec<AlignedBuf> = (0..queue_depth).map(|_| AlignedBuf::zeroed(block_bytes)).collect();
    for b in &mut bufs {
        b.fill(0x3C);
    }
    let fd = raw.file.as_raw_fd();
    let ops = raw.size / block_bytes as u64;
    let mut next = 0u64;
    let mut done = 0u64;
    let mut free: Vec<usize> = (0..queue_depth).collect();
    // A synced write completes twice (write, then its sync); the slot is
    // free again after the sync.
    const SYNC_TAG: u64 = 1 << 32;
    let started = Instant::now();
    while done < ops {
        while next < ops {
            let Some(slot) = free.pop() else { break };
            let ptr = bufs[slot].as_mut_ptr();
            let offset = next * block_bytes as u64;
            let e = match how {
                Seq::Read => opcode::Read::new(types::Fd(fd), ptr, block_bytes as u32).offset(offset).build(),
                Seq::Write => opcode::Write::new(types::Fd(fd), ptr, block_bytes as u32).offset(offset).build(),
                Seq::WriteSynced => opcode::Write::new(types::Fd(fd), ptr, block_bytes as u32)
                    .offset(offset)
                    .build()
                    .flags(squeue::Flags::IO_LINK),
            };
            // SAFETY: bufs[slot] stays alive and unused by anything else
            // until its completion returns the slot to `free`.
            unsafe { ring.submission().push(&e.user_data(slot as u64)) }.map_err(|_| anyhow::anyhow!("ring full"))?;
            if how == Seq::WriteSynced {
                let sync = opcode::Fsync::new(types::Fd(fd)).flags(types::FsyncFlags::DATASYNC).build();
                // SAFETY: an fsync references no memory.
                unsafe { ring.submission().push(&sync.user_data(SYNC_TAG | slot as u64)) }
                    .map_err(|_| anyhow::anyhow!("ring full"))?;
            }
            next += 1;
        }
        ring.submit_and_wait(1).context("io_uring_enter")?;
        for cqe in ring.completion() {
            let is_sync = cqe.user_data() & SYNC_TAG != 0;
            let expect = if is_sync { 0 } else { block_bytes as i32 };
            if cqe.result() != expect {
                bail!("sequential {}: completion {}", how.name(), cqe.result());
            }
            if how == Seq::WriteSynced && !is_sync {
                continue;
            }
            free.push((cqe.user_data() & !SYNC_TAG) as usize);
            done += 1;
        }
    }
    if how == Seq::Write {
        raw.file.sync_data()?;
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Ok(BandwidthResult {
        direction: how.name().into(),
        block_bytes,
        queue_depth,
        bytes: raw.size,
        seconds,
        mb_per_sec: raw.size as f64 / seconds / 1e6,
    })
}

/// Name of the pass of [`sequential_cached_read`].
pub const CACHED_READ: &str = "read (page cache, read-ahead)";

/// Sequential read of the whole file through the page cache, `block_bytes`
/// per `read`, the way recovery reads a log: the file's cached pages are
/// dropped first, so the kernel's read-ahead fetches every byte from the
/// device while the reader copies what has arrived, and what was read is
/// dropped every 8 MiB. Without that drop a 1 GiB read here ran at
/// 0.5-2.2 GB/s instead of 2.1-2.7 on the development VM;
/// likely, not verified, because every page was one the guest had not
/// touched in a while, which the host backs again on first use. On a file
/// system without a page cache of its own (tmpfs) it reads memory.
pub fn sequential_cached_read(raw: &RawFile, block_bytes: usize) -> Result<BandwidthResult> {
    let (bytes, seconds) = cached_read(&raw.path, block_bytes)?;
    if bytes != raw.size {
        bail!("sequential cached read: end of file at {bytes} of {}", raw.size);
    }
    Ok(BandwidthResult {
        direction: CACHED_READ.into(),
        block_bytes,
        queue_depth: 1,
        bytes,
        seconds,
        mb_per_sec: bytes as f64 / seconds / 1e6,
    })
}

/// Reads the file at `path` to its end as [`sequential_cached_read`] does:
/// the bytes read and the seconds it took.
pub fn cached_read(path: &Path, block_bytes: usize) -> Result<(u64, f64)> {
    const DROP_BEHIND_BYTES: u64 = 8 << 20;
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let fd = file.as_raw_fd();
    let advise = |offset: u64, len: u64, advice| {
        // SAFETY: an advisory system call on an open descriptor.
        unsafe { libc::posix_fadvise(fd, offset as libc::off_t, len as libc::off_t, advice) }
    };
    advise(0, 0, libc::POSIX_FADV_DONTNEED);
    advise(0, 0, libc::POSIX_FADV_SEQUENTIAL);
    let mut buf = vec![0u8; block_bytes];
    let started = Instant::now();
    let (mut off, mut dropped_to) = (0u64, 0u64);
    loop {
        let n = file.read_at(&mut buf, off).context("sequential cached read")?;
        if n == 0 {
            break;
        }
        off += n as u64;
        if off >= dropped_to + DROP_BEHIND_BYTES {
            advise(dropped_to, off - dropped_to, libc::POSIX_FADV_DONTNEED);
            dropped_to = off;
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    advise(0, 0, libc::POSIX_FADV_DONTNEED);
    Ok((off, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_sizes() {
        assert_eq!(padded_write_bytes(256, 4096), 4096);
        assert_eq!(padded_write_bytes(4064, 4096), 4096);
        assert_eq!(padded_write_bytes(4065, 4096), 8192);
        assert_eq!(padded_write_bytes(256, 512), 512);
    }
}
