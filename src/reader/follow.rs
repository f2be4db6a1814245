//! Following the log as it grows: durable records only, in LSN order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Reader, Record, RecordRef};
use crate::commit::shared::{LsnWait, Shared, Target};
use crate::error::{Error, Result};
use crate::format::Lsn;
use crate::segment::LiveSegments;

/// Yields durable records from an LSN on, waiting for more as the log grows
/// (by blocking, or as a future). What a replication or sync layer needs:
/// it survives segment rotation, and reports [`Error::Truncated`] if
/// `truncate_before` removed its position. See [`crate::Wal::follow`].
pub struct Follower {
    reader: Reader,
    shared: Arc<Shared>,
    live: Arc<LiveSegments>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").field("next_lsn", &self.reader.next_lsn()).finish_non_exhaustive()
    }
}

impl Follower {
    pub(crate) fn new(reader: Reader, shared: Arc<Shared>, live: Arc<LiveSegments>) -> Follower {
        Follower { reader, shared, live }
    }

    /// The LSN of the next record it yields.
    #[must_use]
    pub fn next_lsn(&self) -> Lsn {
        self.reader.next_lsn()
    }

    fn check_position(&self) -> Result<()> {
        if let Some(first) = self.live.first_lsn() {
            if first > self.reader.next_lsn() {
                return Err(Error::Truncated { requested: self.reader.next_lsn(), first_available: first });
            }
        }
        Ok(())
    }

    /// Takes in whatever became durable since.
    fn refresh(&mut self) {
        let synced = self.shared.synced_lsn();
        if synced > self.reader.end_lsn() {
            self.reader.extend(synced, self.live.snapshot());
        }
    }

    /// The next durable record, waiting for it up to `timeout` (forever with
    /// `None`); `Ok(None)` when the timeout passed first.
    pub fn next_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<RecordRef<'_>>> {
        let lsn = self.reader.next_lsn();
        let deadline = timeout.map(|t| Instant::now() + t);
        if !self.shared.wait_for(lsn, Target::Synced, deadline)? {
            return Ok(None);
        }
        self.check_position()?;
        self.refresh();
        self.reader.next_record()
    }

    /// The next durable record, as a future (the wait for it is async; the
    /// read of a record already on disk is done on the polling thread).
    pub async fn next_async(&mut self) -> Result<Record> {
        let lsn = self.reader.next_lsn();
        LsnWait::new(self.shared.clone(), lsn, Target::Synced).await?;
        self.check_position()?;
        self.refresh();
        match self.reader.next_record()? {
            Some(r) => Ok(r.to_owned()),
            None => Err(Error::Closed),
        }
    }
}

/// Blocks for each record; ends only with an error (the log closed, failed,
/// or was truncated past the follower).
impl Iterator for Follower {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        match self.next_timeout(None) {
            Ok(Some(r)) => Some(Ok(r.to_owned())),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}
