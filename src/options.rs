//! How a log is opened: durability, I/O path, limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{self, RECORD_PAYLOAD_BYTES_LIMIT, record};

/// Largest record by default, where segments are large enough (1 MiB).
const RECORD_BYTES_MAX_DEFAULT: u32 = 1 << 20;

/// When an append is acknowledged, and what is synced for it.
///
/// "Synced" means the data reached stable storage as far as the kernel can
/// tell (`fdatasync` returned, or a `RWF_DSYNC` write completed). Segment
/// files are pre-written, so syncing their data never needs a metadata
/// journal commit; creating, renaming and deleting segments is always followed
/// by a sync of the directory, in every mode.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Default. Each flush (a group of records from any number of producers)
    /// is written and followed by an `fdatasync` of its segment file; an
    /// append returns once that sync completed. One sync serves the whole
    /// group, and more: on io_uring several flushes' writes are in flight at
    /// once, and the I/O thread issues one `fdatasync` for every flush whose
    /// write completed before it (flushes written while a sync ran share the
    /// next), so the writes overlap the syncs and no kernel worker is woken.
    /// A lone appender's flush, with nothing else in flight, is written with
    /// `RWF_DSYNC` instead where the file system honours it (the same
    /// promise in one request; see `Dsync`).
    GroupSync,
    /// Each flush is written with `RWF_DSYNC` (the write itself completes only
    /// once its data is stable); an append returns once that write completed.
    /// On devices with a volatile write cache and no FUA this costs one cache
    /// flush per write, like `GroupSync`, but one round trip instead of two.
    Dsync,
    /// Each flush is written without a sync and an append returns once the
    /// write completed: the data is in the device (O_DIRECT) or page cache,
    /// not yet stable. Every `interval` all segment files written since the
    /// last sync are `fdatasync`ed. A power failure loses at most the appends
    /// of the last `interval` (plus one sync's duration);
    /// [`crate::Wal::durable_lsn`] tells what is stable.
    Periodic {
        /// Time between syncs.
        interval: Duration,
    },
    /// Writes are never synced while the log is open (only on a clean
    /// close). An append returns once its write completed. For data that can
    /// be rebuilt, and for measuring what syncing costs.
    None,
}

impl Durability {
    /// Whether an append returns only once its record is durable (synced):
    /// true for [`Durability::GroupSync`] and [`Durability::Dsync`].
    pub fn syncs_before_ack(&self) -> bool {
        match self {
            Durability::GroupSync | Durability::Dsync => true,
            Durability::Periodic { .. } | Durability::None => false,
        }
    }
}

/// Whether segment files are opened with `O_DIRECT`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectIo {
    /// Use O_DIRECT; fail to open where the file system refuses it.
    Required,
    /// Use O_DIRECT where the file system accepts it, buffered I/O elsewhere
    /// (some overlay and network file systems, tmpfs on older kernels).
    /// Durability is the same either way: buffered writes are synced just
    /// the same. (On tmpfs nothing is durable across a reboot, whichever
    /// way it is written: see [`crate::BackendInfo::volatile`].)
    Auto,
    /// Always buffered I/O.
    Off,
}

/// Which engine submits the writes.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// io_uring where the kernel allows it, else the threaded fallback.
    Auto,
    /// io_uring or fail (EPERM under Docker's seccomp profile, ENOSYS on old
    /// kernels, `kernel.io_uring_disabled`).
    IoUring,
    /// A thread issuing `pwritev2` / `fdatasync` system calls, same guarantees.
    Threaded,
}

/// What recovery may do with damage it finds when opening.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Default. Truncate a torn tail: damage in the final in-flight window
    /// that no surviving record proves durable. Damage proven durable is an
    /// error ([`Error::Corruption`]).
    TolerateTornTail,
    /// Refuse to open if anything at all would be truncated
    /// ([`Error::TornTail`]), or if damaged bytes had to be skipped.
    AbsoluteConsistency,
    /// Keep the log up to its first damage, even damage that later records
    /// prove was durable: everything after it is cut. This loses
    /// acknowledged records; it is for repair tools, after a backup.
    PointInTime,
}

/// The padding unit: every flush starts and ends on a block boundary so no
/// write ever covers a block that holds acknowledged records.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSize {
    /// The device's physical block (at least its direct-I/O alignment), 4 KiB
    /// where unknown. Safe on devices whose sectors are not written atomically
    /// below the physical block.
    Auto,
    /// The direct-I/O offset alignment reported by `statx` (512 bytes on many
    /// disks). Smaller writes, but only safe where the device writes that unit
    /// atomically, since a 512-byte write into a 4 KiB physical sector is a
    /// read-modify-write of the whole sector inside the device.
    DirectIoAlignment,
    /// A fixed size: a power of two from 512 bytes to 64 KiB. Below the
    /// device's physical block this is the same promise as
    /// [`BlockSize::DirectIoAlignment`]: that the device writes that unit
    /// atomically. Otherwise a torn read-modify-write of a physical sector
    /// can destroy acknowledged records of an earlier flush in it (the crash
    /// suite shows it with 512-byte blocks on 4 KiB sectors).
    Bytes(u32),
}

/// Everything [`crate::Wal::open`] needs. Start from [`Options::new`],
/// [`Options::durable`] or [`Options::fast`] and adjust.
#[derive(Clone, Debug)]
#[must_use]
pub struct Options {
    pub(crate) dir: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) direct_io: DirectIo,
    pub(crate) backend: Backend,
    pub(crate) recovery: RecoveryMode,
    pub(crate) block: BlockSize,
    pub(crate) segment_bytes: u64,
    pub(crate) record_bytes_max: u32,
    /// `record_bytes_max` was set, rather than following `segment_bytes`.
    record_bytes_max_set: bool,
    pub(crate) flush_bytes_max: usize,
    pub(crate) flushes_in_flight_max: usize,
    pub(crate) queue_requests_max: usize,
    pub(crate) queue_bytes_max: usize,
    pub(crate) spare_segments_max: usize,
    pub(crate) recycle_segments: bool,
    pub(crate) prewrite_segments: bool,
    pub(crate) rewrite_tail_blocks: bool,
    pub(crate) wait_spin: Duration,
    pub(crate) io_spin: Duration,
    pub(crate) io_timeout: Duration,
    pub(crate) lock_wait: Duration,
    pub(crate) create_if_missing: bool,
    #[cfg(feature = "fault-injection")]
    pub(crate) ring_faults: Option<crate::RingFaultPlan>,
}

impl Options {
    /// Defaults: [`Durability::GroupSync`], [`DirectIo::Auto`],
    /// [`Backend::Auto`], 64 MiB segments, records up to 1 MiB, no spinning:
    /// a waiting appender and an idle I/O thread sleep, so waiting costs no
    /// more CPU than a blocking system call ([`Options::spin`] trades CPU
    /// for latency).
    pub fn new(dir: impl AsRef<Path>) -> Options {
        Options {
            dir: dir.as_ref().to_path_buf(),
            durability: Durability::GroupSync,
            direct_io: DirectIo::Auto,
            backend: Backend::Auto,
            recovery: RecoveryMode::TolerateTornTail,
            block: BlockSize::Auto,
            segment_bytes: 64 << 20,
            record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
            record_bytes_max_set: false,
            flush_bytes_max: 1 << 20,
            flushes_in_flight_max: 4,
            queue_requests_max: 4096,
            queue_bytes_max: 16 << 20,
            spare_segments_max: 1,
            recycle_segments: true,
            prewrite_segments: true,
            rewrite_tail_blocks: true,
            wait_spin: Duration::ZERO,
            io_spin: Duration::ZERO,
            io_timeout: Duration::from_secs(30),
            lock_wait: Duration::from_secs(5),
            create_if_missing: true,
            #[cfg(feature = "fault-injection")]
            ring_faults: None,
        }
    }

    /// Faults the kernel returns through the io_uring ring (tests only;
    /// feature `fault-injection`). Ignored by the threaded backend.
    #[cfg(feature = "fault-injection")]
    pub fn ring_faults(mut self, plan: crate::RingFaultPlan) -> Options {
        self.ring_faults = Some(plan);
        self
    }

    /// Every append synced before it returns ([`Durability::GroupSync`]).
    pub fn durable(dir: impl AsRef<Path>) -> Options {
        Options::new(dir)
    }

    /// Appends return once written; a sync every 100 ms
    /// ([`Durability::Periodic`]).
    pub fn fast(dir: impl AsRef<Path>) -> Options {
        Options::new(dir).durability(Durability::Periodic { interval: Duration::from_millis(100) })
    }

    /// See [`Durability`].
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// See [`DirectIo`].
    pub fn direct_io(mut self, direct_io: DirectIo) -> Options {
        self.direct_io = direct_io;
        self
    }

    /// See [`Backend`].
    pub fn backend(mut self, backend: Backend) -> Options {
        self.backend = backend;
        self
    }

    /// See [`RecoveryMode`].
    pub fn recovery(mut self, recovery: RecoveryMode) -> Options {
        self.recovery = recovery;
        self
    }

    /// See [`BlockSize`].
    pub fn block_size(mut self, block: BlockSize) -> Options {
        self.block = block;
        self
    }

    /// Size of each segment file: a multiple of 64 KiB, at least 64 KiB
    /// (default 64 MiB). Unless [`Options::record_bytes_max`] is set, the
    /// largest record follows it: a quarter of a segment, at most 1 MiB (so
    /// `segment_bytes(1 << 20)` alone takes records up to 256 KiB).
    pub fn segment_bytes(mut self, bytes: u64) -> Options {
        self.segment_bytes = bytes;
        if !self.record_bytes_max_set {
            let quarter = (bytes / 4 / 4096 * 4096).clamp(4096, u64::from(RECORD_BYTES_MAX_DEFAULT));
            self.record_bytes_max = quarter as u32;
        }
        self
    }

    /// Largest payload accepted, on write and on read (a length field above
    /// it is never trusted). Default 1 MiB, or a quarter of
    /// [`Options::segment_bytes`] if that is smaller; at most
    /// [`crate::format::RECORD_PAYLOAD_BYTES_LIMIT`]; a record plus its
    /// 32-byte header and two blocks of padding must fit in a segment after
    /// its header block.
    ///
    /// It also sizes memory: each of the `flushes_in_flight_max + 2` flush
    /// buffers holds `flush_bytes_max` plus one largest record, and a reader's
    /// window holds one largest record. For Raft logs, whose entries carry
    /// client commands and membership changes (and, in some designs,
    /// snapshot chunks), set it to the largest entry the state machine
    /// accepts plus the entry's encoding overhead; a larger record is refused
    /// with [`crate::Error::RecordTooLarge`] before anything is queued.
    /// Records larger than `segment_bytes / 4` waste up to that much of a
    /// segment at each roll: raise `segment_bytes` with it.
    pub fn record_bytes_max(mut self, bytes: u32) -> Options {
        self.record_bytes_max = bytes;
        self.record_bytes_max_set = true;
        self
    }

    /// A flush is sealed once it holds this many bytes, even if more records
    /// are waiting.
    pub fn flush_bytes_max(mut self, bytes: usize) -> Options {
        self.flush_bytes_max = bytes;
        self
    }

    /// Flushes submitted and not yet completed, at most (1 to 64).
    pub fn flushes_in_flight_max(mut self, flushes: usize) -> Options {
        self.flushes_in_flight_max = flushes;
        self
    }

    /// Requests (single records, batches, `sync()` calls) queued for the I/O
    /// thread, at most (default 4,096; `1..=2^20`). Beyond it
    /// [`crate::Wal::submit`] and `append` block,
    /// [`crate::Wal::submit_async`] awaits and [`crate::Wal::try_submit`]
    /// fails with [`crate::Error::QueueFull`], until the queue has drained to
    /// half; a failure of the log ends every wait at once.
    pub fn queue_requests_max(mut self, requests: usize) -> Options {
        self.queue_requests_max = requests;
        self
    }

    /// Payload bytes queued for the I/O thread, at most (default 16 MiB; at
    /// least `record_bytes_max`, at most 4 GiB); beyond it producers wait as
    /// for [`Options::queue_requests_max`]. An empty queue always takes one
    /// request, however large.
    pub fn queue_bytes_max(mut self, bytes: usize) -> Options {
        self.queue_bytes_max = bytes;
        self
    }

    /// Retired segments kept as spares for reuse (1 to 16, default 1).
    /// [`crate::Wal::truncate_before`] renames up to this many retired
    /// segments to future ids instead of deleting them, so the log moves into
    /// them later without creating and zero-filling a fresh file; the rest
    /// are deleted. A log that retires more segments per truncation than this
    /// creates the difference afresh as it grows again, and its I/O thread may
    /// wait for those (`Stats::segment_stalls`). The cost: up to this many
    /// segment files on disk beyond the live log.
    pub fn spare_segments_max(mut self, segments: usize) -> Options {
        self.spare_segments_max = segments;
        self
    }

    /// Whether segments retired by [`crate::Wal::truncate_before`] are reused
    /// as spares (renamed, not rewritten) instead of deleted.
    pub fn recycle_segments(mut self, recycle: bool) -> Options {
        self.recycle_segments = recycle;
        self
    }

    /// Whether fresh segment files are written with zeros ahead of use
    /// (default) or only allocated (`fallocate`).
    ///
    /// Pre-written blocks sync without a file-system journal commit (on the
    /// development disk each sync was about 1.6x cheaper), which is what
    /// small synced appends want. The price is that the device writes every
    /// segment twice, once on a background thread: a log that streams large
    /// records near the device's bandwidth goes faster with `false`. Either
    /// way every append is synced the same; only the cost of the sync moves.
    ///
    /// A zero-fill is paced behind the active segment. If the I/O thread
    /// reaches the end of the active segment before the next one is filled,
    /// the fill stops and the segment is used as it is, allocated: appends
    /// pay the dearer syncs in its unwritten part instead of waiting for the
    /// rest of the zeros (`Stats::segment_fills_cut` counts these).
    pub fn prewrite_segments(mut self, prewrite: bool) -> Options {
        self.prewrite_segments = prewrite;
        self
    }

    /// Whether a flush whose records fill only part of their last block
    /// leaves that block to the next flush, which rewrites it with its own
    /// records added (default `true`; segments of format version 2).
    ///
    /// Without it every flush takes whole blocks of its own: a lone
    /// appender's 256-byte record takes a 4 KiB block, so the log consumes
    /// (and the preparer zero-fills) segment space 16 times faster than its
    /// payload, on the device the appends wait for. With it a block holds as
    /// many records as fit, at the price of writing the block again per
    /// flush (the same one-block write the flush makes anyway).
    ///
    /// A rewrite never goes over the copy that holds the block's records:
    /// each block has two slots, itself and the block after it, and a
    /// rewrite goes to the slot the latest copy is not in, only once that
    /// copy is durable. A torn rewrite leaves the previous copy whole, and
    /// readers take whichever copy is intact (`docs/FORMAT.md`, "Tail
    /// blocks"). A flush that does not fit the block's free space takes
    /// fresh blocks after both slots; so do flushes while the previous one is
    /// in flight (several appenders).
    ///
    /// `false` writes format version 1, where no block is ever written twice
    /// in a segment's life, for readers older than version 2 or devices
    /// whose failures are not confined to the sectors being written.
    pub fn rewrite_tail_blocks(mut self, rewrite: bool) -> Options {
        self.rewrite_tail_blocks = rewrite;
        self
    }

    /// Spinning for latency, at a price in CPU: [`Options::wait_spin`] of
    /// 250 us and [`Options::io_spin`] of 50 us. A lone appender and the I/O
    /// thread then each keep up to a core busy while the appender is active
    /// (on the development machine, one writer: p50 about 0.65x, CPU per
    /// record about 1.8x the sleeping default; see `docs/BENCHMARKS.md`).
    /// Under concurrency nobody spins. Worth it only with a CPU to spare
    /// per log: three logs spinning on two CPUs made an openraft cluster
    /// slower.
    pub fn spin(self) -> Options {
        self.wait_spin(Duration::from_micros(250)).io_spin(Duration::from_micros(50))
    }

    /// How long an appender spins for its acknowledgement before it sleeps
    /// (default 0: never; [`Options::spin`] sets 250 us). Only a lone
    /// appender spins: when recent flushes each carried a single request and
    /// nobody else waits; under concurrency everyone sleeps. On virtual
    /// machines, where waking a sleeping thread on another CPU costs tens of
    /// microseconds, this saves a wake-up per append for up to a core of CPU
    /// while that appender is busy. Nothing spins on a machine with one CPU.
    pub fn wait_spin(mut self, spin: Duration) -> Options {
        self.wait_spin = spin;
        self
    }

    /// How long the I/O thread, with nothing in flight and a lone appender,
    /// polls for that appender's next request before it sleeps (default 0:
    /// never; [`Options::spin`] sets 50 us), so the request needs no wake-up. Zero never polls; neither
    /// does the I/O thread on a machine with one CPU.
    pub fn io_spin(mut self, spin: Duration) -> Options {
        self.io_spin = spin;
        self
    }

    /// How long a write or sync of a segment, or a step of preparing or
    /// retiring one, may stay in the kernel (default 30 s; `1 ms..=1 h`)
    /// before the log gives up on the device: it is poisoned, every caller
    /// waiting on it fails (appenders, producers waiting for room, `sync`,
    /// `truncate_before`), nothing after is acknowledged. Also the longest
    /// [`crate::Wal::close`] (and `Drop`) waits for its threads (at most a
    /// second once the log failed); a thread still stuck in the kernel is
    /// left behind, keeping its buffers, and the directory stays locked
    /// until the process exits. `docs/RELIABILITY.md`, "When the device
    /// stalls", gives the whole promise.
    pub fn io_timeout(mut self, timeout: Duration) -> Options {
        self.io_timeout = timeout;
        self
    }

    /// How long [`crate::Wal::open`] waits for the directory's lock while its
    /// holder has exited (default 5 s; at most 1 h). After a writer is
    /// killed the kernel keeps its lock until the dead process's io_uring
    /// operations have drained (usually tens of milliseconds), so a service
    /// restarted at once opens after that wait instead of failing. A holder
    /// that still runs is reported at once ([`crate::Error::Locked`]), and a
    /// log already open in this process too ([`crate::Error::AlreadyOpen`]).
    pub fn lock_wait(mut self, wait: Duration) -> Options {
        self.lock_wait = wait;
        self
    }

    /// Whether [`crate::Wal::open`] creates a missing directory (default) or
    /// fails.
    pub fn create_if_missing(mut self, create: bool) -> Options {
        self.create_if_missing = create;
        self
    }

    /// The log directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configured durability.
    #[must_use]
    pub fn durability_mode(&self) -> Durability {
        self.durability
    }

    /// The configured maximum payload.
    #[must_use]
    pub fn record_limit(&self) -> u32 {
        self.record_bytes_max
    }

    /// Opens (creating or recovering) the log.
    pub fn open(self) -> Result<crate::Wal> {
        crate::Wal::open(self)
    }

    /// The largest record, the header region and two blocks of padding must
    /// fit in one segment.
    pub(crate) fn check_fits(&self, block_bytes: u32) -> Result<()> {
        let overhead = format::data_offset(block_bytes) + 2 * u64::from(block_bytes);
        let need = overhead + record::encoded_len(self.record_bytes_max);
        if need > self.segment_bytes {
            let segment_min = need.next_multiple_of(64 * 1024);
            let record_max = self.segment_bytes.saturating_sub(overhead + record::encoded_len(0)) / 8 * 8;
            return Err(Error::InvalidOptions(format!(
                "a record of record_bytes_max = {} bytes does not fit in segments of segment_bytes = {} bytes \
                 with {block_bytes}-byte blocks (a segment holds its header block, the record with its 32-byte \
                 header, and up to two blocks of padding: {need} bytes). Raise segment_bytes to at least \
                 {segment_min}, or lower record_bytes_max to at most {record_max}",
                self.record_bytes_max, self.segment_bytes
            )));
        }
        Ok(())
    }

    /// Checks these options without opening anything, as
    /// [`crate::Wal::open`] does first (which checks again once the device
    /// chose the block size; until then a block of 4 KiB is assumed unless
    /// [`Options::block_size`] fixes it). Call it where the options are
    /// built to find a mistake there.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidOptions(msg));
        if self.segment_bytes < 64 * 1024 || self.segment_bytes % (64 * 1024) != 0 {
            return bad(format!("segment_bytes {} is not a multiple of 64 KiB", self.segment_bytes));
        }
        if self.segment_bytes > 1 << 40 {
            return bad(format!("segment_bytes {} is above 1 TiB", self.segment_bytes));
        }
        if self.record_bytes_max > RECORD_PAYLOAD_BYTES_LIMIT {
            return bad(format!(
                "record_bytes_max {} is above the hard limit {RECORD_PAYLOAD_BYTES_LIMIT}",
                self.record_bytes_max
            ));
        }
        // Checked again once the device decided the block size.
        let block = match self.block {
            BlockSize::Bytes(b) => b,
            _ => 4096,
        };
        self.check_fits(block)?;
        if !(4096..=64 << 20).contains(&self.flush_bytes_max) {
            return bad(format!("flush_bytes_max {} is outside 4 KiB..=64 MiB", self.flush_bytes_max));
        }
        if !(1..=64).contains(&self.flushes_in_flight_max) {
            return bad(format!("flushes_in_flight_max {} is outside 1..=64", self.flushes_in_flight_max));
        }
        if !(1..=1 << 20).contains(&self.queue_requests_max) {
            return bad(format!("queue_requests_max {} is outside 1..=2^20", self.queue_requests_max));
        }
        if self.queue_bytes_max < self.record_bytes_max as usize || self.queue_bytes_max > 1 << 32 {
            return bad(format!(
                "queue_bytes_max {} must be at least record_bytes_max and at most 4 GiB",
                self.queue_bytes_max
            ));
        }
        if !(1..=16).contains(&self.spare_segments_max) {
            return bad(format!("spare_segments_max {} is outside 1..=16", self.spare_segments_max));
        }
        if let BlockSize::Bytes(b) = self.block {
            if !format::is_valid_block(b) {
                return bad(format!("block size {b} is not a power of two in 512..=65536"));
            }
        }
        if let Durability::Periodic { interval } = self.durability {
            if interval.is_zero() || interval > Duration::from_secs(3600) {
                return bad(format!("periodic interval {interval:?} is outside (0, 1 h]"));
            }
        }
        if self.wait_spin > Duration::from_millis(10) {
            return bad(format!("wait_spin {:?} is above 10 ms", self.wait_spin));
        }
        if self.io_spin > Duration::from_millis(10) {
            return bad(format!("io_spin {:?} is above 10 ms", self.io_spin));
        }
        if self.lock_wait > Duration::from_secs(3600) {
            return bad(format!("lock_wait {:?} is above 1 h", self.lock_wait));
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(3600)).contains(&self.io_timeout) {
            return bad(format!("io_timeout {:?} is outside 1 ms..=1 h", self.io_timeout));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        Options::new("/x").validate().unwrap();
        Options::fast("/x").validate().unwrap();
        let err = Options::new("/x").segment_bytes(1000).validate().unwrap_err().to_string();
        assert!(err.contains("segment_bytes"), "{err}");
        let err = Options::new("/x").record_bytes_max(u32::MAX).validate().unwrap_err().to_string();
        assert!(err.contains("record_bytes_max"), "{err}");
        let err =
            Options::new("/x").segment_bytes(1 << 20).record_bytes_max(1 << 20).validate().unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
        let err = Options::new("/x").block_size(BlockSize::Bytes(1000)).validate().unwrap_err().to_string();
        assert!(err.contains("block size"), "{err}");
        let periodic = Durability::Periodic { interval: Duration::ZERO };
        assert!(Options::new("/x").durability(periodic).validate().is_err());
        assert!(Options::new("/x").flushes_in_flight_max(0).validate().is_err());
        assert!(Options::new("/x").queue_bytes_max(10).validate().is_err());
    }

    #[test]
    fn small_segments_alone_take_smaller_records_and_a_misfit_says_what_to_change() {
        // The record limit follows the segment size unless it was set.
        for seg in [64 << 10, 256 << 10, 1 << 20, 4 << 20, 64 << 20] {
            let o = Options::new("/x").segment_bytes(seg);
            o.validate().unwrap_or_else(|e| panic!("segment_bytes({seg}) alone: {e}"));
            assert_eq!(u64::from(o.record_bytes_max), (seg / 4).min(1 << 20), "{seg}");
            for block in [512, 4096, 65536] {
                if seg > 4 * 65536 {
                    o.check_fits(block).unwrap_or_else(|e| panic!("{seg} with {block}-byte blocks: {e}"));
                }
            }
        }
        // Set, in either order, it stays as set.
        let o = Options::new("/x").record_bytes_max(1 << 20).segment_bytes(1 << 20);
        let err = o.validate().unwrap_err().to_string();
        assert!(err.contains("at least 1114112") && err.contains("at most 1036256"), "{err}");
        // The figures it gives are the fix.
        o.clone().segment_bytes(1_114_112).validate().unwrap();
        o.record_bytes_max(1_036_256).validate().unwrap();
        assert!(Options::new("/x").segment_bytes(1 << 20).record_bytes_max(1_036_264).validate().is_err());
    }
}
