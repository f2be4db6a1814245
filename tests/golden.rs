//! Golden segment files: a format change cannot slip by.
//!
//! `tests/golden/v1/` holds the live segments of a small log written by the
//! sequence below, as writers before sync markers wrote it; `v1-marker/` the
//! same log with a sync marker at its clean close (a padding flush that v1
//! readers skip); `v2/` the same log as today's writer writes it (format
//! version 2: small flushes rewrite the partly filled last block of the one
//! before into its other slot). Two checks: today's reader decodes all three
//! to exactly those records, and today's writer reproduces `v2` byte for
//! byte. After an intended format change, bump the format version, add a
//! new directory and regenerate with `URING_WAL_BLESS=1 cargo test --test
//! golden`.

use std::path::{Path, PathBuf};

use uring_wal::{BlockSize, Options, RecordType, Wal};

/// Every golden log today's reader must open; the last is today's writer's.
const GOLDEN: [&str; 3] = ["tests/golden/v1", "tests/golden/v1-marker", "tests/golden/v2"];

fn golden_dirs() -> Vec<PathBuf> {
    GOLDEN.iter().map(|g| Path::new(env!("CARGO_MANIFEST_DIR")).join(g)).collect()
}

fn options(dir: &Path) -> Options {
    Options::durable(dir).segment_bytes(64 * 1024).record_bytes_max(4096).block_size(BlockSize::Bytes(4096))
}

/// The records of the golden log: every record type, sizes from 0 to the
/// maximum, one record filling a block exactly, some spanning two.
fn records() -> Vec<(RecordType, Vec<u8>)> {
    let kinds = [
        RecordType::Put,
        RecordType::Update,
        RecordType::Delete,
        RecordType::Checkpoint,
        RecordType::Noop,
        RecordType::Application(0),
        RecordType::Application(RecordType::APPLICATION_MAX),
    ];
    let sizes = [0usize, 1, 7, 8, 9, 100, 255, 256, 1000, 4064, 4096, 3000, 17, 4033, 4065, 64, 2048, 4096, 12, 500];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (kinds[i % kinds.len()], (0..n).map(|b| (b * 31 + i * 7) as u8).collect()))
        .collect()
}

/// Segment files with a header (live), by name.
fn live_segments(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .filter(|(_, bytes)| bytes.starts_with(b"URINGWAL"))
        .collect();
    v.sort();
    v
}

#[test]
fn golden_segments_decode_to_the_expected_records() {
    for golden_dir in golden_dirs() {
        let golden = live_segments(&golden_dir);
        assert!(golden.len() >= 2, "golden files are present in {}", golden_dir.display());
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in &golden {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let wal = Wal::open(options(dir.path())).unwrap();
        let report = wal.recovery_report();
        assert!(report.torn_tail.is_none() && report.skipped_count == 0, "{report:?}");
        let read: Vec<_> = wal.read_from(1).unwrap().map(|r| r.unwrap()).collect();
        let expected = records();
        assert_eq!(read.len(), expected.len());
        for (rec, (i, (kind, payload))) in read.iter().zip(expected.iter().enumerate()) {
            assert_eq!((rec.lsn, rec.kind, &rec.payload), (i as u64 + 1, *kind, payload));
        }
    }
}

#[test]
fn the_writer_still_produces_the_golden_bytes() {
    // Today's writer, and the same with tail rewrites off (format version 1).
    write_and_compare(options, "tests/golden/v2");
    write_and_compare(|dir| options(dir).rewrite_tail_blocks(false), "tests/golden/v1-marker");
}

fn write_and_compare(options: impl Fn(&Path) -> Options, name_of_golden: &str) {
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(name_of_golden);
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(options(dir.path())).unwrap();
    for (kind, payload) in records() {
        wal.append(kind, &payload).unwrap();
    }
    drop(wal);
    let written = live_segments(dir.path());
    if std::env::var_os("URING_WAL_BLESS").is_some() {
        std::fs::create_dir_all(&golden_dir).unwrap();
        for (name, bytes) in &written {
            std::fs::write(golden_dir.join(name), bytes).unwrap();
        }
    }
    let golden = live_segments(&golden_dir);
    assert_eq!(written.len(), golden.len(), "number of segments of {name_of_golden}");
    for ((name, bytes), (gname, gbytes)) in written.iter().zip(&golden) {
        assert_eq!(name, gname);
        if let Some(i) = (0..bytes.len()).find(|&i| bytes[i] != gbytes[i]) {
            panic!("{name} differs from {name_of_golden} first at byte {i}: the on-disk format changed");
        }
    }
}
