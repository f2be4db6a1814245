//! Recovery: torn tails are cut, corruption is reported with its location,
//! stale data is never replayed, failures poison, bad files get clear errors.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{FaultPlan, FaultyStorage, IoPath, PATHS, payload};
use uring_wal::storage::{OpenHow, OsStorage, Storage};
use uring_wal::{Batch, Durability, Error, Options, RecordType, RecoveryMode, Wal};

/// These tests place their damage by the layout of format version 1, where
/// every flush takes blocks of its own (a single 500-byte append is one 4 KiB
/// block). Recovery is the same for both versions; what version 2's tail
/// rewrites add is tested in tests/tail_rewrites.rs.
fn options(dir: &Path, path: IoPath) -> Options {
    common::options(dir, path).rewrite_tail_blocks(false)
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    common::segment_files(dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

fn read_all(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    wal.read_from(wal.first_lsn()).unwrap().map(|r| r.unwrap()).map(|r| (r.lsn, r.payload)).collect()
}

fn assert_payloads(wal: &Wal, len_of: impl Fn(u64) -> usize) {
    let recs = read_all(wal);
    assert_eq!(recs.len() as u64, wal.last_lsn() - wal.first_lsn() + 1);
    for (lsn, p) in recs {
        assert_eq!(p, payload(lsn, len_of(lsn)), "payload of LSN {lsn}");
    }
}

/// Sizes of the records in these tests: LSNs 21 and 22 form the last flush.
fn len_of(lsn: u64) -> usize {
    match lsn {
        21 => 1500,
        22 => 700,
        _ => 100 + (lsn as usize * 37) % 900,
    }
}

#[test]
fn a_torn_last_flush_is_truncated_at_every_byte_offset() {
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(options(dir.path(), path)).unwrap();
        for lsn in 1..=20 {
            wal.append(RecordType::Put, &payload(lsn, len_of(lsn))).unwrap();
        }
        drop(wal);
        let before = snapshot(dir.path());
        let wal = Wal::open(options(dir.path(), path)).unwrap();
        let mut batch = Batch::new();
        batch.push(RecordType::Put, &payload(21, 1500)).unwrap();
        batch.push(RecordType::Put, &payload(22, 700)).unwrap();
        assert_eq!(wal.append_batch(&mut batch).unwrap(), Some(21..=22));
        assert_eq!(wal.stats().flushes, 1, "both records went out in one flush");
        crash(wal, dir.path());
        let after = snapshot(dir.path());
        // The file the last flush went to, and the bytes it changed.
        let (seg, old, new) = before
            .iter()
            .zip(&after)
            .find(|((_, a), (_, b))| a != b)
            .map(|((p, a), (_, b))| (p.clone(), a.clone(), b.clone()))
            .expect("the last flush changed a segment");
        let first_diff = (0..new.len()).find(|&i| old[i] != new[i]).unwrap();
        let last_diff = (0..new.len()).rev().find(|&i| old[i] != new[i]).unwrap();
        let flush_start = first_diff / 4096 * 4096;
        let records = [(flush_start, 32 + 1500), (flush_start + 1536, 32 + 700)];
        // Every offset where the persisted prefix ends, from nothing of the
        // flush to all of it; the io_uring path at every byte, the others
        // sampled (same recovery code, other I/O).
        let step = if matches!(path, IoPath::UringDirect) { 1 } else { 13 };
        let mut cases = 0;
        for cut in (flush_start..=last_diff + 1).step_by(step) {
            // Every case starts from the files as the crash left them: a
            // recovery that cut a tail activated a new segment since.
            for p in common::segment_files(dir.path()) {
                std::fs::remove_file(p).unwrap();
            }
            for (p, bytes) in &after {
                std::fs::write(p, bytes).unwrap();
            }
            let mut torn = new[..cut].to_vec();
            torn.extend_from_slice(&old[cut..]);
            std::fs::write(&seg, &torn).unwrap();
            let intact: Vec<bool> = records.iter().map(|&(s, l)| torn[s..s + l] == new[s..s + l]).collect();
            let expect_last = 20 + intact.iter().take_while(|&&ok| ok).count() as u64;
            let wal = Wal::open(options(dir.path(), path)).unwrap();
            let report = wal.recovery_report().clone();
            assert_eq!(wal.last_lsn(), expect_last, "{path:?} cut at {cut}: {report:?}");
            // Torn: the data ends inside the flush, or a record survived after
            // a lost one. If nothing of the first record persisted (and no
            // later one did), the data ends cleanly at the flush's start.
            let torn_expected = if intact[0] { cut <= last_diff } else { intact[1] };
            assert_eq!(report.torn_tail.is_some(), torn_expected, "{path:?} cut at {cut}: {report:?}");
            if let Some(t) = &report.torn_tail {
                assert_eq!(t.next_lsn, expect_last + 1);
                let later_intact = intact.iter().skip_while(|&&ok| ok).filter(|&&ok| ok).count() as u64;
                assert_eq!(t.records_dropped, later_intact, "{path:?} cut at {cut}");
            }
            // The log goes on from there, and survives another recovery.
            if cut % 97 == 0 || cut == last_diff + 1 {
                for lsn in expect_last + 1..=expect_last + 3 {
                    assert_eq!(wal.append(RecordType::Put, &payload(lsn, 10)).unwrap(), lsn);
                }
                drop(wal);
                let wal = Wal::open(options(dir.path(), path)).unwrap();
                assert_eq!(wal.last_lsn(), expect_last + 3);
                assert!(wal.recovery_report().torn_tail.is_none());
                assert_payloads(&wal, |l| if l > expect_last { 10 } else { len_of(l) });
            } else {
                assert_payloads(&wal, len_of);
            }
            cases += 1;
        }
        assert!(cases > 150, "{path:?}: {cases} cases");
    }
}

/// Appends `n` records one by one (one flush each: every record is its own
/// 4 KiB block) and closes.
fn write_singles(dir: &Path, n: u64, len: usize) {
    let wal = Wal::open(options(dir, IoPath::UringDirect)).unwrap();
    for lsn in 1..=n {
        wal.append(RecordType::Put, &payload(lsn, len)).unwrap();
    }
}

/// Stops `wal` as a crash would: the segment files keep what they held with
/// the log still open, without the sync marker a clean close writes.
fn crash(wal: Wal, dir: &Path) {
    let files = snapshot(dir);
    drop(wal);
    for p in common::segment_files(dir) {
        std::fs::remove_file(p).unwrap();
    }
    for (p, bytes) in files {
        std::fs::write(p, bytes).unwrap();
    }
}

/// Segment id and byte offset of LSN `lsn` in a log of single-record flushes
/// with 128 KiB segments: 31 records per segment.
fn locate_single(lsn: u64) -> (u64, u64) {
    let per_segment = (128 * 1024 - 4096) / 4096;
    (1 + (lsn - 1) / per_segment, 4096 + ((lsn - 1) % per_segment) * 4096)
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_mid_log_is_reported_with_segment_offset_and_lsn() {
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        write_singles(dir.path(), 200, 500);
        let (seg, offset) = locate_single(40);
        assert_eq!(seg, 2);
        let file = segment_path(dir.path(), seg);
        flip(&file, offset + 32 + 250);
        let before = snapshot(dir.path());
        match Wal::open(options(dir.path(), path)) {
            Err(Error::Corruption { segment, path: p, offset: o, lsn, detail }) => {
                assert_eq!((segment, o, lsn, p), (seg, offset, 40, file.clone()), "{detail}");
                assert!(detail.contains("synced"), "{detail}");
                // The proof is the close's sync marker: no record, and no LSN
                // past the log's last, is cited.
                assert!(detail.contains("sync marker") && !detail.contains("LSN 201"), "{detail}");
            }
            other => panic!("{path:?}: expected Corruption, got {other:?}"),
        }
        // Nothing was truncated or rewritten.
        assert_eq!(snapshot(dir.path()), before);
        // AbsoluteConsistency reports it the same way.
        let err = Wal::open(options(dir.path(), path).recovery(RecoveryMode::AbsoluteConsistency)).unwrap_err();
        assert!(matches!(err, Error::Corruption { lsn: 40, .. }), "{err}");
    }
}

#[test]
fn a_damaged_segment_header_mid_log_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 200, 500);
    flip(&segment_path(dir.path(), 3), 20);
    let err = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap_err();
    assert!(matches!(err, Error::Corruption { segment: 2, .. }), "{err}");
}

#[test]
fn damage_in_the_final_flush_after_a_crash_is_a_torn_tail_and_refused_under_absolute_consistency() {
    // After a crash the last flush has no later record or sync marker to
    // prove it was synced: it cannot be told from a write torn by the crash,
    // so it is truncated. (After a clean close or `sync()` it would be
    // corruption: tests/sync_marker.rs.)
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    for lsn in 1..=50 {
        wal.append(RecordType::Put, &payload(lsn, 500)).unwrap();
    }
    crash(wal, dir.path());
    let (seg, offset) = locate_single(50);
    flip(&segment_path(dir.path(), seg), offset + 40);
    let err =
        Wal::open(options(dir.path(), IoPath::UringDirect).recovery(RecoveryMode::AbsoluteConsistency)).unwrap_err();
    assert!(matches!(err, Error::TornTail { lsn: 50, .. }), "{err}");
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    assert_eq!(wal.last_lsn(), 49);
    assert_eq!(wal.recovery_report().torn_tail.as_ref().unwrap().next_lsn, 50);
    assert_eq!(wal.append(RecordType::Put, b"new 50").unwrap(), 50);
    drop(wal);
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    assert_eq!(read_all(&wal).last().unwrap(), &(50, b"new 50".to_vec()));
}

#[test]
fn damaged_padding_is_skipped_without_losing_records() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 100, 500);
    let (seg, offset) = locate_single(60);
    // Inside the padding of LSN 60's flush (its record is 32 + 500 bytes).
    flip(&segment_path(dir.path(), seg), offset + 1000);
    let err =
        Wal::open(options(dir.path(), IoPath::UringDirect).recovery(RecoveryMode::AbsoluteConsistency)).unwrap_err();
    assert!(matches!(err, Error::Corruption { lsn: 61, .. }), "{err}");
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    assert_eq!(wal.last_lsn(), 100);
    assert_eq!(wal.recovery_report().skipped_count, 1);
    assert_payloads(&wal, |_| 500);
}

/// A batch larger than one flush goes out as several flushes encoded before
/// any of them was synced: damage to the first with the others intact is a
/// torn tail (nothing after the damage can have been acknowledged).
#[test]
fn records_after_a_torn_flush_are_dropped_and_recovery_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |d: &Path| options(d, IoPath::UringDirect).flush_bytes_max(4096);
    let wal = Wal::open(opts(dir.path())).unwrap();
    for lsn in 1..=25 {
        wal.append(RecordType::Put, &payload(lsn, 500)).unwrap();
    }
    drop(wal);
    // The batch is written without syncs (and the crash below comes before
    // any), so every one
    // of its flushes is encoded before anything of it was synced. Under a
    // syncing mode that holds only for the flushes encoded before the first
    // of them completes (six buffers, and the roll into segment 2 waits for
    // its header's sync): whether the damage below was a torn tail or
    // corruption would depend on timing.
    let wal = Wal::open(opts(dir.path()).durability(Durability::None)).unwrap();
    // 12 records of 3000 bytes: one flush each, crossing into segment 2.
    let mut batch = Batch::new();
    for lsn in 26..=37 {
        batch.push(RecordType::Put, &payload(lsn, 3000)).unwrap();
    }
    assert_eq!(wal.append_batch(&mut batch).unwrap(), Some(26..=37));
    crash(wal, dir.path());
    // LSN 28 is in segment 1 (25 blocks of singles, the sync marker of the
    // first session's close, then 26, 27, 28).
    flip(&segment_path(dir.path(), 1), 4096 + 28 * 4096 + 32 + 10);
    let crash_copy = tempfile::tempdir().unwrap();
    for (p, bytes) in snapshot(dir.path()) {
        std::fs::write(crash_copy.path().join(p.file_name().unwrap()), bytes).unwrap();
    }
    let wal = Wal::open(opts(dir.path())).unwrap();
    let torn = wal.recovery_report().torn_tail.clone().expect("torn tail");
    assert_eq!((torn.segment, torn.next_lsn, torn.records_dropped), (1, 28, 9));
    assert!(torn.segments_removed >= 1);
    assert_eq!(wal.last_lsn(), 27);
    let first_result = read_all(&wal);
    drop(wal);
    // A crash during recovery, after it removed the later segments but
    // before it activated the new one: recovering again gives the same log.
    for removed in &wal_removed(&torn, crash_copy.path()) {
        std::fs::remove_file(removed).unwrap();
    }
    let wal = Wal::open(opts(crash_copy.path())).unwrap();
    assert_eq!(wal.last_lsn(), 27);
    assert_eq!(read_all(&wal), first_result);
    // And recovering the recovered log changes nothing.
    drop(wal);
    let wal = Wal::open(opts(dir.path())).unwrap();
    assert!(wal.recovery_report().torn_tail.is_none());
    assert_eq!(read_all(&wal), first_result);
    assert_eq!(wal.append(RecordType::Put, b"28 again").unwrap(), 28);
}

fn wal_removed(torn: &uring_wal::TornTail, dir: &Path) -> Vec<PathBuf> {
    (1..=torn.segments_removed as u64).map(|i| segment_path(dir, torn.segment + i)).collect()
}

#[test]
fn stale_records_of_a_recycled_segment_are_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(dir.path(), IoPath::UringDirect).spare_segments_max(4);
    let wal = Wal::open(opts()).unwrap();
    for lsn in 1..=200 {
        wal.append(RecordType::Put, &payload(lsn, 500)).unwrap();
    }
    // Retire segments full of valid (old) records; they become spares.
    assert!(wal.truncate_before(150).unwrap() >= 3);
    let first = wal.first_lsn();
    // Activate a recycled file and write just one record into it.
    let mut lsn = 201;
    let start_segments = wal.stats().segments_activated;
    while wal.stats().segments_activated < start_segments + 2 {
        wal.append(RecordType::Put, &payload(lsn, 500)).unwrap();
        lsn += 1;
    }
    let last = lsn - 1;
    drop(wal);
    let wal = Wal::open(opts()).unwrap();
    assert_eq!((wal.first_lsn(), wal.last_lsn()), (first, last));
    assert!(wal.recovery_report().torn_tail.is_none(), "{:?}", wal.recovery_report());
    assert_payloads(&wal, |_| 500);
}

#[test]
fn a_failed_write_poisons_the_log_and_nothing_after_it_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    plan.fail_write_after.store(50, std::sync::atomic::Ordering::SeqCst);
    let storage = Arc::new(FaultyStorage { inner: OsStorage, plan: plan.clone() });
    let wal = Wal::open_with_storage(options(dir.path(), IoPath::ThreadedDirect), storage).unwrap();
    assert_eq!(wal.backend().kind, uring_wal::BackendKind::Threaded);
    let mut acked = 0;
    let err = loop {
        match wal.append(RecordType::Put, &payload(acked + 1, 300)) {
            Ok(lsn) => {
                acked += 1;
                assert_eq!(lsn, acked);
            }
            Err(e) => break e,
        }
    };
    assert_eq!(acked, 50);
    match &err {
        Error::Poisoned(f) => {
            // A lone appender's flushes carry RWF_DSYNC on ext4 and xfs.
            assert!(["write", "write (RWF_DSYNC)"].contains(&f.op), "{f}");
            assert_eq!((f.lsn, f.error.raw_os_error()), (51, Some(libc::EIO)));
        }
        other => panic!("expected Poisoned, got {other:?}"),
    }
    // Refused at once from now on, even though the fault is gone.
    plan.fail_write_after.store(-1, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(wal.append(RecordType::Put, b"more"), Err(Error::Poisoned(_))));
    assert!(matches!(wal.submit(RecordType::Put, b"more"), Err(Error::Poisoned(_))));
    assert!(wal.poisoned().is_some());
    assert_eq!(wal.last_lsn(), 50);
    assert!(matches!(wal.close(), Err(Error::Poisoned(_))));
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    assert_eq!(wal.last_lsn(), 50);
    assert_payloads(&wal, |_| 300);
}

/// A log of `records` records of 3,000 bytes, written on the default path
/// and closed: the page-cache tests reopen it through a fault plan.
fn closed_log_of_3000_byte_records(records: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    for lsn in 1..=records {
        wal.append(RecordType::Put, &payload(lsn, 3000)).unwrap();
    }
    drop(wal);
    dir
}

#[test]
fn recovery_drops_what_the_page_cache_holds_of_a_file_before_reading_it() {
    // Recovery reads through the page cache. A clean cached page can be
    // older than the device (a buffered reader raced it in while a direct
    // write replaced its block); read from there, a record acknowledged on
    // the device would look like a torn tail and be cut.
    let dir = closed_log_of_3000_byte_records(200);
    let plan = FaultPlan::new();
    let storage = Arc::new(FaultyStorage { inner: OsStorage, plan: plan.clone() });
    let wal = Wal::open_with_storage(options(dir.path(), IoPath::ThreadedDirect), storage).unwrap();
    assert_eq!(wal.last_lsn(), 200);
    let reads = plan.reads.load(std::sync::atomic::Ordering::SeqCst);
    assert!(reads > 2, "recovery read the segments ({reads} reads)");
    assert_eq!(plan.reads_before_cache_drop.load(std::sync::atomic::Ordering::SeqCst), 0, "of {reads} reads");
    // Headers are read with O_DIRECT (they classify the files); records
    // through the cache, but for the newest segment's where the kernel
    // cannot say that none of it stayed cached.
    let segments = data_segments(dir.path());
    let newest = plan.direct_data_reads_of(segments.last().unwrap());
    let older: u64 = segments[..segments.len() - 1].iter().map(|p| plan.direct_data_reads_of(p)).sum();
    assert_eq!(older, 0, "older segments' records read through the cache");
    if common::recovery_trusts_an_emptied_cache(dir.path()) {
        assert_eq!(newest, 0, "nothing stayed cached, so the newest segment too is read through the cache");
    } else {
        eprintln!(
            "no trusted cache count here (no cachestat(2), or a file system without a page cache of its own): \
             checking that the newest segment is read with O_DIRECT instead"
        );
        assert!(newest > 0, "the end is confirmed with O_DIRECT");
    }
}

#[test]
fn an_empty_cache_count_is_not_trusted_on_a_file_system_that_may_read_through_another_cache() {
    // Overlayfs passes reads to the file below, whose pages cachestat on the
    // overlay file does not count: a zero proves nothing there, and the
    // newest segment is read with O_DIRECT whatever the count says.
    let dir = closed_log_of_3000_byte_records(50);
    let plan = FaultPlan::new();
    plan.distrust_rwf_dsync.store(true, std::sync::atomic::Ordering::SeqCst);
    let storage = Arc::new(FaultyStorage { inner: OsStorage, plan: plan.clone() });
    let wal = Wal::open_with_storage(options(dir.path(), IoPath::ThreadedDirect), storage).unwrap();
    assert_eq!(wal.last_lsn(), 50);
    // What the scans read through the cache is dropped all the same.
    for f in common::segment_files(dir.path()) {
        let cached = OsStorage.open_file(&f, OpenHow::read(false)).unwrap().cached_pages();
        assert!(matches!(cached, Some(0) | None), "{}: {cached:?} pages left cached", f.display());
    }
    let segments = data_segments(dir.path());
    assert!(plan.direct_data_reads_of(segments.last().unwrap()) > 0, "the newest segment read with O_DIRECT");
    assert!(
        segments[..segments.len() - 1].iter().all(|p| plan.direct_data_reads_of(p) == 0),
        "the rest read through the cache"
    );
}

#[test]
fn a_stale_page_cache_cannot_move_the_end_of_the_log() {
    // The page cache holds pages of the last segment older than the device
    // (zeros where the last record and the close's sync marker are), and
    // no drop removes them. Read through the cache alone, the log would end
    // one record early and the next append would overwrite an acknowledged
    // record; the newest segment is read with O_DIRECT, because the kernel
    // (here the fault plan) reports pages of it still cached after the drop.
    let dir = closed_log_of_3000_byte_records(200);
    // The last file holding data past its header block; spares are zeros.
    let (last, data_end) = common::segment_files(dir.path())
        .into_iter()
        .filter_map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let end = bytes.iter().rposition(|&b| b != 0).filter(|&i| i >= 4096)?;
            Some((p, end as u64 + 1))
        })
        .next_back()
        .unwrap();
    let stale_from = (data_end - 1) / 4096 * 4096 - 4096;
    let plan = FaultPlan::new();
    *plan.stale_cache_from.lock().unwrap() = Some((last.clone(), stale_from));
    let storage = Arc::new(FaultyStorage { inner: OsStorage, plan: plan.clone() });
    let wal = Wal::open_with_storage(options(dir.path(), IoPath::ThreadedDirect), storage).unwrap();
    assert_eq!(wal.last_lsn(), 200, "the log ends where the device says, not the stale cache");
    assert!(
        plan.direct_reads.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the stale segment was read with O_DIRECT"
    );
    wal.append(RecordType::Put, &payload(201, 3000)).unwrap();
    drop(wal);
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    assert_eq!(wal.last_lsn(), 201);
    assert_payloads(&wal, |_| 3000);
}

#[test]
fn short_writes_and_eintr_are_retried_to_completion() {
    // Buffered: a short O_DIRECT write would leave the rest misaligned.
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    plan.short_writes.store(true, std::sync::atomic::Ordering::SeqCst);
    let storage = Arc::new(FaultyStorage { inner: OsStorage, plan: plan.clone() });
    let wal = Wal::open_with_storage(options(dir.path(), IoPath::Buffered), storage).unwrap();
    for lsn in 1..=100 {
        assert_eq!(wal.append(RecordType::Put, &payload(lsn, 700)).unwrap(), lsn);
    }
    assert!(plan.write_attempts.load(std::sync::atomic::Ordering::SeqCst) > 300, "writes were split and retried");
    drop(wal);
    let wal = Wal::open(options(dir.path(), IoPath::Buffered)).unwrap();
    assert_eq!(wal.last_lsn(), 100);
    assert_payloads(&wal, |_| 700);
}

#[test]
fn a_failed_sync_poisons_the_log_and_is_never_retried() {
    for threads in [1u64, 8] {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        plan.fail_sync_after.store(40, std::sync::atomic::Ordering::SeqCst);
        plan.distrust_rwf_dsync.store(true, std::sync::atomic::Ordering::SeqCst);
        let storage = Arc::new(FaultyStorage { inner: OsStorage, plan: plan.clone() });
        let wal = Arc::new(Wal::open_with_storage(options(dir.path(), IoPath::ThreadedDirect), storage).unwrap());
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut failed_at = None;
                    for i in 0..200u64 {
                        let body = ((t << 32) | i).to_le_bytes();
                        match wal.append(RecordType::Put, &body) {
                            Ok(lsn) => {
                                assert!(failed_at.is_none(), "acknowledged after a failure");
                                acked.push((lsn, body.to_vec()));
                            }
                            Err(Error::Poisoned(f)) => {
                                assert_eq!(f.op, "fdatasync");
                                failed_at.get_or_insert(i);
                            }
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                    assert!(failed_at.is_some());
                    acked
                })
            })
            .collect();
        let acked: Vec<_> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        let max_acked = acked.iter().map(|(l, _)| *l).max().unwrap_or(0);
        assert_eq!(wal.last_lsn(), max_acked);
        drop(wal);
        let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
        assert!(wal.last_lsn() >= max_acked);
        let log: std::collections::HashMap<u64, Vec<u8>> = read_all(&wal).into_iter().collect();
        for (lsn, body) in acked {
            assert_eq!(log.get(&lsn), Some(&body), "acknowledged LSN {lsn} recovered");
        }
    }
}

#[test]
fn bad_files_get_clear_errors_or_documented_repairs() {
    // A symlink planted at a segment's name.
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 10, 100);
    std::os::unix::fs::symlink("/etc/passwd", segment_path(dir.path(), 7)).unwrap();
    let err = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap_err();
    assert!(matches!(&err, Error::UnexpectedFile { path, .. } if path.ends_with("00000000000000000007.wal")), "{err}");
    std::fs::remove_file(segment_path(dir.path(), 7)).unwrap();

    // A zero-length file and a garbage file named like segments after the
    // log: the log did not write them; they are the user's. Opening is
    // refused, naming each, and nothing is touched.
    let newest =
        common::segment_files(dir.path()).iter().filter(|p| std::fs::read(p).unwrap().starts_with(b"URINGWAL")).count()
            as u64;
    let mut garbage = vec![0u8; 128 * 1024];
    let mut rng = common::Rng(99);
    for b in garbage.iter_mut() {
        *b = rng.next() as u8;
    }
    for (id, bytes) in [(newest + 3, &b""[..]), (newest + 4, &garbage[..])] {
        std::fs::write(segment_path(dir.path(), id), bytes).unwrap();
        let err = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap_err();
        assert!(matches!(&err, Error::UnexpectedFile { path, .. } if *path == segment_path(dir.path(), id)), "{err}");
        assert!(err.to_string().contains("move it out"), "{err}");
        assert_eq!(std::fs::read(segment_path(dir.path(), id)).unwrap(), bytes, "the user's file was changed");
        std::fs::rename(segment_path(dir.path(), id), dir.path().join(format!("moved-{id}"))).unwrap();
    }
    // What a torn activation leaves (a prepared file right after the newest
    // segment, its header garbage, no record) is the log's own: removed.
    let torn = segment_path(dir.path(), newest + 1);
    std::fs::write(&torn, &garbage).unwrap();
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    assert_eq!(wal.last_lsn(), 10);
    assert!(wal.recovery_report().removed_files.contains(&torn), "{:?}", wal.recovery_report());
    assert_payloads(&wal, |_| 100);
    drop(wal);

    // Leftovers of an interrupted preparation are removed.
    std::fs::write(dir.path().join("00000000000000000009.wal.tmp"), b"half").unwrap();
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    assert!(!dir.path().join("00000000000000000009.wal.tmp").exists());
    drop(wal);

    // A segment of another format version.
    let seg1 = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&seg1).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    let original = std::fs::read(&seg1).unwrap();
    std::fs::write(&seg1, &bytes).unwrap();
    let err = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap_err();
    assert!(matches!(err, Error::UnsupportedVersion { found: 3, supported: 2, .. }), "{err}");
    assert!(err.to_string().contains("reads versions 1 to 2"), "{err}");
    std::fs::write(&seg1, &original).unwrap();

    // Hostile length fields right after the data, claiming this segment's id.
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    let last = wal.last_lsn();
    drop(wal);
    let tail = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&tail).unwrap();
    let end = 4096 + last as usize * 4096;
    for (i, len) in [u32::MAX, 1 << 30, 64 << 20, 16 * 1024 + 1].into_iter().enumerate() {
        let at = end + i * 64;
        bytes[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
        bytes[at + 8..at + 16].copy_from_slice(&(last + 1).to_le_bytes());
        bytes[at + 16..at + 24].copy_from_slice(&1u64.to_le_bytes());
        bytes[at + 24..at + 26].copy_from_slice(&1u16.to_le_bytes());
    }
    std::fs::write(&tail, &bytes).unwrap();
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    assert_eq!(wal.last_lsn(), last);
    assert_payloads(&wal, |l| if l <= 10 { 100 } else { 0 });
}

/// The segment files of a closed log that hold records (past their header
/// block), oldest first; spares are zeros.
fn data_segments(dir: &Path) -> Vec<PathBuf> {
    common::segment_files(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().iter().skip(4096).any(|&b| b != 0))
        .collect()
}

/// Reopens `dir` with the page cache serving zeros for all of `stale`
/// (headers included) to buffered reads, as a page older than the device
/// that no drop removes would; the log must come back whole.
fn reopen_over_a_stale_file(dir: &Path, stale: PathBuf, records: u64) {
    let plan = FaultPlan::new();
    *plan.stale_cache_from.lock().unwrap() = Some((stale.clone(), 0));
    let storage = Arc::new(FaultyStorage { inner: OsStorage, plan: plan.clone() });
    let wal = Wal::open_with_storage(options(dir, IoPath::ThreadedDirect), storage).unwrap();
    let report = wal.recovery_report().clone();
    assert_eq!(
        (wal.first_lsn(), wal.last_lsn()),
        (1, records),
        "{}: the stale cache moved the log's ends: {report:?}",
        stale.display()
    );
    assert!(report.removed_files.is_empty(), "files removed over a stale cache: {:?}", report.removed_files);
    // The next records go after the last one, not over it.
    wal.append(RecordType::Put, &payload(records + 1, 3000)).unwrap();
    drop(wal);
    let wal = Wal::open(options(dir, IoPath::UringDirect)).unwrap();
    assert_eq!((wal.first_lsn(), wal.last_lsn()), (1, records + 1));
    assert_payloads(&wal, |_| 3000);
}

#[test]
fn a_stale_cached_header_cannot_make_the_newest_segment_a_spare() {
    // Classified from a header read through the cache, the newest segment
    // would be a zero-headed spare: the log would end one segment early and
    // the spare be reused over acknowledged records.
    let dir = closed_log_of_3000_byte_records(200);
    let segments = data_segments(dir.path());
    assert!(segments.len() >= 3, "{segments:?}");
    reopen_over_a_stale_file(dir.path(), segments.last().unwrap().clone(), 200);
}

#[test]
fn a_stale_cached_header_cannot_make_the_oldest_segment_go() {
    // A zero header before the first live segment reads as a spare left
    // from an older life: it would be removed with every record in it.
    let dir = closed_log_of_3000_byte_records(200);
    let segments = data_segments(dir.path());
    reopen_over_a_stale_file(dir.path(), segments[0].clone(), 200);
}
