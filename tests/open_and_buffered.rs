//! Two durability hazards around the kernel's caches:
//!
//! - a segment file renamed into place by a process that was killed before
//!   its directory fsync: the next process must make that entry durable
//!   before acknowledging records into the file;
//! - buffered I/O: two fdatasyncs in flight on one file can hide a writeback
//!   error from each other, so at most one may be.

mod common;

use std::path::Path;
use std::sync::Arc;

use uring_wal::storage::sim::{SimConfig, SimStorage};
use uring_wal::storage::{OpenHow, Storage};
use uring_wal::{Backend, BackendKind, BlockSize, DirectIo, Durability, Options, RecordType, Wal};

const DIR: &str = "/wal";
const SEGMENT_BYTES: u64 = 64 * 1024;

fn sim_options() -> Options {
    Options::durable(DIR)
        .segment_bytes(SEGMENT_BYTES)
        .record_bytes_max(4096)
        .block_size(BlockSize::Bytes(4096))
        .direct_io(DirectIo::Off)
}

#[test]
fn a_spare_renamed_by_a_killed_process_is_made_durable_before_records_go_into_it() {
    for seed in 0..8u64 {
        let sim = SimStorage::new(SimConfig::new(seed));
        // Process A prepares segment 1 (zero-filled, synced) and renames it
        // into place, then is killed before its directory fsync.
        sim.create_dir_all(Path::new(DIR)).unwrap();
        let tmp = Path::new(DIR).join("00000000000000000001.wal.tmp");
        let name = Path::new(DIR).join("00000000000000000001.wal");
        let f = sim.open_file(&tmp, OpenHow::create(false)).unwrap();
        uring_wal::storage::write_all_at(f.as_ref(), &vec![0u8; SEGMENT_BYTES as usize], 0, false).unwrap();
        f.sync_data().unwrap();
        drop(f);
        sim.rename_no_replace(&tmp, &name).unwrap();

        // Process B opens (the entry is in the page cache), and acknowledges.
        let wal = Wal::open_with_storage(sim_options(), Arc::new(sim.clone())).unwrap();
        for i in 1..=5u64 {
            assert_eq!(wal.append(RecordType::Put, &[i as u8; 100]).unwrap(), i);
        }
        // Power loss right now (the process is still running).
        let log = sim.log();
        let image = SimStorage::crash_image(&log, log.len(), seed, 512);
        std::mem::forget(wal);
        let wal = Wal::open_with_storage(sim_options(), Arc::new(image)).unwrap();
        assert_eq!(wal.last_lsn(), 5, "seed {seed}: acknowledged records lost with a directory entry");
        drop(wal);
    }
}

fn buffered(dir: &Path, durability: Durability) -> Options {
    Options::new(dir)
        .durability(durability)
        .backend(Backend::IoUring)
        .direct_io(DirectIo::Off)
        .segment_bytes(1 << 20)
        .record_bytes_max(4096)
        .flushes_in_flight_max(4)
}

#[test]
fn buffered_io_never_has_two_syncs_in_flight_on_one_file() {
    if let Some(reason) = uring_wal::io_uring_unavailable_reason() {
        eprintln!("SKIPPED: io_uring unavailable here ({reason})");
        return;
    }
    for durability in [Durability::GroupSync, Durability::Dsync] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(buffered(dir.path(), durability)).unwrap());
        assert_eq!(wal.backend().kind, BackendKind::IoUring);
        assert!(!wal.backend().direct_io);
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    for i in 0..300u32 {
                        wal.append(RecordType::Put, &(w * 1000 + i).to_le_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let stats = wal.stats();
        assert_eq!(stats.appends, 2400);
        assert_eq!(
            stats.syncs_in_flight_per_file_max, 1,
            "{durability:?}: several syncs in flight on one file with buffered I/O"
        );
    }
}
