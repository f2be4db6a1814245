//! Laying out one flush: records back to back, then padding to a block edge.
//!
//! Every flush starts at a block boundary and ends at one. A flush either
//! goes to blocks no earlier flush wrote (of this segment life), or it is a
//! *rewrite* of the partly filled last block of the flush before it: one
//! block holding that block's records at the same offsets (copied, not
//! re-encoded), new records after them, and padding. A rewrite goes to the
//! other of the block's two slots (the block, and the one after it), never
//! over the copy the records were last written to, so a torn rewrite leaves
//! that copy intact. The engine decides when a rewrite is allowed (the copy
//! it keeps must be durable); this module only lays it out.

use super::record::{self, EncodeHeader, RECORD_HEADER_BYTES};
use super::{RECORD_ALIGN_BYTES, align_down, data_offset, padded_end};

/// Whether a record fits into the flush being laid out.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// It fits.
    Yes,
    /// The flush buffer is too full; seal it and start another.
    BufferFull,
    /// The segment is too full; seal the flush and roll to the next segment.
    SegmentFull,
    /// The flush is a rewrite of one block and the record does not fit into
    /// it: move its new records to a fresh flush ([`FlushLayout::move_to`]).
    BlockFull,
}

/// Bookkeeping of a flush being laid out into a caller-owned buffer whose
/// first byte goes to `file_offset`.
#[derive(Clone, Copy, Debug)]
pub struct FlushLayout {
    /// Where the flush starts in the segment file (a block boundary).
    pub file_offset: u64,
    /// Bytes laid out so far.
    pub len: usize,
    /// Segment life the records belong to.
    pub segment_id: u64,
    /// Padding unit.
    pub block_bytes: u32,
    /// Size of the segment file.
    pub segment_bytes: u64,
    /// Bytes at the head copied from the previous copy of the block: records
    /// written before (0 unless this flush is a rewrite).
    pub carried: usize,
    /// Offset in the flush of the last record that starts on a block boundary.
    block_record: Option<usize>,
    /// Where the records ended when the flush was padded.
    records_end: usize,
}

/// The partly filled last block of a sealed flush, which the next flush may
/// rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tail {
    /// Offset of the block in the flush.
    pub offset: usize,
    /// Bytes of records in it, from its start (a record starts there).
    pub records_len: usize,
}

impl FlushLayout {
    /// Starts a flush at `file_offset`.
    ///
    /// # Panics
    /// If `file_offset` is not a block boundary inside the segment's data.
    #[must_use]
    pub fn new(file_offset: u64, segment_id: u64, block_bytes: u32, segment_bytes: u64) -> Self {
        assert_eq!(file_offset % u64::from(block_bytes), 0, "flushes start at block boundaries");
        assert!(file_offset >= data_offset(block_bytes) && file_offset <= segment_bytes);
        FlushLayout {
            file_offset,
            len: 0,
            segment_id,
            block_bytes,
            segment_bytes,
            carried: 0,
            block_record: None,
            records_end: 0,
        }
    }

    /// Starts a rewrite of a block into the slot at `slot_offset`: the
    /// caller has copied the `carried` bytes of records the block held into
    /// the head of the buffer.
    ///
    /// # Panics
    /// If the slot is not a whole block inside the segment's data, or the
    /// carried bytes do not leave room in it for a record header.
    #[must_use]
    pub fn rewrite(slot_offset: u64, carried: usize, segment_id: u64, block_bytes: u32, segment_bytes: u64) -> Self {
        let mut f = FlushLayout::new(slot_offset, segment_id, block_bytes, segment_bytes);
        assert!(slot_offset + u64::from(block_bytes) <= segment_bytes, "the slot is a whole block");
        assert!(carried > 0 && carried % RECORD_ALIGN_BYTES as usize == 0);
        assert!(carried + RECORD_HEADER_BYTES <= block_bytes as usize, "room for another record");
        (f.carried, f.len, f.block_record) = (carried, carried, Some(0));
        f
    }

    /// Turns a rewrite into a fresh flush at `file_offset` (a block
    /// boundary): its new records move to the head of the buffer (records do
    /// not name their offset), the carried copy is dropped. The block keeps
    /// its last copy as it is.
    ///
    /// # Panics
    /// If `file_offset` is not a block boundary inside the segment's data.
    pub fn move_to(&mut self, buf: &mut [u8], file_offset: u64) {
        let moved = *self;
        *self = FlushLayout::new(file_offset, moved.segment_id, moved.block_bytes, moved.segment_bytes);
        buf.copy_within(moved.carried..moved.len, 0);
        self.len = moved.len - moved.carried;
        self.block_record = (self.len > 0).then_some(0);
    }

    /// Whether the flush is a rewrite of one block.
    #[must_use]
    pub fn is_rewrite(&self) -> bool {
        self.carried > 0
    }

    /// Whether a record of `payload_len` bytes fits, given a buffer of
    /// `buffer_bytes` that must also hold the closing padding.
    #[must_use]
    pub fn fits(&self, payload_len: u32, buffer_bytes: usize) -> Fit {
        let end = self.file_offset + self.len as u64 + record::encoded_len(payload_len);
        let block_end = self.file_offset + u64::from(self.block_bytes);
        if self.is_rewrite() && padded_end(end, self.block_bytes, self.segment_bytes) > block_end {
            Fit::BlockFull
        } else if end > self.segment_bytes {
            Fit::SegmentFull
        } else if padded_end(end, self.block_bytes, self.segment_bytes) - self.file_offset > buffer_bytes as u64 {
            Fit::BufferFull
        } else {
            Fit::Yes
        }
    }

    /// Encodes a record at the end of the flush.
    ///
    /// # Panics
    /// If the record does not fit (check [`FlushLayout::fits`] first).
    pub fn push(&mut self, buf: &mut [u8], header: EncodeHeader, payload: &[u8]) {
        self.push_with_payload_crc(buf, header, payload, crc32c::crc32c(payload));
    }

    /// [`FlushLayout::push`] with the payload's CRC32C already computed.
    ///
    /// # Panics
    /// As [`FlushLayout::push`].
    pub fn push_with_payload_crc(&mut self, buf: &mut [u8], header: EncodeHeader, payload: &[u8], payload_crc: u32) {
        if (self.file_offset + self.len as u64) % u64::from(self.block_bytes) == 0 {
            self.block_record = Some(self.len);
        }
        let n = record::encode_with_payload_crc(&mut buf[self.len..], header, payload, payload_crc);
        self.len += n;
        assert!(self.file_offset + self.len as u64 <= self.segment_bytes);
    }

    /// Whether no new record was laid out.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == self.carried
    }

    /// Pads the flush to its block edge and returns its final length.
    /// `next_lsn` is the LSN the next record will carry.
    pub fn finish(&mut self, buf: &mut [u8], next_lsn: u64, sync_lag: u32) -> usize {
        if self.is_empty() {
            return 0;
        }
        self.records_end = self.len;
        let end = self.file_offset + self.len as u64;
        let padded = padded_end(end, self.block_bytes, self.segment_bytes);
        let pad = (padded - end) as usize;
        if pad >= RECORD_HEADER_BYTES {
            record::encode_padding(&mut buf[self.len..], pad, next_lsn, self.segment_id, sync_lag);
        } else {
            // Only at the very end of a segment: too little room for a padding
            // header, and readers stop where no header fits.
            buf[self.len..self.len + pad].fill(0);
        }
        self.len += pad;
        self.len
    }

    /// Lays out a *sync marker*: a flush of one block holding only a padding
    /// record whose `sync_lag` says that every LSN up to `synced_lsn` was
    /// synced before the marker was encoded. Written after `Wal::sync` and at
    /// a clean close, so recovery can tell damage to synced records from a
    /// torn tail even when no record follows them. Returns its length.
    ///
    /// # Panics
    /// If records were laid out already, or the segment has no room
    /// (check `fits(0, ..)` first).
    pub fn finish_marker(&mut self, buf: &mut [u8], next_lsn: u64, synced_lsn: u64) -> usize {
        assert!(self.len == 0, "a marker is a flush of its own");
        assert!(synced_lsn < next_lsn, "only written LSNs can have been synced");
        let end = padded_end(self.file_offset + RECORD_HEADER_BYTES as u64, self.block_bytes, self.segment_bytes);
        assert!(end <= self.segment_bytes, "no room for a marker");
        let total = (end - self.file_offset) as usize;
        record::encode_padding(
            &mut buf[..total],
            total,
            next_lsn,
            self.segment_id,
            record::sync_lag(next_lsn, synced_lsn),
        );
        self.len = total;
        total
    }

    /// File offset just past the flush.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.file_offset + self.len as u64
    }

    /// After [`FlushLayout::finish`]: the flush's last block, if records
    /// fill only part of it, a record starts at its start (so every copy of
    /// it reads from there) and the padding ends with it. Else `None`: the
    /// next flush starts after this one.
    #[must_use]
    pub fn tail(&self) -> Option<Tail> {
        let block = self.block_bytes as usize;
        let offset = align_down(self.records_end as u64, block as u64) as usize;
        // Ends with padding inside the block (not the zeros left at a
        // segment's very end): a rewrite has room for another record.
        let padded = self.len == offset + block && self.len - self.records_end >= RECORD_HEADER_BYTES;
        let partial = self.records_end % block != 0 && padded;
        let fits = self.file_offset + (offset + block) as u64 <= self.segment_bytes;
        (partial && fits && self.block_record == Some(offset))
            .then_some(Tail { offset, records_len: self.records_end - offset })
    }
}

/// Reads back a sealed flush before it is written: records `first_lsn`,
/// `first_lsn + 1`, ... of `segment_id`, each with a valid checksum and
/// fields, then padding to the end of `flush` (or, at a segment's very end,
/// fewer zero bytes than a header). Returns how many records it holds.
/// The I/O thread asserts it in debug builds; a reader's checks are its pair.
pub fn verify(
    flush: &[u8],
    first_lsn: u64,
    segment_id: u64,
    payload_len_max: u32,
    block_bytes: u32,
) -> Result<u64, String> {
    let (mut at, mut lsn) = (0usize, first_lsn);
    while flush.len() - at >= RECORD_HEADER_BYTES {
        let mut head = [0u8; RECORD_HEADER_BYTES];
        head.copy_from_slice(&flush[at..at + RECORD_HEADER_BYTES]);
        let h = record::RecordHeader::parse(&head);
        h.check_fields(payload_len_max, block_bytes).map_err(|d| format!("record at {at}: {d:?}"))?;
        if h.lsn != lsn || h.segment_id != segment_id {
            return Err(format!(
                "record at {at}: LSN {} of segment {}, expected {lsn} of {segment_id}",
                h.lsn, h.segment_id
            ));
        }
        let end = at.saturating_add(h.encoded_len() as usize);
        let Some(payload) = flush.get(at + RECORD_HEADER_BYTES..at + RECORD_HEADER_BYTES + h.payload_len as usize)
        else {
            return Err(format!("record at {at}: runs past the flush's {} bytes", flush.len()));
        };
        if !record::verify(&head, payload) {
            return Err(format!("record at {at}: checksum"));
        }
        if h.is_padding() {
            return if end == flush.len() {
                Ok(lsn - first_lsn)
            } else {
                Err(format!("padding at {at} ends at {end}, flush at {}", flush.len()))
            };
        }
        (at, lsn) = (end, lsn + 1);
    }
    if flush[at..].iter().all(|&b| b == 0) { Ok(lsn - first_lsn) } else { Err(format!("stray bytes after {at}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_is_padded_to_block_and_fit_is_honest() {
        let seg = 64 * 1024;
        let mut buf = vec![0u8; 16 * 1024];
        let mut f = FlushLayout::new(4096, 1, 4096, seg);
        let h = EncodeHeader { lsn: 1, segment_id: 1, kind: 1, sync_lag: 1 };
        assert_eq!(f.fits(100, buf.len()), Fit::Yes);
        f.push(&mut buf, h, &[7u8; 100]);
        assert_eq!(f.fits(16 * 1024, buf.len()), Fit::BufferFull);
        assert_eq!(f.fits(60 * 1024, 1 << 20), Fit::SegmentFull);
        let len = f.finish(&mut buf, 2, 1);
        assert_eq!(len, 4096);
        assert_eq!(f.end(), 8192);
    }

    #[test]
    fn a_marker_is_one_block_of_padding_that_proves_the_synced_lsn() {
        let seg = 64 * 1024;
        let mut buf = vec![0xAAu8; 8192];
        let mut f = FlushLayout::new(8192, 3, 4096, seg);
        assert_eq!(f.fits(0, buf.len()), Fit::Yes);
        assert_eq!(f.finish_marker(&mut buf, 41, 40), 4096);
        assert_eq!(f.end(), 12288);
        let head: &[u8; RECORD_HEADER_BYTES] = buf[..RECORD_HEADER_BYTES].try_into().unwrap();
        assert!(record::verify(head, &buf[RECORD_HEADER_BYTES..4096]));
        let h = record::RecordHeader::parse(head);
        assert!(h.is_padding());
        assert_eq!((h.lsn, h.segment_id, h.sync_hint()), (41, 3, 40));
        assert_eq!(u64::from(h.payload_len), 4096 - RECORD_HEADER_BYTES as u64);
    }

    #[test]
    fn verify_reads_back_a_sealed_flush_and_catches_each_defect() {
        let seg = 64 * 1024;
        let kind = crate::format::RecordType::Put.to_raw().unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let mut f = FlushLayout::new(4096, 5, 4096, seg);
        for (i, len) in [100usize, 0, 700].into_iter().enumerate() {
            let h = EncodeHeader { lsn: 10 + i as u64, segment_id: 5, kind, sync_lag: 1 };
            f.push(&mut buf, h, &vec![i as u8; len]);
        }
        let len = f.finish(&mut buf, 13, 1);
        let flush = &buf[..len];
        assert_eq!(verify(flush, 10, 5, 4096, 4096), Ok(3));
        assert!(verify(flush, 11, 5, 4096, 4096).unwrap_err().contains("expected 11"));
        assert!(verify(flush, 10, 6, 4096, 4096).is_err());
        assert!(verify(&flush[..len - 8], 10, 5, 4096, 4096).is_err(), "padding cut short");
        let mut flipped = flush.to_vec();
        flipped[RECORD_HEADER_BYTES + 50] ^= 1;
        assert!(verify(&flipped, 10, 5, 4096, 4096).unwrap_err().contains("checksum"));
        // A marker: padding only, carrying the next LSN.
        let mut m = FlushLayout::new(8192, 5, 4096, seg);
        let len = m.finish_marker(&mut buf, 13, 12);
        assert_eq!(verify(&buf[..len], 13, 5, 4096, 4096), Ok(0));
    }
}
