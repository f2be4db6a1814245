//! The fallback backend: plain system calls on the I/O thread.
//!
//! Used where io_uring is unavailable (Docker's default seccomp profile,
//! `kernel.io_uring_disabled`, old kernels) and for storages without file
//! descriptors. Same guarantees as io_uring: a flush is written (`pwrite`, or
//! `pwritev2` with `RWF_DSYNC`), then synced, before it completes. One flush
//! is in flight at a time; group commit still batches everything that arrives
//! meanwhile.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{Completion, IoQueue, OpError, SyncMode, WRITE_RETRIES_MAX, WriteOp};
use crate::storage::rng::SimRng;
use crate::storage::{CompletionOrder, StorageFile};

/// Longest sleep when there is nothing to wait for but time.
const IDLE_NAP: Duration = Duration::from_millis(1);

enum Deferred {
    Write(WriteOp),
    Sync(u64, Arc<dyn StorageFile>),
}

/// Runs each operation synchronously: when submitted, or (with a shuffled
/// completion order, for simulations) at the next poll, in a random order.
#[derive(Default)]
pub(crate) struct ThreadedQueue {
    done: VecDeque<Completion>,
    shuffle: Option<(SimRng, Vec<Deferred>)>,
    /// See [`IoQueue::syncs_issued`].
    syncs_issued: u64,
}

impl std::fmt::Debug for ThreadedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadedQueue").field("done", &self.done.len()).finish_non_exhaustive()
    }
}

impl ThreadedQueue {
    pub fn new(order: CompletionOrder) -> ThreadedQueue {
        let shuffle = match order {
            CompletionOrder::Shuffled { seed } => Some((SimRng::new(seed), Vec::new())),
            _ => None,
        };
        ThreadedQueue { done: VecDeque::new(), shuffle, syncs_issued: 0 }
    }

    fn run_write(&mut self, op: WriteOp) {
        let dsync = op.sync == SyncMode::Dsync;
        self.syncs_issued += u64::from(op.sync != SyncMode::None);
        let result = write_fully(op.file.as_ref(), &op.buf[..op.len], op.offset, dsync)
            .map_err(|error| OpError { op: if dsync { "write (RWF_DSYNC)" } else { "write" }, error })
            .and_then(|()| {
                if op.sync == SyncMode::DataSync {
                    op.file.sync_data().map_err(|error| OpError { op: "fdatasync", error })
                } else {
                    Ok(())
                }
            });
        self.done.push_back(Completion::Write { token: op.token, buf: op.buf, result });
    }

    fn run_sync(&mut self, tag: u64, file: &Arc<dyn StorageFile>) {
        let result = file.sync_data().map_err(|error| OpError { op: "fdatasync", error });
        self.done.push_back(Completion::Sync { tag, result });
    }

    /// Runs the deferred operations in a random order.
    fn run_deferred(&mut self) {
        let Some((rng, deferred)) = self.shuffle.as_mut() else { return };
        let mut batch = std::mem::take(deferred);
        // Fisher-Yates with the seeded generator.
        for i in (1..batch.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            batch.swap(i, j);
        }
        for op in batch {
            match op {
                Deferred::Write(w) => self.run_write(w),
                Deferred::Sync(tag, f) => self.run_sync(tag, &f),
            }
        }
    }
}

/// Writes `buf` at `offset` completely, retrying short writes, EINTR and
/// EAGAIN a bounded number of times.
fn write_fully(file: &dyn StorageFile, buf: &[u8], offset: u64, dsync: bool) -> io::Result<()> {
    let mut done = 0usize;
    let mut stalls = 0u32;
    while done < buf.len() {
        match file.write_at(&buf[done..], offset + done as u64, dsync) {
            Ok(0) => stalls += 1,
            Ok(n) => done += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => stalls += 1,
            Err(e) => return Err(e),
        }
        if stalls > WRITE_RETRIES_MAX {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write made no progress"));
        }
    }
    Ok(())
}

impl IoQueue for ThreadedQueue {
    fn submit_write(&mut self, op: WriteOp) {
        match self.shuffle.as_mut() {
            Some((_, deferred)) => deferred.push(Deferred::Write(op)),
            None => self.run_write(op),
        }
    }

    fn submit_sync(&mut self, tag: u64, file: Arc<dyn StorageFile>) {
        match self.shuffle.as_mut() {
            Some((_, deferred)) => deferred.push(Deferred::Sync(tag, file)),
            None => self.run_sync(tag, &file),
        }
    }

    fn in_flight(&self) -> usize {
        self.done.len() + self.shuffle.as_ref().map_or(0, |(_, d)| d.len())
    }

    fn syncs_issued(&self) -> u64 {
        self.syncs_issued
    }

    fn runs_inline(&self) -> bool {
        // Shuffled operations wait for the next poll.
        self.shuffle.is_none()
    }

    fn poll(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        self.run_deferred();
        out.extend(self.done.drain(..));
        Ok(())
    }

    fn wait<T>(
        &mut self,
        requests: &Receiver<T>,
        want_requests: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<T>> {
        if !self.done.is_empty() || self.shuffle.as_ref().is_some_and(|(_, d)| !d.is_empty()) {
            return Ok(None);
        }
        if !want_requests {
            // Nothing completes asynchronously here: only time can help (the
            // preparer finishing a segment). Never block without a bound.
            let nap = deadline.map_or(IDLE_NAP, |d| d.saturating_duration_since(Instant::now()).min(IDLE_NAP));
            std::thread::sleep(nap);
            return Ok(None);
        }
        let got = match deadline {
            Some(d) => requests.recv_deadline(d).map_err(|e| e == RecvTimeoutError::Disconnected),
            None => requests.recv().map_err(|_| true),
        };
        // A disconnected channel is noticed by the caller's next try_recv.
        Ok(got.ok())
    }
}
