//! A sparse LSN-to-offset index of one segment, so a read from any LSN
//! starts near its record instead of at the start of its segment.
//!
//! One point (the first LSN of a flush and the flush's offset) per
//! [`INDEX_STRIDE_BYTES`] of segment at most: a 64 MiB segment has at most
//! 1,024 points of 16 bytes, 16 KiB, i.e. 1/4096 of the log's size. A read
//! then walks at most one stride plus one flush (`flush_bytes_max`, or one
//! record when a record is larger) from its point, whatever the segment size
//! and wherever the LSN lies.
//!
//! The I/O thread adds a point when it seals a flush; recovery adds them while
//! it walks the segment. A point is used only for LSNs at or after its own,
//! and a reader only reads acknowledged LSNs, so a point always names a flush
//! that was written.

use std::sync::{PoisonError, RwLock};

/// At most one point per this many bytes of segment.
pub(crate) const INDEX_STRIDE_BYTES: u64 = 64 * 1024;

/// The points of one segment, in LSN (and offset) order.
#[derive(Debug, Default)]
pub(crate) struct SegmentIndex {
    points: RwLock<Vec<(u64, u64)>>,
}

impl SegmentIndex {
    /// A record (the first of a flush) with `lsn` starts at `offset`. A
    /// record read from the first slot of a rewritten block after one read
    /// from its second (format version 2) lies behind the last point: only
    /// points that move forward in both are kept.
    pub fn note(&self, lsn: u64, offset: u64) {
        let mut points = self.points.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&(last_lsn, last_offset)) = points.last() {
            assert!(lsn > last_lsn, "points only grow");
            if offset < last_offset.saturating_add(INDEX_STRIDE_BYTES) {
                return;
            }
        }
        points.push((lsn, offset));
    }

    /// The last point at or before `lsn`: `(lsn, offset)`.
    pub fn seek(&self, lsn: u64) -> Option<(u64, u64)> {
        let points = self.points.read().unwrap_or_else(PoisonError::into_inner);
        let i = points.partition_point(|&(l, _)| l <= lsn);
        i.checked_sub(1).map(|i| points[i])
    }

    /// Points held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_spaced_by_the_stride_and_seek_finds_the_last_at_or_before() {
        let index = SegmentIndex::default();
        assert_eq!(index.seek(10), None);
        // Flushes of 4 KiB, one record each, from offset 4096.
        for i in 0..100u64 {
            index.note(1 + i, 4096 + i * 4096);
        }
        // 400 KiB of flushes: a point every 64 KiB.
        assert_eq!(index.len(), 7);
        assert_eq!(index.seek(1), Some((1, 4096)));
        assert_eq!(index.seek(16), Some((1, 4096)));
        assert_eq!(index.seek(17), Some((17, 4096 + 16 * 4096)));
        assert_eq!(index.seek(100), Some((97, 4096 + 96 * 4096)));
        assert_eq!(index.seek(0), None);
    }
}
