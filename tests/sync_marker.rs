//! After `sync()` or a clean close, damage to any synced record is corruption
//! in every durability mode, even in the last flush, where no later record
//! exists to prove it was synced: the sync marker proves it. Records written
//! after the last sync and never synced are still a torn tail when damaged.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{IoPath, PATHS, options, payload};
use uring_wal::storage::sim::{SimConfig, SimStorage};
use uring_wal::{Durability, Error, RecordType, Wal};

const MODES: [Durability; 4] = [
    Durability::GroupSync,
    Durability::Dsync,
    Durability::Periodic { interval: Duration::from_secs(3600) },
    Durability::None,
];

fn len_of(lsn: u64) -> usize {
    300 + (lsn as usize * 53) % 700
}

/// Flips one byte in the middle of LSN `lsn`'s payload, in every copy of it
/// (a rewritten tail block leaves two: one copy alone damaged loses nothing);
/// returns the first file.
fn damage(dir: &Path, lsn: u64) -> PathBuf {
    let needle = payload(lsn, len_of(lsn));
    let mut first = None;
    for path in common::segment_files(dir) {
        let mut bytes = std::fs::read(&path).unwrap();
        let mut from = 0;
        while let Some(at) = bytes[from..].windows(needle.len()).position(|w| w == needle.as_slice()) {
            bytes[from + at + needle.len() / 2] ^= 0x40;
            from += at + needle.len();
            first.get_or_insert_with(|| path.clone());
        }
        std::fs::write(&path, &bytes).unwrap();
    }
    first.unwrap_or_else(|| panic!("payload of LSN {lsn} not found"))
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().extension().is_some_and(|x| x == "wal") {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn expect_corruption(dir: &Path, path: IoPath, mode: Durability, lsn: u64, ctx: &str) {
    match Wal::open(options(dir, path).durability(mode)) {
        Err(Error::Corruption { lsn: at, .. }) => assert_eq!(at, lsn, "{ctx}"),
        Err(e) => panic!("{ctx}: expected corruption at LSN {lsn}, got {e}"),
        Ok(wal) => panic!(
            "{ctx}: opened with last LSN {} (torn tail {:?}): synced LSN {lsn} cut silently",
            wal.last_lsn(),
            wal.recovery_report().torn_tail
        ),
    }
}

#[test]
fn damage_to_a_record_synced_before_a_clean_close_is_corruption_in_every_mode() {
    for path in PATHS {
        for mode in MODES {
            // Early in the log (the reported case) and in the very last flush.
            for damaged in [25, 300] {
                let ctx = format!("{path:?} {mode:?} damaged LSN {damaged}");
                let dir = tempfile::tempdir().unwrap();
                let wal = Wal::open(options(dir.path(), path).durability(mode)).unwrap();
                for lsn in 1..=300 {
                    assert_eq!(wal.append(RecordType::Put, &payload(lsn, len_of(lsn))).unwrap(), lsn);
                }
                wal.close().unwrap();
                damage(dir.path(), damaged);
                expect_corruption(dir.path(), path, mode, damaged, &ctx);
            }
        }
    }
}

#[test]
fn damage_to_a_record_synced_by_sync_is_corruption_after_a_crash() {
    for path in PATHS {
        for mode in MODES {
            let ctx = format!("{path:?} {mode:?}");
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(options(dir.path(), path).durability(mode)).unwrap();
            for lsn in 1..=120 {
                wal.append(RecordType::Put, &payload(lsn, len_of(lsn))).unwrap();
            }
            assert_eq!(wal.sync().unwrap(), 120, "{ctx}");
            // The files as a crash right now leaves them (the process never
            // closes): the last synced record is damaged.
            let crashed = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), crashed.path());
            drop(wal);
            damage(crashed.path(), 120);
            expect_corruption(crashed.path(), path, mode, 120, &ctx);
        }
    }
}

#[test]
fn damage_to_records_never_synced_is_still_a_torn_tail() {
    for path in PATHS {
        for mode in [Durability::None, Durability::Periodic { interval: Duration::from_secs(3600) }] {
            let ctx = format!("{path:?} {mode:?}");
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(options(dir.path(), path).durability(mode)).unwrap();
            for lsn in 1..=50 {
                wal.append(RecordType::Put, &payload(lsn, len_of(lsn))).unwrap();
            }
            wal.sync().unwrap();
            for lsn in 51..=60 {
                wal.append(RecordType::Put, &payload(lsn, len_of(lsn))).unwrap();
            }
            // A crash now: 51..=60 were written but never synced.
            let crashed = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), crashed.path());
            drop(wal);
            damage(crashed.path(), 55);
            let wal = Wal::open(options(crashed.path(), path).durability(mode))
                .unwrap_or_else(|e| panic!("{ctx}: unsynced damage refused: {e}"));
            assert_eq!(wal.last_lsn(), 54, "{ctx}");
            let tail = wal.recovery_report().torn_tail.clone().expect("a torn tail");
            assert_eq!(tail.next_lsn, 55, "{ctx}");
        }
    }
}

/// Appends from two threads while a third calls `sync()` over and over,
/// under `Periodic` with buffered I/O and sync rounds falling due all the
/// time; returns the most syncs seen in flight on one file.
fn syncs_in_flight_under_periodic_rounds_and_sync_calls(wal: Wal) -> u64 {
    let wal = std::sync::Arc::new(wal);
    let appenders: Vec<_> = (0..2u64)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0..400u64 {
                    wal.append(RecordType::Put, &payload(t * 1000 + i, 200)).unwrap();
                }
            })
        })
        .collect();
    let syncer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                wal.sync().unwrap();
            }
        })
    };
    for t in appenders {
        t.join().unwrap();
    }
    syncer.join().unwrap();
    let wal = std::sync::Arc::try_unwrap(wal).unwrap_or_else(|_| panic!("still shared"));
    let most = wal.stats().syncs_in_flight_per_file_max;
    wal.close().unwrap();
    most
}

#[test]
fn a_sync_marker_never_shares_a_file_with_a_sync_round_in_flight() {
    // With buffered I/O one sync in flight per file at most: of two, the
    // earlier may return 0 over lost pages because the later consumed the
    // file's writeback error. A sync() that completes between two periodic
    // rounds must not place its marker (a synced write) while the next
    // round's fdatasync runs on the same file.
    let periodic = Durability::Periodic { interval: Duration::from_micros(1) };
    // The real kernel: rounds go through the ring, markers are synced by
    // the I/O thread itself.
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), IoPath::Buffered).durability(periodic).backend(uring_wal::Backend::IoUring);
    let most = syncs_in_flight_under_periodic_rounds_and_sync_calls(Wal::open(o).unwrap());
    assert_eq!(most, 1, "io_uring: syncs in flight on one file at once");
    // The simulated storage completes the threaded backend's operations
    // out of order, at its next poll: each stays in flight until then.
    for seed in 1..=20 {
        let sim = SimStorage::new(SimConfig { shuffle_completions: true, ..SimConfig::new(seed) });
        let o = options(Path::new("/wal"), IoPath::Buffered).durability(periodic);
        let most = syncs_in_flight_under_periodic_rounds_and_sync_calls(
            Wal::open_with_storage(o, std::sync::Arc::new(sim)).unwrap(),
        );
        assert_eq!(most, 1, "simulated, seed {seed}: syncs in flight on one file at once");
    }
}
