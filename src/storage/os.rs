//! The real file system.

use std::ffi::CString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{DeviceFacts, DirEntry, DirLock, EntryKind, OpenHow, Storage, StorageFile};

/// Files and directories of the operating system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsStorage;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cvt(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

impl Storage for OsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(p) = cur {
            if p.as_os_str().is_empty() || p.exists() {
                break;
            }
            missing.push(p.to_path_buf());
            cur = p.parent();
        }
        for p in missing.iter().rev() {
            match DirBuilder::new().mode(0o700).create(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => continue,
                Err(e) => return Err(e),
            }
            let parent = p.parent().filter(|q| !q.as_os_str().is_empty()).unwrap_or(Path::new("."));
            self.sync_dir(parent)?;
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            // file_type() comes from d_type where available and never follows
            // a symlink.
            let ft = entry.file_type()?;
            let kind = if ft.is_symlink() {
                EntryKind::Symlink
            } else if ft.is_file() {
                EntryKind::File
            } else if ft.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::Other
            };
            out.push(DirEntry { name: entry.file_name(), kind });
        }
        Ok(out)
    }

    fn open_file(&self, path: &Path, how: OpenHow) -> io::Result<Arc<dyn StorageFile>> {
        let mut flags = libc::O_NOFOLLOW | libc::O_CLOEXEC;
        if how.direct {
            flags |= libc::O_DIRECT;
        }
        let mut opts = OpenOptions::new();
        opts.read(true).write(how.write).custom_flags(flags).mode(0o600);
        if how.create_new {
            opts.create_new(true);
        }
        let file = opts.open(path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        Ok(Arc::new(OsFile { file, direct: how.direct }))
    }

    fn rename_no_replace(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (f, t) = (c_path(from)?, c_path(to)?);
        // SAFETY: both pointers are valid NUL-terminated strings that outlive
        // the call; AT_FDCWD makes relative paths resolve as for rename(2).
        let ret =
            unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
        match cvt(ret) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                // File systems without RENAME_NOREPLACE: we hold the directory
                // lock, so checking first is not racy against ourselves.
                if to.symlink_metadata().is_ok() {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                std::fs::rename(from, to)
            }
            other => other,
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let d = OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(dir)?;
        d.sync_all()
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn DirLock>, (io::Error, Option<u32>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| (e, None))?;
        // The holder's pid is written into this file: never into a file that
        // is also another path (a planted hard link), or not a file at all.
        let meta = file.metadata().map_err(|e| (e, None))?;
        if !meta.is_file() || meta.nlink() > 1 {
            let detail = format!(
                "{} is not a lock file of its own ({}, {} links): refusing to write into it",
                path.display(),
                if meta.is_file() { "regular file" } else { "not a regular file" },
                meta.nlink()
            );
            return Err((io::Error::new(io::ErrorKind::InvalidData, detail), None));
        }
        // SAFETY: the descriptor is open for the duration of the call.
        let ret = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if let Err(e) = cvt(ret) {
            let mut text = String::new();
            let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
            return Err((e, pid));
        }
        // Diagnostics only: who holds the lock. The lock itself is the flock.
        let pid = std::process::id();
        let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{pid}"));
        Ok(Box::new(OsLock { file, path: path.to_path_buf() }))
    }

    fn device_facts(&self, file: &Path) -> DeviceFacts {
        DeviceFacts::probe(file)
    }
}

#[derive(Debug)]
struct OsLock {
    file: File,
    #[allow(dead_code)]
    path: PathBuf,
}

impl DirLock for OsLock {
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

#[derive(Debug)]
struct OsFile {
    file: File,
    direct: bool,
}

impl StorageFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64, dsync: bool) -> io::Result<usize> {
        if !dsync {
            return self.file.write_at(buf, offset);
        }
        let iov = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() };
        let off = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: iov points at buf, which is valid for reads of its length
        // for the duration of the call; the kernel only reads from it.
        let n = unsafe { libc::pwritev2(self.file.as_raw_fd(), &iov, 1, off, libc::RWF_DSYNC) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // Kernels without pwritev2 or RWF_DSYNC: a write then a data sync
            // gives the same guarantee.
            Some(libc::ENOSYS | libc::EOPNOTSUPP) => {
                let n = self.file.write_at(buf, offset)?;
                self.file.sync_data()?;
                Ok(n)
            }
            _ => Err(err),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let len = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: plain system call on an open descriptor.
        let ret = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, len) };
        match cvt(ret) {
            // Not every file system reserves space; the zero-fill that
            // follows allocates it anyway.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
            other => other,
        }
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn is_direct(&self) -> bool {
        self.direct
    }

    fn advise_sequential(&self) {
        self.fadvise(0, 0, libc::POSIX_FADV_SEQUENTIAL);
    }

    fn drop_cached(&self, offset: u64, len: u64) {
        self.fadvise(offset, len, libc::POSIX_FADV_DONTNEED);
    }

    fn cached_pages(&self) -> Option<u64> {
        /// `cachestat(2)`'s number on the architectures that share the
        /// generic table of new system calls (not Alpha or MIPS, which have
        /// their own: there the answer is `None`); the libc crate lacks it
        /// on x86_64.
        const SYS_CACHESTAT: Option<libc::c_long> = if cfg!(any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64",
            target_arch = "loongarch64",
            target_arch = "powerpc64",
            target_arch = "s390x"
        )) {
            Some(451)
        } else {
            None
        };
        /// `struct cachestat_range` of `<linux/mman.h>`: `len` 0 is to the end.
        #[repr(C)]
        struct Range {
            off: u64,
            len: u64,
        }
        /// `struct cachestat` of `<linux/mman.h>`.
        #[repr(C)]
        #[derive(Default)]
        struct Stat {
            nr_cache: u64,
            nr_dirty: u64,
            nr_writeback: u64,
            nr_evicted: u64,
            nr_recently_evicted: u64,
        }
        let nr = SYS_CACHESTAT?;
        let range = Range { off: 0, len: 0 };
        let mut stat = Stat::default();
        // SAFETY: the kernel reads `range` and writes `stat`, both live
        // #[repr(C)] values laid out as <linux/mman.h> declares them, and
        // touches nothing else; flags must be 0. An older kernel answers
        // ENOSYS (a seccomp filter, EPERM or ENOSYS): `None`.
        let ret =
            unsafe { libc::syscall(nr, self.file.as_raw_fd(), &range as *const Range, &mut stat as *mut Stat, 0u32) };
        (ret == 0).then_some(stat.nr_cache)
    }
}

impl OsFile {
    /// `posix_fadvise`, skipped where the page cache is bypassed. Advice
    /// only: a kernel that refuses it changes the speed of reads, never
    /// what they return, so its error is not worth a caller's attention.
    fn fadvise(&self, offset: u64, len: u64, advice: libc::c_int) {
        if self.direct {
            return;
        }
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else { return };
        // SAFETY: an advisory system call on an open descriptor; it touches
        // no memory of ours.
        unsafe { libc::posix_fadvise(self.file.as_raw_fd(), offset, len, advice) };
    }
}

/// An I/O priority as `ioprio_get(2)` and `ioprio_set(2)` encode it: the
/// class in the bits from 13 up, the level below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IoPriority(libc::c_long);

const IOPRIO_WHO_PROCESS: libc::c_long = 1;
const IOPRIO_CLASS_SHIFT: u32 = 13;

impl IoPriority {
    /// The idle class: served only when no other I/O waits, by schedulers
    /// that honour classes (mq-deadline, bfq); others ignore it.
    pub(crate) const IDLE: IoPriority = IoPriority(3 << IOPRIO_CLASS_SHIFT);

    /// No class: the kernel derives one from the CPU nice value (what a
    /// thread has unless someone set it).
    pub(crate) const NONE: IoPriority = IoPriority(0);

    /// Any encoding, valid or not.
    #[cfg(test)]
    pub(crate) fn from_raw(raw: libc::c_long) -> IoPriority {
        IoPriority(raw)
    }

    /// Best effort at `level` (0 highest .. 7 lowest).
    #[cfg(test)]
    pub(crate) fn best_effort(level: libc::c_long) -> IoPriority {
        IoPriority((2 << IOPRIO_CLASS_SHIFT) | level)
    }

    /// The scheduling class (0 none, 1 real time, 2 best effort, 3 idle).
    #[cfg(test)]
    pub(crate) fn class(self) -> libc::c_long {
        self.0 >> IOPRIO_CLASS_SHIFT
    }
}

/// The I/O priority of the calling thread.
pub(crate) fn thread_io_priority() -> io::Result<IoPriority> {
    // SAFETY: ioprio_get takes integers and touches no memory of ours;
    // `who` 0 with IOPRIO_WHO_PROCESS names the calling thread.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0 as libc::c_long) };
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(IoPriority(ret)) }
}

/// Sets the I/O priority of the calling thread only.
pub(crate) fn set_thread_io_priority(priority: IoPriority) -> io::Result<()> {
    // SAFETY: as in thread_io_priority; ioprio_set reads only its integers.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, priority.0) };
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_pages_counts_what_a_read_brought_in_and_a_drop_removed() {
        let dir = tempfile::tempdir().unwrap();
        if !OsStorage.device_facts(dir.path()).has_own_page_cache() {
            eprintln!("SKIPPED: the temporary directory's file system has no page cache of its own to count");
            return;
        }
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 256 << 10]).unwrap();
        let file = OsStorage.open_file(&path, OpenHow::read(false)).unwrap();
        // Written back first: a drop keeps dirty pages.
        std::fs::File::open(&path).unwrap().sync_all().unwrap();
        file.drop_cached(0, 0);
        let Some(after_drop) = file.cached_pages() else {
            eprintln!(
                "SKIPPED: this kernel has no cachestat(2) (Linux 6.5+); recovery reads the newest segment with O_DIRECT"
            );
            return;
        };
        assert_eq!(after_drop, 0, "a clean, unmapped file is gone from the cache after a drop");
        let mut buf = vec![0u8; 128 << 10];
        crate::storage::read_full_at(file.as_ref(), &mut buf, 0).unwrap();
        let after_read = file.cached_pages().unwrap();
        assert!(after_read >= 32, "128 KiB read: {after_read} pages cached");
        file.drop_cached(0, 0);
        assert_eq!(file.cached_pages(), Some(0));
    }

    #[test]
    fn an_io_priority_is_set_on_the_calling_thread_alone_and_restored() {
        let before = thread_io_priority().unwrap();
        if before == IoPriority::IDLE {
            eprintln!("SKIPPED: the tests run in the idle class already (ionice -c3)");
            return;
        }
        let (set_tx, set_rx) = std::sync::mpsc::channel();
        let (checked_tx, checked_rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let saved = thread_io_priority().unwrap();
            if let Err(e) = set_thread_io_priority(IoPriority::IDLE) {
                eprintln!("SKIPPED: ioprio_set refused here ({e})");
                set_tx.send(false).unwrap();
                return;
            }
            assert_eq!(thread_io_priority().unwrap().class(), 3, "idle");
            set_tx.send(true).unwrap();
            // The main thread looks at its own priority while this one is idle.
            checked_rx.recv().unwrap();
            match set_thread_io_priority(saved) {
                Ok(()) => assert_eq!(thread_io_priority().unwrap(), saved),
                // Some kernels report an unset priority in a form ioprio_set
                // refuses (IdleIo in segment::prepare falls back for it).
                Err(e) => eprintln!("SKIPPED: the restore check; this kernel refuses {saved:?} ({e})"),
            }
        });
        if set_rx.recv().unwrap() {
            assert_eq!(thread_io_priority().unwrap(), before, "another thread's priority must not change this one's");
            checked_tx.send(()).unwrap();
        }
        other.join().unwrap();
    }
}
