//! The one error type of the library, with the context needed to act on it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::format::RecordType;

/// Result of a log operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with where it went wrong.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"open"`, `"fdatasync"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error the system returned.
        #[source]
        source: io::Error,
    },

    /// A write or sync failed earlier; the log refuses every append since.
    /// Reopen the directory to recover what is durable.
    #[error("the log is poisoned and refuses appends: {0}")]
    Poisoned(Arc<Failure>),

    /// Another process holds the directory: it runs, or it has exited but
    /// the kernel had not released its lock within `Options::lock_wait`
    /// (its io_uring operations still draining, as after a kill; a device
    /// that does not answer keeps them for ever).
    #[error("{}", locked_text(path, *holder_pid, *holder_exited, *waited))]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Process id the holder wrote into the lock file, if readable.
        holder_pid: Option<u32>,
        /// The holder no longer runs (or could not be told): the lock was
        /// waited for, in vain.
        holder_exited: bool,
        /// How long it was waited for (`Options::lock_wait`).
        waited: std::time::Duration,
    },

    /// The directory is already held by a log (or an inspection) in this
    /// process, or by a log closed here while one of its threads was stuck
    /// in the kernel (it stays locked until the process exits).
    #[error("{}", already_open_text(dir, *left_behind))]
    AlreadyOpen {
        /// The log directory.
        dir: PathBuf,
        /// A closed log's thread is stuck in the kernel and keeps it.
        left_behind: bool,
    },

    /// Records were lost or damaged where the log proves they had been
    /// durable. Nothing was truncated.
    #[error(
        "corruption in segment {segment} ({}) at offset {offset}: record LSN {lsn} {detail}",
        path.display()
    )]
    Corruption {
        /// Segment id.
        segment: u64,
        /// Segment file.
        path: PathBuf,
        /// Byte offset in the file.
        offset: u64,
        /// LSN of the record expected there.
        lsn: u64,
        /// What is wrong and what proves it.
        detail: String,
    },

    /// A torn tail was found and [`crate::RecoveryMode::AbsoluteConsistency`]
    /// forbids truncating it.
    #[error(
        "torn tail in segment {segment} ({}) at offset {offset} (next LSN {lsn}); \
         refused under RecoveryMode::AbsoluteConsistency",
        path.display()
    )]
    TornTail {
        /// Segment id.
        segment: u64,
        /// Segment file.
        path: PathBuf,
        /// Where valid data ends.
        offset: u64,
        /// The LSN that would come next.
        lsn: u64,
    },

    /// A segment written by another version of the format.
    #[error(
        "{}: format version {found}, this library reads versions {} to {supported}",
        path.display(),
        crate::format::FORMAT_VERSION_MIN
    )]
    UnsupportedVersion {
        /// Segment file.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version this library reads.
        supported: u32,
    },

    /// A file in the directory has a segment's name but is not one we can use
    /// (a symlink, a directory, a file of the wrong size).
    #[error("{}: {detail}", path.display())]
    UnexpectedFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A payload longer than [`crate::Options::record_bytes_max`].
    #[error("record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Payload length.
        len: u64,
        /// Configured maximum.
        max: u32,
    },

    /// A record type without an on-disk code.
    #[error("record type {0:?} has no on-disk code")]
    InvalidRecordType(RecordType),

    /// Options that cannot work together.
    #[error("invalid options: {0}")]
    InvalidOptions(String),

    /// A required feature (io_uring, O_DIRECT) is not available here.
    #[error("{what} unavailable: {reason}")]
    Unsupported {
        /// The feature.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// The requested LSN was removed by [`crate::Wal::truncate_before`].
    #[error("LSN {requested} was removed by truncate_before; the log starts at {first_available}")]
    Truncated {
        /// LSN asked for.
        requested: u64,
        /// First LSN still in the log.
        first_available: u64,
    },

    /// A range read asked for LSNs not acknowledged (yet).
    #[error("LSN {requested} is past the last acknowledged LSN {last_lsn}")]
    BeyondEnd {
        /// Last LSN asked for.
        requested: u64,
        /// Last LSN acknowledged when the read began.
        last_lsn: u64,
    },

    /// [`crate::Wal::try_submit`] found the request queue full: as many
    /// requests, or as many payload bytes, queued as the options allow
    /// ([`crate::Options::queue_requests_max`],
    /// [`crate::Options::queue_bytes_max`]). Nothing was queued.
    #[error(
        "the request queue is full ({requests_max} requests or {bytes_max} payload bytes queued); nothing was queued: \
         retry once earlier appends are acknowledged, or use submit (blocks for room) or submit_async (awaits room)"
    )]
    QueueFull {
        /// `queue_requests_max` of the log.
        requests_max: usize,
        /// `queue_bytes_max` of the log.
        bytes_max: u64,
    },

    /// The log was closed.
    #[error("the log is closed")]
    Closed,
}

fn locked_text(path: &std::path::Path, pid: Option<u32>, exited: bool, waited: std::time::Duration) -> String {
    let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    if exited {
        format!(
            "{} is still locked {waited:?} (Options::lock_wait) after its holder{who} exited: the kernel has not \
             finished that process's I/O yet (io_uring operations drain after a kill; a device that does not \
             answer keeps them). Try again, or raise lock_wait",
            path.display()
        )
    } else {
        format!("{} is locked by another writer{who}, which is running: stop it first", path.display())
    }
}

fn already_open_text(dir: &std::path::Path, left_behind: bool) -> String {
    if left_behind {
        format!(
            "{} was closed in this process while a thread of its log was stuck in the kernel (a stalled device): \
             it stays locked until this process exits",
            dir.display()
        )
    } else {
        format!(
            "{} is already open in this process: share that Wal (it is Send + Sync; put it in an Arc) instead of \
             opening the directory twice",
            dir.display()
        )
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }
}

/// The failure that poisoned a log.
#[derive(Debug)]
#[non_exhaustive]
pub struct Failure {
    /// What failed (`"write"`, `"fdatasync"`, `"activate segment"`, ...).
    pub op: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Segment id.
    pub segment: u64,
    /// Byte offset of the failed write (0 for a sync).
    pub offset: u64,
    /// First LSN that could not be persisted.
    pub lsn: u64,
    /// The error.
    pub error: io::Error,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of segment {} ({}) at offset {} failed (first unpersisted LSN {}): {}",
            self.op,
            self.segment,
            self.path.display(),
            self.offset,
            self.lsn,
            self.error
        )
    }
}
