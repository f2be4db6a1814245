//! A write-ahead log for Linux: accepted operations become durable before
//! anything applies them.
//!
//! Producers on any number of threads append records; a dedicated I/O thread
//! gathers whatever is queued into one flush, writes it with `O_DIRECT` through
//! io_uring, syncs it with one `fdatasync` shared by every flush written
//! meanwhile (or writes it with `RWF_DSYNC`), and wakes the producers whose
//! records became durable: group commit, many appends per sync. Where io_uring or `O_DIRECT` is unavailable the same guarantees hold
//! through plain system calls and buffered I/O; [`Wal::backend`] says which.
//!
//! ```
//! use uring_wal::{Options, RecordType, Wal};
//!
//! # fn main() -> Result<(), uring_wal::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let wal = Wal::open(Options::durable(dir.path()).segment_bytes(1 << 20).record_bytes_max(4096))?;
//! let lsn = wal.append(RecordType::Put, b"key=value")?; // durable on return
//! assert_eq!(lsn, 1);
//! drop(wal);
//!
//! // After a restart (or a crash) the log recovers and continues.
//! let wal = Wal::open(Options::durable(dir.path()).segment_bytes(1 << 20).record_bytes_max(4096))?;
//! wal.replay_from(1, |rec| {
//!     assert_eq!((rec.lsn, rec.kind, rec.payload), (1, RecordType::Put, &b"key=value"[..]));
//!     Ok::<_, uring_wal::Error>(())
//! })?;
//! assert_eq!(wal.append(RecordType::Delete, b"key")?, 2);
//! # Ok(())
//! # }
//! ```
//!
//! The architecture, in the order data flows:
//!
//! - [`format`](mod@format): the on-disk format, pure encode/decode (`docs/FORMAT.md`);
//! - [`storage`]: files and directories behind a trait; the aligned buffer;
//! - `io`: submission backends (io_uring, threaded fallback);
//! - `segment`: segment files: naming, preparation, activation, retirement;
//! - `commit`: the I/O thread: batching, submission, completion, watermarks;
//! - `reader`, `recovery`: reading back, and deciding where the log ends;
//! - [`Wal`]: the public handle.

#![deny(missing_docs)]
// Every `unsafe` block states the invariant it relies on.
#![deny(clippy::undocumented_unsafe_blocks)]
// Library code never unwraps; an `expect` names the invariant it trusts.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod commit;
mod error;
mod events;
pub mod format;
pub mod inspect;
mod io;
mod lock;
mod open;
mod options;
mod reader;
mod recovery;
mod segment;
pub mod storage;
mod wal;

/// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The user guide's examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/GUIDE.md")]
struct GuideDoctests;

pub use commit::metrics::LatencyStats;
pub use error::{Error, Failure, Result};

/// Version of this library.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why io_uring cannot be used on this machine, or `None` if it can. Sets up
/// and drops a small ring to find out.
#[must_use]
pub fn io_uring_unavailable_reason() -> Option<String> {
    io::uring::unavailable_reason()
}
pub use format::RecordType;
pub use io::BackendKind;
#[cfg(feature = "fault-injection")]
pub use io::fault::{RingFault, RingFaultPlan, RingTarget};
pub use options::{Backend, BlockSize, DirectIo, Durability, Options, RecoveryMode};
pub use reader::follow::Follower;
pub use reader::{Reader, Record, RecordRef};
pub use recovery::{RecoveryReport, SkippedBytes, TornTail};
pub use wal::{BackendInfo, Batch, Durable, Lsn, Stats, Ticket, Wal};
