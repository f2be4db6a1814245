//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use uring_wal::storage::{DeviceFacts, DirEntry, DirLock, OpenHow, OsStorage, Storage, StorageFile};
use uring_wal::{Backend, BlockSize, DirectIo, Options};

/// The I/O paths every suite runs on.
#[derive(Clone, Copy, Debug)]
pub enum IoPath {
    /// io_uring with O_DIRECT (the default path).
    UringDirect,
    /// The threaded fallback with O_DIRECT.
    ThreadedDirect,
    /// Buffered I/O, backend chosen automatically.
    Buffered,
}

pub const PATHS: [IoPath; 3] = [IoPath::UringDirect, IoPath::ThreadedDirect, IoPath::Buffered];

/// Small segments so tests roll often; the given I/O path.
pub fn options(dir: &Path, path: IoPath) -> Options {
    let o =
        Options::durable(dir).segment_bytes(128 * 1024).record_bytes_max(16 * 1024).block_size(BlockSize::Bytes(4096));
    match path {
        IoPath::UringDirect => o.backend(Backend::IoUring).direct_io(DirectIo::Required),
        IoPath::ThreadedDirect => o.backend(Backend::Threaded).direct_io(DirectIo::Required),
        IoPath::Buffered => o.direct_io(DirectIo::Off),
    }
}

/// A payload that names its LSN, so any record can be checked on its own.
pub fn payload(lsn: u64, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    let seed = lsn.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in 0..len {
        // Never zero, so a torn payload never equals the zeros it replaced.
        p.push(((seed >> (i % 57)) as u8 ^ i as u8) | 1);
    }
    p
}

/// Record length used for LSN `lsn` in size sweeps.
pub fn len_for(lsn: u64, max: usize) -> usize {
    (lsn.wrapping_mul(2_654_435_761) % (max as u64 + 1)) as usize
}

/// A tiny deterministic generator (tests need no rand dependency).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Segment files of a directory, oldest first.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// Whether recovery may read the newest segment of a log in `dir` through
/// an emptied page cache: the file system reads through a cache of its own
/// and, for a clean file in a directory beside it, the kernel counts no
/// page cached after a drop (`cachestat(2)`, Linux 6.5+).
pub fn recovery_trusts_an_emptied_cache(dir: &Path) -> bool {
    if !OsStorage.device_facts(dir).has_own_page_cache() {
        return false;
    }
    let probe = tempfile::tempdir_in(dir.parent().unwrap()).unwrap();
    let path = probe.path().join("f");
    std::fs::write(&path, [7u8; 16 << 10]).unwrap();
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    let file = OsStorage.open_file(&path, OpenHow::read(false)).unwrap();
    file.drop_cached(0, 0);
    file.cached_pages() == Some(0)
}

/// Faults to inject into segment-file operations.
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// Data writes to let through before failing with EIO (-1: never).
    pub fail_write_after: AtomicI64,
    /// Syncs to let through before failing with EIO (-1: never).
    pub fail_sync_after: AtomicI64,
    /// Make data writes short (half, at least one byte) and interrupt every
    /// third attempt with EINTR.
    pub short_writes: std::sync::atomic::AtomicBool,
    /// Data write attempts seen.
    pub write_attempts: AtomicI64,
    /// Report a file system of unknown type ("faulty"): one that may not
    /// honour `RWF_DSYNC`, so that every durable flush is a write and an
    /// `fdatasync` (otherwise a lone appender's `GroupSync` flushes, and
    /// `Dsync` ones, carry `RWF_DSYNC` and call no sync to fail); and one
    /// whose page-cache count recovery does not trust.
    pub distrust_rwf_dsync: std::sync::atomic::AtomicBool,
    /// Reads seen.
    pub reads: AtomicI64,
    /// Reads without O_DIRECT of a file whose cached pages were never
    /// dropped through its handle (see `StorageFile::drop_cached`).
    pub reads_before_cache_drop: AtomicI64,
    /// Reads through O_DIRECT handles.
    pub direct_reads: AtomicI64,
    /// Reads through O_DIRECT handles past the first 4 KiB (past a header
    /// block: a walk over records, not a classification), by file.
    pub direct_data_reads: std::sync::Mutex<std::collections::BTreeMap<PathBuf, u64>>,
    /// Each write of zeros into a file created as a segment being prepared
    /// (`*.wal.tmp`) takes this long: a slow device under a zero-fill.
    pub slow_fill_write: std::sync::Mutex<Option<std::time::Duration>>,
    /// A stale page cache: reads of this file through handles without
    /// O_DIRECT see zeros from this offset on, as if the cache held pages
    /// older than the device that no drop could remove.
    pub stale_cache_from: std::sync::Mutex<Option<(PathBuf, u64)>>,
}

impl FaultPlan {
    /// Reads of `path`'s records through O_DIRECT handles.
    pub fn direct_data_reads_of(&self, path: &Path) -> u64 {
        self.direct_data_reads.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan {
            fail_write_after: AtomicI64::new(-1),
            fail_sync_after: AtomicI64::new(-1),
            short_writes: Default::default(),
            write_attempts: AtomicI64::new(0),
            distrust_rwf_dsync: Default::default(),
            reads: AtomicI64::new(0),
            reads_before_cache_drop: AtomicI64::new(0),
            direct_reads: AtomicI64::new(0),
            direct_data_reads: Default::default(),
            slow_fill_write: std::sync::Mutex::new(None),
            stale_cache_from: std::sync::Mutex::new(None),
        })
    }

    fn take(counter: &AtomicI64) -> bool {
        // Decrement while positive; fail when it reaches zero.
        let mut cur = counter.load(Ordering::SeqCst);
        loop {
            if cur < 0 {
                return false;
            }
            if cur == 0 {
                return true;
            }
            match counter.compare_exchange(cur, cur - 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return false,
                Err(now) => cur = now,
            }
        }
    }
}

/// The real file system with injected faults on `.wal` files. Its files have
/// no raw descriptors, so logs on it run the threaded backend.
#[derive(Debug)]
pub struct FaultyStorage {
    pub inner: OsStorage,
    pub plan: Arc<FaultPlan>,
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    path: PathBuf,
    plan: Arc<FaultPlan>,
    /// Set by the first write past the header block: from then on the file
    /// carries log data (segments are created under a temporary name, so the
    /// name cannot tell).
    carries_data: std::sync::atomic::AtomicBool,
    /// Set by the first write that is not all zeros: a header or a flush,
    /// never zero-fill.
    written_nonzero: std::sync::atomic::AtomicBool,
    /// Set by a `drop_cached` of the whole file.
    cache_dropped: std::sync::atomic::AtomicBool,
}

impl StorageFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.plan.reads.fetch_add(1, Ordering::SeqCst);
        // O_DIRECT reads do not read the cache.
        if !self.inner.is_direct() && !self.cache_dropped.load(Ordering::SeqCst) {
            self.plan.reads_before_cache_drop.fetch_add(1, Ordering::SeqCst);
        }
        if self.inner.is_direct() {
            self.plan.direct_reads.fetch_add(1, Ordering::SeqCst);
            if offset + buf.len() as u64 > 4096 {
                *self.plan.direct_data_reads.lock().unwrap().entry(self.path.clone()).or_default() += 1;
            }
        }
        let n = self.inner.read_at(buf, offset)?;
        if !self.inner.is_direct() {
            if let Some((path, from)) = self.plan.stale_cache_from.lock().unwrap().as_ref() {
                if *path == self.path {
                    let skip = from.saturating_sub(offset).min(n as u64) as usize;
                    buf[skip..n].fill(0);
                }
            }
        }
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64, dsync: bool) -> io::Result<usize> {
        // Only log data counts. Activation headers start at 0. Zero-fill of a
        // new segment runs in chunks at any offset, concurrently with appends
        // to the active segment, and is all zeros, which the first flush into
        // a file never is (a record header has a magic and a checksum); after
        // that first flush every write counts, also the all-zero rest of a
        // flush that a short write left over.
        if !self.written_nonzero.load(Ordering::SeqCst) && buf.iter().any(|&b| b != 0) {
            self.written_nonzero.store(true, Ordering::SeqCst);
        }
        if let Some(d) = *self.plan.slow_fill_write.lock().unwrap() {
            if self.path.to_string_lossy().ends_with(".wal.tmp") && buf.iter().all(|&b| b == 0) {
                std::thread::sleep(d);
            }
        }
        if offset > 0 && self.written_nonzero.load(Ordering::SeqCst) {
            self.carries_data.store(true, Ordering::SeqCst);
            if FaultPlan::take(&self.plan.fail_write_after) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let attempt = self.plan.write_attempts.fetch_add(1, Ordering::SeqCst);
            if self.plan.short_writes.load(Ordering::SeqCst) {
                if attempt % 3 == 2 {
                    return Err(io::Error::from_raw_os_error(libc::EINTR));
                }
                let n = (buf.len() / 2).max(1);
                return self.inner.write_at(&buf[..n], offset, dsync);
            }
        }
        self.inner.write_at(buf, offset, dsync)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.carries_data.load(Ordering::SeqCst) && FaultPlan::take(&self.plan.fail_sync_after) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.inner.sync_data()
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
    fn is_direct(&self) -> bool {
        self.inner.is_direct()
    }
    fn advise_sequential(&self) {
        self.inner.advise_sequential();
    }
    fn drop_cached(&self, offset: u64, len: u64) {
        if (offset, len) == (0, 0) {
            self.cache_dropped.store(true, Ordering::SeqCst);
        }
        self.inner.drop_cached(offset, len);
    }
    fn cached_pages(&self) -> Option<u64> {
        // The stale pages stay cached whatever is dropped, and say so.
        let stale = self.plan.stale_cache_from.lock().unwrap().as_ref().is_some_and(|(path, _)| *path == self.path);
        if stale {
            return Some(1);
        }
        self.inner.cached_pages()
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        self.inner.list_dir(dir)
    }
    fn open_file(&self, path: &Path, how: OpenHow) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.inner.open_file(path, how)?;
        Ok(Arc::new(FaultyFile {
            inner,
            path: path.to_path_buf(),
            plan: self.plan.clone(),
            carries_data: Default::default(),
            written_nonzero: Default::default(),
            cache_dropped: Default::default(),
        }))
    }
    fn rename_no_replace(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename_no_replace(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> Result<Box<dyn DirLock>, (io::Error, Option<u32>)> {
        self.inner.lock(path)
    }
    fn device_facts(&self, file: &Path) -> DeviceFacts {
        let mut facts = self.inner.device_facts(file);
        if self.plan.distrust_rwf_dsync.load(Ordering::SeqCst) {
            facts.fs_type = "faulty".into();
        }
        facts
    }
}

/// A payload of `len` bytes (at least 8) that starts with `id` and is
/// otherwise derived from it, so any record read back names the append that
/// wrote it.
pub fn tagged(id: u64, len: usize) -> Vec<u8> {
    let mut b = id.to_le_bytes().to_vec();
    b.extend(payload(id, len.max(8) - 8));
    b
}

/// The id of a [`tagged`] payload, or `None` if it is not one.
pub fn tag_of(b: &[u8]) -> Option<u64> {
    let id = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    (b[8..] == payload(id, b.len() - 8)[..]).then_some(id)
}

/// Runs `f` on a thread; panics if it does not return within `bound` (a
/// hang), leaving the thread behind.
pub fn within<T: Send + 'static>(what: &str, bound: std::time::Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound).unwrap_or_else(|_| panic!("{what} did not return within {bound:?}: the log hangs"))
}

/// After a poison: a new append fails with `Poisoned`, and `sync()` fails,
/// both within `bound`.
pub fn assert_refuses_after_poison(wal: &std::sync::Arc<uring_wal::Wal>, bound: std::time::Duration, ctx: &str) {
    let w = wal.clone();
    let again = within("append after poison", bound, move || w.append(uring_wal::RecordType::Put, b"after"));
    assert!(matches!(again, Err(uring_wal::Error::Poisoned(_))), "{ctx}: append after poison: {again:?}");
    let w = wal.clone();
    let sync = within("sync after poison", bound, move || w.sync());
    assert!(sync.is_err(), "{ctx}: sync after poison: {sync:?}");
}

/// Reads the whole log and checks it against what must be there; returns
/// LSN -> id of every record found.
pub fn check_log(
    wal: &uring_wal::Wal,
    ctx: &str,
    must_have: &std::collections::BTreeMap<u64, u64>,
    appended: &std::collections::BTreeMap<u64, u64>,
) -> std::collections::BTreeMap<u64, u64> {
    let mut found = std::collections::BTreeMap::new();
    let mut expect = wal.first_lsn();
    for r in wal.read_from(expect).unwrap_or_else(|e| panic!("{ctx}: read: {e}")) {
        let r = r.unwrap_or_else(|e| panic!("{ctx}: read: {e}"));
        assert_eq!(r.lsn, expect, "{ctx}: LSNs not gapless");
        expect += 1;
        let id = tag_of(&r.payload).unwrap_or_else(|| panic!("{ctx}: LSN {} holds a payload nobody appended", r.lsn));
        if let Some(&want) = appended.get(&r.lsn) {
            assert_eq!(id, want, "{ctx}: LSN {} holds another append's payload", r.lsn);
        }
        found.insert(r.lsn, id);
    }
    if !found.is_empty() {
        assert_eq!(wal.first_lsn(), 1, "{ctx}: recovery dropped the start of the log");
    }
    let lost: Vec<u64> = must_have.keys().filter(|l| !found.contains_key(l)).copied().collect();
    assert!(
        lost.is_empty(),
        "{ctx}: {} of {} records that had to survive the power loss are lost (LSNs {:?}..={:?}); the log ends at LSN {}",
        lost.len(),
        must_have.len(),
        lost.first(),
        lost.last(),
        expect - 1
    );
    for (lsn, id) in must_have {
        assert_eq!(found[lsn], *id, "{ctx}: LSN {lsn} changed its payload");
    }
    found
}
