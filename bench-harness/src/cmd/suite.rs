//! `run`, the default suite (about a minute on a 2-core machine): the device
//! alone, latency and throughput, one producer streaming, recovery; then a
//! summary of each WAL figure next to the device's.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use uring_wal::Durability;

use super::Ctx;
use crate::backends;
use crate::cli::{RecoveryArgs, RunArgs};
use crate::load::{self, LoadSpec};
use crate::model::{LoadResult, RecoveryResult, Report, SummaryRow, TestKind};
use crate::raw::{self, RawFile, SyncMethod, padded_write_bytes};
use crate::recover;
use crate::report::table;
use crate::sys::{self, SizeRange};
use crate::target::{self, IoPath, OpenOptions, TargetSpec};
use crate::timeline;

/// How much a streaming load of the suite keeps behind its durable end.
const STREAM_RETAIN_BYTES: u64 = 1 << 30;

/// Record size of the suite's latency and throughput loads.
const RECORD_BYTES: usize = 256;

/// Durations of the suite: as given, or a tenth with --quick.
/// How long the suite's loads run (a factor on their durations), and the
/// interval they are cut into, if asked.
struct Scale {
    factor: f64,
    interval: Option<Duration>,
}

impl Scale {
    fn secs(&self, s: f64) -> Duration {
        Duration::from_secs_f64(s * self.factor)
    }
}

pub fn run(args: &RunArgs, ctx: &mut Ctx) -> Result<()> {
    let scale = Scale { factor: if args.quick { 0.1 } else { 1.0 }, interval: args.interval };
    if let Some(interval) = args.interval {
        timeline::check_interval(interval, Some(scale.secs(5.0))).map_err(anyhow::Error::msg)?;
    }
    device_alone(args.quick, &scale, ctx)?;
    let recovery_dir = latency_and_throughput(&scale, ctx)?;
    streams(&scale, ctx)?;
    // Ctrl-C: the steps not yet begun are left out; what ran is summarized.
    if !sys::interrupted() {
        recovery(args, recovery_dir, ctx)?;
    }
    ctx.report.summary = summarize(&ctx.report);
    print(&ctx.report);
    Ok(())
}

/// Step 1, the device alone: qd1 durable writes of a padded record, and sequential bandwidth.
fn device_alone(quick: bool, scale: &Scale, ctx: &mut Ctx) -> Result<()> {
    let write_bytes = padded_write_bytes(RECORD_BYTES, ctx.block_bytes);
    let raw_dir = ctx.subdir("raw")?;
    std::fs::create_dir_all(&raw_dir)?;
    let direct = crate::env::o_direct(&raw_dir).is_ok();
    {
        // 1 GiB: large enough that the sequential figures are not a blip.
        let file = RawFile::prepare(&raw_dir, if quick { 32 << 20 } else { 1 << 30 }, direct)?;
        for m in [SyncMethod::UringFdatasync, SyncMethod::UringDsync] {
            ctx.report.loads.push(raw::qd1(&file, m, write_bytes, scale.secs(0.5), scale.secs(3.0), None)?);
        }
        for how in [raw::Seq::Write, raw::Seq::WriteSynced, raw::Seq::Read] {
            ctx.report.bandwidth.push(raw::sequential(&file, how, 1 << 20, 8)?);
        }
        ctx.report.bandwidth.push(raw::sequential_cached_read(&file, 1 << 20)?);
    }
    let _ = std::fs::remove_dir_all(&raw_dir);
    Ok(())
}

/// Steps 2 and 3: latency at one writer, group sync and DSYNC; group sync
/// throughput at 4, 16 and 64 writers. Returns the group sync log's directory, which
/// recovery reopens.
fn latency_and_throughput(scale: &Scale, ctx: &mut Ctx) -> Result<PathBuf> {
    let size = SizeRange { min: RECORD_BYTES, max: RECORD_BYTES };
    let mut recovery_dir = None;
    for (durability, writer_counts) in [(Durability::Dsync, vec![1]), (Durability::GroupSync, vec![1, 4, 16, 64])] {
        let spec = TargetSpec::UringWal { durability, path: IoPath::Auto, spin: false, rewrites: true };
        let dir = ctx.subdir(&spec.to_string())?;
        let target = backends::open(&spec, &dir, &ctx.open_options(RECORD_BYTES))?;
        eprintln!("{spec}: {}", target.describe());
        for w in writer_counts {
            if sys::interrupted() {
                break;
            }
            let load = LoadSpec {
                test: if w == 1 { TestKind::Latency } else { TestKind::Throughput },
                writers: w,
                size,
                duration: Some(scale.secs(if w == 1 { 5.0 } else { 4.0 })),
                ops: None,
                warmup: scale.secs(1.0),
                rate: None,
                batch: 1,
                pipeline: 1,
                stall: None,
                interval: scale.interval,
                dir: None,
            };
            push_or_fail(ctx, &spec, load::run(target.as_ref(), &spec.to_string(), &load, ctx.global.quiet))?;
        }
        target.close()?;
        if durability == Durability::GroupSync {
            recovery_dir = Some(dir);
        }
    }
    Ok(recovery_dir.expect("group-sync loads ran"))
}

/// Keeps `r` in the report; its error, if any, ends the suite.
fn push_or_fail(ctx: &mut Ctx, spec: &TargetSpec, r: LoadResult) -> Result<()> {
    let failed = r.error.clone();
    ctx.report.loads.push(r);
    match failed {
        Some(e) => anyhow::bail!("{spec}: {e}"),
        None => Ok(()),
    }
}

/// Step 3b: one producer streaming without a thread per record: tickets
/// pipelined, one batch per call (waited for, then four in flight), and
/// large records against the device's sequential bandwidth. Each
/// checkpoints behind itself, as an application would, so segments are
/// recycled rather than created.
fn streams(scale: &Scale, ctx: &mut Ctx) -> Result<()> {
    for (record, batch, pipeline) in [(256usize, 1usize, 1024usize), (256, 1024, 1), (256, 1024, 4), (64 << 10, 1, 64)]
    {
        if sys::interrupted() {
            break;
        }
        let spec = TargetSpec::default_wal();
        let dir = ctx.subdir(&format!("stream-{record}-b{batch}-p{pipeline}"))?;
        let wal = target::WalTuning { retain_bytes: Some(STREAM_RETAIN_BYTES), ..target::WalTuning::default() };
        let target = backends::open(&spec, &dir, &OpenOptions { wal, ..ctx.open_options(record) })?;
        let load = LoadSpec {
            test: TestKind::Stream,
            writers: 1,
            size: SizeRange { min: record, max: record },
            duration: Some(scale.secs(3.0)),
            ops: None,
            warmup: scale.secs(1.0),
            rate: None,
            batch,
            pipeline,
            stall: None,
            interval: scale.interval,
            dir: None,
        };
        let r = load::run(target.as_ref(), &spec.to_string(), &load, ctx.global.quiet);
        let closed = target.close();
        let _ = std::fs::remove_dir_all(&dir);
        push_or_fail(ctx, &spec, r)?;
        closed?;
    }
    Ok(())
}

/// Openings of the recovery log the suite times.
const RECOVERY_OPENINGS: usize = 3;

/// Step 4: recovery of what the group sync loads wrote in `dir`, topped up to a
/// meaningful size.
fn recovery(args: &RunArgs, dir: PathBuf, ctx: &mut Ctx) -> Result<()> {
    let rec_args = RecoveryArgs {
        backend: TargetSpec::default_wal(),
        bytes: if args.quick { 32 << 20 } else { args.recovery_bytes },
        record_bytes: SizeRange { min: 4096, max: 4096 },
        batch: 64,
        writers: 4,
        kill: false,
    };
    let written = recover::write_log(&dir, &rec_args, &ctx.open_options(4096), false, &|_, _| {})?;
    target::Target::close(Box::new(written))?;
    // One opening swings by a quarter with the device here; each is paired
    // with reads of the same files just before and just after it (the
    // faster counts, so that neither side gains from what the other left
    // warm in the host), and the row takes the median ratio.
    for _ in 0..if args.quick { 1 } else { RECOVERY_OPENINGS } {
        let before = recover::read_segment_files(&dir)?;
        let mut r = recover::time_open(&dir, &rec_args, "close", 0)?;
        let after = recover::read_segment_files(&dir)?;
        r.read_mb_per_sec = Some(before.max(after));
        ctx.report.recovery.push(r);
    }
    Ok(())
}

fn print(report: &Report) {
    let (raw, wal): (Vec<LoadResult>, Vec<LoadResult>) =
        report.loads.iter().cloned().partition(|l| l.test == TestKind::Raw);
    println!("{}", table::sync_methods(&raw));
    println!("{}", table::bandwidth(&report.bandwidth));
    println!("{}", table::loads(&wal));
    println!("{}", table::recovery(&report.recovery));
    println!("{}", table::summary(&report.summary));
}

fn ratio(wal: f64, raw: f64) -> Option<f64> {
    (raw > 0.0).then(|| wal / raw)
}

/// The group sync loads of the suite's throughput (not its streams).
fn group_sync_loads(report: &Report) -> impl Iterator<Item = &LoadResult> {
    report.loads.iter().filter(|l| l.backend == "uring-wal/group-sync" && l.test != TestKind::Stream)
}

/// Each WAL figure of the suite next to the raw device figure of the same run.
pub fn summarize(report: &Report) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    latency_rows(report, "uring-wal/group-sync", SyncMethod::UringFdatasync, "durable (group sync)", &mut rows);
    latency_rows(report, "uring-wal/dsync", SyncMethod::UringDsync, "durable (DSYNC)", &mut rows);
    throughput_rows(report, &mut rows);
    cost_rows(report, &mut rows);
    stream_rows(report, &mut rows);
    recovery_rows(report, &mut rows);
    rows
}

fn raw_of(report: &Report, method: SyncMethod) -> Option<&LoadResult> {
    report.loads.iter().find(|l| l.test == TestKind::Raw && l.backend == method.name())
}

/// p50, p99 and p99.9 of `wal` at one writer against `method` at qd1.
fn latency_rows(report: &Report, wal: &str, method: SyncMethod, label: &str, rows: &mut Vec<SummaryRow>) {
    let one_writer = report.loads.iter().find(|l| l.backend == wal && l.writers == 1 && l.test != TestKind::Raw);
    let (Some(w), Some(r)) = (one_writer, raw_of(report, method)) else { return };
    for (name, a, b) in [
        ("p50", w.latency.p50_us, r.latency.p50_us),
        ("p99", w.latency.p99_us, r.latency.p99_us),
        ("p99.9", w.latency.p999_us, r.latency.p999_us),
    ] {
        rows.push(SummaryRow {
            metric: format!("{label} append latency {name}, 1 writer, {} B", w.record_bytes),
            unit: "us".into(),
            wal: a,
            raw: Some(b),
            ratio: ratio(a, b),
            note: format!("vs {} at qd1{}", method.name(), segment_note(w)),
        });
    }
}

/// Whether the log grew during a load or reused its segments: a lone
/// appender's tail differs by about a quarter between the two.
fn segment_note(l: &LoadResult) -> String {
    match l.segments {
        Some(s) if s.created > 0 => {
            let plural = if s.created == 1 { "" } else { "s" };
            format!("; log growing ({} fresh segment{plural} zero-filled)", s.created)
        }
        Some(s) if s.recycled > 0 => "; segments reused".into(),
        _ => String::new(),
    }
}

/// Group sync records/s at each writer count against one durable write per
/// record at qd1.
fn throughput_rows(report: &Report, rows: &mut Vec<SummaryRow>) {
    let raw_ops = raw_of(report, SyncMethod::UringFdatasync).map(|r| r.ops_per_sec);
    for l in group_sync_loads(report) {
        let plural = if l.writers == 1 { "" } else { "s" };
        rows.push(SummaryRow {
            metric: format!("durable records/s, {} writer{plural}, {} B", l.writers, l.record_bytes),
            unit: "records/s".into(),
            wal: l.ops_per_sec,
            raw: raw_ops,
            ratio: raw_ops.and_then(|r| ratio(l.ops_per_sec, r)),
            note: format!(
                "vs one durable write per op at qd1; {} records per flush",
                l.records_per_flush.map_or("-".into(), |b| format!("{b:.1}"))
            ),
        });
    }
}

/// CPU and memory at the most writers.
fn cost_rows(report: &Report, rows: &mut Vec<SummaryRow>) {
    let Some(l) = group_sync_loads(report).max_by_key(|l| l.writers) else { return };
    rows.push(SummaryRow {
        metric: format!("CPU per record, {} writers", l.writers),
        unit: "us".into(),
        wal: l.cpu_us_per_op,
        raw: None,
        ratio: None,
        note: "user + system time of the process / records".into(),
    });
    rows.push(SummaryRow {
        metric: format!("peak RSS, {} writers", l.writers),
        unit: "MiB".into(),
        wal: l.peak_rss_bytes as f64 / (1 << 20) as f64,
        raw: None,
        ratio: None,
        note: "whole harness process".into(),
    });
}

/// One producer streaming: large records against the device's sequential
/// write bandwidth, small ones as records/s.
fn stream_rows(report: &Report, rows: &mut Vec<SummaryRow>) {
    let write_bw = report.bandwidth.iter().find(|b| b.direction == "write").map(|b| b.mb_per_sec);
    for l in report.loads.iter().filter(|l| l.test == TestKind::Stream) {
        let how = match (l.batch, l.pipeline) {
            (1, p) => format!("{p} tickets in flight"),
            (b, 1) => format!("batches of {b}"),
            (b, p) => format!("batches of {b}, {p} in flight"),
        };
        let row = if l.record_bytes >= 4096.0 {
            SummaryRow {
                metric: format!("durable MB/s, 1 producer, {how}, {} B", l.record_bytes),
                unit: "MB/s".into(),
                wal: l.mb_per_sec,
                raw: write_bw,
                ratio: write_bw.and_then(|b| ratio(l.mb_per_sec, b)),
                note: "vs sequential O_DIRECT write, 1 MiB at qd8".into(),
            }
        } else {
            SummaryRow {
                metric: format!("durable records/s, 1 producer, {how}, {} B", l.record_bytes),
                unit: "records/s".into(),
                wal: l.ops_per_sec,
                raw: None,
                ratio: None,
                note: format!("{} records per flush", l.records_per_flush.map_or("-".into(), |b| format!("{b:.0}"))),
            }
        };
        rows.push(row);
    }
}

/// Recovery against the device's sequential read bandwidth: per opening,
/// the faster of the O_DIRECT read of the bandwidth step and reads of the
/// same files through the page cache just before and after it (how
/// recovery reads); one row for the opening of median ratio, with the
/// spread, and its ratio to the faster bandwidth-step read of one large
/// file (which a log of many segment files does not reach even raw).
/// Openings without their own reads (older reports) are compared with the
/// faster bandwidth-step read alone.
fn recovery_rows(report: &Report, rows: &mut Vec<SummaryRow>) {
    let direct = report.bandwidth.iter().find(|b| b.direction == "read").map(|b| b.mb_per_sec);
    let cached = report.bandwidth.iter().find(|b| b.direction == raw::CACHED_READ).map(|b| b.mb_per_sec);
    // Each opening with the read it is compared with, and whether that read
    // went through the page cache.
    let mut pairs: Vec<(&RecoveryResult, Option<(f64, bool)>)> = report
        .recovery
        .iter()
        .map(|r| {
            let cached = r.read_mb_per_sec.or(cached).map(|c| (c, true));
            let direct = direct.map(|d| (d, false));
            (r, [cached, direct].into_iter().flatten().max_by(|a, b| a.0.total_cmp(&b.0)))
        })
        .collect();
    let ratio_of =
        |(r, read): &(&RecoveryResult, Option<(f64, bool)>)| read.and_then(|(mb, _)| ratio(r.mb_per_sec, mb));
    pairs.sort_by(|a, b| ratio_of(a).unwrap_or(f64::INFINITY).total_cmp(&ratio_of(b).unwrap_or(f64::INFINITY)));
    let Some(&(r, read)) = pairs.get(pairs.len() / 2) else { return };
    let against = match read {
        None => "no sequential read measured",
        Some((_, true)) if r.read_mb_per_sec.is_some() => "vs the same files read through the page cache around it",
        Some((_, true)) => "vs sequential read through the page cache (faster here)",
        Some((_, false)) => "vs sequential O_DIRECT read (faster here)",
    };
    let spread = match (ratio_of(&pairs[0]), ratio_of(&pairs[pairs.len() - 1])) {
        (Some(lo), Some(hi)) if pairs.len() > 1 => {
            format!("median of {} openings, ratio {lo:.2}-{hi:.2}; ", pairs.len())
        }
        _ => String::new(),
    };
    let one_file_read = [direct, cached].into_iter().flatten().max_by(f64::total_cmp);
    let one_file = match (read, r.read_mb_per_sec, one_file_read) {
        (Some((_, true)), Some(_), Some(best)) => format!("; {:.2}x the one-file read above", r.mb_per_sec / best),
        _ => String::new(),
    };
    rows.push(SummaryRow {
        metric: format!("recovery of {} MB, {} records", r.bytes / 1_000_000, r.records),
        unit: "MB/s".into(),
        wal: r.mb_per_sec,
        raw: read.map(|(mb, _)| mb),
        ratio: ratio_of(&(r, read)),
        note: format!("{:.0} records/s; {spread}{against}{one_file}", r.records_per_sec),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BandwidthResult, SegmentActivity};
    use crate::report::fixtures;

    #[test]
    fn latency_rows_say_whether_the_log_grew() {
        let mut raw = fixtures::load(SyncMethod::UringFdatasync.name(), 1, 4096.0, 9000.0, 1);
        raw.test = TestKind::Raw;
        let mut wal = fixtures::load("uring-wal/group-sync", 1, 256.0, 8000.0, 2);
        wal.test = TestKind::Latency;
        let notes = |wal: &LoadResult| {
            let report = Report { loads: vec![raw.clone(), wal.clone()], ..fixtures::report() };
            let mut rows = Vec::new();
            latency_rows(&report, "uring-wal/group-sync", SyncMethod::UringFdatasync, "durable", &mut rows);
            assert_eq!(rows.len(), 3);
            rows.into_iter().map(|r| r.note).collect::<Vec<_>>()
        };
        wal.segments = Some(SegmentActivity { activated: 3, created: 3, recycled: 0, stalls: 0, fills_cut: 0 });
        assert!(
            notes(&wal).iter().all(|n| n.ends_with("; log growing (3 fresh segments zero-filled)")),
            "{:?}",
            notes(&wal)
        );
        wal.segments = Some(SegmentActivity { activated: 9, created: 0, recycled: 9, stalls: 0, fills_cut: 0 });
        assert!(notes(&wal).iter().all(|n| n.ends_with("; segments reused")), "{:?}", notes(&wal));
        wal.segments = None;
        assert!(notes(&wal).iter().all(|n| n.ends_with("at qd1")), "{:?}", notes(&wal));
    }

    #[test]
    fn recovery_is_compared_with_the_faster_sequential_read() {
        let read = |direction: &str, mb_per_sec: f64| BandwidthResult {
            direction: direction.into(),
            block_bytes: 1 << 20,
            queue_depth: 1,
            bytes: 1 << 30,
            seconds: 1.0,
            mb_per_sec,
        };
        let row = |bandwidth: Vec<BandwidthResult>| {
            let report = Report { bandwidth, ..fixtures::report() };
            let mut rows = Vec::new();
            recovery_rows(&report, &mut rows);
            assert_eq!(rows.len(), 1);
            rows.remove(0)
        };
        let wal = fixtures::report().recovery[0].mb_per_sec;
        let r = row(vec![read("write", 5000.0), read("read", 1200.0), read(raw::CACHED_READ, 1800.0)]);
        assert_eq!(r.raw, Some(1800.0));
        assert_eq!(r.ratio, Some(wal / 1800.0));
        assert!(r.note.ends_with("vs sequential read through the page cache (faster here)"), "{}", r.note);
        let r = row(vec![read("read", 2000.0), read(raw::CACHED_READ, 1800.0)]);
        assert_eq!(r.raw, Some(2000.0));
        assert!(r.note.ends_with("vs sequential O_DIRECT read (faster here)"), "{}", r.note);
        let r = row(vec![read("write", 5000.0)]);
        assert_eq!((r.raw, r.ratio), (None, None));
    }

    #[test]
    fn each_opening_is_compared_with_the_reads_around_it_and_the_median_is_reported() {
        let opening = |mb_per_sec: f64, read: f64| RecoveryResult {
            mb_per_sec,
            records_per_sec: mb_per_sec * 1000.0,
            read_mb_per_sec: Some(read),
            ..fixtures::report().recovery[0].clone()
        };
        let direct = BandwidthResult {
            direction: "read".into(),
            block_bytes: 1 << 20,
            queue_depth: 8,
            bytes: 1 << 30,
            seconds: 1.0,
            mb_per_sec: 1200.0,
        };
        // Ratios 0.90, 0.60 and 0.80: the median opening is the third, even
        // though its MB/s is not the median MB/s.
        let recovery = vec![opening(1800.0, 2000.0), opening(1500.0, 2500.0), opening(1200.0, 1500.0)];
        let report = Report { bandwidth: vec![direct.clone()], recovery, ..fixtures::report() };
        let mut rows = Vec::new();
        recovery_rows(&report, &mut rows);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.wal, r.raw), (1200.0, Some(1500.0)));
        assert!((r.ratio.unwrap() - 0.8).abs() < 1e-9);
        assert!(
            r.note.ends_with(
                "median of 3 openings, ratio 0.60-0.90; vs the same files read through the page cache around it; \
                 1.00x the one-file read above"
            ),
            "{}",
            r.note
        );
        assert!(r.note.starts_with("1200000 records/s"), "{}", r.note);
        // Where O_DIRECT reads faster than the cached read of an opening, the
        // opening is compared with it.
        let report = Report {
            bandwidth: vec![BandwidthResult { mb_per_sec: 3000.0, ..direct }],
            recovery: vec![opening(1500.0, 2000.0)],
            ..fixtures::report()
        };
        let mut rows = Vec::new();
        recovery_rows(&report, &mut rows);
        assert_eq!((rows[0].raw, rows[0].ratio), (Some(3000.0), Some(0.5)));
        assert!(rows[0].note.ends_with("vs sequential O_DIRECT read (faster here)"), "{}", rows[0].note);
    }
}
