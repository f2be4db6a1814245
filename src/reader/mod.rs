//! Reading records back in LSN order.
//!
//! A reader works on a snapshot of the live segments and its own file
//! descriptors, so it never blocks appends. It stops at the last LSN that was
//! acknowledged when it was created. Every record's checksum is verified.

pub(crate) mod follow;
pub(crate) mod source;

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::Lsn;
use crate::format::walk::{Limits, SegmentSource, Step, Walker};
use crate::format::{RECORD_HEADER_BYTES, RecordType, data_offset};
use crate::segment::{LiveSegments, SegmentMeta};
use crate::storage::{OpenHow, Storage};
use source::{FileSource, window_bytes};

/// A record borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its type.
    pub kind: RecordType,
    /// Its payload.
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// Copies the payload out.
    #[must_use]
    pub fn to_owned(&self) -> Record {
        Record { lsn: self.lsn, kind: self.kind, payload: self.payload.to_vec() }
    }
}

/// A record with its own copy of the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its type.
    pub kind: RecordType,
    /// Its payload.
    pub payload: Vec<u8>,
}

struct Open {
    meta: SegmentMeta,
    source: FileSource,
    walker: Walker,
    /// Times in a row the walk met the end before the reader's end.
    rereads: u32,
}

/// How many times a reader reads a segment of format version 2 again, from
/// a block back, when its walk ends before the records it knows are
/// durable: its window may have been read while the writer rewrote the
/// segment's last block, half before and half after a rewrite (each copy is
/// whole while the other is written, so a fresh read finds the records).
const REREADS_MAX: u32 = 2;

/// Reads records in LSN order; see [`crate::Wal::read_from`].
pub struct Reader {
    storage: Arc<dyn Storage>,
    segments: Vec<SegmentMeta>,
    index: usize,
    next_lsn: Lsn,
    end_lsn: Lsn,
    direct: bool,
    live: Option<Arc<LiveSegments>>,
    open: Option<Open>,
    /// Bytes read from segments closed by this reader.
    bytes_read_closed: u64,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("next_lsn", &self.next_lsn).field("end_lsn", &self.end_lsn).finish()
    }
}

impl Reader {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        segments: Vec<SegmentMeta>,
        from: Lsn,
        end_lsn: Lsn,
        direct: bool,
        live: Option<Arc<LiveSegments>>,
    ) -> Reader {
        Reader { storage, segments, index: 0, next_lsn: from, end_lsn, direct, live, open: None, bytes_read_closed: 0 }
    }

    /// The LSN of the next record this reader yields.
    #[must_use]
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// Bytes this reader read from segment files so far.
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read_closed + self.open.as_ref().map_or(0, |o| o.source.bytes_read)
    }

    /// The last LSN this reader yields.
    #[must_use]
    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// Moves the end to `end_lsn` over a fresh snapshot of the segments,
    /// keeping the open segment and position (a follower's way to go on).
    pub(crate) fn extend(&mut self, end_lsn: Lsn, segments: Vec<SegmentMeta>) {
        self.end_lsn = self.end_lsn.max(end_lsn);
        self.segments = segments;
        if let Some(open) = self.open.as_mut() {
            match self.segments.iter().position(|s| s.id == open.meta.id) {
                Some(i) => {
                    self.index = i;
                    // The walk stands right after the last record it
                    // yielded; the next, in a rewrite of that block, lies at
                    // the same offset in the other slot, which the walker
                    // looks at when it meets the block's padding.
                    open.source.invalidate();
                }
                // Retired by truncate_before: reopening reports it.
                None => self.close_segment(),
            }
        }
    }

    fn truncated_or(&self, err: Error) -> Error {
        if let Some(first) = self.live.as_ref().and_then(|l| l.first_lsn()) {
            if first > self.next_lsn {
                return Error::Truncated { requested: self.next_lsn, first_available: first };
            }
        }
        err
    }

    fn close_segment(&mut self) {
        if let Some(open) = self.open.take() {
            self.bytes_read_closed += open.source.bytes_read;
        }
    }

    fn open_segment(&mut self) -> Result<()> {
        // The segment holding next_lsn: the last one starting at or before it.
        let index = self.segments.partition_point(|s| s.first_lsn <= self.next_lsn);
        let Some(index) = index.checked_sub(1) else {
            let first = self.segments.first().map_or(self.next_lsn, |s| s.first_lsn);
            return Err(Error::Truncated { requested: self.next_lsn, first_available: first });
        };
        let meta = self.segments[index].clone();
        // A segment that this reader reads to its end (a replay) is scanned
        // through the page cache, with the kernel's read-ahead, as recovery
        // reads (see `FileSource::scan`), once a record of the next segment
        // is within the reader's end: acknowledgements follow the order of
        // the flushes, so every flush into this segment (its last sync
        // marker too) has completed and no direct write into it is in
        // flight. Anything else keeps the log's O_DIRECT: a buffered read
        // racing a direct write can leave a stale page in the cache, and a
        // read within one segment gains little from read-ahead. A log that
        // writes through the page cache is read through it already.
        let scan = self.direct && self.segments.get(index + 1).is_some_and(|next| self.end_lsn >= next.first_lsn);
        let file = match self.storage.open_file(&meta.path, OpenHow::read(self.direct && !scan)) {
            Ok(f) => f,
            Err(e) => return Err(self.truncated_or(Error::io("open segment", &meta.path, e))),
        };
        let limits = Limits {
            payload_len_max: meta.record_bytes_max,
            block_bytes: meta.block_bytes,
            segment_bytes: meta.segment_bytes,
            rewrites: meta.version >= 2,
        };
        let window = window_bytes(meta.record_bytes_max);
        let source = if scan {
            FileSource::scan(file, meta.segment_bytes, window)
        } else {
            FileSource::new(file, meta.segment_bytes, window)
        };
        // Start at the last indexed flush at or before the LSN, not at the
        // segment's start: the cost of a read does not grow with its
        // position in the segment.
        let (lsn, offset) = meta.index.seek(self.next_lsn).unwrap_or((meta.first_lsn, data_offset(meta.block_bytes)));
        let walker = Walker::new(meta.id, offset, lsn, limits);
        self.index = index;
        self.open = Some(Open { meta, source, walker, rereads: 0 });
        Ok(())
    }

    /// The next record, borrowed; `None` once past the end.
    pub fn next_record(&mut self) -> Result<Option<RecordRef<'_>>> {
        if self.next_lsn > self.end_lsn {
            return Ok(None);
        }
        let (offset, lsn, kind, len) = loop {
            let boundary = self.segments.get(self.index + 1).map(|s| s.first_lsn);
            if self.open.is_some() && boundary.is_some_and(|b| self.next_lsn >= b) {
                self.close_segment();
            }
            if self.open.is_none() {
                self.open_segment()?;
            }
            #[expect(clippy::expect_used, reason = "open_segment succeeded or returned early")]
            let open = self.open.as_mut().expect("opened above");
            let step = open.walker.next(&mut open.source).map_err(|e| Error::io("read segment", &open.meta.path, e))?;
            match step {
                Step::Record { offset, header, .. } => {
                    open.rereads = 0;
                    if header.lsn < self.next_lsn {
                        continue;
                    }
                    // check_fields validated the code.
                    #[expect(
                        clippy::expect_used,
                        reason = "check_fields accepted the record, which it does only for known type codes"
                    )]
                    let kind = RecordType::from_raw(header.kind).expect("validated record type");
                    break (offset, header.lsn, kind, header.payload_len as usize);
                }
                Step::Skipped { .. } => continue,
                Step::Break { .. } | Step::End { .. } if open.meta.version >= 2 && open.rereads < REREADS_MAX => {
                    open.rereads += 1;
                    open.source.invalidate();
                    open.walker.rewind();
                }
                Step::Break { at, .. } | Step::End { at } => {
                    let (id, path) = (open.meta.id, open.meta.path.clone());
                    let err = missing(id, path, at, self.next_lsn);
                    return Err(self.truncated_or(err));
                }
            }
        };
        // After reading: the record is the one asked for (the walker checked
        // it; the engine asserted the same before writing).
        assert_eq!(lsn, self.next_lsn, "reader out of step");
        self.next_lsn += 1;
        #[expect(clippy::expect_used, reason = "the record above was read from the open segment")]
        let open = self.open.as_mut().expect("a record was just read");
        let payload = open
            .source
            .read(offset + RECORD_HEADER_BYTES as u64, len)
            .map_err(|e| Error::io("read segment", &open.meta.path, e))?;
        Ok(Some(RecordRef { lsn, kind, payload }))
    }
}

fn missing(segment: u64, path: PathBuf, offset: u64, lsn: Lsn) -> Error {
    Error::Corruption {
        segment,
        path,
        offset,
        lsn,
        detail: "is missing: the record was acknowledged but cannot be read back".into(),
    }
}

impl Iterator for Reader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        self.next_record().map(|r| r.map(|r| r.to_owned())).transpose()
    }
}
