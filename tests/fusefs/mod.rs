//! An in-memory FUSE file system that models power loss and fails on
//! command, mounted in-process, so that tests reach the library's default
//! path (io_uring, `O_DIRECT`) through the real kernel.
//!
//! Every regular file keeps two images:
//! - `live`: what the writes did (what reads return);
//! - `durable`: `live` as of the file's last successful `FUSE_FSYNC`
//!   (`fsync` or `fdatasync`).
//!
//! Every directory keeps its entries twice as well: `live`, and `durable` as
//! of its last `FUSE_FSYNCDIR`. So a create, rename or unlink survives a
//! power loss only once its directory was synced, and a file's data only once
//! the file was. Nothing else makes anything durable: in particular a write
//! whose flags carry `O_DSYNC` is not (the kernel sets that flag on writes
//! with `RWF_DSYNC`; a server that ignores it, as many do, is what this
//! models; the count of such writes is kept in [`Stats::dsync_writes`]).
//!
//! [`Fs::freeze`] takes the durable images of everything reachable from the
//! root through durable entries, atomically under the file system's lock
//! while the log's threads keep going; [`mount`] of that image is the machine
//! after a power loss.
//!
//! Faults ([`Faults`]) count *data writes* (to a segment file, at an offset
//! above 0, once the file has seen a non-zero write: zero-fill and headers do
//! not count) and *segment syncs* (`FUSE_FSYNC` of a segment file that
//! carries data).
//!
//! Mounting needs `/dev/fuse` and either root (`mount(2)` directly) or the
//! `fusermount3` helper (Debian's `fuse3` package).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// How long the kernel may cache entries and attributes. The kernel is the
/// only client, so its cache never goes stale.
const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = 1;
/// Prefix of mount points, followed by the owning process's id.
const MOUNT_PREFIX: &str = "uring-wal-fuse-";

/// Faults to inject; each counter is 0-based and counts attempts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Fail the n-th data write with EIO (nothing of it is written).
    pub write_eio: Option<u64>,
    /// Write only half of the n-th data write (at least one byte, rounded
    /// down to 512 bytes where possible) and report that count.
    pub short_write: Option<u64>,
    /// Fail the n-th segment sync with EIO (nothing becomes durable).
    pub fsync_eio: Option<u64>,
    /// Answer the n-th data write (after doing it) only once
    /// [`Fs::release`] is called: a write that hangs in the kernel.
    pub hang_write: Option<u64>,
    /// Answer the n-th segment sync (without doing it) only once
    /// [`Fs::release`] is called, then with EIO: a sync that hangs.
    pub hang_fsync: Option<u64>,
    /// Do the n-th segment sync, but answer only once [`Fs::release`] is
    /// called: a slow sync, not a failed one.
    pub hold_fsync: Option<u64>,
    /// Fail every write to any file with EIO while set (a disk image under
    /// a loop device whose disk has died).
    pub all_writes_eio: bool,
    /// Fail every `FUSE_FSYNC` of any file with EIO while set (its cache
    /// flushes fail; nothing more becomes durable).
    pub all_fsyncs_eio: bool,
    /// Hold the answer to the first operation of this kind on the file
    /// created under this name (`"00000000000000000003.wal.tmp"`: preparing
    /// segment 3)
    /// until [`Fs::release`], then answer EIO without doing it: a stalled
    /// device under one file.
    pub hang_file_op: Option<(&'static str, FileOp)>,
}

/// An operation [`Faults::hang_file_op`] can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOp {
    Write,
    Fsync,
    Fallocate,
}

/// What the kernel asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// FUSE_WRITE requests.
    pub writes: u64,
    /// Of those, data writes (see the module docs).
    pub data_writes: u64,
    /// Writes whose flags carried `O_DSYNC`.
    pub dsync_writes: u64,
    /// Writes whose flags carried `O_DIRECT`.
    pub direct_writes: u64,
    /// FUSE_FSYNC requests.
    pub fsyncs: u64,
    /// Of those, segment syncs.
    pub segment_fsyncs: u64,
    /// FUSE_FSYNCDIR requests.
    pub fsyncdirs: u64,
    /// Opens (and creates) that asked for `O_DIRECT`.
    pub direct_opens: u64,
    /// Faults injected.
    pub faults: u64,
}

#[derive(Clone, Debug)]
struct FileNode {
    /// The name it was created under.
    name: OsString,
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Created as a segment (`*.wal`, `*.wal.tmp`).
    segment: bool,
    /// Has seen a write that was not all zeros (a header or a flush).
    written_nonzero: bool,
    /// Has seen a data write.
    carries_data: bool,
}

#[derive(Clone, Debug, Default)]
struct DirNode {
    live: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

#[derive(Clone, Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

/// The whole file system, behind one lock.
#[derive(Debug)]
pub struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    pub faults: Faults,
    pub stats: Stats,
    /// When the first fault was injected.
    pub first_fault_at: Option<Instant>,
    /// The write just done is to hang (see `Faults::hang_write`).
    hang_now: bool,
    /// Hung writes may answer.
    released: bool,
    /// `Faults::hang_file_op` fired (it holds one operation only).
    file_op_hung: bool,
}

impl State {
    /// An empty file system.
    pub fn empty() -> State {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::Dir(DirNode::default()));
        State {
            nodes,
            next_ino: ROOT + 1,
            faults: Faults::default(),
            stats: Stats::default(),
            first_fault_at: None,
            hang_now: false,
            released: false,
            file_op_hung: false,
        }
    }

    /// The file system after a power loss now: the durable entries and
    /// images of everything reachable from the root through durable entries,
    /// live and durable alike.
    pub fn durable_image(&self) -> State {
        let mut nodes = HashMap::new();
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if nodes.contains_key(&ino) {
                continue;
            }
            let node = match &self.nodes[&ino] {
                Node::File(f) => Node::File(FileNode {
                    live: f.durable.clone(),
                    durable: f.durable.clone(),
                    written_nonzero: f.durable.iter().any(|&b| b != 0),
                    carries_data: false,
                    ..f.clone()
                }),
                Node::Dir(d) => {
                    todo.extend(d.durable.values().copied());
                    Node::Dir(DirNode { live: d.durable.clone(), durable: d.durable.clone() })
                }
            };
            nodes.insert(ino, node);
        }
        State { nodes, next_ino: self.next_ino, ..State::empty() }
    }

    /// The live state as a new file system (everything written, synced or
    /// not), without faults.
    pub fn live_image(&self) -> State {
        let mut image = State { nodes: self.nodes.clone(), ..State::empty() };
        image.next_ino = self.next_ino;
        image
    }

    fn fault_injected(&mut self) {
        self.stats.faults += 1;
        self.first_fault_at.get_or_insert_with(Instant::now);
    }

    fn alloc(&mut self, node: Node) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    fn dir(&mut self, ino: u64) -> Result<&mut DirNode, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn file(&mut self, ino: u64) -> Result<&mut FileNode, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        let (kind, size, perm, nlink) = match node {
            Node::File(f) => (FileType::RegularFile, f.live.len() as u64, 0o600, 1),
            Node::Dir(d) => (FileType::Directory, 4096, 0o700, 2 + d.live.len() as u32),
        };
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        match self.nodes.get(&parent) {
            Some(Node::Dir(d)) => d.live.get(name).copied().ok_or(Errno::ENOENT),
            Some(Node::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn create_node(&mut self, parent: u64, name: &OsStr, node: Node) -> Result<u64, Errno> {
        if self.dir(parent)?.live.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.alloc(node);
        self.dir(parent)?.live.insert(name.to_os_string(), ino);
        Ok(ino)
    }

    fn new_file(name: &OsStr) -> Node {
        let n = name.as_bytes();
        Node::File(FileNode {
            name: name.to_os_string(),
            live: Vec::new(),
            durable: Vec::new(),
            segment: n.ends_with(b".wal") || n.ends_with(b".wal.tmp"),
            written_nonzero: false,
            carries_data: false,
        })
    }

    /// Whether `op` on `ino` is the one [`Faults::hang_file_op`] holds: if
    /// so the caller answers EIO once released, having done nothing.
    fn hangs(&mut self, ino: u64, op: FileOp) -> bool {
        let Some((name, what)) = self.faults.hang_file_op else { return false };
        if what != op || self.file_op_hung {
            return false;
        }
        let Ok(f) = self.file(ino) else { return false };
        if f.name.as_bytes() != name.as_bytes() {
            return false;
        }
        self.file_op_hung = true;
        self.hang_now = true;
        self.fault_injected();
        true
    }

    fn write(&mut self, ino: u64, offset: u64, data: &[u8], flags: i32) -> Result<u32, Errno> {
        if self.hangs(ino, FileOp::Write) {
            return Err(Errno::EIO);
        }
        self.stats.writes += 1;
        if flags & libc::O_DSYNC != 0 {
            self.stats.dsync_writes += 1;
        }
        if flags & libc::O_DIRECT != 0 {
            self.stats.direct_writes += 1;
        }
        let faults = self.faults;
        if faults.all_writes_eio {
            self.file(ino)?;
            self.fault_injected();
            return Err(Errno::EIO);
        }
        let f = self.file(ino)?;
        if !f.written_nonzero && data.iter().any(|&b| b != 0) {
            f.written_nonzero = true;
        }
        let mut len = data.len();
        let mut fault = false;
        if f.segment && offset > 0 && f.written_nonzero {
            f.carries_data = true;
            let n = self.stats.data_writes;
            self.stats.data_writes += 1;
            if faults.write_eio == Some(n) {
                self.fault_injected();
                return Err(Errno::EIO);
            }
            if faults.hang_write == Some(n) {
                self.hang_now = true;
                fault = true;
            }
            if faults.short_write == Some(n) && len > 1 {
                len = if len >= 1024 { (len / 2) & !511 } else { len / 2 };
                fault = true;
            }
        }
        if fault {
            self.fault_injected();
        }
        let f = self.file(ino)?;
        let end = offset as usize + len;
        if f.live.len() < end {
            f.live.resize(end, 0);
        }
        f.live[offset as usize..end].copy_from_slice(&data[..len]);
        Ok(len as u32)
    }

    fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        if self.hangs(ino, FileOp::Fsync) {
            return Err(Errno::EIO);
        }
        self.stats.fsyncs += 1;
        let faults = self.faults;
        if faults.all_fsyncs_eio {
            self.file(ino)?;
            self.fault_injected();
            return Err(Errno::EIO);
        }
        let f = self.file(ino)?;
        if f.segment && f.carries_data {
            let n = self.stats.segment_fsyncs;
            self.stats.segment_fsyncs += 1;
            if faults.fsync_eio == Some(n) {
                self.fault_injected();
                return Err(Errno::EIO);
            }
            if faults.hang_fsync == Some(n) {
                self.fault_injected();
                self.hang_now = true;
                return Err(Errno::EIO);
            }
            if faults.hold_fsync == Some(n) {
                self.fault_injected();
                self.hang_now = true;
            }
        }
        let f = self.file(ino)?;
        f.durable.clone_from(&f.live);
        Ok(())
    }

    fn fsyncdir(&mut self, ino: u64) -> Result<(), Errno> {
        self.stats.fsyncdirs += 1;
        let d = self.dir(ino)?;
        d.durable.clone_from(&d.live);
        Ok(())
    }

    fn rename(&mut self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: u32) -> Result<(), Errno> {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(Errno::EINVAL);
        }
        let ino = self.lookup(parent, name)?;
        if let Ok(existing) = self.lookup(newparent, newname) {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(Errno::EEXIST);
            }
            if existing == ino {
                return Ok(());
            }
            if let Some(Node::Dir(d)) = self.nodes.get(&existing)
                && !d.live.is_empty()
            {
                return Err(Errno::ENOTEMPTY);
            }
        }
        self.dir(newparent)?; // checked before anything changes
        self.dir(parent)?.live.remove(name);
        self.dir(newparent)?.live.insert(newname.to_os_string(), ino);
        Ok(())
    }

    fn open_flags(&mut self, flags: i32, opts: FsOptions) -> FopenFlags {
        let direct = flags & libc::O_DIRECT != 0;
        if direct {
            self.stats.direct_opens += 1;
        }
        match opts.fopen_direct_io {
            FopenDirectIo::Never => FopenFlags::empty(),
            FopenDirectIo::Always => FopenFlags::FOPEN_DIRECT_IO,
            FopenDirectIo::WhenODirect if direct => FopenFlags::FOPEN_DIRECT_IO,
            FopenDirectIo::WhenODirect => FopenFlags::empty(),
        }
    }
}

/// When the server answers an open with `FOPEN_DIRECT_IO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FopenDirectIo {
    Never,
    Always,
    WhenODirect,
}

/// How the file system presents itself to the kernel.
#[derive(Clone, Copy, Debug)]
pub struct FsOptions {
    pub fopen_direct_io: FopenDirectIo,
    /// Offer `FUSE_ASYNC_DIO`: the kernel may send the pieces of an
    /// asynchronous direct write (io_uring's) without waiting for each.
    pub async_dio: bool,
    /// Event loop threads (requests served concurrently).
    pub threads: usize,
}

impl Default for FsOptions {
    fn default() -> FsOptions {
        FsOptions { fopen_direct_io: FopenDirectIo::Never, async_dio: true, threads: 2 }
    }
}

/// A handle on a file system's state, shared with the server threads.
#[derive(Clone, Debug)]
pub struct Fs {
    state: Arc<Mutex<State>>,
    /// Where hung writes wait (on `state`'s mutex).
    gate: Arc<Condvar>,
}

impl Fs {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Holds the answer (not the lock) of a request that was to hang until
    /// released.
    fn hold_if_hung(&self, mut state: MutexGuard<'_, State>) {
        if std::mem::take(&mut state.hang_now) {
            while !state.released {
                state = self.gate.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
    }

    /// Lets hung writes answer, now and from now on.
    pub fn release(&self) {
        self.lock().released = true;
        self.gate.notify_all();
    }

    /// A power loss now: the durable image, taken under the lock; `during`
    /// runs under the same lock, so whatever it reads was decided before the
    /// image (a record acknowledged by then had its sync answered by then).
    pub fn freeze<T>(&self, during: impl FnOnce() -> T) -> (State, T) {
        let state = self.lock();
        let image = state.durable_image();
        let seen = during();
        drop(state);
        (image, seen)
    }
}

struct MemFs {
    fs: Fs,
    opts: FsOptions,
}

fn reply_result(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for MemFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if self.opts.async_dio {
            let _ = config.add_capabilities(InitFlags::FUSE_ASYNC_DIO);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let s = self.fs.lock();
        match s.lookup(parent.0, name).and_then(|ino| s.attr(ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.lock().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.fs.lock();
        if let Some(size) = size {
            match s.file(ino.0) {
                Ok(f) => f.live.resize(size as usize, 0),
                Err(e) => return reply.error(e),
            }
        }
        match s.attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let mut s = self.fs.lock();
        match s.create_node(parent.0, name, State::new_file(name)).and_then(|ino| s.attr(ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        let mut s = self.fs.lock();
        match s.create_node(parent.0, name, Node::Dir(DirNode::default())).and_then(|ino| s.attr(ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.fs.lock();
        let r = s.lookup(parent.0, name).and_then(|ino| match s.nodes.get(&ino) {
            Some(Node::Dir(_)) => Err(Errno::EISDIR),
            _ => s.dir(parent.0).map(|d| {
                d.live.remove(name);
            }),
        });
        reply_result(reply, r);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.fs.lock();
        let r = s.lookup(parent.0, name).and_then(|ino| match s.nodes.get(&ino) {
            Some(Node::Dir(d)) if d.live.is_empty() => s.dir(parent.0).map(|d| {
                d.live.remove(name);
            }),
            Some(Node::Dir(_)) => Err(Errno::ENOTEMPTY),
            _ => Err(Errno::ENOTDIR),
        });
        reply_result(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.fs.lock().rename(parent.0, name, newparent.0, newname, flags.bits());
        reply_result(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.fs.lock();
        if let Err(e) = s.file(ino.0) {
            return reply.error(e);
        }
        let fopen = s.open_flags(flags.0, self.opts);
        reply.opened(FileHandle(0), fopen);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.fs.lock();
        match s.create_node(parent.0, name, State::new_file(name)).and_then(|ino| s.attr(ino)) {
            Ok(attr) => {
                let fopen = s.open_flags(flags, self.opts);
                reply.created(&TTL, &attr, Generation(0), FileHandle(0), fopen);
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut s = self.fs.lock();
        match s.file(ino.0) {
            Ok(f) => {
                let start = (offset as usize).min(f.live.len());
                let end = (start + size as usize).min(f.live.len());
                reply.data(&f.live[start..end]);
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let result = {
            let mut state = self.fs.lock();
            let result = state.write(ino.0, offset, data, flags.0);
            self.fs.hold_if_hung(state);
            result
        };
        match result {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let r = {
            let mut state = self.fs.lock();
            let r = state.fsync(ino.0);
            self.fs.hold_if_hung(state);
            r
        };
        reply_result(reply, r);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let s = self.fs.lock();
        let Some(Node::Dir(d)) = s.nodes.get(&ino.0) else { return reply.error(Errno::ENOTDIR) };
        let mut entries =
            vec![(ino.0, FileType::Directory, OsString::from(".")), (ROOT, FileType::Directory, "..".into())];
        for (name, &child) in &d.live {
            let kind = match s.nodes.get(&child) {
                Some(Node::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            entries.push((child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let r = self.fs.lock().fsyncdir(ino.0);
        reply_result(reply, r);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 22, 1 << 21, 1 << 21, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::from(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)));
        }
        let r = {
            let mut state = self.fs.lock();
            let r = if state.hangs(ino.0, FileOp::Fallocate) {
                Err(Errno::EIO)
            } else {
                state.file(ino.0).map(|f| {
                    let end = (offset + length) as usize;
                    if f.live.len() < end {
                        f.live.resize(end, 0);
                    }
                })
            };
            self.fs.hold_if_hung(state);
            r
        };
        reply_result(reply, r);
    }
}

/// A mounted file system. Dropping it unmounts (lazily, so a file still open
/// somewhere cannot keep the mount alive) and stops the server.
pub struct Mount {
    pub fs: Fs,
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount").field("mountpoint", &self.mountpoint).finish_non_exhaustive()
    }
}

impl Mount {
    /// The root of the file system.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Aborts the connection (through fusectl, mounted here if need be):
    /// every request still waiting for an answer fails, and every later
    /// one. For a test that leaves a thread blocked in this file system (a
    /// log closed over a hung write keeps its lock and I/O thread): without
    /// it that thread would wait for a server that is gone, and the test
    /// process could never exit. Returns whether it could.
    pub fn abort(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(dev) = std::fs::metadata(&self.mountpoint).map(|m| m.dev()) else { return false };
        let connections = Path::new("/sys/fs/fuse/connections");
        let abort = connections.join(format!("{}", libc::minor(dev))).join("abort");
        if !abort.exists() {
            let (none, target, kind) = (c"none", c"/sys/fs/fuse/connections", c"fusectl");
            // SAFETY: NUL-terminated literals, valid for the call; a failure
            // (already mounted, not permitted) shows as `abort` missing.
            unsafe { libc::mount(none.as_ptr(), target.as_ptr(), kind.as_ptr(), 0, std::ptr::null()) };
        }
        std::fs::write(&abort, b"1").is_ok()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // A hung write would keep its server thread, and the unmount, waiting.
        self.fs.release();
        // Once the server stops, a request still in the kernel (a log whose
        // test failed, closing on a thread of its own) would wait for ever
        // and keep the process from exiting: abort the connection, so every
        // pending and later request fails instead.
        self.abort();
        detach(&self.mountpoint);
        // fuser's own unmount finds nothing mounted any more; the server
        // thread ends when the kernel closes the connection.
        drop(self.session.take());
        // The temporary directory is removed once the mount is gone.
    }
}

fn detach(mountpoint: &Path) {
    let Ok(c) = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()) else { return };
    // SAFETY: c is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

/// Lazily unmounts what a killed earlier run of these tests left behind:
/// mounts under our prefix whose owning process is gone.
fn sweep_stale_mounts() {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    for line in info.lines() {
        let mut fields = line.split(' ');
        let Some(point) = fields.nth(4) else { continue };
        let Some(name) = Path::new(point).file_name().and_then(|n| n.to_str()) else { continue };
        let Some(rest) = name.strip_prefix(MOUNT_PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            detach(Path::new(point));
        }
    }
}

/// Mounts `state` on a new directory under the temporary directory.
pub fn mount(state: State, opts: FsOptions) -> Result<Mount, String> {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(sweep_stale_mounts);
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse does not exist (no FUSE in this kernel or container)".into());
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("{MOUNT_PREFIX}{}-", std::process::id()))
        .tempdir()
        .map_err(|e| format!("mount point: {e}"))?;
    let mountpoint = dir.path().to_path_buf();
    let fs = Fs { state: Arc::new(Mutex::new(state)), gate: Arc::new(Condvar::new()) };
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("uring-wal-test".into()), fuser::MountOption::RW];
    config.n_threads = Some(opts.threads);
    let session = fuser::spawn_mount(MemFs { fs: fs.clone(), opts }, &mountpoint, &config).map_err(|e| {
        format!(
            "mounting FUSE at {} failed: {e} (needs root or fusermount3 from the fuse3 package)",
            mountpoint.display()
        )
    })?;
    Ok(Mount { fs, mountpoint, session: Some(session), _dir: Some(dir) })
}

/// Mounts an empty file system, or says why the test cannot run: prints
/// "SKIPPED: <reason>" and returns `None`, unless `URING_WAL_REQUIRE_FUSE`
/// is set (CI sets it where FUSE can work), where a missing prerequisite
/// fails the test instead.
pub fn mount_or_skip(opts: FsOptions) -> Option<Mount> {
    let reason = match uring_wal::io_uring_unavailable_reason() {
        Some(r) => format!("io_uring unavailable here ({r})"),
        None => match mount(State::empty(), opts) {
            Ok(m) => return Some(m),
            Err(e) => e,
        },
    };
    if std::env::var_os("URING_WAL_REQUIRE_FUSE").is_some_and(|v| v != "0") {
        panic!("URING_WAL_REQUIRE_FUSE is set, but: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}
