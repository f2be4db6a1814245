//! Laying out one flush: records back to back, then padding to a block edge.
//!
//! Every flush starts at a block boundary and ends at one, so a later flush
//! never writes into a block that holds records of an earlier one (a torn
//! rewrite of such a block could destroy records already acknowledged).

use super::record::{self, EncodeHeader, RECORD_HEADER_BYTES};
use super::{data_offset, padded_end};

/// Whether a record fits into the flush being laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// It fits.
    Yes,
    /// The flush buffer is too full; seal it and start another.
    BufferFull,
    /// The segment is too full; seal the flush and roll to the next segment.
    SegmentFull,
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
        FlushLayout { file_offset, len: 0, segment_id, block_bytes, segment_bytes }
    }

    /// Whether a record of `payload_len` bytes fits, given a buffer of
    /// `buffer_bytes` that must also hold the closing padding.
    #[must_use]
    pub fn fits(&self, payload_len: u32, buffer_bytes: usize) -> Fit {
        let end = self.file_offset + self.len as u64 + record::encoded_len(payload_len);
        if end > self.segment_bytes {
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
        let n = record::encode_with_payload_crc(&mut buf[self.len..], header, payload, payload_crc);
        self.len += n;
        assert!(self.file_offset + self.len as u64 <= self.segment_bytes);
    }

    /// Whether no record was laid out.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pads the flush to its block edge and returns its final length.
    /// `next_lsn` is the LSN the next record will carry.
    pub fn finish(&mut self, buf: &mut [u8], next_lsn: u64, sync_lag: u32) -> usize {
        if self.len == 0 {
            return 0;
        }
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
        assert!(self.is_empty(), "a marker is a flush of its own");
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
