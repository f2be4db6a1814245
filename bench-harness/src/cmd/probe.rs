//! `probe`, and the check before every command: what the device and file
//! system offer, and whether durability can be measured there at all.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cli::{Cli, Command};
use crate::env;
use crate::model::Environment;
use crate::report::table;

/// Creates the data directory `dir`, prints what it is on, and refuses
/// (unless --allow-buffered) to measure writes where nothing reaches a
/// device: tmpfs, or a file system without O_DIRECT. Returns the
/// environment and the block the WAL pads to there.
pub fn environment(cli: &Cli, dir: &Path) -> Result<(Environment, u32)> {
    let global = &cli.global;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let environment = env::collect(dir);
    println!("{}", table::environment(&environment));
    let writes = !matches!(cli.command, Some(Command::Probe));
    if writes && matches!(environment.fs_type.as_str(), "tmpfs" | "ramfs") && !global.allow_buffered {
        bail!(
            "{}: {} keeps data in memory, so durability cannot be measured there; pass --allow-buffered to \
             measure it anyway",
            dir.display(),
            environment.fs_type
        );
    }
    if writes && !environment.o_direct_accepted && !global.allow_buffered {
        bail!(
            "{}: {} ({}); pass --allow-buffered to measure buffered I/O there",
            dir.display(),
            environment.o_direct_refused_reason.as_deref().unwrap_or("O_DIRECT refused"),
            environment.fs_type
        );
    }
    Ok((environment, env::device_facts(dir).safe_block_bytes()))
}
