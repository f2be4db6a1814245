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
use crate::storage::StorageFile;

/// Longest sleep when there is nothing to wait for but time.
const IDLE_NAP: Duration = Duration::from_millis(1);

/// Runs each operation synchronously when submitted.
#[derive(Debug, Default)]
pub(crate) struct ThreadedQueue {
    done: VecDeque<Completion>,
}

impl ThreadedQueue {
    pub fn new() -> ThreadedQueue {
        ThreadedQueue::default()
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
        let dsync = op.sync == SyncMode::Dsync;
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

    fn submit_sync(&mut self, file: Arc<dyn StorageFile>) {
        let result = file.sync_data().map_err(|error| OpError { op: "fdatasync", error });
        self.done.push_back(Completion::Sync { result });
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }

    fn poll(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        out.extend(self.done.drain(..));
        Ok(())
    }

    fn wait<T>(
        &mut self,
        requests: &Receiver<T>,
        want_requests: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<T>> {
        if !self.done.is_empty() {
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
