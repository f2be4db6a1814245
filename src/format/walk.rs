//! Walking a segment's records in LSN order, and telling what lies beyond.
//!
//! The walker reads through a [`SegmentSource`] (a file, or bytes in memory)
//! and classifies every position it meets:
//!
//! - a valid record of this segment's life with the expected LSN: yielded;
//! - padding with the expected LSN: skipped;
//! - anything else (zeros, bytes of an earlier life, garbage): the walker
//!   looks ahead for the next valid record of this life. If that record has
//!   the expected LSN, the bytes in between held no record (damaged padding):
//!   [`Step::Skipped`]. If it has another LSN, records are missing:
//!   [`Step::Break`]. If there is none, this is where the data ends:
//!   [`Step::End`].
//!
//! In a segment of format version 2 ([`Limits::rewrites`]) the last block of
//! a flush may have been rewritten, each time into the other of two slots
//! (the block and the one after it), with the records it held at the same
//! offsets and new ones after them. So there, too:
//!
//! - a valid record (or padding) of this life with a *lower* LSN is part of
//!   an older copy of such a block: its records were read already, and the
//!   walker steps over it (looking ahead too);
//! - where this copy has padding (its records end) or damage, the other
//!   slot (one block on or back, at the same offset) may hold the expected
//!   record: a newer copy, or the intact one a torn rewrite left behind. The
//!   walker reads on there;
//! - where this copy is damaged and the other one's records end at the same
//!   offset, the block ends there, unless a valid record with a later LSN
//!   follows in this copy ([`Step::Break`]: recovery weighs the evidence).
//!
//! Deciding whether a break is a torn tail or corruption needs the rest of the
//! directory and is recovery's job; [`strongest_evidence`] supplies the proof.

use super::bytes::le_u64;
use std::io;

use super::record::{self, RECORD_HEADER_BYTES, RecordHeader};
use super::{RECORD_ALIGN_BYTES, align_down, align_up};

/// Random access to the bytes of one segment file.
pub trait SegmentSource {
    /// Exactly `len` bytes at `offset`. Callers keep `offset + len` within the
    /// segment and `len` at most [`SegmentSource::window_bytes`].
    fn read(&mut self, offset: u64, len: usize) -> io::Result<&[u8]>;

    /// Largest `len` a single [`SegmentSource::read`] serves.
    fn window_bytes(&self) -> usize;
}

/// A segment held in memory.
#[derive(Debug)]
pub struct SliceSource<'a> {
    bytes: &'a [u8],
}

impl<'a> SliceSource<'a> {
    /// Wraps the bytes of a whole segment file.
    #[must_use]
    pub fn new(bytes: &'a [u8]) -> Self {
        SliceSource { bytes }
    }
}

impl SegmentSource for SliceSource<'_> {
    fn read(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        usize::try_from(offset)
            .ok()
            .and_then(|start| self.bytes.get(start..start.checked_add(len)?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    fn window_bytes(&self) -> usize {
        usize::MAX
    }
}

/// The limits a segment is read under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest payload accepted; longer length fields are invalid.
    pub payload_len_max: u32,
    /// Padding unit of the segment.
    pub block_bytes: u32,
    /// Size of the segment file.
    pub segment_bytes: u64,
    /// Format version 2: a flush's partly filled last block may have been
    /// rewritten into the other of two slots (see the module comment).
    pub rewrites: bool,
}

/// What the walker found next.
#[derive(Debug)]
pub enum Step<'a> {
    /// A valid record with the expected LSN.
    Record {
        /// Where it starts.
        offset: u64,
        /// Its header.
        header: RecordHeader,
        /// Its payload.
        payload: &'a [u8],
    },
    /// Damaged bytes that held no record: the next valid record carries the
    /// expected LSN. The walker continues at `to`.
    Skipped {
        /// First damaged byte.
        from: u64,
        /// Next valid record.
        to: u64,
    },
    /// Records are missing: at `at` the expected record is absent, and a valid
    /// record of this life with another LSN lies at `found_offset`.
    Break {
        /// Where the expected record should be.
        at: u64,
        /// Where the next valid record of this life is.
        found_offset: u64,
        /// Its header.
        found: RecordHeader,
    },
    /// No valid record of this life at or after `at`.
    End {
        /// First byte after the data.
        at: u64,
    },
}

/// Yields the records of one segment life in LSN order.
#[derive(Clone, Debug)]
pub struct Walker {
    segment_id: u64,
    limits: Limits,
    pos: u64,
    expected: u64,
    /// The last two block boundaries at which a valid record of this life
    /// started, latest last: where [`Walker::rewind`] may go back to.
    block_starts: [Option<u64>; 2],
}

impl Walker {
    /// Walks from `offset`, expecting `expected_lsn` as the next record.
    #[must_use]
    pub fn new(segment_id: u64, offset: u64, expected_lsn: u64, limits: Limits) -> Walker {
        Walker { segment_id, limits, pos: offset, expected: expected_lsn, block_starts: [None; 2] }
    }

    /// For a reader whose walk ended before records it knows are durable
    /// (format version 2), to read again: moves back to the start of the
    /// block before the current one, if a record was seen starting there,
    /// else of the current one. A window read while the writer rewrote the
    /// segment's last block may hold that block half before and half after
    /// a rewrite, and the walk may have passed the slot the records are in;
    /// what is read again holds lower LSNs and is stepped over. Nothing
    /// happens in a segment of version 1, whose blocks are written once.
    pub fn rewind(&mut self) {
        if !self.limits.rewrites {
            return;
        }
        let floor =
            align_down(self.pos, u64::from(self.limits.block_bytes)).saturating_sub(self.limits.block_bytes.into());
        let back = self.block_starts.iter().flatten().copied().filter(|&s| s >= floor && s <= self.pos).min();
        if let Some(at) = back {
            self.pos = at;
        }
    }

    /// Notes that a valid record of this life starts at the position.
    fn note_start(&mut self) {
        if self.pos % u64::from(self.limits.block_bytes) == 0 {
            self.note_block(self.pos);
        }
    }

    /// Notes a block that starts with a valid record of this life.
    fn note_block(&mut self, start: u64) {
        if self.block_starts[1] != Some(start) {
            self.block_starts = [self.block_starts[1], Some(start)];
        }
    }

    /// Reads on from a copy of the block in its other slot, at `at`. The
    /// copy's block starts with a record (a tail block does).
    fn switch_to_copy(&mut self, at: u64) {
        self.note_block(align_down(at, u64::from(self.limits.block_bytes)));
        self.pos = at;
    }

    /// The offsets of the same place in the other slot of a rewritten block:
    /// one block on, and one block back (each block is the first slot of its
    /// own pair and may be the second of the one before).
    fn other_slots(&self) -> impl Iterator<Item = u64> + use<> {
        let block = u64::from(self.limits.block_bytes);
        let back = self.pos.checked_sub(block).filter(|&b| b >= super::data_offset(self.limits.block_bytes));
        let on = Some(self.pos + block);
        let rewrites = self.limits.rewrites;
        on.into_iter().chain(back).filter(move |_| rewrites)
    }

    /// A copy of the block in its other slot holding the expected record (not
    /// padding) at this offset. A record with the expected LSN is that record
    /// wherever it is found; both copies hold it at the same offset.
    fn copy_with_record<S: SegmentSource>(&self, src: &mut S) -> io::Result<Option<u64>> {
        for at in self.other_slots() {
            if probe(src, at, self.segment_id, &self.limits)?.is_some_and(|h| h.lsn == self.expected && !h.is_padding())
            {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// Whether this block is a copy of the one in the other slot (both start
    /// with the same record, as every copy of a tail block does) and that
    /// copy ends at this offset: padding with the expected LSN.
    fn copy_ends_here<S: SegmentSource>(&self, src: &mut S) -> io::Result<bool> {
        let block = u64::from(self.limits.block_bytes);
        let here = align_down(self.pos, block);
        let Some(first) = probe(src, here, self.segment_id, &self.limits)?.filter(|h| !h.is_padding()) else {
            return Ok(false);
        };
        for at in self.other_slots() {
            let ends = probe(src, at, self.segment_id, &self.limits)?
                .is_some_and(|h| h.lsn == self.expected && h.is_padding());
            let other = align_down(at, block);
            if ends
                && probe(src, other, self.segment_id, &self.limits)?
                    .is_some_and(|h| h.lsn == first.lsn && !h.is_padding())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A valid record or padding of this life with a later LSN than expected
    /// after the position, before `block_end`.
    fn later_in_block<S: SegmentSource>(&self, src: &mut S, block_end: u64) -> io::Result<Option<(u64, RecordHeader)>> {
        let mut at = self.pos + RECORD_ALIGN_BYTES;
        while at + RECORD_HEADER_BYTES as u64 <= block_end {
            if let Some(h) = probe(src, at, self.segment_id, &self.limits)?.filter(|h| h.lsn > self.expected) {
                return Ok(Some((at, h)));
            }
            at += RECORD_ALIGN_BYTES;
        }
        Ok(None)
    }

    /// The next valid record of this life after the position, stepping over
    /// older copies of rewritten blocks (format version 2).
    fn look_ahead<S: SegmentSource>(&self, src: &mut S) -> io::Result<Option<(u64, RecordHeader)>> {
        let mut from = self.pos + RECORD_ALIGN_BYTES;
        loop {
            match find_next(src, self.segment_id, from, &self.limits)? {
                Some((at, h)) if self.limits.rewrites && h.lsn < self.expected => from = at + h.encoded_len(),
                found => return Ok(found),
            }
        }
    }

    /// Current position.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// LSN the next record must carry.
    #[must_use]
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// The next step. After [`Step::Break`] or [`Step::End`] the walker does
    /// not move; calling again yields the same answer.
    pub fn next<'s, S: SegmentSource>(&mut self, src: &'s mut S) -> io::Result<Step<'s>> {
        loop {
            if self.limits.segment_bytes.saturating_sub(self.pos) < RECORD_HEADER_BYTES as u64 {
                // No record fits in the last few bytes: the writer filled them
                // with zeros and counts the segment as full, so its data ends
                // at the segment end (as the next header certifies).
                return Ok(Step::End { at: self.limits.segment_bytes });
            }
            match probe(src, self.pos, self.segment_id, &self.limits)? {
                Some(header) if header.lsn == self.expected => {
                    if header.is_padding() {
                        // This copy's records end here; a newer copy of the
                        // block, in its other slot, may hold more.
                        if let Some(at) = self.copy_with_record(src)? {
                            self.switch_to_copy(at);
                            continue;
                        }
                    }
                    self.note_start();
                    let offset = self.pos;
                    self.pos += header.encoded_len();
                    if header.is_padding() {
                        continue;
                    }
                    self.expected += 1;
                    let payload = src.read(offset + RECORD_HEADER_BYTES as u64, header.payload_len as usize)?;
                    return Ok(Step::Record { offset, header, payload });
                }
                Some(header) if self.limits.rewrites && header.lsn < self.expected => {
                    // An older copy of a rewritten block: read already.
                    self.note_start();
                    self.pos += header.encoded_len();
                }
                Some(found) => {
                    return Ok(Step::Break { at: self.pos, found_offset: self.pos, found });
                }
                None => {
                    if let Some(at) = self.copy_with_record(src)? {
                        self.switch_to_copy(at);
                        continue;
                    }
                    if self.copy_ends_here(src)? {
                        // A damaged copy (a torn rewrite) whose other copy's
                        // records end at this offset. A valid record with a
                        // later LSN further in this block means records are
                        // missing; else the block ends here for both.
                        let block = u64::from(self.limits.block_bytes);
                        let block_end = align_down(self.pos, block) + block;
                        if let Some((found_offset, found)) = self.later_in_block(src, block_end)? {
                            return Ok(Step::Break { at: self.pos, found_offset, found });
                        }
                        self.pos = block_end;
                        continue;
                    }
                    let next = self.look_ahead(src)?;
                    return Ok(match next {
                        Some((to, header)) if header.lsn == self.expected => {
                            let from = self.pos;
                            self.pos = to;
                            Step::Skipped { from, to }
                        }
                        Some((found_offset, found)) => Step::Break { at: self.pos, found_offset, found },
                        None => Step::End { at: self.pos },
                    });
                }
            }
        }
    }
}

/// The header at `offset` if a valid record (or padding) of life `segment_id`
/// starts there.
pub fn probe<S: SegmentSource>(
    src: &mut S,
    offset: u64,
    segment_id: u64,
    limits: &Limits,
) -> io::Result<Option<RecordHeader>> {
    if limits.segment_bytes.saturating_sub(offset) < RECORD_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let mut head = [0u8; RECORD_HEADER_BYTES];
    // `read` returns the length asked (checked above that the segment has it).
    head.copy_from_slice(src.read(offset, RECORD_HEADER_BYTES)?);
    let header = RecordHeader::parse(&head);
    if header.segment_id != segment_id
        || header.check_fields(limits.payload_len_max, limits.block_bytes).is_err()
        || offset + header.encoded_len() > limits.segment_bytes
    {
        return Ok(None);
    }
    let payload = src.read(offset + RECORD_HEADER_BYTES as u64, header.payload_len as usize)?;
    Ok(record::verify(&head, payload).then_some(header))
}

/// The first valid record of life `segment_id` at an 8-aligned offset at or
/// after `from`.
///
/// Only offsets whose segment-id field matches are checksummed, so scanning
/// zeros or bytes of other lives costs one comparison per 8 bytes.
pub fn find_next<S: SegmentSource>(
    src: &mut S,
    segment_id: u64,
    from: u64,
    limits: &Limits,
) -> io::Result<Option<(u64, RecordHeader)>> {
    const SCAN_CHUNK_BYTES: usize = 1 << 20;
    let header_bytes = RECORD_HEADER_BYTES as u64;
    let mut pos = align_up(from, RECORD_ALIGN_BYTES);
    while pos + header_bytes <= limits.segment_bytes {
        let chunk = (limits.segment_bytes - pos).min(SCAN_CHUNK_BYTES.min(src.window_bytes()) as u64) as usize;
        let bytes = src.read(pos, chunk)?;
        let mut i = 0usize;
        let mut hit = None;
        while i + RECORD_HEADER_BYTES <= bytes.len() {
            let id = le_u64(bytes, i + 16);
            if id == segment_id {
                hit = Some(pos + i as u64);
                break;
            }
            i += RECORD_ALIGN_BYTES as usize;
        }
        match hit {
            Some(candidate) => {
                if let Some(header) = probe(src, candidate, segment_id, limits)? {
                    return Ok(Some((candidate, header)));
                }
                pos = candidate + RECORD_ALIGN_BYTES;
            }
            None => pos += i as u64,
        }
    }
    Ok(None)
}

/// Proof, from a record that survived, of what had been synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Where the record is.
    pub offset: u64,
    /// Its LSN; for padding (the end of a flush, or a sync marker), the LSN
    /// that was to come next, which no record carries.
    pub lsn: u64,
    /// The LSN known synced when it was encoded.
    pub sync_hint: u64,
    /// Padding, not a record.
    pub padding: bool,
}

impl Evidence {
    /// What it is, where: for messages.
    pub fn describe(&self, segment: u64, path: &std::path::Path) -> String {
        let what = if self.padding {
            "the padding (a sync marker, or the end of a flush)".to_owned()
        } else {
            format!("LSN {}", self.lsn)
        };
        format!("{what} at segment {segment} ({}), offset {}", path.display(), self.offset)
    }
}

/// Among the valid records of life `segment_id` at or after `from`, the one
/// encoded after the highest LSN was known synced.
pub fn strongest_evidence<S: SegmentSource>(
    src: &mut S,
    segment_id: u64,
    from: u64,
    limits: &Limits,
) -> io::Result<Option<Evidence>> {
    let mut best: Option<Evidence> = None;
    let mut pos = from;
    while let Some((offset, header)) = find_next(src, segment_id, pos, limits)? {
        let hint = header.sync_hint();
        if best.is_none_or(|b| hint > b.sync_hint) {
            best = Some(Evidence { offset, lsn: header.lsn, sync_hint: hint, padding: header.is_padding() });
        }
        pos = offset + header.encoded_len();
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::super::flush::FlushLayout;
    use super::super::record::{EncodeHeader, sync_lag};
    use super::super::{SegmentHeader, data_offset};
    use super::*;

    const SEG: u64 = 64 * 1024;
    const BLOCK: u32 = 4096;
    const LIMITS: Limits = Limits { payload_len_max: 8192, block_bytes: BLOCK, segment_bytes: SEG, rewrites: false };

    /// Lays out flushes of the given payload sizes into a zeroed segment;
    /// returns the bytes and where each flush starts.
    fn build(id: u64, first_lsn: u64, flushes: &[&[usize]], synced: &[u64]) -> (Vec<u8>, Vec<u64>) {
        let mut seg = vec![0u8; SEG as usize];
        let header = SegmentHeader {
            version: 1,
            segment_id: id,
            first_lsn,
            segment_bytes: SEG,
            prev_data_end: 0,
            block_bytes: BLOCK,
            record_bytes_max: 8192,
        };
        seg[..64].copy_from_slice(&header.encode());
        let mut pos = data_offset(BLOCK);
        let mut lsn = first_lsn;
        let mut starts = Vec::new();
        for (i, sizes) in flushes.iter().enumerate() {
            let mut buf = vec![0u8; 32 * 1024];
            let mut f = FlushLayout::new(pos, id, BLOCK, SEG);
            for &n in *sizes {
                let payload: Vec<u8> = (0..n).map(|b| (b as u64 + lsn) as u8).collect();
                let h = EncodeHeader { lsn, segment_id: id, kind: 1, sync_lag: sync_lag(lsn, synced[i]) };
                f.push(&mut buf, h, &payload);
                lsn += 1;
            }
            let len = f.finish(&mut buf, lsn, sync_lag(lsn, synced[i]));
            seg[pos as usize..pos as usize + len].copy_from_slice(&buf[..len]);
            starts.push(pos);
            pos += len as u64;
        }
        (seg, starts)
    }

    fn walk_all(seg: &[u8], id: u64, first: u64) -> (Vec<u64>, String) {
        let mut src = SliceSource::new(seg);
        let mut w = Walker::new(id, data_offset(BLOCK), first, LIMITS);
        let mut lsns = Vec::new();
        loop {
            match w.next(&mut src).unwrap() {
                Step::Record { header, payload, .. } => {
                    assert!(payload.iter().enumerate().all(|(b, &v)| v == (b as u64 + header.lsn) as u8));
                    lsns.push(header.lsn);
                }
                Step::Skipped { from, to } => return (lsns, format!("skipped {from}..{to}")),
                Step::Break { at, found, .. } => {
                    return (lsns, format!("break at {at} found {}", found.lsn));
                }
                Step::End { at } => return (lsns, format!("end at {at}")),
            }
        }
    }

    #[test]
    fn clean_segment_ends_at_the_last_flush() {
        let (seg, _) = build(3, 10, &[&[10, 200, 0], &[3000, 5000]], &[0, 12]);
        let (lsns, how) = walk_all(&seg, 3, 10);
        assert_eq!(lsns, vec![10, 11, 12, 13, 14]);
        assert_eq!(how, format!("end at {}", 4096 + 4096 + 8192));
    }

    #[test]
    fn a_record_of_another_life_ends_the_data() {
        // Segment 3's flushes laid over leftovers of life 2 in the same file.
        let (old, _) = build(2, 1, &[&[100; 30], &[100; 30]], &[0, 30]);
        let (new, _) = build(3, 500, &[&[100]], &[0]);
        let mut seg = old.clone();
        seg[..4096 * 2].copy_from_slice(&new[..4096 * 2]);
        let (lsns, how) = walk_all(&seg, 3, 500);
        assert_eq!(lsns, vec![500]);
        assert_eq!(how, "end at 8192");
    }

    #[test]
    fn damaged_padding_is_skipped_without_losing_records() {
        let (mut seg, starts) = build(1, 1, &[&[100], &[100]], &[0, 1]);
        // Damage the padding of the first flush only.
        seg[starts[0] as usize + 200] ^= 0xFF;
        let mut src = SliceSource::new(&seg);
        let mut w = Walker::new(1, 4096, 1, LIMITS);
        assert!(matches!(w.next(&mut src).unwrap(), Step::Record { .. }));
        assert!(matches!(w.next(&mut src).unwrap(), Step::Skipped { to: 8192, .. }));
        assert!(matches!(w.next(&mut src).unwrap(), Step::Record { header, .. } if header.lsn == 2));
    }

    #[test]
    fn a_damaged_record_followed_by_later_records_is_a_break_with_evidence() {
        let (mut seg, starts) = build(1, 1, &[&[100, 100], &[100], &[100]], &[0, 2, 3]);
        seg[starts[0] as usize + 32 + 136 + 40] ^= 1; // payload of LSN 2
        let (lsns, how) = walk_all(&seg, 1, 1);
        assert_eq!(lsns, vec![1]);
        assert_eq!(how, format!("break at {} found 3", starts[0] + 136));
        let mut src = SliceSource::new(&seg);
        let ev = strongest_evidence(&mut src, 1, starts[0] + 136, &LIMITS).unwrap().unwrap();
        assert_eq!((ev.lsn, ev.sync_hint), (4, 3));
    }

    #[test]
    fn every_truncation_of_the_last_flush_walks_without_panicking() {
        let (full, starts) = build(1, 1, &[&[100], &[1000, 2000, 50]], &[0, 1]);
        let last = starts[1] as usize;
        for cut in last..last + 4096 {
            let mut seg = full.clone();
            seg[cut..].fill(0);
            let (lsns, how) = walk_all(&seg, 1, 1);
            assert!(!lsns.is_empty() && lsns.len() <= 4, "cut {cut}: {lsns:?}");
            assert!(how.starts_with("end at"), "cut {cut}: {how}");
        }
    }

    #[test]
    fn a_flush_ending_just_short_of_the_segment_end_fills_it() {
        // One flush whose records end 8 bytes before the segment end: no
        // padding record fits, so the writer zero-fills to the end and the
        // segment's data ends at the segment end.
        // 14 flushes of one block-filling record, then one ending 8 bytes short.
        let mut flushes: Vec<&[usize]> = vec![&[4096 - 32]; 14];
        flushes.push(&[4096 - 32 - 8]);
        let (seg, starts) = build(1, 1, &flushes, &[0; 15]);
        assert_eq!(*starts.last().unwrap(), SEG - 4096);
        let mut src = SliceSource::new(&seg);
        let mut w = Walker::new(1, 4096, 1, LIMITS);
        for _ in 0..15 {
            assert!(matches!(w.next(&mut src).unwrap(), Step::Record { .. }));
        }
        assert_eq!(w.position(), SEG - 8);
        assert!(matches!(w.next(&mut src).unwrap(), Step::End { at } if at == SEG));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // Headers that claim this segment's id with every kind of bad field.
        let mut seg = vec![0u8; SEG as usize];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for chunk in seg[4096..].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        for off in (4096..SEG as usize).step_by(96) {
            seg[off + 16..off + 24].copy_from_slice(&1u64.to_le_bytes());
        }
        let (lsns, how) = walk_all(&seg, 1, 1);
        assert!(lsns.is_empty());
        assert_eq!(how, "end at 4096");
    }

    const V2: Limits = Limits { rewrites: true, ..LIMITS };

    /// Version `v` (1-based) of a tail block at 4096 whose flushes each added
    /// one record: records 1..=v and padding, encoded when the version before
    /// was synced, and the slot it goes to (the first, 4096, for odd
    /// versions; the second, 8192, for even ones).
    fn tail_version(v: u64) -> (u64, Vec<u8>) {
        let mut buf = vec![0u8; BLOCK as usize];
        let slot = if v % 2 == 1 { 4096 } else { 8192 };
        let mut f = FlushLayout::new(slot, 1, BLOCK, SEG);
        for lsn in 1..=v {
            // 536 bytes encoded: records cross sector boundaries, seven fit.
            let payload: Vec<u8> = (0..500).map(|b| (b as u64 + lsn) as u8).collect();
            let h = EncodeHeader { lsn, segment_id: 1, kind: 1, sync_lag: sync_lag(lsn, lsn.min(v) - 1) };
            f.push(&mut buf, h, &payload);
        }
        assert_eq!(f.finish(&mut buf, v + 1, sync_lag(v + 1, v - 1)), BLOCK as usize);
        (slot, buf)
    }

    /// A version-2 segment whose tail block went through versions 1..=last.
    fn tail_segment(last: u64) -> Vec<u8> {
        let mut seg = vec![0u8; SEG as usize];
        let header = SegmentHeader {
            version: 2,
            segment_id: 1,
            first_lsn: 1,
            segment_bytes: SEG,
            prev_data_end: 0,
            block_bytes: BLOCK,
            record_bytes_max: 8192,
        };
        seg[..64].copy_from_slice(&header.encode());
        for v in 1..=last {
            let (slot, bytes) = tail_version(v);
            seg[slot as usize..slot as usize + bytes.len()].copy_from_slice(&bytes);
        }
        seg
    }

    /// LSNs read, and how the walk ended: `Ok(end)` or `Err((missing, hint of
    /// the record found after it))`.
    fn walk_v2(seg: &[u8]) -> (Vec<u64>, Result<u64, (u64, u64)>) {
        let mut src = SliceSource::new(seg);
        let mut w = Walker::new(1, 4096, 1, V2);
        let mut lsns = Vec::new();
        loop {
            match w.next(&mut src).unwrap() {
                Step::Record { header, payload, .. } => {
                    assert!(payload.iter().enumerate().all(|(b, &v)| v == (b as u64 + header.lsn) as u8));
                    lsns.push(header.lsn);
                }
                Step::Skipped { from, to } => panic!("skipped {from}..{to} in {lsns:?}"),
                Step::Break { found, .. } => return (lsns, Err((w.expected(), found.sync_hint()))),
                Step::End { at } => return (lsns, Ok(at)),
            }
        }
    }

    #[test]
    fn a_rewritten_tail_block_reads_as_its_latest_copy() {
        for last in 1..=7 {
            let (lsns, end) = walk_v2(&tail_segment(last));
            assert_eq!(lsns, (1..=last).collect::<Vec<_>>(), "{last} versions");
            // The data ends after the second slot once it was written.
            assert_eq!(end, Ok(if last == 1 { 8192 } else { 12288 }), "{last} versions");
        }
    }

    #[test]
    fn a_torn_rewrite_never_loses_what_the_other_copy_holds() {
        // Each version is written only once the one before is durable; a
        // power failure tears the latest per 512-byte sector into new, old,
        // zero or garbage bytes. Every record of the version before must be
        // read back; the new one may or may not be; a break is never proved
        // corruption by what survives.
        let mut rng = crate::storage::rng::SimRng::new(7);
        for last in 2..=7 {
            let before = tail_segment(last - 1);
            let (slot, new) = tail_version(last);
            for _ in 0..3000 {
                let mut seg = before.clone();
                for sector in 0..(BLOCK as usize / 512) {
                    let at = slot as usize + sector * 512;
                    match rng.below(4) {
                        0 => seg[at..at + 512].copy_from_slice(&new[sector * 512..sector * 512 + 512]),
                        1 => {}
                        2 => seg[at..at + 512].fill(0),
                        _ => seg[at..at + 512].iter_mut().for_each(|b| *b = rng.next_u64() as u8),
                    }
                }
                let (lsns, end) = walk_v2(&seg);
                assert!(lsns.len() as u64 >= last - 1, "version {last}: read {lsns:?}, {end:?}");
                assert_eq!(lsns, (1..=lsns.len() as u64).collect::<Vec<_>>());
                if let Err((missing, hint)) = end {
                    assert!(hint < missing, "version {last}: LSN {missing} proved durable by a hint of {hint}");
                }
            }
        }
    }

    #[test]
    fn damage_to_one_copy_is_read_around_and_to_both_is_a_break() {
        // Versions 1..=3: the first slot holds records 1-3, the second 1-2.
        let seg = tail_segment(3);
        let r2 = 4096 + 536 + 40; // inside the payload of LSN 2, first slot
        let mut bad = seg.clone();
        bad[r2] ^= 1;
        assert_eq!(walk_v2(&bad), (vec![1, 2, 3], Ok(12288)));
        // Damage to the older copy loses nothing either; the data ends at
        // the damage, as at damaged padding (recovery starts a new segment).
        let mut bad = seg.clone();
        bad[r2 + 4096] ^= 1;
        assert_eq!(walk_v2(&bad), (vec![1, 2, 3], Ok(8192 + 536)));
        let mut bad = seg.clone();
        bad[r2] ^= 1;
        bad[r2 + 4096] ^= 1;
        // LSN 3 follows, written after LSN 2 was synced: recovery's proof.
        assert_eq!(walk_v2(&bad), (vec![1], Err((2, 2))));
        // Damage to record 3, whose only copy is the latest: a break after 2.
        let mut bad = seg.clone();
        bad[4096 + 2 * 536 + 40] ^= 1;
        let (lsns, end) = walk_v2(&bad);
        assert_eq!(lsns, vec![1, 2]);
        assert!(matches!(end, Err((3, _)) | Ok(_)), "{end:?}");
    }

    #[test]
    fn a_follower_finds_the_next_copy_in_the_slot_behind_it() {
        // A reader read versions 1 and 2 (LSNs 1-2); it waits in the second
        // slot, at version 2's padding. Version 3 then goes to the first
        // slot, behind it: the padding sends it there.
        let mut seg = tail_segment(2);
        let mut w = Walker::new(1, 4096, 1, V2);
        {
            let mut src = SliceSource::new(&seg);
            for lsn in 1..=2 {
                assert!(matches!(w.next(&mut src).unwrap(), Step::Record { header, .. } if header.lsn == lsn));
            }
        }
        assert_eq!(w.position(), 8192 + 2 * 536);
        let (slot, v3) = tail_version(3);
        seg[slot as usize..slot as usize + v3.len()].copy_from_slice(&v3);
        let mut src = SliceSource::new(&seg);
        // So does a walk that ended past the block and rewinds.
        let mut ended = w.clone();
        ended.pos = 12288;
        assert!(matches!(ended.next(&mut src).unwrap(), Step::End { at: 12288 }));
        ended.rewind();
        for w in [&mut w, &mut ended] {
            let step = w.next(&mut src).unwrap();
            assert!(
                matches!(step, Step::Record { header, offset, .. } if header.lsn == 3 && offset == 4096 + 2 * 536),
                "{step:?}"
            );
            assert!(matches!(w.next(&mut src).unwrap(), Step::End { at: 12288 }));
        }
    }

    #[test]
    fn a_sync_marker_before_the_end_is_not_a_copy_of_the_block_after_it() {
        // Records, a sync marker (one block of padding with the next LSN),
        // then nothing: the data ends after the marker, not a block later.
        let (mut seg, starts) = build(1, 1, &[&[300], &[200, 100]], &[0, 1]);
        let at = starts[1] + 4096;
        let mut buf = vec![0u8; BLOCK as usize];
        let mut m = FlushLayout::new(at, 1, BLOCK, SEG);
        let len = m.finish_marker(&mut buf, 4, 3);
        seg[at as usize..at as usize + len].copy_from_slice(&buf[..len]);
        for limits in [LIMITS, V2] {
            let mut src = SliceSource::new(&seg);
            let mut w = Walker::new(1, 4096, 1, limits);
            for lsn in 1..=3 {
                assert!(matches!(w.next(&mut src).unwrap(), Step::Record { header, .. } if header.lsn == lsn));
            }
            assert!(matches!(w.next(&mut src).unwrap(), Step::End { at: end } if end == at + 4096), "{limits:?}");
        }
    }
}
