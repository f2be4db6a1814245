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
    /// The file system honours `RWF_DSYNC`.
    rwf_dsync: bool,
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
        SyncPolicy { flush, rwf_dsync, interval }
    }

    /// Each flush carries its own sync: an acknowledged flush is durable, and
    /// no sync rounds run.
    pub fn syncs_each_flush(&self) -> bool {
        self.flush != SyncMode::None
    }

    /// How a flush is written. A sync marker is synced in every mode: it
    /// states something only once durable. `lone`: nothing else is in
    /// flight and one appender has been alone for a while, so no later
    /// flush is likely to share an `fdatasync`: where the file system
    /// honours `RWF_DSYNC`, the write carries it instead (measured: 0.75x
    /// the CPU per record of a write and an `fdatasync`, the same latency;
    /// with several appenders, using it for every flush alone in flight cost
    /// 10-20% of the records/s, as they no longer shared syncs).
    pub fn flush_sync(&self, marker: bool, lone: bool) -> SyncMode {
        match self.flush {
            SyncMode::None if marker => SyncMode::DataSync,
            // The same promise in one request instead of two: the write
            // completes once its data is stable.
            SyncMode::DataSync if lone && self.rwf_dsync => SyncMode::Dsync,
            flush => flush,
        }
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
                assert_ne!(p.flush_sync(true, false), SyncMode::None, "{d:?}");
                assert_ne!(p.header_sync(), SyncMode::None, "{d:?}");
                assert_eq!(p.syncs_each_flush(), d.syncs_before_ack(), "{d:?}");
                assert_eq!(p.syncs_each_flush(), p.flush_sync(false, false) != SyncMode::None, "{d:?}");
            }
        }
    }

    #[test]
    fn dsync_uses_rwf_dsync_only_where_trusted() {
        assert_eq!(SyncPolicy::new(Durability::Dsync, true).flush_sync(false, false), SyncMode::Dsync);
        assert_eq!(SyncPolicy::new(Durability::Dsync, false).flush_sync(false, false), SyncMode::DataSync);
        assert_eq!(SyncPolicy::new(Durability::Dsync, false).header_sync(), SyncMode::DataSync);
        assert_eq!(SyncPolicy::new(Durability::GroupSync, true).flush_sync(false, false), SyncMode::DataSync);
    }

    #[test]
    fn a_lone_group_sync_flush_carries_rwf_dsync_only_where_trusted() {
        let group = |rwf| SyncPolicy::new(Durability::GroupSync, rwf);
        assert_eq!(group(true).flush_sync(false, true), SyncMode::Dsync);
        assert_eq!(group(false).flush_sync(false, true), SyncMode::DataSync);
        assert_eq!(group(true).flush_sync(false, false), SyncMode::DataSync);
        assert_eq!(group(true).flush_sync(true, true), SyncMode::Dsync, "a marker is synced either way");
        for d in [MODES[2], MODES[3]] {
            assert_eq!(SyncPolicy::new(d, true).flush_sync(false, true), SyncMode::None, "{d:?}");
        }
        assert_eq!(SyncPolicy::new(Durability::Dsync, true).flush_sync(false, false), SyncMode::Dsync);
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
