//! One writer per log directory: across processes, an exclusive `flock` on
//! the directory's `LOCK` file; within this process, a registry of the
//! directories its logs (and inspections) hold, so a second opener is told
//! at once and plainly.
//!
//! After a writer is killed, the kernel keeps its lock until the dead
//! process's I/O has drained: its io_uring ring holds the lock file
//! registered until every request in it completed (usually tens of
//! milliseconds). An opener that finds the lock held by a process that is
//! gone (or by this very process, through a descriptor a forked child has
//! not closed yet) waits for it, up to `Options::lock_wait`; a live holder
//! is reported at once.

use std::os::fd::RawFd;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::names::LOCK_FILE;
use crate::storage::{DirLock, Storage};

/// A directory's lock file, by device and inode.
type Key = (u64, u64);

/// Why this process holds a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// A log or an inspection has it open.
    Open,
    /// A log was closed while one of its threads was stuck in the kernel: the
    /// lock is kept until the process exits.
    LeftBehind,
}

/// The directories this process holds (a handful at most).
static HELD: Mutex<Vec<(Key, Held)>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<(Key, Held)>> {
    // Pushes, removals and updates of one entry: never left inconsistent.
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key_of_path(path: &Path) -> Option<Key> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn key_of_fd(fd: RawFd) -> Option<Key> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `fd` is open for the duration of the call; `st` is writable
    // and filled on success.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded and initialised it.
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino))
}

/// The lock of a log directory, held; released (and forgotten by the
/// registry) on drop.
#[derive(Debug)]
pub(crate) struct HeldDir {
    lock: Option<Box<dyn DirLock>>,
    /// Registered under this key (real lock files only).
    key: Option<Key>,
}

impl HeldDir {
    /// The lock file's descriptor, which an io_uring ring registers.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.lock.as_ref().and_then(|l| l.raw_fd())
    }

    /// A thread of the log is stuck in the kernel and may still write: the
    /// directory stays locked until the process exits, and a new opener in
    /// this process is told why.
    pub fn leak(mut self) {
        if let Some(key) = self.key.take() {
            for entry in held().iter_mut().filter(|(k, _)| *k == key) {
                entry.1 = Held::LeftBehind;
            }
        }
        std::mem::forget(self.lock.take());
    }
}

impl Drop for HeldDir {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            held().retain(|(k, _)| *k != key);
        }
        drop(self.lock.take());
    }
}

/// Whether the process `pid` still runs (a zombie does not: it exited and
/// waits only to be reaped).
fn is_running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists.
    let exists =
        unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // "pid (comm) S ...": the state follows the last ')'.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) != Some('Z'),
        Err(_) => true,
    }
}

/// Takes the lock of `dir`, or says who holds it.
///
/// - Held by a log (or an inspection) of this process: [`Error::AlreadyOpen`]
///   at once.
/// - Held by a running process: [`Error::Locked`] at once.
/// - Held by a process that has exited, by one whose pid is unreadable, or
///   by this process outside the registry (a forked child's copy of a closed
///   log's descriptor): tried again until `wait` has passed, then
///   [`Error::Locked`], saying the holder has exited.
pub(crate) fn lock(storage: &dyn Storage, dir: &Path, wait: Duration) -> Result<HeldDir> {
    let path = dir.join(LOCK_FILE);
    let give_up = Instant::now() + wait;
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(key) = key_of_path(&path)
            && let Some(&(_, how)) = held().iter().find(|(k, _)| *k == key)
        {
            return Err(Error::AlreadyOpen { dir: dir.to_path_buf(), left_behind: how == Held::LeftBehind });
        }
        match storage.lock(&path) {
            Ok(lock) => {
                let key = lock.raw_fd().and_then(key_of_fd);
                if let Some(key) = key {
                    held().push((key, Held::Open));
                }
                return Ok(HeldDir { lock: Some(lock), key });
            }
            Err((e, holder_pid)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let own = holder_pid == Some(std::process::id());
                let running = !own && holder_pid.is_some_and(is_running);
                if running || Instant::now() >= give_up {
                    return Err(Error::Locked { path, holder_pid, holder_exited: !running && !own, waited: wait });
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            Err((e, _)) => return Err(Error::io("lock", &path, e)),
        }
    }
}

/// Whether `dir` was given as a path to something other than a directory;
/// the error to report if so.
pub(crate) fn check_is_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(Error::UnexpectedFile {
            path: dir.to_path_buf(),
            detail: "is not a directory: a log is a directory of segment files, given to Options::new".into(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_exited_is_not_running_and_this_one_is() {
        assert!(is_running(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited, not yet reaped: a zombie counts as gone.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!is_running(pid), "a zombie");
        child.wait().unwrap();
        assert!(!is_running(pid), "reaped");
        assert!(!is_running(u32::MAX));
    }
}
