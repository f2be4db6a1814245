//! Submission backends: how flush writes and syncs reach the kernel.
//!
//! The I/O thread hands each flush to an [`IoQueue`] as one [`WriteOp`]
//! (write, then sync according to [`SyncMode`]) and later collects one
//! [`Completion`] for it. A queue retries what may be retried (short writes,
//! EAGAIN, EINTR) and reports everything else; it never retries a sync that
//! ran and failed, and after one failed it issues none again.
//!
//! - [`uring::UringQueue`]: io_uring, several flushes' writes in flight (or
//!   `RWF_DSYNC` writes); the I/O thread issues one `fdatasync` per file for
//!   every flush whose write it reaped before, shared by all of them.
//! - [`threaded::ThreadedQueue`]: the same operations as plain system calls
//!   on the I/O thread, for kernels or sandboxes without io_uring.

pub(crate) mod backend;
pub(crate) mod buffers;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub(crate) mod threaded;
pub(crate) mod uring;

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

pub(crate) use buffers::IoBuf;

use crate::storage::StorageFile;

/// Which backend a log runs on.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// io_uring.
    IoUring,
    /// System calls from the I/O thread.
    Threaded,
}

/// How a write is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyncMode {
    /// Not at all.
    None,
    /// A separate `fdatasync` after the write (on io_uring one shared by
    /// every flush written before it).
    DataSync,
    /// The write itself, with `RWF_DSYNC`.
    Dsync,
}

/// One flush: write `buf[..len]` at `offset`, then sync as asked.
#[derive(Debug)]
pub(crate) struct WriteOp {
    pub token: u64,
    pub file: Arc<dyn StorageFile>,
    pub offset: u64,
    pub buf: IoBuf,
    pub len: usize,
    pub sync: SyncMode,
}

/// Why an operation failed.
#[derive(Debug)]
pub(crate) struct OpError {
    /// `"write"` or `"fdatasync"`.
    pub op: &'static str,
    pub error: io::Error,
}

/// A finished operation.
#[derive(Debug)]
pub(crate) enum Completion {
    Write {
        token: u64,
        buf: IoBuf,
        result: Result<(), OpError>,
    },
    /// A sync asked for by `submit_sync`, with the tag it was given.
    Sync {
        tag: u64,
        result: Result<(), OpError>,
    },
}

/// Wakes a backend's I/O thread parked in the kernel once a producer queued
/// a request (the threaded backend waits on the request channel instead).
pub(crate) trait Doorbell: Send + Sync + std::fmt::Debug {
    /// Called after queueing a request; cheap when the thread is not parked.
    fn ring(&self);
}

/// Something the I/O thread submits to and reaps from.
pub(crate) trait IoQueue {
    /// Submits a flush. Failures are reported as its completion.
    fn submit_write(&mut self, op: WriteOp);

    /// Submits an `fdatasync` of `file`; its completion carries `tag`.
    fn submit_sync(&mut self, tag: u64, file: Arc<dyn StorageFile>);

    /// Operations submitted whose completions were not yet returned.
    fn in_flight(&self) -> usize;

    /// Syncs the device was asked for so far by `submit_write`:
    /// `fdatasync` calls and `RWF_DSYNC` writes. A sync shared by several
    /// flushes counts once.
    fn syncs_issued(&self) -> u64;

    /// Whether `submit_write` and `submit_sync` do the I/O before they
    /// return (the threaded queue): waiters already satisfied are then woken
    /// before submitting, or they would wait a device round trip longer.
    fn runs_inline(&self) -> bool;

    /// Hands over submissions and moves finished operations to `out`
    /// without blocking. An error here is the kernel interface failing.
    fn poll(&mut self, out: &mut Vec<Completion>) -> io::Result<()>;

    /// Blocks until an operation finishes, `deadline` passes, or (only with
    /// `want_requests`) a request arrives on `requests`; a request the queue
    /// had to take off the channel to notice it is returned.
    fn wait<T>(
        &mut self,
        requests: &Receiver<T>,
        want_requests: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<T>>;
}

/// Retries of a write that made no progress (EAGAIN, EINTR, 0 bytes)
/// before it counts as failed.
pub(crate) const WRITE_RETRIES_MAX: u32 = 64;
