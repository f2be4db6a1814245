//! Segment files: names, the list of live segments, activation, preparation.
//!
//! A segment file lives through these states:
//!
//! 1. **prepared**: created as `<id>.wal.tmp`, sized, zero-filled, synced,
//!    renamed to `<id>.wal`, directory synced; or an old segment renamed to
//!    a new id (recycled). Its header is zero or belongs to an older life.
//! 2. **active**: its header (id, first LSN, where the previous segment's
//!    data ends) is written and synced *before* any record goes in, so a
//!    prepared file never holds records of its own life.
//! 3. **sealed**: the next segment was activated; the next header certifies
//!    where this one's data ends.
//! 4. **retired** by `truncate_before`: deleted, or renamed to a future id.

pub(crate) mod index;
pub(crate) mod names;
pub(crate) mod prepare;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::format::{SegmentHeader, data_offset};
use crate::storage::AlignedBuf;

/// A segment that holds (or will hold) records of the log.
#[derive(Clone, Debug)]
pub(crate) struct SegmentMeta {
    pub id: u64,
    pub first_lsn: u64,
    pub path: PathBuf,
    pub block_bytes: u32,
    pub segment_bytes: u64,
    /// Largest payload accepted in this segment (from its header).
    pub record_bytes_max: u32,
    /// Format version of its header: 2 lets the writer rewrite a flush's
    /// partly filled last block (see `format::walk`).
    pub version: u32,
    /// Where its flushes start (shared by every copy of this meta).
    pub index: Arc<index::SegmentIndex>,
}

/// The live segments, oldest first, shared by the I/O thread (which appends
/// on activation), readers (which take snapshots) and `truncate_before`
/// (which removes from the front).
#[derive(Debug)]
pub(crate) struct LiveSegments {
    segments: Mutex<VecDeque<SegmentMeta>>,
    /// The oldest segment a flush not yet acknowledged belongs to (a write
    /// may still go into it, or be in flight; `u64::MAX`: none). Set by the
    /// I/O thread before it activates a later segment, so `split_front`,
    /// which sees that segment in the list, sees this value or a later one.
    busy_from: AtomicU64,
}

impl Default for LiveSegments {
    fn default() -> LiveSegments {
        LiveSegments::new(Vec::new())
    }
}

impl LiveSegments {
    pub fn new(initial: Vec<SegmentMeta>) -> LiveSegments {
        LiveSegments { segments: Mutex::new(initial.into()), busy_from: AtomicU64::new(u64::MAX) }
    }

    /// I/O thread: the oldest segment with a flush not yet acknowledged.
    pub fn set_busy_from(&self, id: Option<u64>) {
        self.busy_from.store(id.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<SegmentMeta>> {
        // A panic while holding this lock leaves the list consistent (every
        // mutation is a single push or drain), so poisoning is ignored.
        self.segments.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn push(&self, meta: SegmentMeta) {
        let mut segs = self.lock();
        if let Some(last) = segs.back() {
            assert_eq!(last.id + 1, meta.id, "segments are activated in id order");
            assert!(last.first_lsn <= meta.first_lsn);
        }
        segs.push_back(meta);
    }

    pub fn snapshot(&self) -> Vec<SegmentMeta> {
        self.lock().iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// First LSN of each live segment, oldest first.
    pub fn first_lsns(&self) -> Vec<u64> {
        self.lock().iter().map(|s| s.first_lsn).collect()
    }

    /// First LSN of the oldest live segment.
    pub fn first_lsn(&self) -> Option<u64> {
        self.lock().front().map(|s| s.first_lsn)
    }

    /// Removes the oldest segments whose records are all below `lsn` and all
    /// at or below `acked_lsn`, and into which no write is pending or in
    /// flight (a sync marker holds no record, yet is a write). The newest
    /// segment always stays.
    pub fn split_front(&self, lsn: u64, acked_lsn: u64) -> Vec<SegmentMeta> {
        let mut segs = self.lock();
        let busy_from = self.busy_from.load(Ordering::SeqCst);
        let mut n = 0;
        while n + 1 < segs.len() {
            let next_first = segs[n + 1].first_lsn;
            if next_first <= lsn && next_first <= acked_lsn.saturating_add(1) && segs[n].id < busy_from {
                n += 1;
            } else {
                break;
            }
        }
        segs.drain(..n).collect()
    }
}

/// What every segment a run creates shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub segment_bytes: u64,
    pub block_bytes: u32,
    pub record_bytes_max: u32,
    /// Format version of the segments created: 2 lets the writer rewrite
    /// partly filled tail blocks, 1 never writes a block twice.
    pub format_version: u32,
}

/// Segment `id` about to become the one appended to, from `first_lsn` on:
/// the header to write and sync at offset 0, and the metadata the segment
/// has once that is durable. The one description of an activation, whether
/// at open (written synchronously) or at a rotation (through the ring).
pub(crate) fn activation(
    id: u64,
    path: PathBuf,
    first_lsn: u64,
    prev_data_end: u64,
    geometry: Geometry,
) -> (SegmentHeader, SegmentMeta) {
    let Geometry { segment_bytes, block_bytes, record_bytes_max, format_version: version } = geometry;
    let header = SegmentHeader {
        version,
        segment_id: id,
        first_lsn,
        segment_bytes,
        prev_data_end,
        block_bytes,
        record_bytes_max,
    };
    let meta = SegmentMeta {
        id,
        first_lsn,
        path,
        block_bytes,
        segment_bytes,
        record_bytes_max,
        version,
        index: Arc::default(),
    };
    (header, meta)
}

/// Writes the header block of a segment into `buf`: the encoded header,
/// zeros up to the first record. Returns its length.
pub(crate) fn encode_header_block(header: &SegmentHeader, buf: &mut [u8]) -> usize {
    let len = data_offset(header.block_bytes) as usize;
    let encoded = header.encode();
    buf[..len].fill(0);
    buf[..encoded.len()].copy_from_slice(&encoded);
    len
}

/// [`encode_header_block`] into a buffer of its own.
pub(crate) fn header_block(header: &SegmentHeader) -> AlignedBuf {
    let mut buf = AlignedBuf::zeroed(data_offset(header.block_bytes) as usize);
    encode_header_block(header, &mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u64, first_lsn: u64) -> SegmentMeta {
        SegmentMeta {
            id,
            first_lsn,
            path: PathBuf::new(),
            block_bytes: 4096,
            segment_bytes: 1 << 20,
            record_bytes_max: 4096,
            version: crate::format::FORMAT_VERSION,
            index: Arc::default(),
        }
    }

    #[test]
    fn split_front_keeps_the_newest_and_unacked() {
        let live = LiveSegments::new(vec![meta(1, 1), meta(2, 100), meta(3, 200)]);
        assert!(live.split_front(50, 1000).is_empty());
        // Segment 2 starts at 100: segment 1 holds only 1..=99.
        assert_eq!(live.split_front(100, 150).iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
        // Segment 2 holds 100..=199 but only up to 150 is acknowledged.
        assert!(live.split_front(1000, 150).is_empty());
        assert_eq!(live.split_front(1000, 1000).iter().map(|s| s.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(live.len(), 1);
    }

    #[test]
    fn split_front_keeps_a_segment_a_write_may_still_go_into() {
        let live = LiveSegments::new(vec![meta(1, 1), meta(2, 100), meta(3, 200)]);
        live.set_busy_from(Some(2));
        assert_eq!(live.split_front(1000, 1000).iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
        live.set_busy_from(None);
        assert_eq!(live.split_front(1000, 1000).iter().map(|s| s.id).collect::<Vec<_>>(), vec![2]);
    }
}
