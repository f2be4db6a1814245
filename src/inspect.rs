//! Looking into a log directory without opening the log: its segments, its
//! records, what recovery would do, and repair. What an admin tool needs.
//!
//! Every function but [`segments_while_written`] takes the directory's lock,
//! so it never looks at a log while a writer is running (stop the writer
//! first; [`Error::Locked`] says who holds it). Nothing but [`repair`]
//! changes anything.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::walk::{Step, Walker};
use crate::format::{RecordType, data_offset};
use crate::lock::HeldDir;
use crate::options::{Options, RecoveryMode};
use crate::recovery::{self, RecoverConfig, RecoveryReport, SegFile, State};
use crate::storage::{OsStorage, Storage};

/// What a segment file's header says.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentState {
    /// Part of the log.
    Live {
        /// First LSN the header declares.
        first_lsn: u64,
        /// Padding unit.
        block_bytes: u32,
        /// Largest payload accepted in the segment.
        record_bytes_max: u32,
        /// Where the header says the previous segment's data ends.
        prev_data_end: u64,
    },
    /// Prepared or recycled, holding no record of its own life.
    Spare,
    /// Unreadable header; holds records of its own life.
    Damaged(String),
    /// Unreadable header and no records of its own life (recovery removes it).
    Leftover,
}

/// One segment file.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Segment id (from the file name).
    pub id: u64,
    /// The file.
    pub path: PathBuf,
    /// File size.
    pub size_bytes: u64,
    /// What the header says.
    pub state: SegmentState,
    /// Valid records found walking it from its first LSN (live segments).
    pub records: u64,
    /// LSN of the last of them.
    pub last_lsn: Option<u64>,
    /// Where its data ends (the first position that is not a valid record).
    pub data_end: Option<u64>,
}

/// One thing found walking a segment.
#[non_exhaustive]
#[derive(Debug)]
pub enum DumpItem<'a> {
    /// A record whose checksum matched.
    Record {
        /// Segment id.
        segment: u64,
        /// Byte offset.
        offset: u64,
        /// LSN.
        lsn: u64,
        /// Type.
        kind: RecordType,
        /// Payload.
        payload: &'a [u8],
    },
    /// Damaged bytes that held no record (the next record has the expected LSN).
    Damaged {
        /// Segment id.
        segment: u64,
        /// First damaged byte.
        from: u64,
        /// First byte of the next valid record.
        to: u64,
    },
    /// The expected LSN is missing at `at`; the walk goes on from the next
    /// valid record.
    Missing {
        /// Segment id.
        segment: u64,
        /// Where the record should be.
        at: u64,
        /// The missing LSN.
        lsn: u64,
        /// The next valid record's offset and LSN.
        next_offset: u64,
        /// Its LSN.
        next_lsn: u64,
    },
    /// The segment's data ends.
    End {
        /// Segment id.
        segment: u64,
        /// First byte after the data.
        at: u64,
    },
}

fn config(dir: &Path, mode: RecoveryMode, storage: Arc<dyn Storage>) -> RecoverConfig {
    RecoverConfig {
        storage,
        dir: dir.to_path_buf(),
        direct: false,
        confirm_direct: false,
        cache_counted: false,
        mode,
        segment_bytes: 0,
    }
}

/// Takes the directory's lock for an inspection (waiting, as opening does,
/// only for a holder that has exited).
fn lock(storage: &dyn Storage, dir: &Path) -> Result<HeldDir> {
    if !dir.is_dir() && storage.list_dir(dir).is_err() {
        return Err(Error::io("open log directory", dir, std::io::ErrorKind::NotFound.into()));
    }
    crate::lock::lock(storage, dir, Options::new(dir).lock_wait)
}

fn walk_segment(f: &SegFile, mut visit: impl FnMut(DumpItem<'_>) -> bool) -> Result<(u64, Option<u64>, Option<u64>)> {
    let State::Live(h) = f.state else { return Ok((0, None, None)) };
    let limits = f.limits();
    let mut src = f.scan();
    let mut walker = Walker::new(f.id, data_offset(h.block_bytes), h.first_lsn, limits);
    let (mut records, mut last) = (0u64, None);
    // Every step either advances or ends, and a segment holds at most this
    // many records: a hard bound on the loop whatever the bytes are.
    for _ in 0..=limits.segment_bytes / 8 + 1 {
        let step = walker.next(&mut src).map_err(|e| Error::io("read segment", &f.path, e))?;
        let go_on = match step {
            Step::Record { offset, header, payload } => {
                records += 1;
                last = Some(header.lsn);
                #[expect(
                    clippy::expect_used,
                    reason = "the walker yields only records whose fields check_fields accepted, known type codes included"
                )]
                let kind = RecordType::from_raw(header.kind).expect("validated record type");
                visit(DumpItem::Record { segment: f.id, offset, lsn: header.lsn, kind, payload })
            }
            Step::Skipped { from, to } => visit(DumpItem::Damaged { segment: f.id, from, to }),
            Step::Break { at, found_offset, found } => {
                let go_on = visit(DumpItem::Missing {
                    segment: f.id,
                    at,
                    lsn: walker.expected(),
                    next_offset: found_offset,
                    next_lsn: found.lsn,
                });
                walker = Walker::new(f.id, found_offset, found.lsn, limits);
                go_on
            }
            Step::End { at } => {
                visit(DumpItem::End { segment: f.id, at });
                return Ok((records, last, Some(at)));
            }
        };
        if !go_on {
            break;
        }
    }
    Ok((records, last, None))
}

fn info_of(f: &SegFile, records: u64, last_lsn: Option<u64>, data_end: Option<u64>) -> SegmentInfo {
    let state = match &f.state {
        State::Live(h) => SegmentState::Live {
            first_lsn: h.first_lsn,
            block_bytes: h.block_bytes,
            record_bytes_max: h.record_bytes_max,
            prev_data_end: h.prev_data_end,
        },
        State::Spare => SegmentState::Spare,
        State::Damaged(why) => SegmentState::Damaged((*why).to_owned()),
        State::Junk(_) => SegmentState::Leftover,
    };
    SegmentInfo { id: f.id, path: f.path.clone(), size_bytes: f.len, state, records, last_lsn, data_end }
}

/// Every segment file of `dir`, oldest first, with what its header says and
/// (for live segments) its records.
pub fn segments(dir: &Path) -> Result<Vec<SegmentInfo>> {
    let storage: Arc<dyn Storage> = Arc::new(OsStorage);
    let _lock = lock(storage.as_ref(), dir)?;
    let cfg = config(dir, RecoveryMode::TolerateTornTail, storage);
    survey_segments(&cfg)
}

/// The segment files `cfg` finds, each with its records walked.
fn survey_segments(cfg: &RecoverConfig) -> Result<Vec<SegmentInfo>> {
    let (files, _) = recovery::survey(cfg, &mut RecoveryReport::default())?;
    files
        .iter()
        .map(|f| {
            let (records, last, end) = walk_segment(f, |_| true)?;
            Ok(info_of(f, records, last, end))
        })
        .collect()
}

/// Like [`segments`], but without the lock: a look at a log while its writer
/// runs. It changes nothing and reads with `O_DIRECT` where the file system
/// takes it, so the writer's files are not brought into the page cache. The
/// newest segment may be mid-write: its figures are those of the moment it
/// was read (what was written by then, acknowledged or not). A segment
/// retired while it is read is looked for again (three times at most).
pub fn segments_while_written(dir: &Path) -> Result<Vec<SegmentInfo>> {
    let storage: Arc<dyn Storage> = Arc::new(OsStorage);
    let mut direct = true;
    let mut tries = 0;
    loop {
        let cfg = RecoverConfig { direct, ..config(dir, RecoveryMode::TolerateTornTail, storage.clone()) };
        let looked = survey_segments(&cfg);
        match looked {
            Err(Error::Io { source, .. }) if direct && source.raw_os_error() == Some(libc::EINVAL) => direct = false,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
            other => return other,
        }
    }
}

/// Walks every live segment of `dir` from `from_lsn` on, calling `visit` for
/// each record, damaged range, missing record and segment end; `visit`
/// returns false to stop.
pub fn dump(dir: &Path, from_lsn: u64, mut visit: impl FnMut(DumpItem<'_>) -> bool) -> Result<()> {
    let storage: Arc<dyn Storage> = Arc::new(OsStorage);
    let _lock = lock(storage.as_ref(), dir)?;
    let cfg = config(dir, RecoveryMode::TolerateTornTail, storage);
    let (files, _) = recovery::survey(&cfg, &mut RecoveryReport::default())?;
    let mut stopped = false;
    for f in &files {
        walk_segment(f, |item| {
            let wanted = !matches!(&item, DumpItem::Record { lsn, .. } if *lsn < from_lsn);
            if wanted && !visit(item) {
                stopped = true;
                return false;
            }
            true
        })?;
        if stopped {
            break;
        }
    }
    Ok(())
}

/// What opening the log in `dir` under `mode` would find, changing nothing:
/// the report (a torn tail it would cut included), or the error opening
/// would fail with (corruption with its location).
pub fn verify(dir: &Path, mode: RecoveryMode) -> Result<RecoveryReport> {
    let storage: Arc<dyn Storage> = Arc::new(OsStorage);
    let _lock = lock(storage.as_ref(), dir)?;
    Ok(recovery::recover(&config(dir, mode, storage))?.report)
}

/// What [`repair`] did.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct RepairReport {
    /// What recovery found.
    pub report: RecoveryReport,
    /// Files copied into the backup directory before anything changed.
    pub backed_up: Vec<PathBuf>,
}

/// Cuts a torn tail (or, with `force`, everything from the first damage,
/// corruption included) the way opening the log would, after copying every
/// segment file it cuts or removes into `backup` (a new or empty directory).
/// Without `force`, refuses a log with mid-log corruption. Reopening with
/// the same options afterwards finds a clean log.
pub fn repair(dir: &Path, backup: &Path, force: bool) -> Result<RepairReport> {
    repair_with(Arc::new(OsStorage), dir, backup, force)
}

fn repair_with(storage: Arc<dyn Storage>, dir: &Path, backup: &Path, force: bool) -> Result<RepairReport> {
    let mode = if force { RecoveryMode::PointInTime } else { RecoveryMode::TolerateTornTail };
    // Held from the scan until the log is closed again: what was scanned is
    // what is backed up and what is cut.
    let held = lock(storage.as_ref(), dir)?;
    let recovered = recovery::recover(&config(dir, mode, storage.clone()))?;
    let mut affected: Vec<PathBuf> = recovered.remove.clone();
    if let Some(t) = &recovered.report.torn_tail {
        affected.push(crate::segment::names::segment_path(dir, t.segment));
    }
    affected.sort();
    affected.dedup();
    let mut backed_up = Vec::new();
    if !affected.is_empty() {
        storage.create_dir_all(backup).map_err(|e| Error::io("create backup directory", backup, e))?;
        for src in &affected {
            let Some(name) = src.file_name() else { continue };
            let dst = backup.join(name);
            if dst.exists() {
                return Err(Error::UnexpectedFile {
                    path: dst,
                    detail: "already exists in the backup directory; use an empty one".into(),
                });
            }
            std::fs::copy(src, &dst).map_err(|e| Error::io("back up", src, e))?;
            std::fs::File::open(&dst).and_then(|f| f.sync_all()).map_err(|e| Error::io("fsync backup", &dst, e))?;
            backed_up.push(dst);
        }
        storage.sync_dir(backup).map_err(|e| Error::io("fsync directory", backup, e))?;
    }
    // Opening applies exactly what the scan found (recovery is
    // deterministic), then closes cleanly.
    let (segment_bytes, record_bytes_max) =
        recovered.live.last().map_or((64 << 20, 1 << 20), |s| (s.segment_bytes, s.record_bytes_max.max(1024)));
    let options = Options::new(dir)
        .recovery(mode)
        .segment_bytes(segment_bytes)
        .record_bytes_max(record_bytes_max.min(crate::format::RECORD_PAYLOAD_BYTES_LIMIT))
        .create_if_missing(false);
    let wal = crate::Wal::open_locked(options, storage, held)?;
    let report = wal.recovery_report().clone();
    wal.close()?;
    if report.last_lsn != recovered.report.last_lsn || report.torn_tail != recovered.report.torn_tail {
        return Err(Error::io(
            "repair",
            dir,
            std::io::Error::other(format!(
                "the log changed between the scan and the repair (last LSN {} then {})",
                recovered.report.last_lsn, report.last_lsn
            )),
        ));
    }
    Ok(RepairReport { report, backed_up })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::storage::{DeviceFacts, DirEntry, DirLock, OpenHow, StorageFile};
    use crate::{RecordType, Wal};

    /// The real file system, checking that every operation but taking the
    /// lock happens while the directory's lock is held.
    #[derive(Debug, Default)]
    struct MustHoldLock {
        held: Arc<AtomicUsize>,
        violated: AtomicBool,
    }

    #[derive(Debug)]
    struct Held(Box<dyn DirLock>, Arc<AtomicUsize>);

    impl DirLock for Held {
        fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
            self.0.raw_fd()
        }
    }

    impl Drop for Held {
        fn drop(&mut self) {
            self.1.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl MustHoldLock {
        fn check(&self) {
            if self.held.load(Ordering::SeqCst) == 0 {
                self.violated.store(true, Ordering::SeqCst);
            }
        }
    }

    impl Storage for MustHoldLock {
        fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
            self.check();
            OsStorage.create_dir_all(dir)
        }
        fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<DirEntry>> {
            OsStorage.list_dir(dir)
        }
        fn open_file(&self, path: &Path, how: OpenHow) -> std::io::Result<Arc<dyn StorageFile>> {
            self.check();
            OsStorage.open_file(path, how)
        }
        fn rename_no_replace(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            self.check();
            OsStorage.rename_no_replace(from, to)
        }
        fn remove_file(&self, path: &Path) -> std::io::Result<()> {
            self.check();
            OsStorage.remove_file(path)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            self.check();
            OsStorage.sync_dir(dir)
        }
        fn lock(&self, path: &Path) -> std::result::Result<Box<dyn DirLock>, (std::io::Error, Option<u32>)> {
            let lock = OsStorage.lock(path)?;
            self.held.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(Held(lock, self.held.clone())))
        }
        fn device_facts(&self, file: &Path) -> DeviceFacts {
            OsStorage.device_facts(file)
        }
    }

    #[test]
    fn repair_holds_the_lock_from_its_scan_to_its_end() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let options = || Options::new(&dir).segment_bytes(256 * 1024).record_bytes_max(4096);
        let wal = Wal::open(options()).unwrap();
        for i in 0..50u32 {
            wal.append(RecordType::Put, &[i as u8; 1000]).unwrap();
        }
        // A crash: the files as they are, without the close's marker.
        let staged = tmp.path().join("staged");
        std::fs::create_dir(&staged).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), staged.join(e.file_name())).unwrap();
        }
        drop(wal);
        // Tear the last flush's padding so there is something to repair.
        let seg = staged.join("00000000000000000001.wal");
        let mut bytes = std::fs::read(&seg).unwrap();
        let last = bytes.windows(1000).rposition(|w| w == [49u8; 1000]).unwrap();
        bytes[last + 1000..last + 1100].fill(0xEE);
        std::fs::write(&seg, bytes).unwrap();

        let storage = Arc::new(MustHoldLock::default());
        let report = repair_with(storage.clone(), &staged, &tmp.path().join("backup"), false).unwrap();
        assert!(report.report.torn_tail.is_some(), "{report:?}");
        assert_eq!(storage.held.load(Ordering::SeqCst), 0, "released at the end");
        assert!(!storage.violated.load(Ordering::SeqCst), "repair worked on the directory without holding its lock");
    }
}
