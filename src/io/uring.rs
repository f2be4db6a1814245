//! The io_uring backend.
//!
//! A flush is one write SQE, plain or carrying `RWF_DSYNC`. Several flushes
//! may be in flight; their completions may arrive in any order and the I/O
//! thread keeps the durable watermark contiguous. The `fdatasync` of a plain
//! write is not in the ring: once the write completed, the I/O thread issues
//! one `fdatasync` per file for every flush it reaped by then (see
//! [`UringQueue::run_syncs`]). Flushes written while a sync runs share the
//! next one, as a blocking writer gathers what queued while it waited, but
//! their writes overlap that sync; and no io-wq worker is woken for it (an
//! `IORING_OP_FSYNC` always runs on one, linked or not).
//!
//! The ring is created on the I/O thread itself and only that thread
//! touches it, which allows `SINGLE_ISSUER` and `DEFER_TASKRUN` where the
//! kernel supports them.
//!
//! Producers wake the I/O thread with an eventfd (the [`EventfdDoorbell`]); the
//! thread keeps a read of that eventfd in the ring, so a single
//! `io_uring_enter` waits for either a completion or a producer.
//!
//! The directory's lock file is registered with the ring. The ring holds that
//! registration until every request in it completed, so after a `kill -9`
//! the lock stays held while the dead process's writes drain, and a new
//! opener cannot recover a log that is still being written.

use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use io_uring::{IoUring, Probe, cqueue, opcode, squeue, types};

use super::{Completion, IoBuf, IoQueue, OpError, SyncMode, WRITE_RETRIES_MAX, WriteOp};
use crate::storage::StorageFile;

/// user_data of the doorbell read.
const DOORBELL: u64 = u64::MAX;
/// Ring entries; in-flight operations stay far below (64 flushes, one SQE each).
const RING_ENTRIES: u32 = 256;

/// How producers wake a parked I/O thread.
#[derive(Debug)]
pub(crate) struct EventfdDoorbell {
    parked: AtomicBool,
    fd: OwnedFd,
}

impl EventfdDoorbell {
    fn new() -> io::Result<EventfdDoorbell> {
        // SAFETY: plain system call; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        Ok(EventfdDoorbell { parked: AtomicBool::new(false), fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    fn signal(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live local buffer. A full counter
        // (EAGAIN) already guarantees a wake-up, so the result is ignored.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }
}

impl super::Doorbell for EventfdDoorbell {
    /// Wakes the I/O thread if it is parked. Called after queueing a request.
    fn ring(&self) {
        // Pairs with the fence in `UringQueue::wait`: either the I/O thread
        // sees the request in the channel, or we see it parked.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            self.signal();
        }
    }
}

/// What the ring could be set up with.
#[derive(Clone, Debug)]
pub(crate) struct UringSetup {
    /// `SINGLE_ISSUER` + `DEFER_TASKRUN` (Linux 6.1+).
    pub defer_taskrun: bool,
    /// Buffers registered (writes use `WriteFixed`).
    pub fixed_buffers: bool,
}

#[derive(Debug)]
enum Op {
    Flush(Flush),
    /// The descriptor must stay open until the kernel is done with it.
    Sync {
        /// Returned with the completion.
        tag: u64,
        _file: Arc<dyn StorageFile>,
        #[cfg(feature = "fault-injection")]
        _keep: Option<super::fault::Keep>,
    },
}

#[derive(Debug)]
struct Flush {
    token: u64,
    /// Keeps `fd` open until the kernel is done with it.
    _file: Arc<dyn StorageFile>,
    fd: RawFd,
    buf: IoBuf,
    offset: u64,
    len: usize,
    sync: SyncMode,
    /// Bytes known written.
    done: usize,
    write_err: Option<io::Error>,
    stalls: u32,
    /// What `run_syncs` syncs once the write completed in full (`DataSync`):
    /// the flush's file, or an injected fault's stand-in.
    sync_fd: RawFd,
    /// What an injected fault points the kernel at, kept until reaped.
    #[cfg(feature = "fault-injection")]
    keep: Option<super::fault::Keep>,
}

/// The io_uring queue. Owns every buffer while its write is in flight.
pub(crate) struct UringQueue {
    /// Dropped by hand in `Drop`, or never: see there.
    ring: ManuallyDrop<Ring>,
    /// How long `Drop` waits for operations the kernel still holds.
    give_up: Duration,
    ops: Vec<Option<Op>>,
    free_slots: Vec<u32>,
    in_flight: usize,
    doorbell: Arc<EventfdDoorbell>,
    doorbell_buf: Box<[u8; 8]>,
    doorbell_armed: bool,
    fixed_buffers: bool,
    cqes: Vec<(u64, i32)>,
    /// Flushes whose writes completed in full and wait for the fdatasync
    /// this thread issues at the next poll (see `run_syncs`).
    unsynced: Vec<u32>,
    /// Descriptors synced by the current `run_syncs`, with the result.
    synced_fds: Vec<(RawFd, Result<(), i32>)>,
    /// An fdatasync this queue issued failed with this errno: none is
    /// issued again (a later success would not cover what the failed one
    /// lost), and every flush still waiting for one fails.
    sync_failed: Option<i32>,
    /// See [`IoQueue::syncs_issued`].
    syncs_issued: u64,
    /// Operations that failed at submission, reported by the next poll.
    failed: VecDeque<Completion>,
    #[cfg(feature = "fault-injection")]
    injector: super::fault::Injector,
}

impl std::fmt::Debug for UringQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringQueue").field("in_flight", &self.in_flight).finish_non_exhaustive()
    }
}

type Ring = IoUring<squeue::Entry, cqueue::Entry>;

fn build_ring() -> io::Result<(Ring, bool)> {
    let mut first_err = None;
    let attempts: [fn() -> io::Result<Ring>; 3] = [
        || IoUring::builder().setup_single_issuer().setup_defer_taskrun().setup_taskrun_flag().build(RING_ENTRIES),
        || IoUring::builder().setup_coop_taskrun().setup_taskrun_flag().build(RING_ENTRIES),
        || IoUring::builder().build(RING_ENTRIES),
    ];
    for (i, attempt) in attempts.iter().enumerate() {
        match attempt() {
            Ok(ring) => return Ok((ring, i == 0)),
            // EINVAL: flags this kernel does not know; try fewer.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                first_err.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(first_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::Unsupported)))
}

impl Flush {
    /// The write's CQE.
    fn on_write_cqe(&mut self, res: i32) {
        if res < 0 {
            if matches!(-res, libc::EAGAIN | libc::EINTR) && self.stalls < WRITE_RETRIES_MAX {
                self.stalls += 1;
            } else {
                self.write_err = Some(io::Error::from_raw_os_error(-res));
            }
        } else if res == 0 {
            self.stalls += 1;
            if self.stalls > WRITE_RETRIES_MAX {
                self.write_err = Some(io::Error::new(io::ErrorKind::WriteZero, "write made no progress"));
            }
        } else {
            // After reading the kernel's answer: never more
            // than the attempt asked for.
            assert!(res as usize <= self.len - self.done, "the kernel wrote more than asked");
            self.done += res as usize;
        }
    }
}

impl UringQueue {
    /// Sets up a ring for the calling thread (the only one that may use it).
    /// `lock_fd` is registered with the ring; `buffers` are registered if the
    /// kernel allows. Errors mean io_uring is unusable here.
    pub fn new(
        lock_fd: Option<RawFd>,
        buffers: &[IoBuf],
        give_up: Duration,
    ) -> io::Result<(UringQueue, Arc<EventfdDoorbell>, UringSetup)> {
        let (ring, defer_taskrun) = build_ring()?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring without EXT_ARG (Linux < 5.11)"));
        }
        let mut probe = Probe::new();
        if ring.submitter().register_probe(&mut probe).is_ok() {
            for (code, name) in
                [(opcode::Write::CODE, "write"), (opcode::Fsync::CODE, "fsync"), (opcode::Read::CODE, "read")]
            {
                if !probe.is_supported(code) {
                    return Err(io::Error::new(io::ErrorKind::Unsupported, format!("io_uring lacks {name}")));
                }
            }
        }
        if let Some(fd) = lock_fd {
            ring.submitter().register_files(&[fd])?;
        }
        let iovecs: Vec<libc::iovec> = buffers
            .iter()
            .map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() })
            .collect();
        // SAFETY: each iovec describes an IoBuf allocation. The kernel pins
        // those pages for as long as they stay registered. A WriteFixed only
        // names buffer i when the op owns the live IoBuf with index i (IoBufs
        // are created once, all together, and never re-created), and only
        // reads from it, so no operation ever touches memory that was freed.
        let fixed_buffers = !buffers.is_empty() && unsafe { ring.submitter().register_buffers(&iovecs) }.is_ok();
        let doorbell = Arc::new(EventfdDoorbell::new()?);
        let queue = UringQueue {
            ring: ManuallyDrop::new(ring),
            give_up,
            ops: Vec::new(),
            free_slots: Vec::new(),
            in_flight: 0,
            doorbell: doorbell.clone(),
            doorbell_buf: Box::new([0; 8]),
            doorbell_armed: false,
            fixed_buffers,
            cqes: Vec::with_capacity(RING_ENTRIES as usize),
            unsynced: Vec::with_capacity(RING_ENTRIES as usize),
            synced_fds: Vec::with_capacity(4),
            sync_failed: None,
            syncs_issued: 0,
            failed: VecDeque::new(),
            #[cfg(feature = "fault-injection")]
            injector: super::fault::Injector::default(),
        };
        Ok((queue, doorbell, UringSetup { defer_taskrun, fixed_buffers }))
    }

    fn alloc_slot(&mut self, op: Op) -> u32 {
        self.in_flight += 1;
        if let Some(slot) = self.free_slots.pop() {
            self.ops[slot as usize] = Some(op);
            slot
        } else {
            self.ops.push(Some(op));
            (self.ops.len() - 1) as u32
        }
    }

    fn release_slot(&mut self, slot: u32) -> Op {
        self.in_flight -= 1;
        self.free_slots.push(slot);
        #[expect(clippy::expect_used, reason = "completions and failures name only slots alloc_slot filled")]
        self.ops[slot as usize].take().expect("slot in use")
    }

    /// Pushes SQEs, submitting first if the queue lacks room.
    ///
    /// # Safety
    /// Every buffer an entry points to must stay valid and unmoved until its
    /// completion has been reaped.
    unsafe fn push(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        for _ in 0..WRITE_RETRIES_MAX {
            let mut sq = self.ring.submission();
            if sq.capacity() - sq.len() >= entries.len() {
                // SAFETY: the caller guarantees the buffers outlive the ops.
                #[expect(clippy::expect_used, reason = "room for every entry was checked just above")]
                unsafe { sq.push_multiple(entries) }.expect("room was checked");
                return Ok(());
            }
            drop(sq);
            // Operations in flight are bounded far below the ring size, so
            // this only hands over what is queued; completions wait in the CQ.
            self.submit_ignoring_transient()?;
        }
        Err(io::Error::new(io::ErrorKind::WouldBlock, "io_uring submission queue stays full"))
    }

    /// Builds and pushes the SQE of one attempt at a flush: its remaining
    /// bytes. A `DataSync` flush is synced by `run_syncs` once written in
    /// full.
    fn push_flush(&mut self, slot: u32) -> io::Result<()> {
        #[cfg(feature = "fault-injection")]
        let redirect = self.inject(slot)?;
        let Some(Op::Flush(f)) = self.ops[slot as usize].as_mut() else { unreachable!("flush slot") };
        let remaining = f.len - f.done;
        // SAFETY: done < len <= buf.len(), so the pointer stays in the buffer.
        #[allow(unused_mut)]
        let mut ptr = unsafe { f.buf.as_ptr().add(f.done) };
        let offset = f.offset + f.done as u64;
        #[allow(unused_mut)]
        let (mut fd, mut sync_fd, mut fixed) = (types::Fd(f.fd), types::Fd(f.fd), self.fixed_buffers);
        #[cfg(feature = "fault-injection")]
        {
            if let Some(w) = redirect.write_fd {
                fd = types::Fd(w);
            }
            if let Some(s) = redirect.sync_fd {
                sync_fd = types::Fd(s);
            }
            if let Some(p) = redirect.ptr {
                // Not in a registered buffer: a plain write.
                (ptr, fixed) = (p, false);
            }
        }
        let rw_flags = if f.sync == SyncMode::Dsync { libc::RWF_DSYNC } else { 0 };
        let write = if fixed {
            opcode::WriteFixed::new(fd, ptr, remaining as u32, f.buf.index()).offset(offset).rw_flags(rw_flags).build()
        } else {
            opcode::Write::new(fd, ptr, remaining as u32).offset(offset).rw_flags(rw_flags).build()
        };
        #[cfg(feature = "fault-injection")]
        let write = match redirect.hang {
            // SAFETY (of the later push): the 8-byte buffer is owned by the
            // flush's Keep, which lives until this op's completion.
            Some((hang_fd, hang_buf)) => opcode::Read::new(types::Fd(hang_fd), hang_buf, 8).build(),
            None => write,
        };
        f.sync_fd = sync_fd.0;
        // SAFETY: the buffer belongs to ops[slot], which is only released
        // after this attempt's completion was reaped.
        unsafe { self.push(&[write.user_data(u64::from(slot))]) }
    }

    fn collect_cqes(&mut self) {
        self.cqes.clear();
        for cqe in self.ring.completion() {
            self.cqes.push((cqe.user_data(), cqe.result()));
        }
    }

    fn handle_cqes(&mut self, out: &mut Vec<Completion>) {
        let cqes = std::mem::take(&mut self.cqes);
        for &(user_data, res) in &cqes {
            if user_data == DOORBELL {
                self.doorbell_armed = false;
                continue;
            }
            let slot = user_data as u32;
            #[expect(clippy::expect_used, reason = "the kernel completes only what was submitted, from a live slot")]
            let op = self.ops[slot as usize].as_mut().expect("completion for a live slot");
            match op {
                Op::Sync { tag, .. } => {
                    let tag = *tag;
                    self.release_slot(slot);
                    let result = if res < 0 {
                        Err(OpError { op: "fdatasync", error: io::Error::from_raw_os_error(-res) })
                    } else {
                        Ok(())
                    };
                    out.push(Completion::Sync { tag, result });
                }
                Op::Flush(f) => {
                    f.on_write_cqe(res);
                    self.resolve(slot, out);
                }
            }
        }
        self.cqes = cqes;
    }

    /// An attempt's write completed: finish, wait for the sync, or go again.
    fn resolve(&mut self, slot: u32, out: &mut Vec<Completion>) {
        let Some(Op::Flush(f)) = self.ops[slot as usize].as_mut() else { unreachable!("flush slot") };
        let dsync = f.sync == SyncMode::Dsync;
        let result = if let Some(error) = f.write_err.take() {
            Some(Err(OpError { op: if dsync { "write (RWF_DSYNC)" } else { "write" }, error }))
        } else if f.done < f.len {
            None
        } else if f.sync == SyncMode::DataSync {
            // Written in full: the next poll syncs it with the others.
            self.unsynced.push(slot);
            return;
        } else {
            Some(Ok(()))
        };
        match result {
            None => {
                if let Err(error) = self.push_flush(slot) {
                    self.finish_flush(slot, Err(OpError { op: "io_uring submit", error }), out);
                }
            }
            Some(result) => self.finish_flush(slot, result, out),
        }
    }

    /// Syncs every flush written in full by the last poll: one
    /// `fdatasync` per file, issued from this thread. It covers every write
    /// whose completion was reaped before it began, so flushes that
    /// completed while the previous sync ran share the next one (group
    /// commit at the device's cache flush, as the threaded path gathers),
    /// while their writes overlapped that sync. Issued here rather than
    /// through the ring, it needs no io-wq worker to be woken (an
    /// `IORING_OP_FSYNC` always runs on one). A sync that never returns
    /// blocks this thread; the watchdog thread sees the flushes in flight
    /// and poisons the log.
    fn run_syncs(&mut self, out: &mut Vec<Completion>) {
        if self.unsynced.is_empty() {
            return;
        }
        let mut slots = std::mem::take(&mut self.unsynced);
        self.synced_fds.clear();
        for &slot in &slots {
            let Some(Op::Flush(f)) = self.ops[slot as usize].as_ref() else { unreachable!("flush slot") };
            let fd = f.sync_fd;
            let result = match self.synced_fds.iter().find(|(d, _)| *d == fd) {
                Some(&(_, r)) => r,
                None => {
                    let r = self.sync_fd(fd);
                    self.synced_fds.push((fd, r));
                    r
                }
            };
            let result =
                result.map_err(|errno| OpError { op: "fdatasync", error: io::Error::from_raw_os_error(errno) });
            self.finish_flush(slot, result, out);
        }
        slots.clear();
        self.unsynced = slots;
    }

    /// One `fdatasync`, never retried; after a failure, none at all.
    fn sync_fd(&mut self, fd: RawFd) -> Result<(), i32> {
        if let Some(errno) = self.sync_failed {
            return Err(errno);
        }
        self.syncs_issued += 1;
        // SAFETY: plain system call on a descriptor that stays open while a
        // flush naming it lives: the flush's file (or an injected fault's Keep).
        if unsafe { libc::fdatasync(fd) } == 0 {
            return Ok(());
        }
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
        self.sync_failed = Some(errno);
        Err(errno)
    }

    /// Operations the kernel still holds (flushes waiting for this thread's
    /// sync are in no kernel queue).
    fn kernel_in_flight(&self) -> usize {
        self.in_flight - self.unsynced.len()
    }

    fn finish_flush(&mut self, slot: u32, result: Result<(), OpError>, out: &mut Vec<Completion>) {
        let Op::Flush(f) = self.release_slot(slot) else { unreachable!("flush slot") };
        out.push(Completion::Write { token: f.token, buf: f.buf, result });
    }

    fn arm_doorbell(&mut self) -> io::Result<()> {
        if self.doorbell_armed {
            return Ok(());
        }
        let read = opcode::Read::new(types::Fd(self.doorbell.fd.as_raw_fd()), self.doorbell_buf.as_mut_ptr(), 8)
            .build()
            .user_data(DOORBELL);
        // SAFETY: doorbell_buf is a boxed array owned by self; Drop drains the
        // ring (completing this read) before freeing it.
        unsafe { self.push(&[read]) }?;
        self.doorbell_armed = true;
        Ok(())
    }

    fn submit_ignoring_transient(&mut self) -> io::Result<()> {
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl IoQueue for UringQueue {
    fn submit_write(&mut self, op: WriteOp) {
        #[expect(
            clippy::expect_used,
            reason = "backend::start picks io_uring only for storages whose files have descriptors"
        )]
        let fd = op.file.raw_fd().expect("io_uring backend is only used with descriptor-backed files");
        assert!(op.len <= op.buf.len() && op.len > 0);
        self.syncs_issued += u64::from(op.sync == SyncMode::Dsync);
        let slot = self.alloc_slot(Op::Flush(Flush {
            token: op.token,
            _file: op.file,
            fd,
            buf: op.buf,
            offset: op.offset,
            len: op.len,
            sync: op.sync,
            done: 0,
            write_err: None,
            stalls: 0,
            sync_fd: fd,
            #[cfg(feature = "fault-injection")]
            keep: None,
        }));
        if let Err(error) = self.push_flush(slot) {
            // Reported like any failed write; `poll` hands it over.
            let mut out = Vec::new();
            self.finish_flush(slot, Err(OpError { op: "io_uring submit", error }), &mut out);
            self.pending_failures(out);
        }
    }

    fn submit_sync(&mut self, tag: u64, file: Arc<dyn StorageFile>) {
        #[allow(unused_mut)]
        #[expect(
            clippy::expect_used,
            reason = "backend::start picks io_uring only for storages whose files have descriptors"
        )]
        let mut fd = file.raw_fd().expect("io_uring backend is only used with descriptor-backed files");
        #[cfg(feature = "fault-injection")]
        let keep = match self.injector.next(super::fault::Submission::RoundSync, true) {
            Some(super::fault::RingFault::SyncError) => super::fault::Keep::pipe().ok(),
            _ => None,
        };
        #[cfg(feature = "fault-injection")]
        if let Some(k) = &keep {
            fd = k.fd();
        }
        let slot = self.alloc_slot(Op::Sync {
            tag,
            _file: file,
            #[cfg(feature = "fault-injection")]
            _keep: keep,
        });
        let sync =
            opcode::Fsync::new(types::Fd(fd)).flags(types::FsyncFlags::DATASYNC).build().user_data(u64::from(slot));
        // SAFETY: a sync references no user memory.
        if let Err(error) = unsafe { self.push(&[sync]) } {
            self.release_slot(slot);
            let result = Err(OpError { op: "io_uring submit", error });
            self.pending_failures(vec![Completion::Sync { tag, result }]);
        }
    }

    fn in_flight(&self) -> usize {
        self.in_flight + self.failed.len()
    }

    fn syncs_issued(&self) -> u64 {
        self.syncs_issued
    }

    fn runs_inline(&self) -> bool {
        false
    }

    fn poll(&mut self, out: &mut Vec<Completion>) -> io::Result<()> {
        out.extend(self.failed.drain(..));
        let needs_enter = {
            let sq = self.ring.submission();
            !sq.is_empty() || sq.taskrun() || sq.cq_overflow()
        };
        if needs_enter {
            self.submit_ignoring_transient()?;
        }
        // After the new writes reached the kernel, so they overlap the sync.
        self.run_syncs(out);
        self.collect_cqes();
        self.handle_cqes(out);
        Ok(())
    }

    fn wait<T>(
        &mut self,
        requests: &Receiver<T>,
        want_requests: bool,
        deadline: Option<Instant>,
    ) -> io::Result<Option<T>> {
        if !self.failed.is_empty() || !self.unsynced.is_empty() {
            return Ok(None);
        }
        let mut deadline = deadline;
        if want_requests {
            self.arm_doorbell()?;
            self.doorbell.parked.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !requests.is_empty() {
                self.doorbell.parked.store(false, Ordering::Relaxed);
                self.submit_ignoring_transient()?;
                return Ok(None);
            }
        } else if self.kernel_in_flight() == 0 && !self.doorbell_armed {
            // Nothing can complete: only time helps. Never block unbounded.
            let nap = Instant::now() + Duration::from_millis(1);
            deadline = Some(deadline.map_or(nap, |d| d.min(nap)));
        }
        let waited = match deadline {
            None => self.ring.submit_and_wait(1),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now()).max(Duration::from_micros(1));
                let ts = types::Timespec::new().sec(left.as_secs()).nsec(left.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        self.doorbell.parked.store(false, Ordering::Relaxed);
        match waited {
            Ok(_) => Ok(None),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ETIME | libc::EAGAIN | libc::EBUSY)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Where an injected fault sends one attempt of a flush.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Default)]
struct Redirect {
    /// Read 8 bytes from this descriptor into this buffer instead of writing.
    hang: Option<(RawFd, *mut u8)>,
    write_fd: Option<RawFd>,
    sync_fd: Option<RawFd>,
    ptr: Option<*const u8>,
}

#[cfg(feature = "fault-injection")]
impl UringQueue {
    /// Installs a fault plan (before the first submission).
    pub fn set_faults(&mut self, plan: super::fault::RingFaultPlan) {
        self.injector = super::fault::Injector::new(plan);
    }

    /// Decides whether this attempt of the flush in `slot` is faulted, and
    /// keeps what the kernel will be pointed at in the flush.
    fn inject(&mut self, slot: u32) -> io::Result<Redirect> {
        use super::fault::{GuardedMap, Keep, RingFault, Submission};
        let Some(Op::Flush(f)) = self.ops[slot as usize].as_mut() else { unreachable!("flush slot") };
        let what = if f.offset == 0 { Submission::Header } else { Submission::Flush };
        let mut redirect = Redirect::default();
        match self.injector.next(what, f.sync == SyncMode::DataSync) {
            Some(RingFault::WriteError) => {
                let keep = Keep::read_only(f.fd)?;
                redirect.write_fd = Some(keep.fd());
                f.keep = Some(keep);
            }
            Some(RingFault::SyncError) if f.sync == SyncMode::DataSync => {
                let keep = Keep::pipe()?;
                redirect.sync_fd = Some(keep.fd());
                f.keep = Some(keep);
            }
            Some(RingFault::Hang) => {
                let mut keep = Keep::hang()?;
                let fd = keep.fd();
                if let Keep::Hang { buf, .. } = &mut keep {
                    redirect.hang = Some((fd, buf.as_mut_ptr()));
                }
                f.keep = Some(keep);
            }
            Some(RingFault::ShortWrite) => {
                let accessible = ((f.len - f.done) / 2) & !4095;
                if accessible > 0 {
                    let map = GuardedMap::new(&f.buf[f.done..f.done + accessible])?;
                    debug_assert_eq!(map.data_bytes(), accessible);
                    redirect.ptr = Some(map.ptr());
                    f.keep = Some(Keep::Map { _map: map });
                }
            }
            _ => {}
        }
        Ok(redirect)
    }
}

impl UringQueue {
    fn pending_failures(&mut self, completions: Vec<Completion>) {
        self.failed.extend(completions);
    }
}

impl Drop for UringQueue {
    fn drop(&mut self) {
        // The kernel may still read from buffers of in-flight writes and
        // write into the doorbell buffer: wait for every completion before
        // any of that memory is freed.
        if self.doorbell_armed {
            self.doorbell.signal();
        }
        let give_up = Instant::now() + self.give_up;
        let mut sink = Vec::new();
        // A flush waiting for this thread's sync holds no kernel operation;
        // no one awaits its completion any more.
        let release_unsynced = |q: &mut UringQueue| {
            for slot in std::mem::take(&mut q.unsynced) {
                q.release_slot(slot);
            }
        };
        release_unsynced(self);
        while (self.in_flight > 0 || self.doorbell_armed) && Instant::now() < give_up {
            let ts = types::Timespec::new().nsec(100_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.collect_cqes();
            self.handle_cqes(&mut sink);
            sink.clear();
            release_unsynced(self);
        }
        if self.in_flight > 0 || self.doorbell_armed {
            // The kernel never completed them: leak the memory it may still
            // touch, and the ring itself. Closing the ring would cancel what
            // it can and drop its registered files, the directory's lock
            // file among them: the directory could then be opened and
            // recovered while a write of this log may still land. Leaked,
            // the lock is held until the process exits.
            std::mem::forget(std::mem::take(&mut self.ops));
            std::mem::forget(std::mem::replace(&mut self.doorbell_buf, Box::new([0; 8])));
            return;
        }
        // A clean close releases the registered lock file now, not when the
        // kernel gets round to tearing the ring down, so the directory can be
        // reopened at once.
        let _ = self.ring.submitter().unregister_files();
        // SAFETY: the ring is dropped once, here, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.ring) };
    }
}

/// Why io_uring cannot be used here, or `None` if it can (probes by setting
/// up and dropping a small ring).
pub fn unavailable_reason() -> Option<String> {
    match Ring::new(4) {
        Ok(ring) if ring.params().is_feature_ext_arg() => None,
        Ok(_) => Some("io_uring without EXT_ARG (Linux < 5.11)".into()),
        Err(e) => Some(match e.raw_os_error() {
            Some(libc::ENOSYS) => "io_uring_setup: ENOSYS (kernel without io_uring)".into(),
            Some(libc::EPERM) => {
                "io_uring_setup: EPERM (kernel.io_uring_disabled, or a seccomp profile such as Docker's)".into()
            }
            _ => format!("io_uring_setup: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::buffers::make_set;
    use crate::storage::{OpenHow, OsStorage, Storage};

    const BLOCK: usize = 4096;

    /// A queue and a file, or `None` (said on stderr) where io_uring is
    /// unavailable.
    type Setup = (tempfile::TempDir, Arc<dyn StorageFile>, Vec<IoBuf>, UringQueue);

    fn setup(buffers: usize) -> Option<Setup> {
        if let Some(why) = unavailable_reason() {
            eprintln!("SKIPPED: io_uring unavailable here: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = OsStorage.open_file(&dir.path().join("f"), OpenHow::create(false)).unwrap();
        let set = make_set(buffers, BLOCK);
        let (queue, _, _) = UringQueue::new(None, &set, Duration::from_secs(30)).unwrap();
        Some((dir, file, set, queue))
    }

    fn write(queue: &mut UringQueue, file: &Arc<dyn StorageFile>, token: u64, buf: IoBuf) {
        let op = WriteOp {
            token,
            file: file.clone(),
            offset: token * BLOCK as u64,
            buf,
            len: BLOCK,
            sync: SyncMode::DataSync,
        };
        queue.submit_write(op);
    }

    /// Submits every buffer as a flush, waits until the kernel completed all
    /// writes, and reaps them: they then wait for one sync.
    fn written_unsynced(queue: &mut UringQueue, file: &Arc<dyn StorageFile>, set: Vec<IoBuf>) -> usize {
        let n = set.len();
        for (token, buf) in set.into_iter().enumerate() {
            write(queue, file, token as u64, buf);
        }
        queue.ring.submit_and_wait(n).unwrap();
        let mut out = Vec::new();
        queue.poll(&mut out).unwrap();
        assert!(out.is_empty(), "nothing is acknowledged before its sync: {out:?}");
        assert_eq!((queue.unsynced.len(), queue.syncs_issued()), (n, 0));
        n
    }

    fn results(out: &[Completion]) -> Vec<Result<(), i32>> {
        out.iter()
            .map(|c| match c {
                Completion::Write { result, .. } => {
                    result.as_ref().map(|_| ()).map_err(|e| e.error.raw_os_error().unwrap())
                }
                Completion::Sync { .. } => panic!("no round sync was asked for"),
            })
            .collect()
    }

    /// Whether another open file description can take the flock of `path`.
    fn lock_is_free(path: &std::path::Path) -> bool {
        let f = std::fs::File::open(path).unwrap();
        // SAFETY: plain system call on a descriptor open for the call.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    }

    #[test]
    fn a_queue_that_gives_up_on_a_stuck_operation_keeps_the_lock_file_registered() {
        // The directory lock is a flock on the lock file, which the ring
        // holds registered: after a kill -9 the lock is held while the dead
        // process's writes drain. A queue dropped with an operation the
        // kernel never completes (here a read of an empty pipe) must keep
        // it so for good, or the directory could be opened and recovered
        // while a write of this log may still land.
        if let Some(why) = unavailable_reason() {
            eprintln!("SKIPPED: io_uring unavailable here: {why}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join("LOCK");
        let lock = std::fs::File::create(&lock_path).unwrap();
        // SAFETY: plain system call on a descriptor open for the call.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
        let set = make_set(1, BLOCK);
        let give_up = Duration::from_millis(50);
        let (mut queue, _, _) = UringQueue::new(Some(lock.as_raw_fd()), &set, give_up).unwrap();
        let (r, _w) = std::io::pipe().unwrap();
        let keep = OsStorage.open_file(&lock_path, OpenHow::read(false)).unwrap();
        let slot = queue.alloc_slot(Op::Sync {
            tag: 0,
            _file: keep,
            #[cfg(feature = "fault-injection")]
            _keep: None,
        });
        let mut byte = Box::new([0u8; 8]);
        let read = opcode::Read::new(types::Fd(r.as_raw_fd()), byte.as_mut_ptr(), 8).build().user_data(u64::from(slot));
        // SAFETY: `byte` is leaked below with the queue's memory if the read
        // never completes, so the kernel never writes into freed memory.
        unsafe { queue.push(&[read]) }.unwrap();
        queue.ring.submit().unwrap();
        drop(lock);
        assert!(!lock_is_free(&lock_path), "held through the ring");
        let started = Instant::now();
        drop(queue);
        std::mem::forget(byte);
        assert!(started.elapsed() < Duration::from_secs(5), "gave up after {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!lock_is_free(&lock_path), "the lock was let go while an operation of the queue was stuck");
    }

    #[test]
    fn flushes_written_before_a_sync_share_it() {
        let Some((_dir, file, set, mut queue)) = setup(3) else { return };
        let n = written_unsynced(&mut queue, &file, set);
        let mut out = Vec::new();
        queue.poll(&mut out).unwrap();
        assert_eq!(results(&out), vec![Ok(()); n]);
        assert_eq!(queue.syncs_issued(), 1, "one fdatasync for the three flushes");
        assert_eq!(queue.in_flight(), 0);
    }

    #[test]
    fn a_failed_sync_fails_every_flush_it_covered_and_no_sync_runs_again() {
        let Some((_dir, file, mut set, mut queue)) = setup(4) else { return };
        let last = set.pop().unwrap();
        let n = written_unsynced(&mut queue, &file, set);
        // fdatasync on a pipe fails (EINVAL): the shared sync of three
        // flushes fails.
        let (r, w) = std::io::pipe().unwrap();
        for &slot in &queue.unsynced {
            let Some(Op::Flush(f)) = queue.ops[slot as usize].as_mut() else { unreachable!() };
            f.sync_fd = w.as_raw_fd();
        }
        let mut out = Vec::new();
        queue.poll(&mut out).unwrap();
        assert_eq!(results(&out), vec![Err(libc::EINVAL); n]);
        assert_eq!(queue.syncs_issued(), 1);
        // A later flush on a healthy descriptor is not synced: a success now
        // would say nothing of what the failed sync lost.
        write(&mut queue, &file, 3, last);
        queue.ring.submit_and_wait(1).unwrap();
        out.clear();
        for _ in 0..3 {
            if out.is_empty() {
                queue.poll(&mut out).unwrap();
            }
        }
        assert_eq!(results(&out), vec![Err(libc::EINVAL)]);
        assert_eq!(queue.syncs_issued(), 1, "no fdatasync after the failed one");
        drop((r, w));
    }
}
