//! `latency`, `throughput` and `sweep`: the same loads, told apart by
//! [`LoadKind`].

use std::time::Duration;

use anyhow::Result;

use super::Ctx;
use crate::backends;
use crate::cli::LoadArgs;
use crate::load::{self, LoadSpec};
use crate::model::TestKind;
use crate::raw::{self, RawFile, SyncMethod, padded_write_bytes};
use crate::report::table;
use crate::sys;
use crate::sys::SizeRange;
use crate::target::{OpenOptions, TargetSpec};
use crate::timeline;

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

/// What `args` ask for, with the defaults of `kind` filled in.
struct Plan<'a> {
    kind: LoadKind,
    args: &'a LoadArgs,
    writers: Vec<usize>,
    duration: Option<Duration>,
}

impl Plan<'_> {
    fn load(&self, writers: usize, size: SizeRange, dir: Option<String>) -> LoadSpec {
        let args = self.args;
        LoadSpec {
            test: self.kind.test(),
            writers,
            size,
            duration: self.duration,
            ops: args.ops,
            warmup: args.warmup,
            rate: args.rate,
            batch: args.batch,
            pipeline: args.pipeline,
            stall: args.debug_stall_after.map(|n| (n, Duration::from_millis(args.debug_stall_ms))),
            interval: args.interval,
            dir,
        }
    }
}

/// Runs every load of `args` for each backend; a backend that fails keeps
/// the results measured so far and the others still run.
pub fn run(kind: LoadKind, args: &LoadArgs, ctx: &mut Ctx) -> Result<()> {
    // An open loop appends at its schedule: a pipeline would be silently
    // dropped while the results still named it.
    if args.pipeline > 1 && args.rate.is_some() {
        anyhow::bail!("--pipeline and --rate cannot be combined: an open loop appends one operation at a time");
    }
    let writers = match (args.writers.is_empty(), kind) {
        (false, _) => args.writers.clone(),
        (true, LoadKind::Latency) => vec![1],
        (true, _) => vec![1, 4, 16, 64],
    };
    let duration = args.duration.or(if args.ops.is_some() { None } else { Some(Duration::from_secs(5)) });
    if let Some(interval) = args.interval {
        timeline::check_interval(interval, duration).map_err(anyhow::Error::msg)?;
    }
    let plan = Plan { kind, args, writers, duration };
    let mut first_error = None;
    let dirs = ctx.dir_labels();
    // Round by round, and each backend on every directory before the next,
    // so that slow drifts of a shared machine hit every backend and every
    // device alike.
    'rounds: for _ in 0..args.repeat {
        for spec in &args.backends {
            for (i, dir) in dirs.iter().enumerate() {
                if sys::interrupted() {
                    break 'rounds;
                }
                ctx.select(i);
                match spec {
                    TargetSpec::Raw(method) => device_alone(*method, &plan, dir, ctx, &mut first_error)?,
                    _ => one_backend(spec, &plan, dir, ctx, &mut first_error)?,
                }
            }
        }
    }
    ctx.select(0);
    if kind == LoadKind::Sweep && !sys::interrupted() {
        sync_methods(args.record_bytes[0].max, duration, ctx)?;
    }
    println!("{}", table::loads(&ctx.report.loads));
    if args.repeat > 1 || dirs.len() > 1 {
        let baseline = args.baseline.as_ref().or(args.backends.first()).map(ToString::to_string).unwrap_or_default();
        let baseline = labelled(&baseline, dirs.first().and_then(Option::as_deref));
        println!("{}", table::spread(&ctx.report.loads, &baseline));
    }
    first_error.map_or(Ok(()), Err)
}

/// A backend's name in results: with several data directories, also the
/// directory's (`uring-wal/group-sync @ /mnt/a`), so that tables, spreads
/// and charts keep them apart.
fn labelled(backend: &str, dir: Option<&str>) -> String {
    match dir {
        Some(d) => format!("{backend} @ {d}"),
        None => backend.to_string(),
    }
}

/// Every writer count and record size of `plan` on `spec`, in the current
/// data directory (`dir` names it when there are several); a failure to
/// open, measure or close goes to `first_error` (if it is the first).
fn one_backend(
    spec: &TargetSpec,
    plan: &Plan<'_>,
    dir_label: &Option<String>,
    ctx: &mut Ctx,
    first_error: &mut Option<anyhow::Error>,
) -> Result<()> {
    let name = labelled(&spec.to_string(), dir_label.as_deref());
    let dir = ctx.subdir(&spec.to_string())?;
    let record_max = plan.args.record_bytes.iter().map(|s| s.max).max().unwrap_or(256);
    let opts = OpenOptions { wal: plan.args.tuning(), ..ctx.open_options(record_max) };
    let target = match backends::open(spec, &dir, &opts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {spec}: {e:#}");
            first_error.get_or_insert(e);
            return Ok(());
        }
    };
    eprintln!("{spec}: {}", target.describe());
    if !spec.is_durable() {
        eprintln!("note: {spec} acknowledges appends before they are synced; its figures are not durable appends");
    }
    'loads: for &size in &plan.args.record_bytes {
        for &w in &plan.writers {
            if sys::interrupted() {
                break 'loads;
            }
            let r = load::run(target.as_ref(), &name, &plan.load(w, size, dir_label.clone()), ctx.global.quiet);
            if let Some(e) = &r.error {
                first_error.get_or_insert(anyhow::anyhow!("{spec}: {e}"));
            }
            ctx.report.loads.push(r);
        }
    }
    if let Err(e) = target.close() {
        first_error.get_or_insert(e.context(format!("closing {spec}")));
    }
    Ok(())
}

/// The device alone (`raw:METHOD`): durable writes of each record size,
/// padded as the log pads them, at queue depth 1 from one thread; only at
/// one writer.
fn device_alone(
    method: SyncMethod,
    plan: &Plan<'_>,
    dir_label: &Option<String>,
    ctx: &mut Ctx,
    first_error: &mut Option<anyhow::Error>,
) -> Result<()> {
    if !plan.writers.contains(&1) {
        eprintln!("note: {} runs at one writer only; skipped", method.name());
        return Ok(());
    }
    let dir = ctx.subdir(method.name())?;
    std::fs::create_dir_all(&dir)?;
    let direct = crate::env::o_direct(&dir).is_ok();
    let file = RawFile::prepare(&dir, 256 << 20, direct)?;
    let duration = plan.duration.unwrap_or(Duration::from_secs(5));
    for size in &plan.args.record_bytes {
        let write_bytes = padded_write_bytes(size.max, ctx.block_bytes);
        match raw::qd1(&file, method, write_bytes, plan.args.warmup, duration, plan.args.interval) {
            Ok(mut r) => {
                r.backend = labelled(&r.backend, dir_label.as_deref());
                r.dir.clone_from(dir_label);
                ctx.report.loads.push(r);
            }
            Err(e) => {
                eprintln!("error: {}: {e:#}", method.name());
                first_error.get_or_insert(e);
            }
        }
    }
    Ok(())
}

/// A pg_test_fsync-like table of sync methods, at the padded size of a
/// record of `record_bytes`.
fn sync_methods(record_bytes: usize, duration: Option<Duration>, ctx: &mut Ctx) -> Result<()> {
    let write_bytes = padded_write_bytes(record_bytes, ctx.block_bytes);
    let dir = ctx.subdir("raw-sync-methods")?;
    std::fs::create_dir_all(&dir)?;
    let direct = crate::env::o_direct(&dir).is_ok();
    let file = RawFile::prepare(&dir, 64 << 20, direct)?;
    let t = duration.unwrap_or(Duration::from_secs(2)).min(Duration::from_secs(3));
    let mut methods = Vec::new();
    for m in SyncMethod::ALL {
        methods.push(raw::qd1(&file, m, write_bytes, t / 5, t, None)?);
    }
    println!("{}", table::sync_methods(&methods));
    ctx.report.loads.extend(methods);
    Ok(())
}
