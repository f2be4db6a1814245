//! `raft`: client writes through a three-node in-process openraft cluster,
//! on each log store in turn (see [`crate::raft`]).

use anyhow::{Context, Result, anyhow};

use super::Ctx;
use crate::cli::{RaftArgs, RaftStore};
use crate::raft;
use crate::report::table;

/// Each store in turn, each with its own cluster, at every client count.
pub fn run(args: &RaftArgs, ctx: &mut Ctx) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let mut first_error = None;
    for &store in &args.stores {
        let dir = match store {
            RaftStore::Memory => None,
            _ => Some(ctx.subdir(&format!("raft-{}", store.label()))?),
        };
        let outcome =
            rt.block_on(raft::measure_store(store, args, dir.as_deref(), ctx.global.allow_buffered, ctx.global.quiet));
        match outcome {
            Ok(results) => {
                for r in results {
                    if let Some(e) = &r.error {
                        first_error.get_or_insert(anyhow!("{}: {e}", store.label()));
                    }
                    ctx.report.loads.push(r);
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e:#}", store.label());
                first_error.get_or_insert(e.context(store.label()));
            }
        }
        // The logs are closed with their nodes; free the space before the next store.
        if let Some(d) = dir
            && !ctx.global.keep
        {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    drop(rt);
    println!("{}", table::raft(&ctx.report.loads));
    first_error.map_or(Ok(()), Err)
}
