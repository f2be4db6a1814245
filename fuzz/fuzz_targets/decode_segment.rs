//! Decoding a segment from arbitrary bytes: the header, every record the
//! walker finds, and the evidence scan. Must never panic or read beyond the
//! segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uring_wal::format::walk::{Limits, SliceSource, Step, Walker, strongest_evidence};
use uring_wal::format::{SegmentHeader, data_offset};

fuzz_target!(|data: &[u8]| {
    let _ = SegmentHeader::decode(data);
    if data.len() < 2 {
        return;
    }
    // The first byte picks the segment id and the block; the rest is the
    // segment's data area, after an empty header block.
    let id = u64::from(data[0] % 4) + 1;
    let block = if data[1] % 2 == 0 { 512 } else { 4096 };
    let start = data_offset(block) as usize;
    let mut seg = vec![0u8; start];
    seg.extend_from_slice(&data[2..]);
    let len = seg.len().next_multiple_of(block as usize).max(start + block as usize);
    seg.resize(len, 0);
    let limits = Limits { payload_len_max: 1 << 16, block_bytes: block, segment_bytes: len as u64, rewrites: data[1] & 2 != 0 };
    let mut src = SliceSource::new(&seg);
    let mut w = Walker::new(id, start as u64, 1, limits);
    for _ in 0..100_000 {
        match w.next(&mut src).expect("reads stay inside the segment") {
            Step::Record { offset, payload, header } => {
                assert!(offset as usize + 32 + payload.len() <= seg.len());
                assert_eq!(payload.len(), header.payload_len as usize);
            }
            Step::Skipped { from, to } => assert!(to > from),
            Step::Break { .. } | Step::End { .. } => break,
        }
    }
    let _ = strongest_evidence(&mut src, id, 0, &limits).expect("reads stay inside the segment");
});
