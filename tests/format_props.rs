//! Property tests of the format layer on the stable toolchain, covering
//! what the fuzz targets cover: decoding arbitrary bytes never panics nor
//! reads beyond the segment, and encoding round-trips.

use proptest::prelude::*;
use uring_wal::format::record::{EncodeHeader, encode, encoded_len};
use uring_wal::format::walk::{Limits, SliceSource, Step, Walker, strongest_evidence};
use uring_wal::format::{SegmentHeader, data_offset};

const LIMITS: Limits = Limits { payload_len_max: 4096, block_bytes: 512, segment_bytes: 16 * 1024, rewrites: false };

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn walking_arbitrary_bytes_terminates_without_panicking(
        mut bytes in proptest::collection::vec(any::<u8>(), 16 * 1024),
        id in 1u64..4,
        plant in proptest::collection::vec((0usize..2000, any::<u32>()), 0..40),
    ) {
        // Plant headers that claim this segment's id with arbitrary lengths.
        for (slot, len) in plant {
            let at = 4096 + slot * 8;
            if at + 32 <= bytes.len() {
                bytes[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
                bytes[at + 16..at + 24].copy_from_slice(&id.to_le_bytes());
            }
        }
        let mut src = SliceSource::new(&bytes);
        let mut w = Walker::new(id, data_offset(512), 1, LIMITS);
        for _ in 0..10_000 {
            match w.next(&mut src).unwrap() {
                Step::Record { offset, header, payload } => {
                    prop_assert!(offset + encoded_len(header.payload_len) <= LIMITS.segment_bytes);
                    prop_assert_eq!(payload.len(), header.payload_len as usize);
                }
                Step::Skipped { from, to } => prop_assert!(to > from),
                Step::Break { .. } | Step::End { .. } => break,
            }
        }
        let _ = strongest_evidence(&mut src, id, 0, &LIMITS).unwrap();
        let _ = SegmentHeader::decode(&bytes);
    }

    #[test]
    fn records_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..4096), lsn in 1u64..1 << 40) {
        let mut seg = vec![0u8; 16 * 1024];
        let h = EncodeHeader { lsn, segment_id: 2, kind: 1, sync_lag: 1 };
        let n = encode(&mut seg[4096..], h, &payload);
        prop_assert_eq!(n as u64, encoded_len(payload.len() as u32));
        let mut src = SliceSource::new(&seg);
        let mut w = Walker::new(2, 4096, lsn, LIMITS);
        match w.next(&mut src).unwrap() {
            Step::Record { payload: got, header, .. } => {
                prop_assert_eq!(got, &payload[..]);
                prop_assert_eq!(header.lsn, lsn);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
