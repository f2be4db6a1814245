//! One module per subcommand, and what they share: [`Ctx`], the options of
//! every command, the report being filled and the directories to clean up.

pub mod load;
pub mod probe;
pub mod raft;
pub mod raw;
pub mod recovery;
pub mod report;
pub mod suite;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::{Cli, Global};
use crate::model::Report;
use crate::report::{charts, hgrm, json};
use crate::target::OpenOptions;

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
    /// Probes the data directory (see [`probe::environment`]) and starts the
    /// report with the command line and what the probe found.
    pub fn new(cli: &Cli) -> Result<Ctx> {
        let (environment, block_bytes) = probe::environment(cli)?;
        let config = serde_json::to_value(cli).context("serializing the configuration")?;
        Ok(Ctx {
            global: cli.global.clone(),
            report: Report { config, environment, ..Report::default() },
            block_bytes,
            created: Vec::new(),
        })
    }

    pub fn open_options(&self, record_bytes_max: usize) -> OpenOptions {
        OpenOptions { record_bytes_max, allow_buffered: self.global.allow_buffered, ..OpenOptions::default() }
    }

    /// A fresh directory for `name` inside the data directory.
    pub fn subdir(&mut self, name: &str) -> Result<PathBuf> {
        let slug: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        let dir = self.global.dir.join(slug);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        self.created.push(dir.clone());
        Ok(dir)
    }

    /// Removes what the harness wrote, then writes whatever was measured
    /// (also after a failure) to the files asked for; returns the command's
    /// `result`.
    pub fn finish(mut self, result: Result<()>) -> Result<()> {
        if !self.global.keep {
            for d in self.created.drain(..) {
                let _ = std::fs::remove_dir_all(&d);
            }
        }
        write_outputs(&self.global, &self.report)?;
        result
    }
}

/// Writes the report as JSON, `.hgrm` and SVG, as `global` asks.
pub fn write_outputs(global: &Global, report: &Report) -> Result<()> {
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
        for p in charts::write_charts(path, report)? {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}
