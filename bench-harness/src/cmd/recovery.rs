//! `recovery`: write a log, close or SIGKILL the writer, time open-to-ready.

use anyhow::Result;

use super::Ctx;
use crate::cli::RecoveryArgs;
use crate::recover;
use crate::report::table;

pub fn run(args: &RecoveryArgs, ctx: &mut Ctx) -> Result<()> {
    let dir = ctx.subdir("recovery")?;
    let r = recover::run(args, &dir, &ctx.open_options(args.record_bytes.max), ctx.global.quiet)?;
    ctx.report.recovery.push(r);
    println!("{}", table::recovery(&ctx.report.recovery));
    Ok(())
}
