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

    /// Another process (or another `Wal` in this one) holds the directory.
    /// A lock held by this process is waited for up to 500 ms first: a log
    /// closed just before may still hold it while a child forked by another
    /// thread has not yet called exec.
    #[error("{path} is locked by another writer{}", holder_text(*.holder_pid))]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Process id the holder wrote into the lock file, if readable.
        holder_pid: Option<u32>,
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
    #[error("{}: format version {found}, this library reads version {supported}", path.display())]
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

fn holder_text(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
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
