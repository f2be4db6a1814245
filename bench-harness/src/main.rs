//! bench-harness: the program that measures uring-wal.
//!
//! Append latency percentiles, throughput, recovery time and durability
//! settings, against the raw device (through the same io_uring path) and,
//! with `--features peers`, against other WAL libraries. See `--help`.

mod backends;
mod cli;
mod env;
mod load;
mod model;
#[cfg(feature = "peers")]
mod peers;
mod raft;
mod random;
mod raw;
mod recover;
mod report;
mod run;
mod sys;
mod target;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;

use cli::{Cli, Command, RunArgs};
use model::Report;
use report::{hgrm, json, svg, table};
use run::{Ctx, LoadKind};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<()> {
    if let Some(Command::RecoveryChild(args)) = &cli.command {
        return recover::child(args, cli.global.allow_buffered);
    }
    let global = cli.global.clone();
    std::fs::create_dir_all(&global.dir).with_context(|| format!("creating {}", global.dir.display()))?;
    let environment = env::collect(&global.dir);
    println!("{}", table::environment(&environment));
    let writes = !matches!(cli.command, Some(Command::Probe));
    if writes && matches!(environment.fs_type.as_str(), "tmpfs" | "ramfs") && !global.allow_buffered {
        bail!(
            "{}: {} keeps data in memory, so durability cannot be measured there; pass --allow-buffered to \
             measure it anyway",
            global.dir.display(),
            environment.fs_type
        );
    }
    if writes && !environment.o_direct_accepted && !global.allow_buffered {
        bail!(
            "{}: {} ({}); pass --allow-buffered to measure buffered I/O there",
            global.dir.display(),
            environment.o_direct_refused_reason.as_deref().unwrap_or("O_DIRECT refused"),
            environment.fs_type
        );
    }
    let device = env::device_facts(&global.dir);
    let mut ctx = Ctx {
        global: global.clone(),
        report: Report {
            config: serde_json::to_value(&cli).context("serializing the configuration")?,
            environment,
            ..Report::default()
        },
        block_bytes: device.safe_block_bytes(),
        created: Vec::new(),
    };
    let result = match &cli.command {
        None => run::suite(&RunArgs { recovery_bytes: 512 << 20, ..RunArgs::default() }, &mut ctx),
        Some(Command::Run(a)) => run::suite(a, &mut ctx),
        Some(Command::Probe) => Ok(()),
        Some(Command::Raw(a)) => run::raw(a, &mut ctx),
        Some(Command::Latency(a)) => run::loads(LoadKind::Latency, a, &mut ctx),
        Some(Command::Throughput(a)) => run::loads(LoadKind::Throughput, a, &mut ctx),
        Some(Command::Sweep(a)) => run::loads(LoadKind::Sweep, a, &mut ctx),
        Some(Command::Recovery(a)) => run::recovery(a, &mut ctx),
        Some(Command::Raft(a)) => raft::run(a, &mut ctx),
        Some(Command::RecoveryChild(_)) => unreachable!("handled above"),
    };
    ctx.cleanup();
    // Whatever was measured is written out, also after a failure.
    let report = &ctx.report;
    if let Some(path) = &global.json {
        json::write(path, report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &global.hgrm {
        let items: Vec<(String, &hdrhistogram::Histogram<u64>)> = report
            .loads
            .iter()
            .filter(|l| !l.histogram.is_empty())
            .map(|l| (format!("{} {}w {}B", l.backend, l.writers, l.record_bytes), &l.histogram))
            .collect();
        for p in hgrm::write_all(path, &items)? {
            eprintln!("wrote {}", p.display());
        }
    }
    if let Some(path) = &global.svg {
        for p in svg::write_charts(path, report)? {
            eprintln!("wrote {}", p.display());
        }
    }
    result
}
