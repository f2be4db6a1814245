//! `raft`: client writes through a three-node in-process openraft cluster,
//! on each log store (see [`crate::raft`]), run after run with the stores
//! alternating, next to what the device alone allows.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use super::Ctx;
use crate::cli::{RaftArgs, RaftStore};
use crate::model::{LoadResult, RaftBound, RaftResult};
use crate::raft;
use crate::raw::{self, RawFile, SyncMethod};
use crate::report::table;

/// One load of one run: its store, its groups, what the cluster cost.
struct Run {
    store: RaftStore,
    groups: usize,
    result: LoadResult,
    footprint: raft::Footprint,
}

/// Every store at every group and client count, `--repeat` rounds (each
/// round the stores in another order), then the medians.
pub fn run(args: &RaftArgs, ctx: &mut Ctx) -> Result<()> {
    let stores = if args.stores.is_empty() { RaftStore::defaults() } else { args.stores.clone() };
    if stores.iter().any(|&s| s != RaftStore::Memory) {
        ctx.report.raft_bound = Some(bound(ctx)?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let mut first_error = None;
    let mut runs: Vec<Run> = Vec::new();
    for &groups in &args.groups {
        for round in 0..args.repeat {
            // Alternate: each store in turn first, so no store always runs
            // on a device the others warmed (or tired).
            let mut order = stores.clone();
            order.rotate_left(round % stores.len());
            for &store in &order {
                // Ctrl-C: no further cluster starts; what ran is reported.
                if crate::sys::interrupted() {
                    break;
                }
                if !ctx.global.quiet && args.repeat > 1 {
                    eprintln!("raft: {groups} groups, round {} of {}", round + 1, args.repeat);
                }
                let dir = match store {
                    RaftStore::Memory => None,
                    _ => Some(ctx.subdir(&format!("raft-{}", store.label()))?),
                };
                let outcome = rt.block_on(raft::measure_store(
                    store,
                    groups,
                    args,
                    dir.as_deref(),
                    ctx.global.allow_buffered,
                    ctx.global.quiet,
                ));
                match outcome {
                    Ok((results, footprint)) => {
                        for result in results {
                            if let Some(e) = &result.error {
                                first_error.get_or_insert(anyhow!("{}: {e}", store.label()));
                            }
                            runs.push(Run { store, groups, result, footprint });
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {}: {e:#}", store.label());
                        first_error.get_or_insert(e.context(store.label()));
                    }
                }
                // The logs are closed with their nodes; free the space for
                // the next.
                if let Some(d) = dir
                    && !ctx.global.keep
                {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
        }
    }
    drop(rt);
    ctx.report.results = medians(&stores, &args.groups, &args.clients, &runs);
    ctx.report.loads.extend(runs.into_iter().map(|r| r.result));
    println!("{}", table::raft(&ctx.report.results, ctx.report.raft_bound.as_ref()));
    first_error.map_or(Ok(()), Err)
}

/// The device's durable write at queue depth one, the faster of write +
/// fdatasync and `RWF_DSYNC` (4 KiB, as the log pads a flush), measured in
/// the data directory: a commit needs two of them (leader, one follower).
fn bound(ctx: &mut Ctx) -> Result<RaftBound> {
    let dir = ctx.subdir("raft-device")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = RawFile::prepare(&dir, 64 << 20, !ctx.global.allow_buffered)?;
    let mut best: Option<LoadResult> = None;
    for method in [SyncMethod::UringFdatasync, SyncMethod::UringDsync] {
        let r = raw::qd1(&file, method, 4096, Duration::from_millis(300), Duration::from_secs(2), None)?;
        if best.as_ref().is_none_or(|b| r.latency.p50_us < b.latency.p50_us) {
            best = Some(r);
        }
    }
    drop(file);
    let _ = std::fs::remove_dir_all(&dir);
    let best = best.context("no device measurement")?;
    let bound_p50_us = 2.0 * best.latency.p50_us;
    Ok(RaftBound {
        device_method: best.backend.clone(),
        device_p50_us: best.latency.p50_us,
        bound_p50_us,
        bound_writes_per_s: 1e6 / bound_p50_us,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians over the runs of each store, group count and client count.
fn medians(stores: &[RaftStore], groups: &[usize], clients: &[usize], runs: &[Run]) -> Vec<RaftResult> {
    let mut out = Vec::new();
    for &g in groups {
        for &c in clients {
            for &store in stores {
                let mine: Vec<&Run> =
                    runs.iter().filter(|r| r.store == store && r.groups == g && r.result.writers == c).collect();
                if mine.is_empty() {
                    continue;
                }
                let of = |f: fn(&LoadResult) -> f64| median(mine.iter().map(|r| f(&r.result)).collect());
                let rates: Vec<f64> = mine.iter().map(|r| r.result.ops_per_sec).collect();
                let syncs: Vec<f64> = mine
                    .iter()
                    .filter_map(|r| r.result.syncs_per_sec.map(|s| s / r.result.ops_per_sec.max(f64::MIN_POSITIVE)))
                    .collect();
                out.push(RaftResult {
                    store: store.label().into(),
                    groups: g,
                    clients: c,
                    runs: mine.len(),
                    writes_per_s: median(rates.clone()),
                    writes_per_s_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
                    writes_per_s_max: rates.iter().copied().fold(0.0, f64::max),
                    p50_us: of(|r| r.latency.p50_us),
                    p99_us: of(|r| r.latency.p99_us),
                    p999_us: of(|r| r.latency.p999_us),
                    cpu_us_per_write: of(|r| r.cpu_us_per_op),
                    syncs_per_write: (!syncs.is_empty()).then(|| median(syncs)),
                    threads: median(mine.iter().map(|r| r.footprint.threads as f64).collect()) as usize,
                    rss_bytes: median(mine.iter().map(|r| r.footprint.rss_bytes as f64).collect()) as u64,
                    disk_bytes: median(mine.iter().map(|r| r.footprint.disk_bytes as f64).collect()) as u64,
                    error: mine.iter().find_map(|r| r.result.error.clone()),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_runs() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
