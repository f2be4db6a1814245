//! bench-harness: the program that measures uring-wal.
//!
//! Append latency percentiles, throughput, recovery time and durability
//! settings, against the raw device (through the same io_uring path) and,
//! with `--features peers`, against other WAL libraries. See `--help`.
//!
//! `cmd/` has one module per subcommand; below it, the measurements
//! (`load`, `raw`, `recover`, `raft`), the logs they run on (`target`,
//! `backends`, `peers`), and the output (`model`, `report/`).

mod backends;
mod cli;
mod cmd;
mod env;
mod load;
mod model;
#[cfg(feature = "peers")]
mod peers;
mod raft;
#[cfg(feature = "peers")]
mod raft_log_store;
mod random;
mod raw;
mod recover;
mod report;
mod sys;
mod target;
mod timeline;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, RunArgs};
use cmd::Ctx;
use cmd::load::LoadKind;

fn main() -> ExitCode {
    let cli = Cli::parse();
    sys::handle_interrupts();
    match dispatch(&cli) {
        // Interrupted: what was measured is written, but the run is not whole.
        Ok(()) if sys::interrupted() => ExitCode::from(130),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: &Cli) -> Result<()> {
    if let Some(Command::RecoveryChild(args)) = &cli.command {
        return recover::child(args, cli.global.allow_buffered);
    }
    if let Some(Command::Report(args)) = &cli.command {
        return cmd::report::run(args, &cli.global);
    }
    let mut ctx = Ctx::new(cli)?;
    let c = &mut ctx;
    let result = match &cli.command {
        None => cmd::suite::run(&RunArgs { recovery_bytes: 512 << 20, ..RunArgs::default() }, c),
        Some(Command::Run(a)) => cmd::suite::run(a, c),
        Some(Command::Probe) => Ok(()),
        Some(Command::Raw(a)) => cmd::raw::run(a, c),
        Some(Command::Latency(a)) => cmd::load::run(LoadKind::Latency, a, c),
        Some(Command::Throughput(a)) => cmd::load::run(LoadKind::Throughput, a, c),
        Some(Command::Sweep(a)) => cmd::load::run(LoadKind::Sweep, a, c),
        Some(Command::Recovery(a)) => cmd::recovery::run(a, c),
        Some(Command::Raft(a)) => cmd::raft::run(a, c),
        Some(Command::RecoveryChild(_) | Command::Report(_)) => unreachable!("handled above"),
    };
    ctx.finish(result)
}
