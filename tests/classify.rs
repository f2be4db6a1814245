//! Files holding records of the log are never deleted or reused as spares,
//! whatever today's options say and however much of their start is damaged.

mod common;

use std::path::Path;

use common::{IoPath, options, payload};
use uring_wal::{Error, RecordType, Wal};

fn zero(path: &Path, from: usize, to: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[from..to].fill(0);
    std::fs::write(path, b).unwrap();
}

/// The segment file holding LSN `lsn` (of length `len`).
fn holding(dir: &Path, lsn: u64, len: usize) -> std::path::PathBuf {
    let needle = payload(lsn, len);
    common::segment_files(dir)
        .into_iter()
        .find(|p| std::fs::read(p).unwrap().windows(len).any(|w| w == needle.as_slice()))
        .expect("the record is in some segment")
}

fn log(dir: &Path, records: u64, len: usize, record_bytes_max: u32) {
    let wal = Wal::open(options(dir, IoPath::Buffered).record_bytes_max(record_bytes_max)).unwrap();
    for lsn in 1..=records {
        wal.append(RecordType::Put, &payload(lsn, len)).unwrap();
    }
    wal.close().unwrap();
}

#[test]
fn a_segment_whose_header_and_first_flush_were_lost_is_reported_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    log(dir.path(), 100, 1000, 16 * 1024);
    let last = holding(dir.path(), 100, 1000);
    // Header block and the first flush (one 4 KiB block each) gone: only
    // later records of its life remain.
    zero(&last, 0, 8192);
    let before = std::fs::read(&last).unwrap();
    match Wal::open(options(dir.path(), IoPath::Buffered)) {
        Err(Error::Corruption { .. }) => {}
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(w) => panic!("opened at LSN {}: the records of {} were dropped", w.last_lsn(), last.display()),
    }
    assert_eq!(std::fs::read(&last).unwrap(), before, "the damaged segment was changed");
}

#[test]
fn a_damaged_segment_with_records_larger_than_todays_limit_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    // Records of 10 KB under a 16 KiB limit; reopened with a 4 KiB limit.
    log(dir.path(), 30, 10_000, 16 * 1024);
    let last = holding(dir.path(), 30, 10_000);
    zero(&last, 0, 64);
    let before = std::fs::read(&last).unwrap();
    let reopened = Wal::open(options(dir.path(), IoPath::Buffered).record_bytes_max(4096));
    assert!(matches!(reopened, Err(Error::Corruption { .. })), "{:?}", reopened.map(|w| w.last_lsn()));
    assert_eq!(std::fs::read(&last).unwrap(), before, "a segment holding records was deleted or changed");
}

#[test]
fn a_lock_file_that_is_a_hard_link_to_another_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    std::fs::create_dir(&log_dir).unwrap();
    let victim = dir.path().join("precious");
    std::fs::write(&victim, b"somebody else's data").unwrap();
    std::fs::hard_link(&victim, log_dir.join("LOCK")).unwrap();
    match Wal::open(options(&log_dir, IoPath::Buffered)) {
        Err(e) => assert!(e.to_string().contains("not a lock file of its own"), "{e}"),
        Ok(_) => panic!("opened with a LOCK that is another file's hard link"),
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"somebody else's data", "the linked file was written");
}
