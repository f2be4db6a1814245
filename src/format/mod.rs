//! The on-disk format: pure encoding and decoding, no system calls.
//!
//! Everything here works on byte slices so it can be tested exhaustively; the
//! byte-level specification is `docs/FORMAT.md`. A segment file is
//!
//! ```text
//! [ header block: SegmentHeader, zero-filled to data_offset(block) ]
//! [ flush ][ flush ] ... [ zeros or stale bytes of an earlier life ]
//! ```
//!
//! and every flush is a run of records followed by one padding record that
//! extends it to a block boundary, so no later write touches its blocks.

mod bytes;
pub mod flush;
mod kind;
pub mod record;
pub mod segment;
pub mod walk;

pub use kind::RecordType;
pub use record::{RECORD_HEADER_BYTES, RecordHeader};
pub use segment::{SEGMENT_HEADER_BYTES, SegmentHeader};

/// Version written into every segment header created by this writer.
pub const FORMAT_VERSION: u32 = 2;
/// Oldest version read. Version 1 never writes a block twice; version 2 may
/// rewrite a flush's partly filled last block into one of two slots (see
/// `docs/FORMAT.md`, "Tail blocks"). Readers refuse any other version.
pub const FORMAT_VERSION_MIN: u32 = 1;

/// Smallest block (padding unit) a segment may use: the smallest sector.
pub const BLOCK_BYTES_MIN: u32 = 512;
/// Largest block a segment may use.
pub const BLOCK_BYTES_MAX: u32 = 65536;

/// Size of the header region at the start of every segment before the data,
/// for blocks up to 4 KiB; larger blocks use one whole block.
pub const HEADER_REGION_BYTES_MIN: u64 = 4096;

/// Records start at multiples of this many bytes.
pub const RECORD_ALIGN_BYTES: u64 = 8;

/// Largest LSN and segment id the format accepts. Far beyond any real log
/// (2^62), it keeps `lsn + 1` and `id + 1` from overflowing on hostile input.
pub const LSN_MAX: u64 = 1 << 62;

/// A log sequence number. The first record of a log gets 1; 0 means "none".
/// (Defined with the format, the bottom layer, so that readers and the
/// public handle both import it from below.)
pub type Lsn = u64;

/// Hard ceiling on a record's payload, whatever the options say: 64 MiB.
/// A length field above the configured maximum is never trusted.
pub const RECORD_PAYLOAD_BYTES_LIMIT: u32 = 64 << 20;

// The format's constants, checked where the compiler sees them: a change
// that breaks one of these relations does not build.
const _: () = {
    assert!(BLOCK_BYTES_MIN.is_power_of_two() && BLOCK_BYTES_MAX.is_power_of_two());
    assert!(BLOCK_BYTES_MIN <= BLOCK_BYTES_MAX);
    // A header block holds the segment header; records start block-aligned.
    assert!(SEGMENT_HEADER_BYTES as u64 <= HEADER_REGION_BYTES_MIN);
    assert!(HEADER_REGION_BYTES_MIN.is_power_of_two() && HEADER_REGION_BYTES_MIN >= BLOCK_BYTES_MIN as u64);
    // Every record, padding included, starts aligned and fits a header in
    // the smallest block.
    assert!(RECORD_ALIGN_BYTES.is_power_of_two());
    assert!(RECORD_HEADER_BYTES as u64 % RECORD_ALIGN_BYTES == 0);
    assert!(BLOCK_BYTES_MIN as u64 % RECORD_ALIGN_BYTES == 0);
    assert!(RECORD_HEADER_BYTES <= BLOCK_BYTES_MIN as usize);
    // The largest record's encoded length fits the u32 length arithmetic,
    // and LSN and segment id arithmetic (`+ 1`) cannot overflow.
    assert!((RECORD_PAYLOAD_BYTES_LIMIT as u64) < u32::MAX as u64 - RECORD_HEADER_BYTES as u64 - RECORD_ALIGN_BYTES);
    assert!(LSN_MAX < u64::MAX / 2);
};

/// Offset of the first record in a segment that uses `block_bytes` blocks.
#[must_use]
pub fn data_offset(block_bytes: u32) -> u64 {
    HEADER_REGION_BYTES_MIN.max(u64::from(block_bytes))
}

/// Whether `block_bytes` is a block size segments may use.
#[must_use]
pub fn is_valid_block(block_bytes: u32) -> bool {
    block_bytes.is_power_of_two() && (BLOCK_BYTES_MIN..=BLOCK_BYTES_MAX).contains(&block_bytes)
}

/// Rounds `value` up to a multiple of `align` (a power of two).
#[must_use]
pub const fn align_up(value: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    (value + align - 1) & !(align - 1)
}

/// Rounds `value` down to a multiple of `align` (a power of two).
#[must_use]
pub const fn align_down(value: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    value & !(align - 1)
}

/// Where a flush whose records end at `records_end` must end once padded.
///
/// The padding record needs at least a header's worth of room; when less than
/// that is left before the next block boundary the padding runs on to the
/// boundary after it. At the very end of a segment, where no padding record
/// fits, the remaining bytes are zero and readers stop there because fewer than
/// [`RECORD_HEADER_BYTES`] remain.
#[must_use]
pub fn padded_end(records_end: u64, block_bytes: u32, segment_bytes: u64) -> u64 {
    let block = u64::from(block_bytes);
    let boundary = align_up(records_end, block);
    if boundary == records_end || boundary - records_end >= RECORD_HEADER_BYTES as u64 {
        boundary
    } else if boundary >= segment_bytes {
        segment_bytes
    } else {
        boundary + block
    }
}

/// Whether a segment's data may legitimately end at `offset`: at a block
/// boundary, or within the last few bytes where no record header fits.
#[must_use]
pub fn is_clean_end(offset: u64, block_bytes: u32, segment_bytes: u64) -> bool {
    offset % u64::from(block_bytes) == 0 || segment_bytes.saturating_sub(offset) < RECORD_HEADER_BYTES as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_end_leaves_room_for_a_padding_header() {
        let seg = 1 << 20;
        assert_eq!(padded_end(4096, 4096, seg), 4096);
        assert_eq!(padded_end(4096 + 8, 4096, seg), 8192);
        // 24 bytes short of a boundary: a padding header does not fit, so the
        // flush runs to the boundary after it.
        assert_eq!(padded_end(8192 - 24, 4096, seg), 12288);
        assert_eq!(padded_end(8192 - 32, 4096, seg), 8192);
        // At the segment end the tail stays zero.
        assert_eq!(padded_end(seg - 8, 4096, seg), seg);
    }

    #[test]
    fn padded_end_is_always_aligned_and_never_shrinks() {
        for block in [512u32, 4096, 65536] {
            let seg = 16 * u64::from(block);
            for end in (data_offset(block)..seg).step_by(8) {
                let p = padded_end(end, block, seg);
                assert!(p >= end && p <= seg);
                assert_eq!(p % u64::from(block), 0);
                assert!(p == end || p == seg || p - end >= RECORD_HEADER_BYTES as u64);
            }
        }
    }

    #[test]
    fn clean_ends() {
        assert!(is_clean_end(8192, 4096, 1 << 20));
        assert!(!is_clean_end(8200, 4096, 1 << 20));
        assert!(is_clean_end((1 << 20) - 8, 4096, 1 << 20));
    }

    #[test]
    fn block_validation() {
        assert!(is_valid_block(512) && is_valid_block(4096) && is_valid_block(65536));
        assert!(!is_valid_block(256) && !is_valid_block(3000) && !is_valid_block(1 << 17));
        assert_eq!(data_offset(512), 4096);
        assert_eq!(data_offset(16384), 16384);
    }
}
