//! Which backend the I/O thread runs on: the one place that knows every
//! backend. Adding one means a module in `io/` and a variant of [`Queue`].

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::threaded::ThreadedQueue;
use super::uring::{self, UringQueue};
use super::{BackendKind, Completion, Doorbell, IoBuf, IoQueue, WriteOp};
use crate::error::{Error, Result};
use crate::options::Backend;
use crate::storage::{CompletionOrder, StorageFile};

/// What the backend is chosen from.
#[derive(Debug)]
pub(crate) struct Choice {
    pub backend: Backend,
    /// The directory lock's descriptor, registered with a ring.
    pub lock_fd: Option<std::os::fd::RawFd>,
    /// Whether the storage's files have descriptors (io_uring needs them).
    pub descriptors: bool,
    pub order: CompletionOrder,
    /// How long a dropped queue waits for operations the kernel still
    /// holds (the log's `io_timeout`).
    pub give_up: std::time::Duration,
    #[cfg(feature = "fault-injection")]
    pub ring_faults: Option<super::fault::RingFaultPlan>,
}

/// The backend that started, as `Wal::backend` reports it.
#[derive(Debug)]
pub(crate) struct Started {
    pub kind: BackendKind,
    /// Why io_uring is not used, when it is not.
    pub fallback_reason: Option<String>,
    pub defer_taskrun: bool,
    pub fixed_buffers: bool,
}

/// A queue of any backend. An enum rather than a trait object: the I/O
/// thread's loop stays monomorphic and `IoQueue::wait` may stay generic.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one queue per log, held by its thread; a box would cost an indirection per call"
)]
pub(crate) enum Queue {
    Uring(UringQueue),
    Threaded(ThreadedQueue),
}

/// A backend set up on its thread.
#[derive(Debug)]
pub(crate) struct Running {
    pub queue: Queue,
    /// What producers ring after queueing a request; none when the thread
    /// waits on the request channel itself.
    pub doorbell: Option<Arc<dyn Doorbell>>,
    pub started: Started,
}

/// Sets up the backend `choice` asks for, on the calling thread (the only
/// one that may use a `SINGLE_ISSUER` ring).
pub(crate) fn start(choice: Choice, buffers: &[IoBuf]) -> Result<Running> {
    let attempt = match choice.backend {
        Backend::Threaded => Err("Backend::Threaded".to_owned()),
        _ if !choice.descriptors => Err("storage without file descriptors".to_owned()),
        _ => match uring::unavailable_reason() {
            Some(reason) => Err(reason),
            None => {
                UringQueue::new(choice.lock_fd, buffers, choice.give_up).map_err(|e| format!("io_uring setup: {e}"))
            }
        },
    };
    match attempt {
        #[allow(unused_mut)]
        Ok((mut queue, doorbell, setup)) => {
            #[cfg(feature = "fault-injection")]
            if let Some(plan) = choice.ring_faults {
                queue.set_faults(plan);
            }
            let started = Started {
                kind: BackendKind::IoUring,
                fallback_reason: None,
                defer_taskrun: setup.defer_taskrun,
                fixed_buffers: setup.fixed_buffers,
            };
            Ok(Running { queue: Queue::Uring(queue), doorbell: Some(doorbell), started })
        }
        Err(reason) if choice.backend == Backend::IoUring => Err(Error::Unsupported { what: "io_uring", reason }),
        Err(reason) => {
            let started = Started {
                kind: BackendKind::Threaded,
                fallback_reason: Some(reason),
                defer_taskrun: false,
                fixed_buffers: false,
            };
            Ok(Running { queue: Queue::Threaded(ThreadedQueue::new(choice.order)), doorbell: None, started })
        }
    }
}

/// Forwards a call to the backend's queue.
macro_rules! each {
    ($self:ident, $q:ident => $call:expr) => {
        match $self {
            Queue::Uring($q) => $call,
            Queue::Threaded($q) => $call,
        }
    };
}

impl IoQueue for Queue {
    fn submit_write(&mut self, op: WriteOp) {
        each!(self, q => q.submit_write(op))
    }

    fn submit_sync(&mut self, tag: u64, file: Arc<dyn StorageFile>) {
        each!(self, q => q.submit_sync(tag, file))
    }

    fn in_flight(&self) -> usize {
        each!(self, q => q.in_flight())
    }

    fn syncs_issued(&self) -> u64 {
        each!(self, q => q.syncs_issued())
    }

    fn runs_inline(&self) -> bool {
        each!(self, q => q.runs_inline())
    }

    fn poll(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        each!(self, q => q.poll(out))
    }

    fn wait<T>(
        &mut self,
        requests: &Receiver<T>,
        want_requests: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<T>> {
        each!(self, q => q.wait(requests, want_requests, deadline))
    }
}
