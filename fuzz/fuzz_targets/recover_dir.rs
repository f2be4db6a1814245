//! Recovering a directory built from arbitrary bytes (on the simulated
//! storage): up to four segment files of arbitrary content, sometimes with
//! a valid header. Recovery may refuse, but must never panic.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use uring_wal::format::SegmentHeader;
use uring_wal::storage::Storage;
use uring_wal::storage::sim::{SimConfig, SimStorage};
use uring_wal::{BlockSize, Options, Wal};

const SEGMENT_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let sim = SimStorage::new(SimConfig::new(0));
    let dir = Path::new("/wal");
    sim.create_dir_all(dir).unwrap();
    let mut rest = data;
    let mut id = 1u64;
    while rest.len() > 4 && id <= 4 {
        let take = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 3);
        let flags = rest[2];
        let body = &rest[3..3 + take];
        rest = &rest[3 + take..];
        let mut file = vec![0u8; SEGMENT_BYTES];
        if flags & 1 == 1 {
            // A valid header, so recovery walks the arbitrary records.
            let h = SegmentHeader {
                segment_id: id,
                first_lsn: 1 + u64::from(flags >> 4),
                segment_bytes: SEGMENT_BYTES as u64,
                prev_data_end: if id == 1 { 0 } else { u64::from(flags >> 1) * 4096 },
                block_bytes: 4096,
                record_bytes_max: 4096,
            };
            file[..64].copy_from_slice(&h.encode());
            file[4096..4096 + body.len().min(SEGMENT_BYTES - 4096)]
                .copy_from_slice(&body[..body.len().min(SEGMENT_BYTES - 4096)]);
        } else {
            file[..body.len().min(SEGMENT_BYTES)].copy_from_slice(&body[..body.len().min(SEGMENT_BYTES)]);
        }
        if flags & 2 == 2 {
            file.truncate(file.len() - 512);
        }
        sim.put_file(&dir.join(format!("{id:020}.wal")), &file);
        id += 1;
    }
    let opts = Options::new(dir).segment_bytes(SEGMENT_BYTES as u64).record_bytes_max(4096).block_size(BlockSize::Bytes(4096));
    if let Ok(wal) = Wal::open_with_storage(opts, Arc::new(sim)) {
        for rec in wal.read_from(wal.first_lsn()).unwrap() {
            let _ = rec;
        }
    }
});
