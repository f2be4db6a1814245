//! `raw`: the device alone.

use std::time::Duration;

use anyhow::Result;

use super::Ctx;
use crate::cli::RawArgs;
use crate::raw::{self, RawFile, SyncMethod, padded_write_bytes};
use crate::report::table;

/// qd1 durable writes (io_uring's two sync methods, or all of them) and
/// sequential bandwidth.
pub fn run(args: &RawArgs, ctx: &mut Ctx) -> Result<()> {
    let dir = ctx.subdir("raw")?;
    std::fs::create_dir_all(&dir)?;
    let write_bytes =
        args.write_bytes.map_or_else(|| padded_write_bytes(args.record_bytes.max, ctx.block_bytes), |w| w as usize);
    let direct = crate::env::o_direct(&dir).is_ok();
    let file = RawFile::prepare(&dir, args.file_bytes.max(write_bytes as u64 * 16), direct)?;
    if let Some(interval) = args.interval {
        crate::timeline::check_interval(interval, Some(args.duration)).map_err(anyhow::Error::msg)?;
    }
    let methods: &[SyncMethod] =
        if args.all_methods { &SyncMethod::ALL } else { &[SyncMethod::UringFdatasync, SyncMethod::UringDsync] };
    let warmup = (args.duration / 6).min(Duration::from_secs(1));
    for &m in methods {
        let r = raw::qd1(&file, m, write_bytes, warmup, args.duration, args.interval)?;
        ctx.report.loads.push(r);
    }
    let qd = args.queue_depth as usize;
    let block = args.seq_block_bytes as usize;
    for how in [raw::Seq::Write, raw::Seq::WriteSynced, raw::Seq::Read] {
        ctx.report.bandwidth.push(raw::sequential(&file, how, block, qd)?);
    }
    ctx.report.bandwidth.push(raw::sequential_cached_read(&file, block)?);
    println!("{}", table::sync_methods(&ctx.report.loads));
    println!("{}", table::bandwidth(&ctx.report.bandwidth));
    Ok(())
}
