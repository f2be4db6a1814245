//! The file-system layer behind a small trait.
//!
//! Everything the log does to files and directories goes through
//! [`Storage`] and [`StorageFile`], so tests can substitute a storage that
//! keeps a "live" and a "durable" image of every file and injects faults. The
//! io_uring backend needs raw file descriptors ([`StorageFile::raw_fd`]);
//! storages without them are driven by the threaded backend.

mod aligned;
pub mod device;
mod os;
pub(crate) mod rng;
#[cfg(feature = "sim")]
pub mod sim;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

pub use aligned::{AlignedBuf, BUFFER_ALIGN_BYTES};
pub use device::DeviceFacts;
pub use os::OsStorage;
pub(crate) use os::{IoPriority, set_thread_io_priority, thread_io_priority};

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenHow {
    /// Open for writing too.
    pub write: bool,
    /// Create it; fail if anything exists at the path (`O_EXCL`).
    pub create_new: bool,
    /// Bypass the page cache (`O_DIRECT`).
    pub direct: bool,
}

impl OpenHow {
    /// Read-only.
    #[must_use]
    pub fn read(direct: bool) -> OpenHow {
        OpenHow { write: false, create_new: false, direct }
    }

    /// Read and write an existing file.
    #[must_use]
    pub fn write(direct: bool) -> OpenHow {
        OpenHow { write: true, create_new: false, direct }
    }

    /// Create a new file for reading and writing.
    #[must_use]
    pub fn create(direct: bool) -> OpenHow {
        OpenHow { write: true, create_new: true, direct }
    }
}

/// What kind of thing a directory entry is (symlinks are not followed).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else.
    Other,
}

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct DirEntry {
    /// File name.
    pub name: OsString,
    /// Its kind.
    pub kind: EntryKind,
}

/// In what order the threaded backend completes submissions on a storage.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionOrder {
    /// In the order submitted (real storage).
    Submission,
    /// In a random order drawn from `seed`, each batch of submissions
    /// shuffled (a simulation checking that nothing relies on order).
    Shuffled {
        /// Seed of the shuffle.
        seed: u64,
    },
}

/// A held exclusive lock on a log directory; released on drop.
pub trait DirLock: Send + Sync + fmt::Debug {
    /// The descriptor the lock lives on, if it is a real file. The io_uring
    /// backend registers it with its ring so the lock outlives the process's
    /// own descriptors until the ring's in-flight writes have drained.
    fn raw_fd(&self) -> Option<RawFd>;
}

/// File-system operations the log needs.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Creates `dir` and missing parents (mode 0700) and syncs the parent of
    /// each directory it creates.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// The entries of `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;

    /// Opens a file; never follows a symlink; new files get mode 0600.
    fn open_file(&self, path: &Path, how: OpenHow) -> io::Result<Arc<dyn StorageFile>>;

    /// Renames `from` to `to`; fails if `to` exists.
    fn rename_no_replace(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Makes the directory's entries durable (fsync of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on the file `path` (created if missing), or
    /// fails with [`io::ErrorKind::WouldBlock`] and the holder's pid if known.
    fn lock(&self, path: &Path) -> Result<Box<dyn DirLock>, (io::Error, Option<u32>)>;

    /// What the device under `file` offers.
    fn device_facts(&self, file: &Path) -> DeviceFacts;

    /// In what order the threaded backend may complete submissions.
    fn completion_order(&self) -> CompletionOrder {
        CompletionOrder::Submission
    }

    /// A test hook: the I/O thread calls it each time it publishes new
    /// watermarks, before any waiter they satisfy is woken. `acked` is the
    /// highest LSN acknowledged under the configured durability, `synced`
    /// the highest on stable storage. Real storages ignore it; the simulated
    /// one logs it, so a test knows what was promised at each point of the
    /// storage's history. Does nothing by default.
    fn acknowledged(&self, acked: u64, synced: u64) {
        let _ = (acked, synced);
    }
}

/// An open file.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads at `offset`; returns the bytes read (short at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// One write attempt at `offset`; may be short. With `dsync` the write
    /// completes only once its data is stable (`RWF_DSYNC`).
    fn write_at(&self, buf: &[u8], offset: u64, dsync: bool) -> io::Result<usize>;

    /// `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;

    /// File size in bytes.
    fn size(&self) -> io::Result<u64>;

    /// Reserves space up to `len` bytes where the file system can.
    fn allocate(&self, len: u64) -> io::Result<()>;

    /// The descriptor, for io_uring; `None` for simulated files.
    fn raw_fd(&self) -> Option<RawFd>;

    /// Whether the file was opened with O_DIRECT.
    fn is_direct(&self) -> bool;

    /// Advice: the file is about to be read once from start to end, so the
    /// kernel may read ahead of the reader and in larger requests. Has no
    /// effect on a file that bypasses the page cache, and none on the data.
    fn advise_sequential(&self) {}

    /// Advice: drop the clean cached pages of `len` bytes at `offset` (to
    /// the end of the file if `len` is 0). Dirty pages stay, so nothing
    /// unwritten is lost (their writeback starts); the next read of a
    /// dropped page comes from the device. Best effort: locked and mapped
    /// pages stay too.
    fn drop_cached(&self, _offset: u64, _len: u64) {}

    /// Pages of this file the page cache holds at this moment, where the
    /// kernel can say (`cachestat(2)`, Linux 6.5 and later); `None` where
    /// it cannot, or for a file with no page cache of its own.
    fn cached_pages(&self) -> Option<u64> {
        None
    }
}

/// Writes all of `buf` at `offset`, continuing after short writes and EINTR.
pub fn write_all_at(file: &dyn StorageFile, mut buf: &[u8], mut offset: u64, dsync: bool) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, offset, dsync) {
            Ok(0) => {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0 bytes"));
            }
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` from `offset`; returns the bytes read, fewer only at end of file.
pub fn read_full_at(file: &dyn StorageFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
