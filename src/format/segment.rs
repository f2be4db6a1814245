//! The segment header: the first 64 bytes of every segment file.
//!
//! ```text
//! offset size field
//!  0     8    magic          b"URINGWAL"
//!  8     4    version        1 or 2 (FORMAT_VERSION is written)
//! 12     4    header_bytes   64
//! 16     8    segment_id     id of this life of the file; equals the file name
//! 24     8    first_lsn      LSN of the first record in this segment
//! 32     8    segment_bytes  file size
//! 40     8    prev_data_end  where the previous segment's data ends (0: none)
//! 48     4    block_bytes    padding unit of this segment
//! 52     4    flags          0
//! 56     4    record_bytes_max  largest payload the writer accepted here
//! 60     4    crc            CRC32C of bytes 0..60
//! ```
//!
//! The header is written and synced before any record of the segment, so a
//! file whose header is zero or belongs to an older life holds no record of
//! its current life. `prev_data_end` certifies where the previous segment's
//! data ends: anything of that segment beyond it is dead.

use super::bytes::{le_u32, le_u64};
use super::{FORMAT_VERSION, FORMAT_VERSION_MIN, data_offset, is_valid_block};

/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Magic at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"URINGWAL";

/// A decoded, valid segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version the segment was written in: 1 (no block is ever
    /// written twice) or 2 (a partly filled last block of a flush may be
    /// rewritten, alternately in two slots; see [`super::walk`]).
    pub version: u32,
    /// Id of this life of the file.
    pub segment_id: u64,
    /// LSN of the first record in this segment.
    pub first_lsn: u64,
    /// Size of the file.
    pub segment_bytes: u64,
    /// Where the previous segment's data ends; 0 for the first segment.
    pub prev_data_end: u64,
    /// Padding unit.
    pub block_bytes: u32,
    /// Largest payload the writer accepted in this segment; readers accept
    /// no longer length field in it, whatever their own options say.
    pub record_bytes_max: u32,
}

/// What the first bytes of a segment file hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderState {
    /// A valid header.
    Valid(SegmentHeader),
    /// All zero: a file prepared but never activated.
    Zero,
    /// A well-formed header of another format version.
    UnsupportedVersion(u32),
    /// Anything else.
    Invalid(HeaderDefect),
}

/// Why a header is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderDefect {
    /// Too few bytes.
    Short,
    /// Wrong magic.
    Magic,
    /// Checksum mismatch.
    Checksum,
    /// A field out of range.
    Field(&'static str),
}

impl SegmentHeader {
    /// Encodes the header into its 64 bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.segment_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_lsn.to_le_bytes());
        b[32..40].copy_from_slice(&self.segment_bytes.to_le_bytes());
        b[40..48].copy_from_slice(&self.prev_data_end.to_le_bytes());
        b[48..52].copy_from_slice(&self.block_bytes.to_le_bytes());
        b[56..60].copy_from_slice(&self.record_bytes_max.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the first bytes of a file.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> HeaderState {
        let Some(b) = bytes.get(..SEGMENT_HEADER_BYTES) else {
            return HeaderState::Invalid(HeaderDefect::Short);
        };
        if b.iter().all(|&x| x == 0) {
            return HeaderState::Zero;
        }
        if b[0..8] != SEGMENT_MAGIC {
            return HeaderState::Invalid(HeaderDefect::Magic);
        }
        let u32_at = |o: usize| le_u32(b, o);
        let u64_at = |o: usize| le_u64(b, o);
        if crc32c::crc32c(&b[0..60]) != u32_at(60) {
            return HeaderState::Invalid(HeaderDefect::Checksum);
        }
        let version = u32_at(8);
        if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&version) {
            return HeaderState::UnsupportedVersion(version);
        }
        let header = SegmentHeader {
            version,
            segment_id: u64_at(16),
            first_lsn: u64_at(24),
            segment_bytes: u64_at(32),
            prev_data_end: u64_at(40),
            block_bytes: u32_at(48),
            record_bytes_max: u32_at(56),
        };
        let defect = if u32_at(12) as usize != SEGMENT_HEADER_BYTES {
            Some("header_bytes")
        } else if u32_at(52) != 0 {
            Some("flags")
        } else if header.segment_id == 0 || header.segment_id > super::LSN_MAX {
            Some("segment_id")
        } else if header.first_lsn == 0 || header.first_lsn > super::LSN_MAX {
            Some("first_lsn")
        } else if header.record_bytes_max > super::RECORD_PAYLOAD_BYTES_LIMIT {
            Some("record_bytes_max")
        } else if !is_valid_block(header.block_bytes) {
            Some("block_bytes")
        } else if header.segment_bytes % u64::from(header.block_bytes) != 0
            || header.segment_bytes <= data_offset(header.block_bytes)
        {
            Some("segment_bytes")
        } else if header.prev_data_end > header.segment_bytes.max(1 << 40) {
            Some("prev_data_end")
        } else {
            None
        };
        match defect {
            Some(field) => HeaderState::Invalid(HeaderDefect::Field(field)),
            None => HeaderState::Valid(header),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentHeader {
        SegmentHeader {
            version: FORMAT_VERSION,
            segment_id: 3,
            first_lsn: 1000,
            segment_bytes: 1 << 20,
            prev_data_end: 65536,
            block_bytes: 4096,
            record_bytes_max: 1 << 20,
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        assert_eq!(SegmentHeader::decode(&h.encode()), HeaderState::Valid(h));
        let mut block = vec![0u8; 4096];
        block[..64].copy_from_slice(&h.encode());
        assert_eq!(SegmentHeader::decode(&block), HeaderState::Valid(h));
    }

    #[test]
    fn zero_and_short() {
        assert_eq!(SegmentHeader::decode(&[0u8; 4096]), HeaderState::Zero);
        assert_eq!(SegmentHeader::decode(&[0u8; 10]), HeaderState::Invalid(HeaderDefect::Short));
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let bytes = sample().encode();
        for bit in 0..SEGMENT_HEADER_BYTES * 8 {
            let mut copy = bytes;
            copy[bit / 8] ^= 1 << (bit % 8);
            assert!(!matches!(SegmentHeader::decode(&copy), HeaderState::Valid(_)), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn both_versions_are_read_and_others_are_reported_as_such() {
        for version in [1, 2] {
            let h = SegmentHeader { version, ..sample() };
            assert_eq!(SegmentHeader::decode(&h.encode()), HeaderState::Valid(h));
        }
        for version in [0, 3, u32::MAX] {
            let bytes = SegmentHeader { version, ..sample() }.encode();
            assert_eq!(SegmentHeader::decode(&bytes), HeaderState::UnsupportedVersion(version));
        }
    }

    #[test]
    fn out_of_range_fields_are_invalid_even_with_a_good_checksum() {
        let mut h = sample();
        h.block_bytes = 3000;
        assert!(matches!(SegmentHeader::decode(&h.encode()), HeaderState::Invalid(HeaderDefect::Field(_))));
        let mut h = sample();
        h.segment_bytes = 4096;
        assert!(matches!(SegmentHeader::decode(&h.encode()), HeaderState::Invalid(HeaderDefect::Field(_))));
        let mut h = sample();
        h.first_lsn = 0;
        assert!(matches!(SegmentHeader::decode(&h.encode()), HeaderState::Invalid(HeaderDefect::Field(_))));
    }
}
