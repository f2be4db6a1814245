//! Records: a 32-byte header, the payload, zero bytes up to a multiple of 8.
//!
//! ```text
//! offset size field
//!  0     4    crc         CRC32C of payload, then of header bytes 4..32
//!  4     4    payload_len bytes of payload (padding: bytes of zeros)
//!  8     8    lsn         sequence number (padding: the next record's LSN)
//! 16     8    segment_id  id of the segment life this record was written in
//! 24     2    kind        record type code (0xFFFF: padding)
//! 26     2    flags       0; anything else is invalid
//! 28     4    sync_lag    lsn minus the synced LSN when this was encoded;
//!                         u32::MAX: unknown
//! ```
//!
//! The checksum covers the payload first so a producer could checksum its
//! payload before the I/O thread knows the LSN and segment; the header is then
//! folded in with `crc32c_append`. `segment_id` is under the checksum, so a
//! record left in a recycled file from an earlier life of that file never
//! validates as one of the current life.

use super::bytes::{le_u16, le_u32, le_u64};
use super::kind::KIND_PADDING;
use super::{RECORD_ALIGN_BYTES, RecordType, align_up};

/// Bytes in a record header.
pub const RECORD_HEADER_BYTES: usize = 32;

/// `sync_lag` value meaning "the writer knew of no synced LSN".
pub const SYNC_LAG_UNKNOWN: u32 = u32::MAX;

/// A record header as stored on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Stored checksum.
    pub crc: u32,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// Sequence number.
    pub lsn: u64,
    /// Segment life the record belongs to.
    pub segment_id: u64,
    /// On-disk type code.
    pub kind: u16,
    /// Reserved flags; must be zero.
    pub flags: u16,
    /// Distance from `lsn` back to the LSN known synced when it was encoded.
    pub sync_lag: u32,
}

impl RecordHeader {
    /// Reads the fields of a header; validates nothing.
    #[must_use]
    pub fn parse(bytes: &[u8; RECORD_HEADER_BYTES]) -> RecordHeader {
        RecordHeader {
            crc: le_u32(bytes, 0),
            payload_len: le_u32(bytes, 4),
            lsn: le_u64(bytes, 8),
            segment_id: le_u64(bytes, 16),
            kind: le_u16(bytes, 24),
            flags: le_u16(bytes, 26),
            sync_lag: le_u32(bytes, 28),
        }
    }

    /// Whether this is a padding record.
    #[must_use]
    pub fn is_padding(&self) -> bool {
        self.kind == KIND_PADDING
    }

    /// Bytes the whole record occupies, payload alignment included.
    #[must_use]
    pub fn encoded_len(&self) -> u64 {
        encoded_len(self.payload_len)
    }

    /// Highest LSN that was known synced when this record was encoded (0: none).
    ///
    /// Recovery uses it as evidence: a record encoded after LSN `n` was synced
    /// proves `n` was durable, so losing `n` is corruption, not a torn tail.
    #[must_use]
    pub fn sync_hint(&self) -> u64 {
        if self.sync_lag == SYNC_LAG_UNKNOWN { 0 } else { self.lsn.saturating_sub(u64::from(self.sync_lag)) }
    }

    /// Checks everything but the checksum that a valid header must satisfy.
    pub fn check_fields(&self, payload_len_max: u32, block_bytes: u32) -> Result<(), RecordDefect> {
        if self.flags != 0 {
            return Err(RecordDefect::Flags);
        }
        if self.is_padding() {
            // Padding never spans more than two blocks plus a header.
            if u64::from(self.payload_len) > 2 * u64::from(block_bytes) {
                return Err(RecordDefect::Length);
            }
            if self.payload_len as u64 % RECORD_ALIGN_BYTES != 0 {
                return Err(RecordDefect::Length);
            }
        } else {
            if self.payload_len > payload_len_max {
                return Err(RecordDefect::Length);
            }
            if RecordType::from_raw(self.kind).is_none() {
                return Err(RecordDefect::Kind);
            }
        }
        if self.lsn == 0 || self.lsn > super::LSN_MAX || self.segment_id > super::LSN_MAX {
            return Err(RecordDefect::Lsn);
        }
        Ok(())
    }
}

/// Why bytes that look like a record header are not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordDefect {
    /// Length above the maximum.
    Length,
    /// Reserved flags set.
    Flags,
    /// Reserved or unknown type code.
    Kind,
    /// LSN zero.
    Lsn,
    /// Checksum mismatch.
    Checksum,
}

/// Bytes a record with `payload_len` bytes of payload occupies.
#[must_use]
pub fn encoded_len(payload_len: u32) -> u64 {
    RECORD_HEADER_BYTES as u64 + align_up(u64::from(payload_len), RECORD_ALIGN_BYTES)
}

/// The checksum of a record: CRC32C over the payload, then header bytes 4..32.
#[must_use]
pub fn checksum(header: &[u8; RECORD_HEADER_BYTES], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(payload), &header[4..])
}

/// Whether the stored checksum matches header and payload.
///
/// A padding record's payload must be zeros, as the writer lays it out; its
/// checksum is then checked from the CRC of that many zeros, looked up
/// rather than computed. Padding is most of the bytes of a log of small
/// records each synced alone, and checking a padding record this way costs
/// 1.7-3.3x less CPU than a CRC over it (`cargo bench --bench encode --
/// 'check padding'`); a scan that waits on the device gains no time by it.
#[must_use]
pub fn verify(header: &[u8; RECORD_HEADER_BYTES], payload: &[u8]) -> bool {
    let stored = le_u32(header, 0);
    if le_u16(header, 24) == KIND_PADDING {
        if !is_zero(payload) {
            return false;
        }
        // A length no valid padding has (the walker rejects those first)
        // is checked the long way.
        let zeros_crc = zeros_crc(payload.len()).unwrap_or_else(|| crc32c::crc32c(payload));
        return stored == crc32c::crc32c_append(zeros_crc, &header[4..]);
    }
    stored == checksum(header, payload)
}

/// Longest padding payload a valid segment holds (two of its largest blocks).
const PADDING_PAYLOAD_BYTES_MAX: usize = 2 * super::BLOCK_BYTES_MAX as usize;

/// CRC32C of `len` zero bytes, for the lengths a padding payload can have
/// (multiples of 8 up to [`PADDING_PAYLOAD_BYTES_MAX`]); `None` for others.
fn zeros_crc(len: usize) -> Option<u32> {
    static TABLE: std::sync::OnceLock<Box<[u32]>> = std::sync::OnceLock::new();
    if len % RECORD_ALIGN_BYTES as usize != 0 || len > PADDING_PAYLOAD_BYTES_MAX {
        return None;
    }
    let table = TABLE.get_or_init(|| {
        // 16,385 entries, 64 KiB, built once in well under a millisecond.
        let step = [0u8; RECORD_ALIGN_BYTES as usize];
        let mut crc = crc32c::crc32c(&[]);
        let mut table = Vec::with_capacity(PADDING_PAYLOAD_BYTES_MAX / step.len() + 1);
        table.push(crc);
        for _ in 0..PADDING_PAYLOAD_BYTES_MAX / step.len() {
            crc = crc32c::crc32c_append(crc, &step);
            table.push(crc);
        }
        table.into_boxed_slice()
    });
    table.get(len / RECORD_ALIGN_BYTES as usize).copied()
}

/// Whether every byte is zero. The OR over each 64-byte block, with no
/// early exit inside it, is what the compiler turns into vector
/// instructions: 25-60 GB/s here against ~10 for CRC32C.
fn is_zero(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        if block.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| b == 0)
}

/// `sync_lag` to store for a record `lsn` when `synced_lsn` is known synced.
#[must_use]
pub fn sync_lag(lsn: u64, synced_lsn: u64) -> u32 {
    debug_assert!(synced_lsn < lsn, "a record is never encoded after it was synced");
    match lsn.checked_sub(synced_lsn) {
        Some(lag) if lag < u64::from(SYNC_LAG_UNKNOWN) => lag as u32,
        _ => SYNC_LAG_UNKNOWN,
    }
}

/// What [`encode`] writes besides the payload.
#[derive(Clone, Copy, Debug)]
pub struct EncodeHeader {
    /// Sequence number.
    pub lsn: u64,
    /// Segment life.
    pub segment_id: u64,
    /// On-disk type code.
    pub kind: u16,
    /// From [`sync_lag`].
    pub sync_lag: u32,
}

/// Writes a record into the front of `out` and returns the bytes used.
///
/// # Panics
/// If `out` is shorter than [`encoded_len`] of the payload: the caller sizes
/// its buffer from the same limits, so a short buffer is a bug, not bad input.
pub fn encode(out: &mut [u8], header: EncodeHeader, payload: &[u8]) -> usize {
    encode_with_payload_crc(out, header, payload, crc32c::crc32c(payload))
}

/// [`encode`] with the payload's CRC32C already computed (by the producer
/// thread, so the I/O thread only copies). The stored checksum is the same.
///
/// # Panics
/// As [`encode`]. A `payload_crc` that is not the payload's CRC32C writes a
/// record every reader rejects; debug builds assert it.
pub fn encode_with_payload_crc(out: &mut [u8], header: EncodeHeader, payload: &[u8], payload_crc: u32) -> usize {
    debug_assert_eq!(payload_crc, crc32c::crc32c(payload), "payload CRC computed over other bytes");
    #[expect(clippy::expect_used, reason = "documented panic: callers check payloads against record_bytes_max (a u32)")]
    let payload_len = u32::try_from(payload.len()).expect("payload length checked by caller");
    let total = encoded_len(payload_len) as usize;
    assert!(out.len() >= total, "record buffer too small");
    let (head, rest) = out[..total].split_at_mut(RECORD_HEADER_BYTES);
    rest[..payload.len()].copy_from_slice(payload);
    rest[payload.len()..].fill(0);
    #[expect(clippy::expect_used, reason = "split_at_mut(RECORD_HEADER_BYTES) made it that long")]
    let head: &mut [u8; RECORD_HEADER_BYTES] = head.try_into().expect("32 bytes");
    write_header(head, payload_len, header);
    let crc = crc32c::crc32c_append(payload_crc, &head[4..]);
    head[0..4].copy_from_slice(&crc.to_le_bytes());
    total
}

/// Writes a padding record of `total` bytes (a multiple of 8, at least a
/// header) into the front of `out`. `next_lsn` is the LSN the next record
/// will carry.
///
/// # Panics
/// If `total` is not a valid padding size or `out` is shorter.
pub fn encode_padding(out: &mut [u8], total: usize, next_lsn: u64, segment_id: u64, sync_lag: u32) {
    assert!(total >= RECORD_HEADER_BYTES && total as u64 % RECORD_ALIGN_BYTES == 0);
    let (head, rest) = out[..total].split_at_mut(RECORD_HEADER_BYTES);
    rest.fill(0);
    #[expect(clippy::expect_used, reason = "split_at_mut(RECORD_HEADER_BYTES) made it that long")]
    let head: &mut [u8; RECORD_HEADER_BYTES] = head.try_into().expect("32 bytes");
    let header = EncodeHeader { lsn: next_lsn, segment_id, kind: KIND_PADDING, sync_lag };
    write_header(head, (total - RECORD_HEADER_BYTES) as u32, header);
    let crc = checksum(head, rest);
    head[0..4].copy_from_slice(&crc.to_le_bytes());
}

fn write_header(head: &mut [u8; RECORD_HEADER_BYTES], payload_len: u32, h: EncodeHeader) {
    head[0..4].fill(0);
    head[4..8].copy_from_slice(&payload_len.to_le_bytes());
    head[8..16].copy_from_slice(&h.lsn.to_le_bytes());
    head[16..24].copy_from_slice(&h.segment_id.to_le_bytes());
    head[24..26].copy_from_slice(&h.kind.to_le_bytes());
    head[26..28].fill(0);
    head[28..32].copy_from_slice(&h.sync_lag.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(buf: &[u8]) -> [u8; RECORD_HEADER_BYTES] {
        buf[..RECORD_HEADER_BYTES].try_into().unwrap()
    }

    #[test]
    fn checksum_is_crc32c_castagnoli() {
        // The check value docs/FORMAT.md quotes.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn encode_then_parse_round_trips() {
        for len in [0usize, 1, 7, 8, 9, 255, 256, 4096] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut buf = vec![0xAAu8; 8192];
            let h = EncodeHeader { lsn: 42, segment_id: 7, kind: 1, sync_lag: sync_lag(42, 40) };
            let n = encode(&mut buf, h, &payload);
            assert_eq!(n as u64, encoded_len(len as u32));
            assert_eq!(n % 8, 0);
            let head = header_of(&buf);
            let parsed = RecordHeader::parse(&head);
            assert_eq!(parsed.payload_len as usize, len);
            assert_eq!((parsed.lsn, parsed.segment_id, parsed.kind), (42, 7, 1));
            assert_eq!(parsed.sync_hint(), 40);
            assert!(verify(&head, &buf[32..32 + len]));
            assert!(buf[32 + len..n].iter().all(|&b| b == 0), "alignment bytes are zero");
            assert_eq!(parsed.check_fields(1 << 20, 4096), Ok(()));
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let payload = b"the quick brown fox";
        let mut buf = vec![0u8; 64];
        let h = EncodeHeader { lsn: 9, segment_id: 3, kind: 2, sync_lag: 1 };
        let n = encode(&mut buf, h, payload);
        let covered = RECORD_HEADER_BYTES + payload.len();
        for bit in 0..covered * 8 {
            let mut copy = buf[..n].to_vec();
            copy[bit / 8] ^= 1 << (bit % 8);
            let head = header_of(&copy);
            let len = RecordHeader::parse(&head).payload_len as usize;
            let ok = len == payload.len() && verify(&head, &copy[32..32 + len]);
            assert!(!ok, "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn segment_id_is_under_the_checksum() {
        let mut buf = vec![0u8; 64];
        let h = EncodeHeader { lsn: 1, segment_id: 5, kind: 1, sync_lag: 0 };
        encode(&mut buf, h, b"x");
        buf[16..24].copy_from_slice(&6u64.to_le_bytes());
        assert!(!verify(&header_of(&buf), &buf[32..33]));
    }

    #[test]
    fn padding_validates_and_is_bounded() {
        let mut buf = vec![0xFFu8; 8192];
        encode_padding(&mut buf, 4000, 17, 2, 3);
        let head = header_of(&buf);
        let parsed = RecordHeader::parse(&head);
        assert!(parsed.is_padding());
        assert_eq!(parsed.encoded_len(), 4000);
        assert!(verify(&head, &buf[32..4000]));
        assert_eq!(parsed.check_fields(0, 4096), Ok(()));
        assert_eq!(parsed.check_fields(0, 512), Err(RecordDefect::Length));
    }

    #[test]
    fn the_crc_of_zeros_is_looked_up_right_for_every_padding_length() {
        let zeros = vec![0u8; PADDING_PAYLOAD_BYTES_MAX];
        for len in (0..=PADDING_PAYLOAD_BYTES_MAX).step_by(8) {
            // All of them is 1 GiB of CRC: every length up to 16 KiB and
            // then every 1,000th, the last included.
            if len > 16 << 10 && len % 8000 != 0 && len != PADDING_PAYLOAD_BYTES_MAX {
                continue;
            }
            assert_eq!(zeros_crc(len), Some(crc32c::crc32c(&zeros[..len])), "{len} zero bytes");
        }
        for len in [1, 7, 12, PADDING_PAYLOAD_BYTES_MAX + 8] {
            assert_eq!(zeros_crc(len), None, "no padding payload is {len} bytes long");
        }
    }

    #[test]
    fn padding_of_every_length_validates_and_a_nonzero_payload_byte_does_not() {
        let mut buf = vec![0xFFu8; PADDING_PAYLOAD_BYTES_MAX + RECORD_HEADER_BYTES];
        for total in (RECORD_HEADER_BYTES..=buf.len()).step_by(8).filter(|t| *t < 600 || t % 4096 == 32) {
            encode_padding(&mut buf, total, 17, 2, 3);
            let head = header_of(&buf);
            assert!(verify(&head, &buf[32..total]), "padding of {total} bytes");
            for at in [32, 32 + (total - 32) / 2, total - 1].into_iter().filter(|at| (32..total).contains(at)) {
                // A byte flipped on the device: the checksum is of zeros.
                let mut bad = buf[..total].to_vec();
                bad[at] = 1;
                assert!(!verify(&header_of(&bad), &bad[32..]), "padding of {total} bytes with byte {at} flipped");
                // A nonzero byte whose checksum matches, as a writer of
                // nonzero padding would store it: still not padding.
                let crc = checksum(&header_of(&bad), &bad[32..]);
                bad[..4].copy_from_slice(&crc.to_le_bytes());
                assert!(!verify(&header_of(&bad), &bad[32..]), "padding of {total} bytes with byte {at} set");
            }
        }
        // Lengths no valid padding has (not a multiple of 8, above two of the
        // largest blocks) are still held to zeros.
        for len in [12usize, PADDING_PAYLOAD_BYTES_MAX + 8] {
            let mut bad = vec![0u8; encoded_len(len as u32) as usize];
            let h = EncodeHeader { lsn: 5, segment_id: 2, kind: KIND_PADDING, sync_lag: 0 };
            let n = encode(&mut bad, h, &vec![0u8; len]);
            assert!(verify(&header_of(&bad), &bad[32..32 + len]), "{len} zero bytes");
            bad[40] = 1;
            let crc = checksum(&header_of(&bad), &bad[32..32 + len]);
            bad[..4].copy_from_slice(&crc.to_le_bytes());
            assert!(!verify(&header_of(&bad), &bad[32..32 + len]), "{len} bytes, one set, CRC matching");
            assert!(n >= RECORD_HEADER_BYTES + len);
        }
        // A record of any other kind with the same bytes is checked by CRC alone.
        let mut buf = vec![0u8; 4096];
        buf[40] = 1;
        let n = encode(&mut buf, EncodeHeader { lsn: 1, segment_id: 2, kind: 1, sync_lag: 0 }, &[0, 0, 0, 0, 1]);
        assert!(verify(&header_of(&buf), &buf[32..37]) && n == 40);
    }

    #[test]
    fn is_zero_sees_a_set_bit_anywhere() {
        for len in 0..300 {
            let mut bytes = vec![0u8; len];
            assert!(is_zero(&bytes));
            for at in 0..len {
                bytes[at] = 0x80;
                assert!(!is_zero(&bytes), "byte {at} of {len}");
                bytes[at] = 0;
            }
        }
    }

    #[test]
    fn hostile_fields_are_rejected_before_any_allocation() {
        let mut head = [0u8; 32];
        head[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        head[8..16].copy_from_slice(&1u64.to_le_bytes());
        head[24..26].copy_from_slice(&1u16.to_le_bytes());
        let parsed = RecordHeader::parse(&head);
        assert_eq!(parsed.check_fields(1 << 20, 4096), Err(RecordDefect::Length));
        head[4..8].fill(0);
        head[26] = 1;
        assert_eq!(RecordHeader::parse(&head).check_fields(1 << 20, 4096), Err(RecordDefect::Flags));
        head[26] = 0;
        head[24..26].copy_from_slice(&9u16.to_le_bytes());
        assert_eq!(RecordHeader::parse(&head).check_fields(1 << 20, 4096), Err(RecordDefect::Kind));
    }

    #[test]
    fn sync_lag_saturates_to_unknown() {
        assert_eq!(sync_lag(10, 0), 10);
        assert_eq!(sync_lag(u64::from(u32::MAX) + 5, 0), SYNC_LAG_UNKNOWN);
        let h = RecordHeader {
            crc: 0,
            payload_len: 0,
            lsn: 1 << 40,
            segment_id: 1,
            kind: 1,
            flags: 0,
            sync_lag: SYNC_LAG_UNKNOWN,
        };
        assert_eq!(h.sync_hint(), 0, "unknown never claims anything was synced");
    }
}
