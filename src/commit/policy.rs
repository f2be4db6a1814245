//! What the configured [`Durability`] asks of the I/O thread: the one place
//! that decides it. A new mode is a variant of `Durability` and one arm in
//! [`SyncPolicy::new`] (and in [`Durability::syncs_before_ack`]).

use std::time::Duration;

use crate::io::SyncMode;
use crate::options::Durability;

/// How flushes and segment headers are synced, and whether acknowledged
/// writes wait for sync rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SyncPolicy {
    /// How each flush is written: with its own sync, or without one.
    flush: SyncMode,
    /// `Periodic`: time between sync rounds.
    interval: Option<Duration>,
}

impl SyncPolicy {
    /// `rwf_dsync`: whether the file system honours `RWF_DSYNC`; where it
    /// may not, `Dsync` writes are followed by an `fdatasync` instead.
    pub fn new(durability: Durability, rwf_dsync: bool) -> SyncPolicy {
        let (flush, interval) = match durability {
            Durability::GroupSync => (SyncMode::DataSync, None),
            Durability::Dsync if rwf_dsync => (SyncMode::Dsync, None),
            Durability::Dsync => (SyncMode::DataSync, None),
            Durability::Periodic { interval } => (SyncMode::None, Some(interval)),
            Durability::None => (SyncMode::None, None),
        };
        debug_assert_eq!(flush != SyncMode::None, durability.syncs_before_ack());
        SyncPolicy { flush, interval }
    }

    /// Each flush carries its own sync: an acknowledged flush is durable, and
    /// no sync rounds run.
    pub fn syncs_each_flush(&self) -> bool {
        self.flush != SyncMode::None
    }

    /// How a flush is written. A sync marker is synced in every mode: it
    /// states something only once durable.
    pub fn flush_sync(&self, marker: bool) -> SyncMode {
        if marker && self.flush == SyncMode::None { SyncMode::DataSync } else { self.flush }
    }

    /// How a segment header is written: durable in every mode, since
    /// recovery must find every activated segment.
    pub fn header_sync(&self) -> SyncMode {
        if self.flush == SyncMode::Dsync { SyncMode::Dsync } else { SyncMode::DataSync }
    }

    /// Time between sync rounds (`Periodic`); `None` also when no rounds run
    /// on a timer (`Durability::None` syncs only when asked or at close).
    pub fn round_interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Flushes in flight at most. Buffered I/O reports a lost page through
    /// the file's writeback error sequence, which one `fdatasync` consumes:
    /// of two syncs in flight on a file, the earlier may return 0 though its
    /// pages were lost, because the later one took the error. So with the
    /// page cache in the way, one durable flush at a time (group commit
    /// still batches what queues meanwhile).
    pub fn flushes_in_flight_max(&self, direct: bool, asked: usize) -> usize {
        if direct || !self.syncs_each_flush() { asked } else { 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [Durability; 4] = [
        Durability::GroupSync,
        Durability::Dsync,
        Durability::Periodic { interval: Duration::from_millis(5) },
        Durability::None,
    ];

    #[test]
    fn every_mode_makes_markers_and_headers_durable() {
        for d in MODES {
            for rwf in [false, true] {
                let p = SyncPolicy::new(d, rwf);
                assert_ne!(p.flush_sync(true), SyncMode::None, "{d:?}");
                assert_ne!(p.header_sync(), SyncMode::None, "{d:?}");
                assert_eq!(p.syncs_each_flush(), d.syncs_before_ack(), "{d:?}");
                assert_eq!(p.syncs_each_flush(), p.flush_sync(false) != SyncMode::None, "{d:?}");
            }
        }
    }

    #[test]
    fn dsync_uses_rwf_dsync_only_where_trusted() {
        assert_eq!(SyncPolicy::new(Durability::Dsync, true).flush_sync(false), SyncMode::Dsync);
        assert_eq!(SyncPolicy::new(Durability::Dsync, false).flush_sync(false), SyncMode::DataSync);
        assert_eq!(SyncPolicy::new(Durability::Dsync, false).header_sync(), SyncMode::DataSync);
        assert_eq!(SyncPolicy::new(Durability::GroupSync, true).flush_sync(false), SyncMode::DataSync);
    }

    #[test]
    fn buffered_durable_modes_keep_one_flush_in_flight() {
        for d in MODES {
            let p = SyncPolicy::new(d, true);
            assert_eq!(p.flushes_in_flight_max(true, 4), 4);
            assert_eq!(p.flushes_in_flight_max(false, 4), if d.syncs_before_ack() { 1 } else { 4 }, "{d:?}");
        }
        assert_eq!(SyncPolicy::new(Durability::GroupSync, true).round_interval(), None);
        let periodic = SyncPolicy::new(MODES[2], true);
        assert_eq!(periodic.round_interval(), Some(Duration::from_millis(5)));
    }
}
