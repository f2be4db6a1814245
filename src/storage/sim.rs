//! A simulated storage for crash and fault testing.
//!
//! Files live in memory. Each has a *live* image (what reads return) and a
//! *durable* image; every write since the file's last sync is *pending*. A
//! sync that completes makes the pending writes durable, in order; one that
//! fails drops them (they stay in the live image, as clean pages stay in the
//! page cache after a writeback error, but never reach the medium). Creating, renaming and removing a file changes the live
//! namespace at once and the durable one only when the directory is synced.
//!
//! Every operation is appended to a log. [`SimStorage::crash_image`] rebuilds the state
//! after any prefix of the log and models a power failure there: the durable
//! namespace and images survive, and each pending write lands sector by
//! sector (512 B or 4 KiB) as new bytes, old bytes, or the whole sector
//! zeroed or garbage (bytes outside the write included: a torn
//! read-modify-write), chosen by a seed. The same log, seed and sector size always give the same image.
//!
//! Faults are injected by a seeded schedule: EIO on write or sync, ENOSPC,
//! short writes, EINTR/EAGAIN, a write landing at the wrong offset, bit flips
//! and unreadable sectors on read. [`CompletionOrder::Shuffled`] makes the
//! threaded backend complete submissions in a seeded random order.
//!
//! Storage operations are mutually exclusive (one lock), so the log is a
//! total order of what the log's threads did. Their interleaving is not
//! controlled, so a run is reproduced from its saved log (see
//! [`SimStorage::log`]), not from its seed alone.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{CompletionOrder, DeviceFacts, DirEntry, DirLock, EntryKind, OpenHow, Storage, StorageFile};

pub use super::rng::SimRng;

/// A fault the simulation can inject.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// A data write fails with EIO (nothing written).
    WriteEio,
    /// A data write fails with ENOSPC (nothing written).
    WriteEnospc,
    /// A data write writes only part of its buffer (a whole number of
    /// sectors when the file is O_DIRECT) and reports that.
    ShortWrite,
    /// A data write fails with EINTR or EAGAIN (nothing written; retrying is
    /// correct).
    WriteInterrupted,
    /// A data write lands one sector further than asked, and reports success.
    MisdirectedWrite,
    /// A sync fails with EIO; the pending writes are dropped (as the kernel
    /// drops dirty pages it could not write).
    SyncEio,
    /// A read returns one bit flipped (storage unchanged).
    ReadBitFlip,
    /// A read fails with EIO.
    ReadEio,
}

/// When a fault fires, counted over operations of its kind ("data writes"
/// are writes past the first 4 KiB of a file, so segment headers and
/// preparation are not hit; reads count all reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The `n`-th eligible operation (0-based), once.
    Nth(u64),
    /// Each eligible operation with this probability, per million.
    PerMillion(u32),
}

/// Settings of a simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random decision.
    pub seed: u64,
    /// Granularity of tearing and of O_DIRECT alignment: 512 or 4096.
    pub sector_bytes: usize,
    /// Faults to inject.
    pub faults: Vec<(FaultKind, Trigger)>,
    /// Let the threaded backend complete submissions out of order.
    pub shuffle_completions: bool,
}

impl SimConfig {
    /// No faults, 512-byte sectors, completions in order.
    #[must_use]
    pub fn new(seed: u64) -> SimConfig {
        SimConfig { seed, sector_bytes: 512, faults: Vec::new(), shuffle_completions: false }
    }
}

/// One logged operation. (Each variant's doc says what its fields are.)
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimOp {
    /// A file was created (empty) at `path`, with id `file`.
    Create { path: PathBuf, file: u32 },
    /// Bytes written to a file (as they landed); with `durable`, written with
    /// `RWF_DSYNC`: durable when it completed, whatever else is pending.
    Write { file: u32, offset: u64, data: Arc<[u8]>, durable: bool },
    /// A file's length set (preallocation).
    SetLen { file: u32, len: u64 },
    /// A data sync of a file completed: its pending writes (and lengths set)
    /// are durable, in order. Bytes whose sync failed are not among them.
    Sync { file: u32 },
    /// A sync failed: the file's pending writes are lost.
    SyncFailed { file: u32 },
    /// A rename.
    Rename { from: PathBuf, to: PathBuf },
    /// A removal.
    Remove { path: PathBuf },
    /// A directory sync.
    SyncDir { dir: PathBuf },
    /// A directory was created (durable at once: the log syncs its parent).
    CreateDir { dir: PathBuf },
    /// The log published watermarks (see [`Storage::acknowledged`]): from
    /// here on, every LSN up to `synced` must survive a power failure, and
    /// every LSN up to `acked` where acknowledged means synced. No effect on
    /// the files.
    Acked { acked: u64, synced: u64 },
}

/// A write not yet known to be durable, or a `RWF_DSYNC` write that must be
/// replayed after the pending writes before it (they may overlap it).
#[derive(Clone, Debug)]
struct Pending {
    offset: u64,
    data: Arc<[u8]>,
    /// Already in the durable image (a `RWF_DSYNC` write): kept only so that
    /// applying the writes before it cannot undo it.
    stable: bool,
}

#[derive(Clone, Debug, Default)]
struct FileData {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last sync, in order.
    pending: Vec<Pending>,
}

/// Whether `a` and `b` (offset, length) share a 4 KiB sector, the largest
/// tearing unit.
fn share_a_sector(a: (u64, usize), b: (u64, usize)) -> bool {
    const UNIT: u64 = 4096;
    let span = |(o, n): (u64, usize)| (o / UNIT, (o + n as u64).div_ceil(UNIT));
    let ((a0, a1), (b0, b1)) = (span(a), span(b));
    a0 < b1 && b0 < a1
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    // Grown by bulk copies: `resize` fills byte by byte in debug builds,
    // where it dominated the crash tests' time.
    if image.len() < start {
        image.extend_from_slice(&vec![0u8; start - image.len()]);
    }
    let overlap = (image.len() - start).min(data.len());
    image[start..start + overlap].copy_from_slice(&data[..overlap]);
    image.extend_from_slice(&data[overlap..]);
}

/// The state the log replays into.
#[derive(Clone, Debug, Default)]
struct Model {
    files: Vec<FileData>,
    live: BTreeMap<PathBuf, u32>,
    durable: BTreeMap<PathBuf, u32>,
    dirs: BTreeSet<PathBuf>,
}

impl Model {
    fn apply(&mut self, op: &SimOp) {
        match op {
            SimOp::Create { path, file } => {
                let id = *file as usize;
                if self.files.len() <= id {
                    self.files.resize_with(id + 1, FileData::default);
                }
                self.live.insert(path.clone(), *file);
            }
            SimOp::Write { file, offset, data, durable } => {
                let f = &mut self.files[*file as usize];
                write_into(&mut f.live, *offset, data);
                if *durable {
                    write_into(&mut f.durable, *offset, data);
                    // Pending writes before it that touch its sectors are
                    // applied later (by a sync or a crash): replay it after
                    // them.
                    let span = (*offset, data.len());
                    if f.pending.iter().any(|p| share_a_sector((p.offset, p.data.len()), span)) {
                        f.pending.push(Pending { offset: *offset, data: data.clone(), stable: true });
                    }
                } else {
                    f.pending.push(Pending { offset: *offset, data: data.clone(), stable: false });
                }
            }
            SimOp::SetLen { file, len } => {
                let f = &mut self.files[*file as usize];
                if (f.live.len() as u64) < *len {
                    let start = f.live.len() as u64;
                    let zeros: Arc<[u8]> = vec![0u8; (*len - start) as usize].into();
                    write_into(&mut f.live, start, &zeros);
                    f.pending.push(Pending { offset: start, data: zeros, stable: false });
                }
            }
            SimOp::Sync { file } => {
                // Only what is pending reaches the medium. Bytes whose sync
                // failed are in the live image (clean pages in the cache)
                // but not here: Linux drops them after a writeback error.
                let f = &mut self.files[*file as usize];
                for p in f.pending.drain(..) {
                    write_into(&mut f.durable, p.offset, &p.data);
                }
            }
            SimOp::SyncFailed { file } => {
                // The data could not be written: the live image keeps it (a
                // reader may still see cached pages) but it never becomes
                // durable, not even by a later successful sync.
                self.files[*file as usize].pending.clear();
            }
            SimOp::Rename { from, to } => {
                if let Some(id) = self.live.remove(from) {
                    self.live.insert(to.clone(), id);
                }
            }
            SimOp::Remove { path } => {
                self.live.remove(path);
            }
            SimOp::SyncDir { dir } => {
                let under = |p: &PathBuf| p.parent() == Some(dir.as_path());
                self.durable.retain(|p, _| !under(p));
                for (p, id) in &self.live {
                    if under(p) {
                        self.durable.insert(p.clone(), *id);
                    }
                }
            }
            SimOp::CreateDir { dir } => {
                self.dirs.insert(dir.clone());
            }
            SimOp::Acked { .. } => {}
        }
    }
}

#[derive(Debug)]
struct State {
    cfg: SimConfig,
    rng: SimRng,
    model: Model,
    log: Vec<SimOp>,
    locks: BTreeSet<PathBuf>,
    /// Eligible operations seen per fault kind (for `Trigger::Nth`).
    seen: BTreeMap<FaultKind, u64>,
    injected: BTreeMap<FaultKind, u64>,
}

impl State {
    fn record(&mut self, op: SimOp) {
        self.model.apply(&op);
        self.log.push(op);
    }

    /// Whether fault `kind` fires on this eligible operation.
    fn fires(&mut self, kind: FaultKind) -> bool {
        let triggers: Vec<Trigger> = self.cfg.faults.iter().filter(|(k, _)| *k == kind).map(|(_, t)| *t).collect();
        if triggers.is_empty() {
            return false;
        }
        let n = self.seen.entry(kind).or_insert(0);
        let index = *n;
        *n += 1;
        let fire = triggers.iter().any(|t| match *t {
            Trigger::Nth(k) => k == index,
            Trigger::PerMillion(p) => self.rng.chance(p),
        });
        if fire {
            *self.injected.entry(kind).or_insert(0) += 1;
        }
        fire
    }

    fn file_of(&self, path: &Path) -> Option<u32> {
        self.model.live.get(path).copied()
    }

    /// A file with `bytes` at `path`, durable at once.
    fn put(&mut self, path: &Path, bytes: &[u8]) {
        let file = self.model.files.len() as u32;
        self.record(SimOp::Create { path: path.to_path_buf(), file });
        if !bytes.is_empty() {
            self.record(SimOp::Write { file, offset: 0, data: bytes.into(), durable: false });
        }
        self.record(SimOp::Sync { file });
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        self.record(SimOp::SyncDir { dir });
    }
}

/// A simulated file system. Clones share the same state.
#[derive(Clone, Debug)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty file system.
    #[must_use]
    pub fn new(cfg: SimConfig) -> SimStorage {
        assert!(cfg.sector_bytes == 512 || cfg.sector_bytes == 4096, "sector size must be 512 or 4096");
        let rng = SimRng::new(cfg.seed);
        SimStorage {
            state: Arc::new(Mutex::new(State {
                cfg,
                rng,
                model: Model::default(),
                log: Vec::new(),
                locks: BTreeSet::new(),
                seen: BTreeMap::new(),
                injected: BTreeMap::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the oracle.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Operations logged so far.
    #[must_use]
    pub fn op_count(&self) -> usize {
        self.state().log.len()
    }

    /// A copy of the operation log.
    #[must_use]
    pub fn log(&self) -> Vec<SimOp> {
        self.state().log.clone()
    }

    /// Replaces the fault schedule (counts of eligible operations restart).
    pub fn set_faults(&self, faults: Vec<(FaultKind, Trigger)>) {
        let mut s = self.state();
        s.cfg.faults = faults;
        s.seen.clear();
    }

    /// Faults injected so far, by kind.
    #[must_use]
    pub fn injected(&self) -> BTreeMap<FaultKind, u64> {
        self.state().injected.clone()
    }

    /// The live content of `path`, if it exists.
    #[must_use]
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state();
        s.file_of(path).map(|id| s.model.files[id as usize].live.clone())
    }

    /// Paths in the live namespace.
    #[must_use]
    pub fn paths(&self) -> Vec<PathBuf> {
        self.state().model.live.keys().cloned().collect()
    }

    /// Places a file with `bytes` at `path`, durable at once (for setting up
    /// hostile directories).
    pub fn put_file(&self, path: &Path, bytes: &[u8]) {
        self.state().put(path, bytes);
    }

    /// Flips bit `bit` of the byte at `offset` of `path`, live and durable
    /// (latent damage on the medium).
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> bool {
        let mut s = self.state();
        let Some(id) = s.file_of(path) else { return false };
        let f = &mut s.model.files[id as usize];
        let i = offset as usize;
        if i >= f.live.len() {
            return false;
        }
        f.live[i] ^= 1 << (bit % 8);
        if i < f.durable.len() {
            f.durable[i] ^= 1 << (bit % 8);
        }
        true
    }

    /// The state after a power failure right after the first `ops`
    /// operations of `log`, pending writes torn per `sector_bytes` with
    /// `seed`. The result has no faults; its own log starts with the
    /// operations that set it up, all durable.
    #[must_use]
    pub fn crash_image(log: &[SimOp], ops: usize, seed: u64, sector_bytes: usize) -> SimStorage {
        let mut model = Model::default();
        for op in &log[..ops.min(log.len())] {
            model.apply(op);
        }
        let mut rng = SimRng::new(seed);
        let image = SimStorage::new(SimConfig { sector_bytes, ..SimConfig::new(seed) });
        {
            let mut s = image.state();
            for dir in &model.dirs {
                s.record(SimOp::CreateDir { dir: dir.clone() });
            }
            for (path, id) in &model.durable {
                let f = &model.files[*id as usize];
                let mut bytes = f.durable.clone();
                for p in &f.pending {
                    if p.stable {
                        write_into(&mut bytes, p.offset, &p.data);
                    } else {
                        tear_into(&mut bytes, p.offset, &p.data, sector_bytes, &mut rng);
                    }
                }
                s.put(path, &bytes);
            }
            // The log keeps these setup operations (all durable): a crash of
            // the image at any later point starts from this state.
        }
        image
    }

    /// The state after the process was killed (SIGKILL) right after the
    /// first `ops` operations of `log`, for another process to open: what
    /// the page cache holds survives (the live namespace and file contents),
    /// nothing became durable by the kill (the durable images and namespace
    /// are as they were), pending writes stay pending, and the dead
    /// process's locks are released. The result's log starts with those
    /// `ops` operations, so [`SimStorage::crash_image`] of its log models a
    /// power failure at any point of the combined history.
    #[must_use]
    pub fn after_kill(log: &[SimOp], ops: usize, cfg: SimConfig) -> SimStorage {
        let sim = SimStorage::new(cfg);
        {
            let mut s = sim.state();
            for op in &log[..ops.min(log.len())] {
                s.record(op.clone());
            }
        }
        sim
    }

    /// A copy of the current live state as a new storage, as if the process
    /// had stopped cleanly (every write kept), with no faults.
    #[must_use]
    pub fn clean_copy(&self) -> SimStorage {
        let (cfg, model) = {
            let s = self.state();
            (s.cfg.clone(), s.model.clone())
        };
        let copy = SimStorage::new(SimConfig { faults: Vec::new(), shuffle_completions: false, ..cfg });
        {
            let mut s = copy.state();
            for dir in &model.dirs {
                s.record(SimOp::CreateDir { dir: dir.clone() });
            }
            for (path, id) in &model.live {
                s.put(path, &model.files[*id as usize].live);
            }
        }
        copy
    }
}

/// Applies a pending write as a power failure leaves it, sector by sector:
/// the new bytes, the old ones, or a sector wholly zeroed or garbage. A
/// device that rewrites a whole sector (read-modify-write) and is cut off
/// part-way damages the bytes of that sector outside the write too, so the
/// last two outcomes cover the whole sector (as far as the file reaches).
fn tear_into(bytes: &mut Vec<u8>, offset: u64, data: &[u8], sector: usize, rng: &mut SimRng) {
    let start = offset as usize;
    let end = start + data.len();
    let mut sector_start = start - start % sector;
    while sector_start < end {
        let sector_end = sector_start + sector;
        let (lo, hi) = (start.max(sector_start), end.min(sector_end));
        match rng.below(4) {
            0 => write_into(bytes, lo as u64, &data[lo - start..hi - start]),
            1 => {}
            outcome => {
                let whole_end = sector_end.min(bytes.len().max(hi));
                if bytes.len() < whole_end {
                    bytes.extend_from_slice(&vec![0u8; whole_end - bytes.len()]);
                }
                let whole = &mut bytes[sector_start..whole_end];
                if outcome == 2 {
                    whole.fill(0);
                } else {
                    for chunk in whole.chunks_mut(8) {
                        chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
                    }
                }
            }
        }
        sector_start = sector_end;
    }
}

#[derive(Debug)]
struct SimLock {
    storage: SimStorage,
    path: PathBuf,
}

impl DirLock for SimLock {
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.storage.state().locks.remove(&self.path);
    }
}

#[derive(Debug)]
struct SimFile {
    storage: SimStorage,
    id: u32,
    direct: bool,
    write: bool,
}

fn einval(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())
}

impl SimFile {
    fn check_direct(&self, offset: u64, len: usize, sector: usize) -> io::Result<()> {
        if self.direct && (offset % sector as u64 != 0 || len % sector != 0) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(())
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = self.storage.state();
        let sector = s.cfg.sector_bytes;
        self.check_direct(offset, buf.len(), sector.min(512))?;
        if s.fires(FaultKind::ReadEio) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let flip = s.fires(FaultKind::ReadBitFlip);
        let at = if flip { s.rng.next_u64() } else { 0 };
        let live = &s.model.files[self.id as usize].live;
        let start = (offset as usize).min(live.len());
        let n = buf.len().min(live.len() - start);
        buf[..n].copy_from_slice(&live[start..start + n]);
        if flip && n > 0 {
            let i = (at % n as u64) as usize;
            buf[i] ^= 1 << ((at >> 32) % 8);
        }
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64, dsync: bool) -> io::Result<usize> {
        if !self.write {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        let mut s = self.storage.state();
        let sector = s.cfg.sector_bytes;
        self.check_direct(offset, buf.len(), 512)?;
        let mut offset = offset;
        let mut len = buf.len();
        if offset >= 4096 {
            if s.fires(FaultKind::WriteEio) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            if s.fires(FaultKind::WriteEnospc) {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            if s.fires(FaultKind::WriteInterrupted) {
                let e = if s.rng.below(2) == 0 { libc::EINTR } else { libc::EAGAIN };
                return Err(io::Error::from_raw_os_error(e));
            }
            // A short O_DIRECT write is a whole number of sectors, so a
            // one-sector write cannot be short.
            let unit = if self.direct { 512 } else { 1 };
            if len / unit >= 2 && s.fires(FaultKind::ShortWrite) {
                let units = len / unit;
                len = (1 + s.rng.below(units as u64 - 1) as usize) * unit;
            }
            if s.fires(FaultKind::MisdirectedWrite) {
                offset += sector as u64;
            }
        }
        let data: Arc<[u8]> = buf[..len].into();
        s.record(SimOp::Write { file: self.id, offset, data, durable: dsync });
        Ok(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.storage.state();
        let carries_data = s.model.files[self.id as usize].pending.iter().any(|p| !p.stable && p.offset >= 4096);
        if carries_data && s.fires(FaultKind::SyncEio) {
            s.record(SimOp::SyncFailed { file: self.id });
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        s.record(SimOp::Sync { file: self.id });
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.storage.state().model.files[self.id as usize].live.len() as u64)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut s = self.storage.state();
        s.record(SimOp::SetLen { file: self.id, len });
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    fn is_direct(&self) -> bool {
        self.direct
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state();
        let mut cur = Some(dir);
        let mut missing = Vec::new();
        while let Some(p) = cur {
            if p.as_os_str().is_empty() || s.model.dirs.contains(p) || p == Path::new("/") {
                break;
            }
            missing.push(p.to_path_buf());
            cur = p.parent();
        }
        for d in missing.into_iter().rev() {
            s.record(SimOp::CreateDir { dir: d });
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let s = self.state();
        if !s.model.dirs.contains(dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        let mut out: Vec<DirEntry> = s
            .model
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| Some(DirEntry { name: p.file_name()?.to_owned(), kind: EntryKind::File }))
            .collect();
        out.extend(
            s.model
                .dirs
                .iter()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| Some(DirEntry { name: p.file_name()?.to_owned(), kind: EntryKind::Dir })),
        );
        Ok(out)
    }

    fn open_file(&self, path: &Path, how: OpenHow) -> io::Result<Arc<dyn StorageFile>> {
        let mut s = self.state();
        let parent = path.parent().unwrap_or(Path::new("/"));
        if !s.model.dirs.contains(parent) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        if s.model.dirs.contains(path) {
            return Err(einval("a directory"));
        }
        let id = match (s.file_of(path), how.create_new) {
            (Some(_), true) => return Err(io::Error::from(io::ErrorKind::AlreadyExists)),
            (Some(id), false) => id,
            (None, true) => {
                let id = s.model.files.len() as u32;
                s.record(SimOp::Create { path: path.to_path_buf(), file: id });
                id
            }
            (None, false) => return Err(io::Error::from(io::ErrorKind::NotFound)),
        };
        drop(s);
        Ok(Arc::new(SimFile { storage: self.clone(), id, direct: how.direct, write: how.write }))
    }

    fn rename_no_replace(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        if s.file_of(to).is_some() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        if s.file_of(from).is_none() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        s.record(SimOp::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        if s.file_of(path).is_none() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        s.record(SimOp::Remove { path: path.to_path_buf() });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.state().record(SimOp::SyncDir { dir: dir.to_path_buf() });
        Ok(())
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn DirLock>, (io::Error, Option<u32>)> {
        {
            let mut s = self.state();
            if !s.locks.insert(path.to_path_buf()) {
                return Err((io::Error::from(io::ErrorKind::WouldBlock), None));
            }
            if s.file_of(path).is_none() {
                let id = s.model.files.len() as u32;
                s.record(SimOp::Create { path: path.to_path_buf(), file: id });
            }
        }
        Ok(Box::new(SimLock { storage: self.clone(), path: path.to_path_buf() }))
    }

    fn device_facts(&self, _file: &Path) -> DeviceFacts {
        let sector = self.state().cfg.sector_bytes as u32;
        DeviceFacts {
            fs_type: "simulated".into(),
            dio_mem_align: 512,
            dio_offset_align: 512,
            preferred_io_bytes: 4096,
            logical_block_bytes: Some(512),
            physical_block_bytes: Some(sector.max(512)),
            ..DeviceFacts::default()
        }
    }

    fn acknowledged(&self, acked: u64, synced: u64) {
        self.state().record(SimOp::Acked { acked, synced });
    }

    fn completion_order(&self) -> CompletionOrder {
        let s = self.state();
        if s.cfg.shuffle_completions {
            CompletionOrder::Shuffled { seed: s.cfg.seed }
        } else {
            CompletionOrder::Submission
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/log")
    }

    #[test]
    fn writes_are_durable_only_after_sync_and_names_after_dir_sync() {
        let sim = SimStorage::new(SimConfig::new(1));
        sim.create_dir_all(&dir()).unwrap();
        let f = sim.open_file(&dir().join("a"), OpenHow::create(false)).unwrap();
        f.write_at(b"hello", 0, false).unwrap();
        let log = sim.log();
        // Nothing of "a" survives: its name was never synced.
        let image = SimStorage::crash_image(&log, log.len(), 7, 512);
        assert!(image.read_file(&dir().join("a")).is_none());
        f.sync_data().unwrap();
        sim.sync_dir(&dir()).unwrap();
        f.write_at(b"HELLO", 0, false).unwrap();
        let log = sim.log();
        // The synced bytes survive; the pending overwrite lands (per sector)
        // new, old, zero or garbage.
        let mut seen = BTreeSet::new();
        for seed in 0..64 {
            let image = SimStorage::crash_image(&log, log.len(), seed, 512);
            let bytes = image.read_file(&dir().join("a")).unwrap();
            assert_eq!(bytes.len(), 5);
            seen.insert(bytes);
        }
        assert!(seen.contains(b"hello".as_slice()) && seen.contains(b"HELLO".as_slice()));
        assert!(seen.contains(&vec![0u8; 5]));
        assert!(seen.len() >= 4, "garbage too: {seen:?}");
        // Crash images are deterministic.
        let a = SimStorage::crash_image(&log, log.len(), 3, 512).read_file(&dir().join("a"));
        let b = SimStorage::crash_image(&log, log.len(), 3, 512).read_file(&dir().join("a"));
        assert_eq!(a, b);
    }

    #[test]
    fn a_failed_sync_loses_its_writes_for_good() {
        let cfg = SimConfig { faults: vec![(FaultKind::SyncEio, Trigger::Nth(1))], ..SimConfig::new(5) };
        let sim = SimStorage::new(cfg);
        sim.create_dir_all(&dir()).unwrap();
        let path = dir().join("f");
        let f = sim.open_file(&path, OpenHow::create(false)).unwrap();
        f.write_at(&[1u8; 100], 4096, false).unwrap();
        f.sync_data().unwrap();
        sim.sync_dir(&dir()).unwrap();
        f.write_at(&[2u8; 100], 4096, false).unwrap();
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        // The failed bytes stay readable (clean pages in the cache)...
        let mut buf = [0u8; 100];
        f.read_at(&mut buf, 4096).unwrap();
        assert_eq!(buf, [2u8; 100]);
        // ...but a later successful sync of other writes does not make them
        // durable: only what is pending reaches the medium.
        f.write_at(&[3u8; 100], 8192, false).unwrap();
        f.sync_data().unwrap();
        let log = sim.log();
        for seed in 0..8 {
            let bytes = SimStorage::crash_image(&log, log.len(), seed, 512).read_file(&path).unwrap();
            assert_eq!(&bytes[4096..4196], &[1u8; 100], "a write whose sync failed became durable");
            assert_eq!(&bytes[8192..8292], &[3u8; 100]);
        }
    }

    #[test]
    fn a_dsync_write_is_not_undone_by_older_pending_writes() {
        let sim = SimStorage::new(SimConfig::new(6));
        sim.create_dir_all(&dir()).unwrap();
        let path = dir().join("f");
        let f = sim.open_file(&path, OpenHow::create(false)).unwrap();
        f.write_at(&[1u8; 1024], 0, false).unwrap();
        f.sync_data().unwrap();
        sim.sync_dir(&dir()).unwrap();
        f.write_at(&[2u8; 1024], 0, false).unwrap();
        f.write_at(&[3u8; 512], 0, true).unwrap();
        let mid = sim.op_count();
        f.sync_data().unwrap();
        let log = sim.log();
        for seed in 0..32 {
            for at in [mid, log.len()] {
                let bytes = SimStorage::crash_image(&log, at, seed, 512).read_file(&path).unwrap();
                assert_eq!(&bytes[..512], &[3u8; 512], "crash at {at}, seed {seed}");
            }
            let bytes = SimStorage::crash_image(&log, log.len(), seed, 512).read_file(&path).unwrap();
            assert_eq!(&bytes[512..], &[2u8; 512]);
        }
    }

    #[test]
    fn a_torn_sector_can_take_the_rest_of_the_sector_with_it() {
        let sim = SimStorage::new(SimConfig::new(8));
        sim.create_dir_all(&dir()).unwrap();
        let path = dir().join("f");
        let f = sim.open_file(&path, OpenHow::create(false)).unwrap();
        // Synced bytes in the first half of each sector, then a pending write
        // into the second half only.
        f.write_at(&[7u8; 8192], 0, false).unwrap();
        f.sync_data().unwrap();
        sim.sync_dir(&dir()).unwrap();
        f.write_at(&[9u8; 256], 256, false).unwrap();
        f.write_at(&[9u8; 2048], 4096 + 2048, false).unwrap();
        let log = sim.log();
        for sector in [512usize, 4096] {
            let (mut intact, mut damaged) = (0, 0);
            for seed in 0..64 {
                let bytes = SimStorage::crash_image(&log, log.len(), seed, sector).read_file(&path).unwrap();
                assert_eq!(bytes.len(), 8192);
                // Sectors no pending write touched are never damaged.
                if sector == 512 {
                    assert!(bytes[512..4096 + 2048].iter().all(|&b| b == 7), "an untouched sector changed");
                }
                // In a touched sector, the synced bytes outside the write
                // survive or go with the whole sector.
                for (synced, written) in [(0..256, 256..512), (4096..4096 + 2048, 4096 + 2048..8192)] {
                    let whole = synced.start..written.end.min(synced.start + sector);
                    let old = bytes[synced.clone()].iter().all(|&b| b == 7);
                    if old {
                        intact += 1;
                    } else {
                        damaged += 1;
                        let zero = bytes[whole.clone()].iter().all(|&b| b == 0);
                        let new = bytes[written.clone()].iter().all(|&b| b == 9);
                        assert!(zero || !new, "damage outside the write without tearing its sector");
                    }
                }
            }
            assert!(intact > 0 && damaged > 0, "sector {sector}: {intact} intact, {damaged} damaged");
        }
    }

    #[test]
    fn tearing_is_per_sector() {
        let sim = SimStorage::new(SimConfig::new(2));
        sim.create_dir_all(&dir()).unwrap();
        let f = sim.open_file(&dir().join("s"), OpenHow::create(true)).unwrap();
        f.write_at(&[0u8; 8192], 0, false).unwrap();
        f.sync_data().unwrap();
        sim.sync_dir(&dir()).unwrap();
        f.write_at(&[0xAB; 8192], 0, false).unwrap();
        let log = sim.log();
        for sector in [512usize, 4096] {
            for seed in 0..20 {
                let bytes = SimStorage::crash_image(&log, log.len(), seed, sector).read_file(&dir().join("s")).unwrap();
                for chunk in bytes.chunks(sector) {
                    let uniform = chunk.iter().all(|&b| b == 0xAB) || chunk.iter().all(|&b| b == 0);
                    let garbage = !uniform;
                    assert!(uniform || garbage);
                }
            }
        }
        // O_DIRECT alignment is enforced.
        assert!(f.write_at(&[1u8; 100], 0, false).is_err());
        assert!(f.write_at(&[1u8; 512], 100, false).is_err());
    }

    #[test]
    fn renames_and_removals_need_a_directory_sync() {
        let sim = SimStorage::new(SimConfig::new(3));
        sim.create_dir_all(&dir()).unwrap();
        let f = sim.open_file(&dir().join("x.tmp"), OpenHow::create(false)).unwrap();
        f.write_at(b"data", 0, false).unwrap();
        f.sync_data().unwrap();
        sim.sync_dir(&dir()).unwrap();
        sim.rename_no_replace(&dir().join("x.tmp"), &dir().join("x")).unwrap();
        let before_sync = sim.op_count();
        sim.sync_dir(&dir()).unwrap();
        sim.remove_file(&dir().join("x")).unwrap();
        let log = sim.log();
        let image = SimStorage::crash_image(&log, before_sync, 1, 512);
        assert_eq!(image.paths(), vec![dir().join("x.tmp")]);
        let image = SimStorage::crash_image(&log, log.len(), 1, 512);
        assert_eq!(image.paths(), vec![dir().join("x")], "the removal was never synced");
    }

    #[test]
    fn acknowledgements_are_logged_and_change_no_file() {
        let sim = SimStorage::new(SimConfig::new(9));
        sim.create_dir_all(&dir()).unwrap();
        let f = sim.open_file(&dir().join("f"), OpenHow::create(false)).unwrap();
        f.write_at(b"data", 0, false).unwrap();
        sim.acknowledged(7, 5);
        let log = sim.log();
        assert_eq!(log.last(), Some(&SimOp::Acked { acked: 7, synced: 5 }));
        let a = SimStorage::crash_image(&log, log.len(), 1, 512);
        let b = SimStorage::crash_image(&log, log.len() - 1, 1, 512);
        assert_eq!(a.paths(), b.paths());
        assert_eq!(sim.read_file(&dir().join("f")).unwrap(), b"data");
    }

    #[test]
    fn a_kill_keeps_the_page_cache_and_makes_nothing_durable() {
        let sim = SimStorage::new(SimConfig::new(10));
        sim.create_dir_all(&dir()).unwrap();
        let f = sim.open_file(&dir().join("x.tmp"), OpenHow::create(false)).unwrap();
        f.write_at(b"old", 0, false).unwrap();
        f.sync_data().unwrap();
        sim.sync_dir(&dir()).unwrap();
        sim.rename_no_replace(&dir().join("x.tmp"), &dir().join("x")).unwrap();
        f.write_at(b"new", 0, false).unwrap();
        let _lock = sim.lock(&dir().join("LOCK")).map_err(|(e, _)| e).unwrap();
        let log = sim.log();
        let after = SimStorage::after_kill(&log, log.len(), SimConfig::new(11));
        // The next process sees what the dead one left in the page cache,
        // and can take the lock.
        assert_eq!(after.read_file(&dir().join("x")).as_deref(), Some(b"new".as_slice()));
        assert!(after.read_file(&dir().join("x.tmp")).is_none());
        let _lock2 = after.lock(&dir().join("LOCK")).map_err(|(e, _)| e).unwrap();
        // A power failure then: the rename was never synced; the write is
        // still pending (torn), and nothing of the kill made it durable.
        let later = after.log();
        let mut seen = BTreeSet::new();
        for seed in 0..32 {
            let image = SimStorage::crash_image(&later, later.len(), seed, 512);
            assert!(image.read_file(&dir().join("x")).is_none());
            seen.insert(image.read_file(&dir().join("x.tmp")).unwrap());
        }
        assert!(seen.contains(b"old".as_slice()) && seen.contains(b"new".as_slice()), "{seen:?}");
        // What the next process syncs is durable, old pending writes included
        // (they are in its page cache too).
        let g = after.open_file(&dir().join("x"), OpenHow::write(false)).unwrap();
        g.sync_data().unwrap();
        after.sync_dir(&dir()).unwrap();
        let later = after.log();
        let image = SimStorage::crash_image(&later, later.len(), 1, 512);
        assert_eq!(image.read_file(&dir().join("x")).as_deref(), Some(b"new".as_slice()));
    }

    #[test]
    fn faults_fire_on_schedule() {
        let cfg = SimConfig {
            faults: vec![(FaultKind::WriteEio, Trigger::Nth(1)), (FaultKind::SyncEio, Trigger::Nth(0))],
            ..SimConfig::new(4)
        };
        let sim = SimStorage::new(cfg);
        sim.create_dir_all(&dir()).unwrap();
        let f = sim.open_file(&dir().join("f"), OpenHow::create(false)).unwrap();
        f.write_at(b"header", 0, false).unwrap();
        f.sync_data().unwrap(); // no data past 4 KiB yet: not eligible
        f.write_at(b"one", 4096, false).unwrap();
        assert_eq!(f.write_at(b"two", 8192, false).unwrap_err().raw_os_error(), Some(libc::EIO));
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        f.sync_data().unwrap();
        assert_eq!(sim.injected().values().sum::<u64>(), 2);
    }
}
