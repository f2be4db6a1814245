//! Faults that the kernel itself returns through the io_uring ring (feature
//! `fault-injection`, for tests only).
//!
//! The simulated storage cannot reach the io_uring backend: its files have no
//! descriptors. These faults make the *real* kernel fail a request on the
//! default path by handing it something it must refuse, so the completion
//! the I/O thread sees is the kernel's own:
//!
//! - [`RingFault::WriteError`]: the write goes to a read-only descriptor of
//!   the same file; the kernel completes it with `-EBADF`.
//! - [`RingFault::SyncError`]: the flush's `fdatasync` (issued by the I/O
//!   thread), or a round's (through the ring), goes to a pipe; the kernel
//!   fails it with `-EINVAL`.
//! - [`RingFault::ShortWrite`]: the write's buffer ends in an inaccessible
//!   page. A buffered write copies what precedes it and completes short; an
//!   `O_DIRECT` write completes short or with `-EFAULT`, as the kernel
//!   decides.
//! - [`RingFault::Hang`]: instead of the write, a read of an empty pipe that
//!   nobody writes to: an operation the kernel never completes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What to make the kernel refuse.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingFault {
    /// The write fails (`-EBADF`).
    WriteError,
    /// The sync fails (`-EINVAL`).
    SyncError,
    /// The write is short, or fails with `-EFAULT` under `O_DIRECT`.
    ShortWrite,
    /// The write never completes.
    Hang,
}

/// Which submission a fault hits; counts start at 0 and include retries.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingTarget {
    /// The n-th write attempt of a data flush (a short write's continuation
    /// is an attempt of its own).
    Flush(u64),
    /// The n-th write attempt of a segment header (an activation).
    SegmentHeader(u64),
    /// The n-th standalone `fdatasync` (sync rounds of `Periodic` and `None`).
    RoundSync(u64),
}

/// A schedule of faults for one log's io_uring queue.
#[derive(Clone, Debug, Default)]
pub struct RingFaultPlan {
    faults: Vec<(RingFault, RingTarget)>,
    fired: Arc<AtomicU64>,
}

impl RingFaultPlan {
    /// No faults.
    #[must_use]
    pub fn new() -> RingFaultPlan {
        RingFaultPlan::default()
    }

    /// Adds a fault.
    #[must_use]
    pub fn fail(mut self, fault: RingFault, at: RingTarget) -> RingFaultPlan {
        self.faults.push((fault, at));
        self
    }

    /// How many faults were submitted to the kernel so far (shared by clones).
    #[must_use]
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::SeqCst)
    }
}

/// Kind of submission, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Submission {
    Flush,
    Header,
    RoundSync,
}

/// The queue's side of a plan: counts submissions and says which to fault.
#[derive(Debug, Default)]
pub(crate) struct Injector {
    plan: RingFaultPlan,
    flushes: u64,
    headers: u64,
    syncs: u64,
    /// `SyncError`s planned for data flushes that had no `fdatasync` to
    /// fail, each waiting for a later data flush that has one.
    deferred_sync_errors: u32,
}

impl Injector {
    pub fn new(plan: RingFaultPlan) -> Injector {
        Injector { plan, ..Injector::default() }
    }

    /// Counts one submission and returns the fault to apply to it;
    /// `has_sync`: whether it carries an `fdatasync` a `SyncError` can fail.
    /// A `SyncError` planned for a data flush without one (written with
    /// `RWF_DSYNC`, which the I/O thread chooses by itself, or synced later
    /// by a round) moves to the next data flush that has one; planned for a
    /// segment header without one, it is dropped. Either way a fault is
    /// counted as fired only when it is handed to the kernel, so a test
    /// whose fault never found its target sees `fired() == 0`.
    pub fn next(&mut self, what: Submission, has_sync: bool) -> Option<RingFault> {
        let target = match what {
            Submission::Flush => RingTarget::Flush(post_increment(&mut self.flushes)),
            Submission::Header => RingTarget::SegmentHeader(post_increment(&mut self.headers)),
            Submission::RoundSync => RingTarget::RoundSync(post_increment(&mut self.syncs)),
        };
        let mut fault = self.plan.faults.iter().find(|(_, t)| *t == target).map(|(f, _)| *f);
        if fault == Some(RingFault::SyncError) && !has_sync {
            self.deferred_sync_errors += u32::from(what == Submission::Flush);
            fault = None;
        } else if fault.is_none() && self.deferred_sync_errors > 0 && has_sync && what == Submission::Flush {
            self.deferred_sync_errors -= 1;
            fault = Some(RingFault::SyncError);
        }
        if fault.is_some() {
            self.plan.fired.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }
}

fn post_increment(n: &mut u64) -> u64 {
    *n += 1;
    *n - 1
}

/// What a faulted submission points the kernel at; must live until the
/// submission's completions were reaped.
#[derive(Debug)]
pub(crate) enum Keep {
    Fd(OwnedFd),
    Pipe {
        read: OwnedFd,
        _write: OwnedFd,
    },
    /// A pipe nobody writes to, and the buffer a read of it would fill.
    Hang {
        pipe: Box<Keep>,
        buf: Box<[u8; 8]>,
    },
    Map {
        _map: GuardedMap,
    },
}

impl Keep {
    /// A read-only descriptor of the file open at `fd`.
    pub fn read_only(fd: RawFd) -> io::Result<Keep> {
        #[expect(clippy::expect_used, reason = "a formatted integer holds no NUL")]
        let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a path");
        // SAFETY: path is a valid NUL-terminated string; the result is checked.
        let ro = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if ro < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: ro is a new descriptor nothing else owns.
        Ok(Keep::Fd(unsafe { OwnedFd::from_raw_fd(ro) }))
    }

    /// A pipe: `fdatasync` of it fails with EINVAL.
    pub fn pipe() -> io::Result<Keep> {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors; the result is checked.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both are new descriptors nothing else owns.
        Ok(unsafe { Keep::Pipe { read: OwnedFd::from_raw_fd(fds[0]), _write: OwnedFd::from_raw_fd(fds[1]) } })
    }

    /// The descriptor to submit to.
    pub fn fd(&self) -> RawFd {
        match self {
            Keep::Fd(fd) | Keep::Pipe { read: fd, .. } => fd.as_raw_fd(),
            Keep::Hang { pipe, .. } => pipe.fd(),
            Keep::Map { .. } => -1,
        }
    }

    /// A read of an empty pipe whose write end stays open: never completes.
    pub fn hang() -> io::Result<Keep> {
        Ok(Keep::Hang { pipe: Box::new(Keep::pipe()?), buf: Box::new([0; 8]) })
    }
}

/// `data` copied into a mapping right before an inaccessible page.
#[derive(Debug)]
pub(crate) struct GuardedMap {
    base: *mut u8,
    map_bytes: usize,
    data_bytes: usize,
}

// SAFETY: the mapping is owned by this value alone and only read by the
// kernel; moving it to another thread moves that ownership.
unsafe impl Send for GuardedMap {}
// SAFETY: shared references only hand out the address.
unsafe impl Sync for GuardedMap {}

impl GuardedMap {
    /// Copies `data` (a multiple of the page size) to the end of an
    /// accessible region followed by a `PROT_NONE` page.
    pub fn new(data: &[u8]) -> io::Result<GuardedMap> {
        let page = 4096;
        assert!(!data.is_empty() && data.len() % page == 0, "page-sized data");
        let map_bytes = data.len() + page;
        // SAFETY: an anonymous private mapping of a size > 0; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = GuardedMap { base: base.cast(), map_bytes, data_bytes: data.len() };
        // SAFETY: the mapping is map_bytes long and writable; data fits before
        // the guard page, and the regions do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), map.base, data.len()) };
        // SAFETY: the guard page lies inside the mapping, page-aligned.
        if unsafe { libc::mprotect(map.base.add(data.len()).cast(), page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(map)
    }

    /// Start of the data; `data_bytes` later the guard page begins.
    pub fn ptr(&self) -> *const u8 {
        self.base
    }

    /// Bytes before the guard page.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }
}

impl Drop for GuardedMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`; the kernel is
        // done with it (a Keep is dropped only after its completions).
        unsafe { libc::munmap(self.base.cast(), self.map_bytes) };
    }
}
