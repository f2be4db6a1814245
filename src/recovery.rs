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
    pub direct: bool,
    pub mode: RecoveryMode,
    /// Size of new segments; spares of another size are removed.
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
    /// Unreadable header and no record of its life: a torn activation, or a
    /// file of ours left short. Removed.
    Junk,
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
            },
            _ => Limits {
                payload_len_max: RECORD_PAYLOAD_BYTES_LIMIT,
                block_bytes: BLOCK_BYTES_MAX,
                segment_bytes: align_down(self.len, 4096),
            },
        }
    }
}

/// Scans the directory. Reads only; the caller applies the outcome.
///
/// Cutting a torn tail discards records for good, so it happens only when a
/// second, independent scan reaches the same end: a transient read error (a
/// flipped bit, a sector that read badly once) must not look like a tear.
pub(crate) fn recover(cfg: &RecoverConfig) -> Result<Recovered> {
    let first = scan(cfg)?;
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

fn scan(cfg: &RecoverConfig) -> Result<Recovered> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    let (files, mut remove) = survey(cfg, &mut report)?;
    for f in &files {
        if matches!(f.state, State::Junk) {
            remove.push(f.path.clone());
        }
    }

    let Some(first) = files.iter().position(SegFile::is_live) else {
        // No live segment: a new log, or one whose first activation tore.
        if let Some(f) = files.iter().find(|f| matches!(f.state, State::Damaged(_))) {
            return Err(unplaceable(f, "cannot be placed"));
        }
        let spares = collect_spares(cfg, &files, 0, &mut remove);
        report.first_lsn = 1;
        return Ok(finish(
            report,
            started,
            Vec::new(),
            1,
            Continue::NewSegment { id: 1, prev_data_end: 0 },
            spares,
            remove,
        ));
    };

    // Segments older than the first live one must hold nothing of their own
    // life: the log's history would be missing from its start.
    for f in &files[..first] {
        if matches!(f.state, State::Damaged(_)) {
            return Err(unplaceable(f, "precedes the first readable segment"));
        }
        if !remove.contains(&f.path) {
            remove.push(f.path.clone());
        }
    }

    let State::Live(first_header) = files[first].state else { unreachable!("position found a live file") };
    report.first_lsn = first_header.first_lsn;
    let mut expected = first_header.first_lsn;
    let mut live = Vec::new();
    let mut idx = first;
    loop {
        let f = &files[idx];
        let State::Live(header) = f.state else { unreachable!("the chain holds live files only") };
        if f.len != header.segment_bytes {
            return Err(Error::UnexpectedFile {
                path: f.path.clone(),
                detail: format!("file is {} bytes but its header says {}", f.len, header.segment_bytes),
            });
        }
        let index = Arc::new(SegmentIndex::default());
        live.push(SegmentMeta {
            id: f.id,
            first_lsn: header.first_lsn,
            path: f.path.clone(),
            block_bytes: header.block_bytes,
            segment_bytes: header.segment_bytes,
            record_bytes_max: header.record_bytes_max,
            index: index.clone(),
        });
        let limits = f.limits();
        let mut src = FileSource::new(f.file.clone(), limits.segment_bytes, window_bytes(limits.payload_len_max));
        let mut walker = Walker::new(f.id, data_offset(header.block_bytes), expected, limits);
        let (end, broken) = loop {
            match walker.next(&mut src).map_err(|e| Error::io("read segment", &f.path, e))? {
                Step::Record { offset, header, .. } => {
                    report.records += 1;
                    index.note(header.lsn, offset);
                }
                Step::Skipped { from, to } => {
                    if cfg.mode == RecoveryMode::AbsoluteConsistency {
                        return Err(Error::Corruption {
                            segment: f.id,
                            path: f.path.clone(),
                            offset: from,
                            lsn: walker.expected(),
                            detail: format!("precedes damaged bytes up to offset {to} (no record lost)"),
                        });
                    }
                    report.skipped_count += 1;
                    if report.skipped.len() < SKIPPED_LISTED_MAX {
                        report.skipped.push(SkippedBytes { segment: f.id, from, to });
                    }
                }
                Step::Break { at, .. } => break (at, true),
                Step::End { at } => break (at, false),
            }
        };
        report.bytes_read += src.bytes_read;
        expected = walker.expected();
        // The next segment's header certifies where this one's data ends and
        // which LSN follows; whatever lies beyond that end (the remains of a
        // torn window an earlier recovery cut off) is dead.
        if let Some(n @ SegFile { state: State::Live(nh), .. }) = files.get(idx + 1) {
            if n.id == f.id + 1 && nh.prev_data_end == end && nh.first_lsn == expected {
                idx += 1;
                continue;
            }
        }
        let anything_later = files[idx + 1..].iter().any(SegFile::may_hold_records);
        if broken || anything_later {
            // The chain breaks in segment `idx` at `end`: torn tail or corruption.
            return finish_at_break(cfg, files, idx, end, expected, live, report, remove, started);
        }
        // The end of the log.
        report.segments = live.len();
        report.last_lsn = expected - 1;
        let continue_at = if format::is_clean_end(end, header.block_bytes, header.segment_bytes) {
            Continue::InSegment { meta: live.last().expect("non-empty").clone(), write_pos: end }
        } else {
            // The last flush's padding is torn; its records are intact.
            report.torn_tail = Some(TornTail {
                segment: f.id,
                offset: end,
                next_lsn: expected,
                records_dropped: 0,
                segments_removed: 0,
            });
            Continue::NewSegment { id: f.id + 1, prev_data_end: end }
        };
        let spares = collect_spares(cfg, &files, f.id, &mut remove);
        return Ok(finish(report, started, live, expected, continue_at, spares, remove));
    }
}

fn finish(
    mut report: RecoveryReport,
    started: Instant,
    live: Vec<SegmentMeta>,
    next_lsn: u64,
    continue_at: Continue,
    spares: Spares,
    remove: Vec<PathBuf>,
) -> Recovered {
    report.removed_files = remove.clone();
    report.duration = started.elapsed();
    Recovered { report, live, next_lsn, continue_at, spares, remove }
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

#[allow(clippy::too_many_arguments)]
fn finish_at_break(
    cfg: &RecoverConfig,
    files: Vec<SegFile>,
    idx: usize,
    at: u64,
    missing_lsn: u64,
    live: Vec<SegmentMeta>,
    mut report: RecoveryReport,
    mut remove: Vec<PathBuf>,
    started: Instant,
) -> Result<Recovered> {
    let f = &files[idx];
    let later: Vec<&SegFile> = files[idx + 1..].iter().filter(|g| g.may_hold_records()).collect();
    let mut strongest: Option<(&SegFile, Evidence)> = None;
    let mut dropped = 0u64;
    for (g, from) in std::iter::once((f, at)).chain(later.iter().map(|g| (*g, data_offset(BLOCK_BYTES_MIN)))) {
        let (ev, n) = evidence_and_count(g, from, missing_lsn, &mut report)?;
        dropped += n;
        if let Some(ev) = ev {
            if strongest.as_ref().is_none_or(|(_, s)| ev.sync_hint > s.sync_hint) {
                strongest = Some((g, ev));
            }
        }
    }
    if let Some((g, ev)) = strongest {
        if ev.sync_hint >= missing_lsn && cfg.mode != RecoveryMode::PointInTime {
            return Err(Error::Corruption {
                segment: f.id,
                path: f.path.clone(),
                offset: at,
                lsn: missing_lsn,
                detail: format!(
                    "is missing or damaged, yet LSN {} (segment {}, {}, offset {}) was written after \
                     LSN {} had been synced, so LSN {missing_lsn} was durable",
                    ev.lsn,
                    g.id,
                    g.path.display(),
                    ev.offset,
                    ev.sync_hint
                ),
            });
        }
    }
    if cfg.mode == RecoveryMode::AbsoluteConsistency {
        return Err(Error::TornTail { segment: f.id, path: f.path.clone(), offset: at, lsn: missing_lsn });
    }
    for g in &later {
        remove.push(g.path.clone());
    }
    report.segments = live.len();
    report.last_lsn = missing_lsn - 1;
    report.torn_tail = Some(TornTail {
        segment: f.id,
        offset: at,
        next_lsn: missing_lsn,
        records_dropped: dropped,
        segments_removed: later.len(),
    });
    let spares = collect_spares(cfg, &files, f.id, &mut remove);
    let continue_at = Continue::NewSegment { id: f.id + 1, prev_data_end: at };
    Ok(finish(report, started, live, missing_lsn, continue_at, spares, remove))
}

/// The strongest evidence among this life's valid records from `from` on,
/// and how many of them carry an LSN at or after `missing_lsn`.
fn evidence_and_count(
    f: &SegFile,
    from: u64,
    missing_lsn: u64,
    report: &mut RecoveryReport,
) -> Result<(Option<Evidence>, u64)> {
    let limits = f.limits();
    let mut src = FileSource::new(f.file.clone(), limits.segment_bytes, window_bytes(limits.payload_len_max));
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
            best = Some(Evidence { offset, lsn: header.lsn, sync_hint: hint });
        }
        pos = offset + header.encoded_len();
    }
    report.bytes_read += src.bytes_read;
    Ok((best, count))
}

/// Spares after the log's last segment that can be reused; the rest go to
/// `remove`.
fn collect_spares(cfg: &RecoverConfig, files: &[SegFile], last_live: u64, remove: &mut Vec<PathBuf>) -> Spares {
    let mut spares = Spares { highest_id: last_live, ..Spares::default() };
    for f in files {
        if !matches!(f.state, State::Spare) {
            continue;
        }
        if f.id > last_live && f.len == cfg.segment_bytes && spares.files.len() < 16 {
            spares.files.insert(f.id, f.path.clone());
            spares.highest_id = spares.highest_id.max(f.id);
        } else if !remove.contains(&f.path) {
            remove.push(f.path.clone());
        }
    }
    spares
}

fn open_and_classify(cfg: &RecoverConfig, id: u64, path: PathBuf, report: &mut RecoveryReport) -> Result<SegFile> {
    let file =
        cfg.storage.open_file(&path, OpenHow::read(cfg.direct)).map_err(|e| Error::io("open segment", &path, e))?;
    let len = file.size().map_err(|e| Error::io("stat segment", &path, e))?;
    let mut block = AlignedBuf::zeroed(4096);
    let got = if len >= 4096 {
        read_full_at(file.as_ref(), &mut block, 0).map_err(|e| Error::io("read segment header", &path, e))?
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
    match f.state {
        State::Damaged(_) => {
            // Only records of this file's own life make it more than junk.
            let (evidence, _) = evidence_and_count(&f, data_offset(BLOCK_BYTES_MIN), 0, report)?;
            if evidence.is_none() {
                f.state = State::Junk;
            }
        }
        State::Spare => {
            // Headers are synced before records, so a spare never holds a
            // record of its own life; one that does lost its header later
            // (or its header write was lost). Look at the whole file, not
            // only where a first record would start: the first flush may be
            // damaged too. Spares are zeros or other lives' records, which
            // cost one comparison per 8 bytes.
            let (evidence, _) = evidence_and_count(&f, data_offset(BLOCK_BYTES_MIN), 0, report)?;
            if evidence.is_some() {
                f.state = State::Damaged("header lost but records present");
            }
        }
        _ => {}
    }
    Ok(f)
}
