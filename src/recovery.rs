//! Recovery on open: find where the durable log ends, and why.
//!
//! 1. Classify every segment file by its header: *live* (a valid header of
//!    the life its name says), *spare* (zero header, or a header of an older
//!    life: a prepared or recycled file, which never holds records of its own
//!    life because headers are synced before records), or *damaged*.
//! 2. Walk the live segments from the oldest, checking every record's
//!    checksum and that LSNs follow each other without a gap. A segment hands
//!    over to the next when the next one's header certifies where its data
//!    ends and which LSN comes next.
//! 3. Where the chain breaks, look at every record of a current life that
//!    survived after the break. Each carries the LSN that was synced when it
//!    was encoded. If one proves the missing LSN had been synced, the damage is
//!    *corruption* and opening fails with its location. Otherwise it is a
//!    *torn tail*: the writes in flight at a crash, none of them acknowledged.
//! 4. A torn tail is cut off without rewriting a byte of the surviving data:
//!    later segments are removed and a new segment whose header certifies the
//!    end is activated (by the caller) before anything is appended. Running
//!    recovery again on the same files, or after a crash part-way through
//!    this, reaches the same answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::segment::HeaderState;
use crate::format::walk::{self, Evidence, Limits, Step, Walker};
use crate::format::{
    self, BLOCK_BYTES_MAX, BLOCK_BYTES_MIN, FORMAT_VERSION, RECORD_PAYLOAD_BYTES_LIMIT, SegmentHeader, align_down,
    data_offset,
};
use crate::options::RecoveryMode;
use crate::reader::source::{FileSource, window_bytes};
use crate::segment::SegmentMeta;
use crate::segment::index::SegmentIndex;
use crate::segment::names::{self, Name};
use crate::segment::prepare::Spares;
use crate::storage::{AlignedBuf, EntryKind, OpenHow, Storage, StorageFile, read_full_at};

/// At most this many skipped ranges are listed in a report (all are counted).
const SKIPPED_LISTED_MAX: usize = 64;

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Live segments.
    pub segments: usize,
    /// Records in the recovered log.
    pub records: u64,
    /// Bytes read from segment files.
    pub bytes_read: u64,
    /// First LSN of the log (the next LSN when the log is empty).
    pub first_lsn: u64,
    /// Last LSN of the log; 0 when it is empty.
    pub last_lsn: u64,
    /// The torn tail that was cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// Damaged bytes that held no record (damaged padding), skipped.
    pub skipped: Vec<SkippedBytes>,
    /// Number of skipped ranges, including those not listed.
    pub skipped_count: usize,
    /// Files removed: unfinished preparations, torn segments, unusable spares.
    pub removed_files: Vec<PathBuf>,
    /// Entries in the directory whose names are not ours (left alone).
    pub ignored_entries: usize,
    /// Wall time of the scan.
    pub duration: Duration,
}

/// A torn tail cut off by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// Segment where the valid data ends.
    pub segment: u64,
    /// Offset where it ends.
    pub offset: u64,
    /// The LSN the next append gets.
    pub next_lsn: u64,
    /// Valid records of the torn window dropped because of a gap before them.
    pub records_dropped: u64,
    /// Later segment files removed.
    pub segments_removed: usize,
}

/// A range of damaged bytes that held no record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedBytes {
    /// Segment id.
    pub segment: u64,
    /// First damaged byte.
    pub from: u64,
    /// First byte of the next valid record.
    pub to: u64,
}

/// What recovery needs.
#[derive(Clone, Debug)]
pub(crate) struct RecoverConfig {
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    /// Whether the scan that confirms a torn tail reads with O_DIRECT (the
    /// log's own choice). The first scan always reads through the page
    /// cache, for its read-ahead; what is cut must not rest on the page
    /// cache alone, where a stale page that the drop could not remove
    /// (locked or mapped) would make both scans agree on a false tear.
    pub direct: bool,
    /// Whether a scan through the page cache reads the newest live segment
    /// with O_DIRECT all the same: where the log ends cleanly, appends
    /// continue over whatever the device holds there, so that end must not
    /// rest on a cached page older than the device (one `drop_cached` could
    /// not drop because it was locked or mapped), which would show zeros
    /// where acknowledged records are. A stale page in an older segment
    /// breaks the chain instead, and a torn tail is confirmed by a whole
    /// second scan with O_DIRECT. Set by [`recover`] for its first scan
    /// where the log uses O_DIRECT. Where the kernel reports that none of
    /// the segment is cached after the drop, no page can be stale, and the
    /// scan reads it through the cache like the others.
    pub confirm_direct: bool,
    /// Whether the file system's files are read through a page cache of
    /// their own, the one `cachestat` counts
    /// ([`crate::storage::DeviceFacts::has_own_page_cache`]); only then may
    /// a count of zero let the newest segment be read through the cache.
    pub cache_counted: bool,
    pub mode: RecoveryMode,
    /// Size of new segments; spares of another size are removed (0, for an
    /// inspection: the size of the newest live segment).
    pub segment_bytes: u64,
}

/// Where appends continue.
#[derive(Clone, Debug)]
pub(crate) enum Continue {
    /// In the newest live segment, at this offset.
    InSegment { meta: SegmentMeta, write_pos: u64 },
    /// In a new segment the caller activates before anything is appended.
    NewSegment { id: u64, prev_data_end: u64 },
}

/// The outcome of recovery.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub report: RecoveryReport,
    pub live: Vec<SegmentMeta>,
    pub next_lsn: u64,
    pub continue_at: Continue,
    pub spares: Spares,
    /// Files to remove (and the directory to sync) before appending.
    pub remove: Vec<PathBuf>,
}

#[derive(Debug)]
pub(crate) enum State {
    /// A valid header of the life the name says.
    Live(SegmentHeader),
    /// Zero header, or a header of an older life: prepared or recycled.
    Spare,
    /// Unreadable header, but records of the life the name says: a segment
    /// whose header was damaged after it was synced.
    Damaged(&'static str),
    /// Unreadable header and no record of its life. Removed where it is what
    /// a torn activation leaves ([`check_torn_activation`]); otherwise the
    /// log did not write it and refuses to open.
    Junk(&'static str),
}

#[derive(Debug)]
pub(crate) struct SegFile {
    pub id: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    pub len: u64,
    pub state: State,
}

impl SegFile {
    fn is_live(&self) -> bool {
        matches!(self.state, State::Live(_))
    }

    /// A source for one pass over the file under its limits.
    pub(crate) fn scan(&self) -> FileSource {
        self.scan_with(&self.file)
    }

    /// A source for one pass over `file`, this segment opened one way or
    /// another: a page-cache scan, or plain reads where it is O_DIRECT.
    fn scan_with(&self, file: &Arc<dyn StorageFile>) -> FileSource {
        let limits = self.limits();
        let window = window_bytes(limits.payload_len_max);
        if file.is_direct() {
            FileSource::new(file.clone(), limits.segment_bytes, window)
        } else {
            FileSource::scan(file.clone(), limits.segment_bytes, window)
        }
    }

    /// Drops what the page cache holds of the file and tells whether the
    /// kernel reports none of it left. Then every page a read brings in
    /// comes from the device at that moment, and nothing writes the file
    /// while recovery holds the log's lock, so a read through the cache
    /// returns what the device holds, as O_DIRECT would, only with the
    /// kernel's read-ahead. `false` where a page stayed (locked, mapped)
    /// or the kernel cannot say. The drop happens either way: what reading
    /// the header left cached goes, whichever way the file is read next.
    fn cache_emptied(&self) -> bool {
        self.file.drop_cached(0, 0);
        self.file.cached_pages() == Some(0)
    }

    /// Whether records of this file's own life may be in it.
    fn may_hold_records(&self) -> bool {
        matches!(self.state, State::Live(_) | State::Damaged(_))
    }

    /// Limits to read this file under: its header's, or the format's own for
    /// a file whose header is unreadable or of another life. Never today's
    /// options: a log written with larger records, reopened with a smaller
    /// `record_bytes_max`, must not have its records taken for junk.
    pub fn limits(&self) -> Limits {
        match self.state {
            // What the writer accepted in this segment, whatever today's options say.
            State::Live(h) => Limits {
                payload_len_max: h.record_bytes_max,
                block_bytes: h.block_bytes,
                segment_bytes: h.segment_bytes,
                rewrites: h.version >= 2,
            },
            _ => Limits {
                payload_len_max: RECORD_PAYLOAD_BYTES_LIMIT,
                block_bytes: BLOCK_BYTES_MAX,
                segment_bytes: align_down(self.len, 4096),
                // Unknown: read as the later version does (lower LSNs are
                // older copies, never a break).
                rewrites: true,
            },
        }
    }
}

/// Scans the directory. Reads only; the caller applies the outcome.
///
/// Cutting a torn tail discards records for good, so it happens only when a
/// second, independent scan reaches the same end: a transient read error (a
/// flipped bit, a sector that read badly once) must not look like a tear.
/// Corruption found reading through the page cache is reported only as the
/// device confirms it (where the log uses O_DIRECT).
pub(crate) fn recover(cfg: &RecoverConfig) -> Result<Recovered> {
    let first = match scan(&RecoverConfig { direct: false, confirm_direct: cfg.direct, ..cfg.clone() }) {
        Ok(first) => first,
        // Read through the cache, an older segment may show a page older
        // than the device that no drop removed: the device's own answer,
        // read with O_DIRECT, is the one reported.
        Err(Error::Corruption { .. }) if cfg.direct => return scan(cfg),
        Err(e) => return Err(e),
    };
    let Some(torn) = &first.report.torn_tail else { return Ok(first) };
    let second = scan(cfg)?;
    let same = second.report.torn_tail.as_ref() == Some(torn)
        && second.next_lsn == first.next_lsn
        && second.remove == first.remove;
    if !same {
        return Err(Error::io(
            "verify torn tail",
            &cfg.dir,
            std::io::Error::other(format!(
                "two scans of the log's tail disagree (segment {} offset {} vs {:?}); nothing was truncated",
                torn.segment, torn.offset, second.report.torn_tail
            )),
        ));
    }
    let mut first = first;
    first.report.bytes_read += second.report.bytes_read;
    Ok(first)
}

/// The segment files of a directory, classified, by id; and the unfinished
/// preparations to remove.
pub(crate) fn survey(cfg: &RecoverConfig, report: &mut RecoveryReport) -> Result<(Vec<SegFile>, Vec<PathBuf>)> {
    let mut remove = Vec::new();
    let mut files = Vec::new();
    let entries = cfg.storage.list_dir(&cfg.dir).map_err(|e| Error::io("list directory", &cfg.dir, e))?;
    for entry in entries {
        let path = cfg.dir.join(&entry.name);
        match names::parse(&entry.name) {
            Some(Name::Segment(id)) => {
                if entry.kind != EntryKind::File {
                    return Err(Error::UnexpectedFile {
                        path,
                        detail: format!("has a segment's name but is a {:?}, not a regular file", entry.kind),
                    });
                }
                files.push(open_and_classify(cfg, id, path, report)?);
            }
            Some(Name::Temp(_)) if entry.kind == EntryKind::File => remove.push(path),
            Some(Name::Lock) => {}
            _ => report.ignored_entries += 1,
        }
    }
    files.sort_by_key(|f| f.id);
    Ok((files, remove))
}

/// One scan of the directory: the files found, and what the walk along the
/// chain of live segments learned so far.
struct Scan<'a> {
    cfg: &'a RecoverConfig,
    started: Instant,
    files: Vec<SegFile>,
    report: RecoveryReport,
    /// Files the caller removes once the scan is applied.
    remove: Vec<PathBuf>,
    /// Live segments walked, oldest first.
    live: Vec<SegmentMeta>,
}

/// Where the walk of one segment stopped.
struct SegmentEnd {
    /// Offset after the last valid flush.
    at: u64,
    /// The next LSN expected.
    next_lsn: u64,
    /// Whether the walk stopped at damage rather than at a clean end.
    broken: bool,
}

fn scan(cfg: &RecoverConfig) -> Result<Recovered> {
    let mut scan = Scan::survey(cfg)?;
    let Some(first) = scan.files.iter().position(SegFile::is_live) else { return scan.no_live_segment() };
    scan.drop_older_than(first)?;
    let mut idx = first;
    let mut next_lsn = scan.report.first_lsn;
    loop {
        let end = scan.walk(idx, next_lsn)?;
        next_lsn = end.next_lsn;
        if scan.chain_continues(idx, &end) {
            idx += 1;
            continue;
        }
        let anything_later = scan.files[idx + 1..].iter().any(SegFile::may_hold_records);
        if end.broken || anything_later {
            // The chain breaks in segment `idx` at `end.at`: torn tail or corruption.
            return scan.finish_at_break(idx, end.at, end.next_lsn);
        }
        return Ok(scan.finish_at_end(idx, &end));
    }
}

impl Scan<'_> {
    /// Lists and classifies the files; unfinished preparations and junk are
    /// to be removed.
    fn survey(cfg: &RecoverConfig) -> Result<Scan<'_>> {
        let started = Instant::now();
        let mut report = RecoveryReport::default();
        let (files, mut remove) = survey(cfg, &mut report)?;
        for f in files.iter().filter(|f| matches!(f.state, State::Junk(_))) {
            check_torn_activation(f, &files)?;
            remove.push(f.path.clone());
        }
        Ok(Scan { cfg, started, files, report, remove, live: Vec::new() })
    }

    /// No live segment: a new log, or one whose first activation tore.
    fn no_live_segment(mut self) -> Result<Recovered> {
        if let Some(f) = self.files.iter().find(|f| matches!(f.state, State::Damaged(_))) {
            return Err(unplaceable(f, "cannot be placed"));
        }
        self.report.first_lsn = 1;
        Ok(self.finish(0, 1, Continue::NewSegment { id: 1, prev_data_end: 0 }))
    }

    /// Segments older than the first live one must hold nothing of their own
    /// life: the log's history would be missing from its start.
    fn drop_older_than(&mut self, first: usize) -> Result<()> {
        for f in &self.files[..first] {
            if matches!(f.state, State::Damaged(_)) {
                return Err(unplaceable(f, "precedes the first readable segment"));
            }
            if !self.remove.contains(&f.path) {
                self.remove.push(f.path.clone());
            }
        }
        let State::Live(header) = self.files[first].state else { unreachable!("position found a live file") };
        self.report.first_lsn = header.first_lsn;
        Ok(())
    }

    /// Walks live segment `idx`, whose first record should carry
    /// `next_lsn`: counts and indexes its records, notes skipped damage.
    fn walk(&mut self, idx: usize, next_lsn: u64) -> Result<SegmentEnd> {
        let f = &self.files[idx];
        let State::Live(header) = f.state else { unreachable!("the chain holds live files only") };
        if f.len != header.segment_bytes {
            return Err(Error::UnexpectedFile {
                path: f.path.clone(),
                detail: format!("file is {} bytes but its header says {}", f.len, header.segment_bytes),
            });
        }
        let index = Arc::new(SegmentIndex::default());
        self.live.push(SegmentMeta {
            id: f.id,
            first_lsn: header.first_lsn,
            path: f.path.clone(),
            block_bytes: header.block_bytes,
            segment_bytes: header.segment_bytes,
            record_bytes_max: header.record_bytes_max,
            version: header.version,
            index: index.clone(),
        });
        let newest_live = !self.files[idx + 1..].iter().any(SegFile::is_live);
        let direct = self.cfg.confirm_direct && newest_live && {
            // Dropped whether or not the count is trusted.
            let emptied = f.cache_emptied();
            !(emptied && self.cfg.cache_counted)
        };
        let mut src = if direct {
            let file = self
                .cfg
                .storage
                .open_file(&f.path, OpenHow::read(true))
                .map_err(|e| Error::io("open segment", &f.path, e))?;
            f.scan_with(&file)
        } else {
            f.scan()
        };
        let mut walker = Walker::new(f.id, data_offset(header.block_bytes), next_lsn, f.limits());
        let (at, broken) = loop {
            match walker.next(&mut src).map_err(|e| Error::io("read segment", &f.path, e))? {
                Step::Record { offset, header, .. } => {
                    self.report.records += 1;
                    index.note(header.lsn, offset);
                }
                Step::Skipped { from, to } => {
                    if self.cfg.mode == RecoveryMode::AbsoluteConsistency {
                        return Err(Error::Corruption {
                            segment: f.id,
                            path: f.path.clone(),
                            offset: from,
                            lsn: walker.expected(),
                            detail: format!("precedes damaged bytes up to offset {to} (no record lost)"),
                        });
                    }
                    self.report.skipped_count += 1;
                    if self.report.skipped.len() < SKIPPED_LISTED_MAX {
                        self.report.skipped.push(SkippedBytes { segment: f.id, from, to });
                    }
                }
                Step::Break { at, .. } => break (at, true),
                Step::End { at } => break (at, false),
            }
        };
        self.report.bytes_read += src.bytes_read;
        Ok(SegmentEnd { at, next_lsn: walker.expected(), broken })
    }

    /// Whether the next segment's header certifies where segment `idx`'s
    /// data ends and which LSN follows; whatever lies beyond that end (the
    /// remains of a torn window an earlier recovery cut off) is dead.
    fn chain_continues(&self, idx: usize, end: &SegmentEnd) -> bool {
        let id = self.files[idx].id;
        matches!(self.files.get(idx + 1), Some(n @ SegFile { state: State::Live(nh), .. })
            if n.id == id + 1 && nh.prev_data_end == end.at && nh.first_lsn == end.next_lsn)
    }

    /// The log ends cleanly in segment `idx`, or after its last flush's
    /// padding tore (its records are intact).
    fn finish_at_end(mut self, idx: usize, end: &SegmentEnd) -> Recovered {
        let f = &self.files[idx];
        let State::Live(header) = f.state else { unreachable!("the chain holds live files only") };
        let id = f.id;
        self.report.segments = self.live.len();
        self.report.last_lsn = end.next_lsn - 1;
        let continue_at = if format::is_clean_end(end.at, header.block_bytes, header.segment_bytes) {
            #[expect(clippy::expect_used, reason = "walk() pushed this segment's meta before returning")]
            Continue::InSegment { meta: self.live.last().expect("non-empty").clone(), write_pos: end.at }
        } else {
            self.report.torn_tail = Some(TornTail {
                segment: id,
                offset: end.at,
                next_lsn: end.next_lsn,
                records_dropped: 0,
                segments_removed: 0,
            });
            Continue::NewSegment { id: id + 1, prev_data_end: end.at }
        };
        self.finish(id, end.next_lsn, continue_at)
    }

    /// The chain breaks in segment `idx` at offset `at`, where LSN
    /// `missing_lsn` should be: a torn tail to cut, unless a later record
    /// proves that LSN was durable (corruption, reported).
    fn finish_at_break(mut self, idx: usize, at: u64, missing_lsn: u64) -> Result<Recovered> {
        let f = &self.files[idx];
        let later: Vec<&SegFile> = self.files[idx + 1..].iter().filter(|g| g.may_hold_records()).collect();
        let mut strongest: Option<(&SegFile, Evidence)> = None;
        let mut dropped = 0u64;
        for (g, from) in std::iter::once((f, at)).chain(later.iter().map(|g| (*g, data_offset(BLOCK_BYTES_MIN)))) {
            let (ev, n) = evidence_and_count(g, &g.file, from, missing_lsn, &mut self.report)?;
            dropped += n;
            if let Some(ev) = ev {
                if strongest.as_ref().is_none_or(|(_, s)| ev.sync_hint > s.sync_hint) {
                    strongest = Some((g, ev));
                }
            }
        }
        if let Some((g, ev)) = strongest {
            if ev.sync_hint >= missing_lsn && self.cfg.mode != RecoveryMode::PointInTime {
                return Err(Error::Corruption {
                    segment: f.id,
                    path: f.path.clone(),
                    offset: at,
                    lsn: missing_lsn,
                    detail: format!(
                        "is missing or damaged, yet {} was written after LSN {} had been synced, so LSN \
                         {missing_lsn} was durable",
                        ev.describe(g.id, &g.path),
                        ev.sync_hint
                    ),
                });
            }
        }
        if self.cfg.mode == RecoveryMode::AbsoluteConsistency {
            return Err(Error::TornTail { segment: f.id, path: f.path.clone(), offset: at, lsn: missing_lsn });
        }
        let (id, segments_removed) = (f.id, later.len());
        let later: Vec<PathBuf> = later.iter().map(|g| g.path.clone()).collect();
        self.remove.extend(later);
        self.report.segments = self.live.len();
        self.report.last_lsn = missing_lsn - 1;
        self.report.torn_tail = Some(TornTail {
            segment: id,
            offset: at,
            next_lsn: missing_lsn,
            records_dropped: dropped,
            segments_removed,
        });
        Ok(self.finish(id, missing_lsn, Continue::NewSegment { id: id + 1, prev_data_end: at }))
    }

    /// The outcome; spares are the segments after `last_live`.
    fn finish(mut self, last_live: u64, next_lsn: u64, continue_at: Continue) -> Recovered {
        // An inspection, which knows no options, keeps the spares of the
        // size the log's newest segment has, as its writer would.
        let size = match self.cfg.segment_bytes {
            0 => self.live.last().map_or(0, |m| m.segment_bytes),
            size => size,
        };
        let spares = collect_spares(size, &self.files, last_live, &mut self.remove);
        self.report.removed_files = self.remove.clone();
        self.report.duration = self.started.elapsed();
        Recovered { report: self.report, live: self.live, next_lsn, continue_at, spares, remove: self.remove }
    }
}

/// A file with a segment's name, an unreadable header and no record of its
/// own life is removed only as what the log leaves of an activation torn by
/// a crash: a prepared file (a whole number of 64 KiB blocks) whose header
/// write tore, the segment right after the newest live one (or the first,
/// where none is live). Anything else the log did not write, or not so:
/// files that are not the log's are the user's, never deleted.
fn check_torn_activation(f: &SegFile, files: &[SegFile]) -> Result<()> {
    let newest_live = files.iter().filter(|g| g.is_live()).map(|g| g.id).max();
    let next = newest_live.map_or_else(|| files.iter().map(|g| g.id).min(), |id| Some(id + 1));
    let prepared_size = f.len >= 64 * 1024 && f.len % (64 * 1024) == 0;
    if next == Some(f.id) && prepared_size {
        return Ok(());
    }
    let why = match f.state {
        State::Junk(why) => why,
        _ => "unknown",
    };
    Err(Error::UnexpectedFile {
        path: f.path.clone(),
        detail: format!(
            "has a segment's name, but not a header of this log ({why}) and no record of its own ({} bytes{}): \
             the log did not write it, or it was overwritten. Nothing was changed; move it out of the \
             directory to open the log",
            f.len,
            match newest_live {
                Some(id) => format!(", the log's newest segment is {id}"),
                None => String::new(),
            }
        ),
    })
}

fn unplaceable(f: &SegFile, what: &str) -> Error {
    let why = match f.state {
        State::Damaged(why) => why,
        _ => "unknown",
    };
    Error::Corruption {
        segment: f.id,
        path: f.path.clone(),
        offset: 0,
        lsn: 0,
        detail: format!("{what}: its header is damaged ({why}) but it holds records"),
    }
}

/// The strongest evidence among this life's valid records from `from` on
/// in `file` (the segment opened one way or another), and how many of them
/// carry an LSN at or after `missing_lsn`.
fn evidence_and_count(
    f: &SegFile,
    file: &Arc<dyn StorageFile>,
    from: u64,
    missing_lsn: u64,
    report: &mut RecoveryReport,
) -> Result<(Option<Evidence>, u64)> {
    let limits = f.limits();
    let mut src = f.scan_with(file);
    let mut best: Option<Evidence> = None;
    let mut count = 0;
    let mut pos = from;
    while let Some((offset, header)) =
        walk::find_next(&mut src, f.id, pos, &limits).map_err(|e| Error::io("read segment", &f.path, e))?
    {
        if !header.is_padding() && header.lsn >= missing_lsn {
            count += 1;
        }
        let hint = header.sync_hint();
        if best.is_none_or(|b| hint > b.sync_hint) {
            best = Some(Evidence { offset, lsn: header.lsn, sync_hint: hint, padding: header.is_padding() });
        }
        pos = offset + header.encoded_len();
    }
    report.bytes_read += src.bytes_read;
    Ok((best, count))
}

/// Spares after the log's last segment, of `segment_bytes`, that can be
/// reused; the rest go to `remove`.
fn collect_spares(segment_bytes: u64, files: &[SegFile], last_live: u64, remove: &mut Vec<PathBuf>) -> Spares {
    let mut spares = Spares { highest_id: last_live, ..Spares::default() };
    for f in files {
        if !matches!(f.state, State::Spare) {
            continue;
        }
        if f.id > last_live && f.len == segment_bytes && spares.files.len() < 16 {
            spares.files.insert(f.id, f.path.clone());
            spares.highest_id = spares.highest_id.max(f.id);
        } else if !remove.contains(&f.path) {
            remove.push(f.path.clone());
        }
    }
    spares
}

fn open_and_classify(cfg: &RecoverConfig, id: u64, path: PathBuf, report: &mut RecoveryReport) -> Result<SegFile> {
    // The first scan reads through the page cache, whatever the log writes
    // with: it reads each file once from start to end, and the kernel's
    // read-ahead keeps the device busy while the walk checks what it has.
    // Clean cached pages are dropped before the header is read, for the
    // reason `FileSource::scan` gives (which drops them again).
    let file =
        cfg.storage.open_file(&path, OpenHow::read(cfg.direct)).map_err(|e| Error::io("open segment", &path, e))?;
    file.drop_cached(0, 0);
    // What a file is decides where the log starts and ends: a spare is
    // reused, junk and what precedes the first live segment are removed.
    // So where the log uses O_DIRECT, the header and a spare's or damaged
    // file's search for records of its own life read the device itself,
    // never a cached page older than it that the drop could not remove
    // (locked or mapped): such a page shows zeros where a live header is.
    let device = if cfg.direct || cfg.confirm_direct {
        cfg.storage.open_file(&path, OpenHow::read(true)).map_err(|e| Error::io("open segment", &path, e))?
    } else {
        file.clone()
    };
    let len = file.size().map_err(|e| Error::io("stat segment", &path, e))?;
    let mut block = AlignedBuf::zeroed(4096);
    let got = if len >= 4096 {
        read_full_at(device.as_ref(), &mut block, 0).map_err(|e| Error::io("read segment header", &path, e))?
    } else {
        0
    };
    report.bytes_read += got as u64;
    let state = if got < format::SEGMENT_HEADER_BYTES {
        State::Damaged("file shorter than a header block")
    } else {
        match SegmentHeader::decode(&block[..got]) {
            HeaderState::Valid(h) if h.segment_id == id => State::Live(h),
            HeaderState::Valid(h) if h.segment_id < id => State::Spare,
            HeaderState::Valid(_) => State::Damaged("header names a later segment"),
            HeaderState::Zero => State::Spare,
            HeaderState::UnsupportedVersion(found) => {
                return Err(Error::UnsupportedVersion { path, found, supported: FORMAT_VERSION });
            }
            HeaderState::Invalid(_) => State::Damaged("invalid header"),
        }
    };
    let mut f = SegFile { id, path, file, len, state };
    let own_records = |f: &SegFile, report: &mut RecoveryReport| -> Result<bool> {
        let (evidence, _) = evidence_and_count(f, &device, data_offset(BLOCK_BYTES_MIN), 0, report)?;
        Ok(evidence.is_some())
    };
    match f.state {
        // Only records of this file's own life make it more than junk.
        State::Damaged(why) if !own_records(&f, report)? => f.state = State::Junk(why),
        // Headers are synced before records, so a spare never holds a
        // record of its own life; one that does lost its header later (or
        // its header write was lost). The whole file is looked at, not only
        // where a first record would start: the first flush may be damaged
        // too. Spares are zeros or other lives' records, which cost one
        // comparison per 8 bytes.
        State::Spare if own_records(&f, report)? => f.state = State::Damaged("header lost but records present"),
        _ => {}
    }
    Ok(f)
}
