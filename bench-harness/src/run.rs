//! The commands, and the default suite that ties them together.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::backends;
use crate::cli::{Global, LoadArgs, RawArgs, RecoveryArgs, RunArgs};
use crate::load::{self, LoadSpec};
use crate::model::{LoadResult, Report, SummaryRow, TestKind};
use crate::raw::{self, RawFile, SyncMethod};
use crate::recover;
use crate::report::table;
use crate::sys::SizeRange;
use crate::target::{self, IoPath, OpenOptions, TargetSpec};
use uring_wal::Durability;
use uring_wal::format::{data_offset, padded_end, record};

/// What every command shares.
pub struct Ctx {
    pub global: Global,
    pub report: Report,
    /// Padding unit the WAL uses on this device.
    pub block_bytes: u32,
    /// Directories the harness created, removed at the end unless --keep.
    pub created: Vec<PathBuf>,
}

impl Ctx {
    fn open_options(&self, record_bytes_max: usize) -> OpenOptions {
        OpenOptions { record_bytes_max, allow_buffered: self.global.allow_buffered, ..OpenOptions::default() }
    }

    /// A fresh directory for `name` inside the data directory.
    pub(crate) fn subdir(&mut self, name: &str) -> Result<PathBuf> {
        let slug: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        let dir = self.global.dir.join(slug);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        self.created.push(dir.clone());
        Ok(dir)
    }

    /// Removes what the harness wrote.
    pub fn cleanup(&mut self) {
        if !self.global.keep {
            for d in self.created.drain(..) {
                let _ = std::fs::remove_dir_all(&d);
            }
        }
    }
}

/// Bytes the WAL writes for a flush holding one record of `record_bytes`:
/// the record, padded to the block.
pub fn padded_write_bytes(record_bytes: usize, block_bytes: u32) -> usize {
    let start = data_offset(block_bytes);
    let end = start + record::encoded_len(record_bytes as u32);
    (padded_end(end, block_bytes, u64::MAX / 2) - start) as usize
}

/// `raw`: the device alone.
pub fn raw(args: &RawArgs, ctx: &mut Ctx) -> Result<()> {
    let dir = ctx.subdir("raw")?;
    std::fs::create_dir_all(&dir)?;
    let write_bytes =
        args.write_bytes.map_or_else(|| padded_write_bytes(args.record_bytes.max, ctx.block_bytes), |w| w as usize);
    let direct = crate::env::o_direct(&dir).is_ok();
    let file = RawFile::prepare(&dir, args.file_bytes.max(write_bytes as u64 * 16), direct)?;
    let methods: &[SyncMethod] =
        if args.all_methods { &SyncMethod::ALL } else { &[SyncMethod::UringFdatasync, SyncMethod::UringDsync] };
    let warmup = (args.duration / 6).min(Duration::from_secs(1));
    for &m in methods {
        let r = raw::qd1(&file, m, write_bytes, warmup, args.duration)?;
        ctx.report.loads.push(r);
    }
    let qd = args.queue_depth as usize;
    let block = args.seq_block_bytes as usize;
    for how in [raw::Seq::Write, raw::Seq::WriteSynced, raw::Seq::Read] {
        ctx.report.bandwidth.push(raw::sequential(&file, how, block, qd)?);
    }
    println!("{}", table::sync_methods(&ctx.report.loads));
    println!("{}", table::bandwidth(&ctx.report.bandwidth));
    Ok(())
}

/// The three load commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadKind {
    /// Append latency; one writer unless told otherwise.
    Latency,
    /// Records/s over writer counts.
    Throughput,
    /// Every combination, plus a table of sync methods.
    Sweep,
}

impl LoadKind {
    fn test(self) -> TestKind {
        match self {
            LoadKind::Latency => TestKind::Latency,
            LoadKind::Throughput => TestKind::Throughput,
            LoadKind::Sweep => TestKind::Sweep,
        }
    }
}

/// Runs every load of `args` for each backend; a backend that fails keeps
/// the results measured so far and the others still run.
pub fn loads(kind: LoadKind, args: &LoadArgs, ctx: &mut Ctx) -> Result<()> {
    let writers = if args.writers.is_empty() {
        if kind == LoadKind::Latency { vec![1] } else { vec![1, 4, 16, 64] }
    } else {
        args.writers.clone()
    };
    let duration = args.duration.or(if args.ops.is_some() { None } else { Some(Duration::from_secs(5)) });
    let record_max = args.record_bytes.iter().map(|s| s.max).max().unwrap_or(256);
    let mut first_error = None;
    for spec in &args.backends {
        let dir = ctx.subdir(&spec.to_string())?;
        let opts = OpenOptions { wal: args.tuning(), ..ctx.open_options(record_max) };
        let target = match backends::open(spec, &dir, &opts) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {spec}: {e:#}");
                first_error.get_or_insert(e);
                continue;
            }
        };
        eprintln!("{spec}: {}", target.describe());
        if !spec.is_durable() {
            eprintln!("note: {spec} acknowledges appends before they are synced; its figures are not durable appends");
        }
        for &size in &args.record_bytes {
            for &w in &writers {
                let load = LoadSpec {
                    test: kind.test(),
                    writers: w,
                    size,
                    duration,
                    ops: args.ops,
                    warmup: args.warmup,
                    rate: args.rate,
                    batch: args.batch,
                    pipeline: args.pipeline,
                    stall: args.debug_stall_after.map(|n| (n, Duration::from_millis(args.debug_stall_ms))),
                };
                let r = load::run(target.as_ref(), &spec.to_string(), &load, ctx.global.quiet);
                let failed = r.error.clone();
                ctx.report.loads.push(r);
                if let Some(e) = failed {
                    first_error.get_or_insert(anyhow::anyhow!("{spec}: {e}"));
                }
            }
        }
        if let Err(e) = target.close() {
            first_error.get_or_insert(e.context(format!("closing {spec}")));
        }
    }
    if kind == LoadKind::Sweep {
        // A pg_test_fsync-like table of sync methods at the padded size of
        // the first record size.
        let write_bytes = padded_write_bytes(args.record_bytes[0].max, ctx.block_bytes);
        let dir = ctx.subdir("raw-sync-methods")?;
        std::fs::create_dir_all(&dir)?;
        let direct = crate::env::o_direct(&dir).is_ok();
        let file = RawFile::prepare(&dir, 64 << 20, direct)?;
        let t = duration.unwrap_or(Duration::from_secs(2)).min(Duration::from_secs(3));
        let mut methods = Vec::new();
        for m in SyncMethod::ALL {
            methods.push(raw::qd1(&file, m, write_bytes, t / 5, t)?);
        }
        println!("{}", table::sync_methods(&methods));
        ctx.report.loads.extend(methods);
    }
    println!("{}", table::loads(&ctx.report.loads));
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `recovery`.
pub fn recovery(args: &RecoveryArgs, ctx: &mut Ctx) -> Result<()> {
    let dir = ctx.subdir("recovery")?;
    let r = recover::run(args, &dir, &ctx.open_options(args.record_bytes.max), ctx.global.quiet)?;
    ctx.report.recovery.push(r);
    println!("{}", table::recovery(&ctx.report.recovery));
    Ok(())
}

fn find<'a>(loads: &'a [LoadResult], backend: &str, writers: usize) -> Option<&'a LoadResult> {
    loads.iter().find(|l| l.backend == backend && l.writers == writers && l.test != TestKind::Raw)
}

/// How much a streaming load of the suite keeps behind its durable end.
const STREAM_RETAIN_BYTES: u64 = 1 << 30;

/// The default suite: about a minute on a 2-core machine.
pub fn suite(args: &RunArgs, ctx: &mut Ctx) -> Result<()> {
    let scale = if args.quick { 0.1 } else { 1.0 };
    let secs = |s: f64| Duration::from_secs_f64(s * scale);
    let record = 256usize;
    let write_bytes = padded_write_bytes(record, ctx.block_bytes);

    // 1. The device alone.
    let raw_dir = ctx.subdir("raw")?;
    std::fs::create_dir_all(&raw_dir)?;
    let direct = crate::env::o_direct(&raw_dir).is_ok();
    {
        // 1 GiB: large enough that the sequential figures are not a blip.
        let file = RawFile::prepare(&raw_dir, if args.quick { 32 << 20 } else { 1 << 30 }, direct)?;
        for m in [SyncMethod::UringFdatasync, SyncMethod::UringDsync] {
            ctx.report.loads.push(raw::qd1(&file, m, write_bytes, secs(0.5), secs(3.0))?);
        }
        for how in [raw::Seq::Write, raw::Seq::WriteSynced, raw::Seq::Read] {
            ctx.report.bandwidth.push(raw::sequential(&file, how, 1 << 20, 8)?);
        }
    }
    let _ = std::fs::remove_dir_all(&raw_dir);

    // 2. Latency at one writer, group sync and DSYNC; 3. throughput.
    let size = SizeRange { min: record, max: record };
    let mut recovery_dir = None;
    for (durability, writer_counts, test) in [
        (Durability::Dsync, vec![1], TestKind::Latency),
        (Durability::GroupSync, vec![1, 4, 16, 64], TestKind::Throughput),
    ] {
        let spec = TargetSpec::UringWal { durability, path: IoPath::Auto };
        let dir = ctx.subdir(&spec.to_string())?;
        let target = backends::open(&spec, &dir, &ctx.open_options(record))?;
        eprintln!("{spec}: {}", target.describe());
        for w in writer_counts {
            let test = if w == 1 { TestKind::Latency } else { test };
            let load = LoadSpec {
                test,
                writers: w,
                size,
                duration: Some(secs(if w == 1 { 5.0 } else { 4.0 })),
                ops: None,
                warmup: secs(1.0),
                rate: None,
                batch: 1,
                pipeline: 1,
                stall: None,
            };
            let r = load::run(target.as_ref(), &spec.to_string(), &load, ctx.global.quiet);
            if let Some(e) = &r.error {
                let msg = e.clone();
                ctx.report.loads.push(r);
                anyhow::bail!("{spec}: {msg}");
            }
            ctx.report.loads.push(r);
        }
        target.close()?;
        if durability == Durability::GroupSync {
            recovery_dir = Some(dir);
        }
    }

    // 3b. One producer streaming without a thread per record: tickets
    // pipelined, one batch per call, and large records against the device's
    // sequential bandwidth. Each checkpoints behind itself, as an application
    // would, so segments are recycled rather than created.
    for (record, batch, pipeline) in [(256usize, 1usize, 1024usize), (256, 1024, 1), (64 << 10, 1, 64)] {
        let spec = TargetSpec::default_wal();
        let dir = ctx.subdir(&format!("stream-{record}-b{batch}-p{pipeline}"))?;
        let wal = target::WalTuning { retain_bytes: Some(STREAM_RETAIN_BYTES), ..target::WalTuning::default() };
        let target = backends::open(&spec, &dir, &OpenOptions { wal, ..ctx.open_options(record) })?;
        let load = LoadSpec {
            test: TestKind::Stream,
            writers: 1,
            size: SizeRange { min: record, max: record },
            duration: Some(secs(3.0)),
            ops: None,
            warmup: secs(1.0),
            rate: None,
            batch,
            pipeline,
            stall: None,
        };
        let r = load::run(target.as_ref(), &spec.to_string(), &load, ctx.global.quiet);
        let failed = r.error.clone();
        ctx.report.loads.push(r);
        target.close()?;
        let _ = std::fs::remove_dir_all(&dir);
        if let Some(e) = failed {
            anyhow::bail!("{spec}: {e}");
        }
    }

    // 4. Recovery of what was written, topped up to a meaningful size.
    let dir = recovery_dir.expect("group-sync loads ran");
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
    ctx.report.recovery.push(recover::time_open(&dir, &rec_args, "close", 0)?);

    ctx.report.summary = summarize(&ctx.report);
    println!(
        "{}",
        table::sync_methods(&ctx.report.loads.iter().filter(|l| l.test == TestKind::Raw).cloned().collect::<Vec<_>>())
    );
    println!("{}", table::bandwidth(&ctx.report.bandwidth));
    println!(
        "{}",
        table::loads(&ctx.report.loads.iter().filter(|l| l.test != TestKind::Raw).cloned().collect::<Vec<_>>())
    );
    println!("{}", table::recovery(&ctx.report.recovery));
    println!("{}", table::summary(&ctx.report.summary));
    Ok(())
}

fn ratio(wal: f64, raw: f64) -> Option<f64> {
    (raw > 0.0).then(|| wal / raw)
}

/// Each WAL figure of the suite next to the raw device figure of the same run.
pub fn summarize(report: &Report) -> Vec<SummaryRow> {
    let raw_of =
        |method: SyncMethod| report.loads.iter().find(|l| l.test == TestKind::Raw && l.backend == method.name());
    let mut rows = Vec::new();
    let mut latency_rows = |wal: &str, method: SyncMethod, label: &str| {
        if let (Some(w), Some(r)) = (find(&report.loads, wal, 1), raw_of(method)) {
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
                    note: format!("vs {} at qd1", method.name()),
                });
            }
        }
    };
    latency_rows("uring-wal/group-sync", SyncMethod::UringFdatasync, "durable (group sync)");
    latency_rows("uring-wal/dsync", SyncMethod::UringDsync, "durable (DSYNC)");
    let raw_ops = raw_of(SyncMethod::UringFdatasync).map(|r| r.ops_per_sec);
    for l in report.loads.iter().filter(|l| l.backend == "uring-wal/group-sync" && l.test != TestKind::Stream) {
        rows.push(SummaryRow {
            metric: format!(
                "durable records/s, {} writer{}, {} B",
                l.writers,
                if l.writers == 1 { "" } else { "s" },
                l.record_bytes
            ),
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
    if let Some(l) = report
        .loads
        .iter()
        .filter(|l| l.backend == "uring-wal/group-sync" && l.test != TestKind::Stream)
        .max_by_key(|l| l.writers)
    {
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
    let write_bw = report.bandwidth.iter().find(|b| b.direction == "write").map(|b| b.mb_per_sec);
    for l in report.loads.iter().filter(|l| l.test == TestKind::Stream) {
        let how =
            if l.batch > 1 { format!("batches of {}", l.batch) } else { format!("{} tickets in flight", l.pipeline) };
        if l.record_bytes >= 4096.0 {
            rows.push(SummaryRow {
                metric: format!("durable MB/s, 1 producer, {how}, {} B", l.record_bytes),
                unit: "MB/s".into(),
                wal: l.mb_per_sec,
                raw: write_bw,
                ratio: write_bw.and_then(|b| ratio(l.mb_per_sec, b)),
                note: "vs sequential O_DIRECT write, 1 MiB at qd8".into(),
            });
        } else {
            rows.push(SummaryRow {
                metric: format!("durable records/s, 1 producer, {how}, {} B", l.record_bytes),
                unit: "records/s".into(),
                wal: l.ops_per_sec,
                raw: None,
                ratio: None,
                note: format!("{} records per flush", l.records_per_flush.map_or("-".into(), |b| format!("{b:.0}"))),
            });
        }
    }
    let read_bw = report.bandwidth.iter().find(|b| b.direction == "read").map(|b| b.mb_per_sec);
    for r in &report.recovery {
        rows.push(SummaryRow {
            metric: format!("recovery of {} MB, {} records", r.bytes / 1_000_000, r.records),
            unit: "MB/s".into(),
            wal: r.mb_per_sec,
            raw: read_bw,
            ratio: read_bw.and_then(|b| ratio(r.mb_per_sec, b)),
            note: format!("{:.0} records/s; vs sequential O_DIRECT read", r.records_per_sec),
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_sizes() {
        assert_eq!(padded_write_bytes(256, 4096), 4096);
        assert_eq!(padded_write_bytes(4064, 4096), 4096);
        assert_eq!(padded_write_bytes(4065, 4096), 8192);
        assert_eq!(padded_write_bytes(256, 512), 512);
    }
}
