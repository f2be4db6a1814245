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

use crate::cli::{Cli, Command, Global};
use crate::model::Report;
use crate::report::{charts, hgrm, json};
use crate::target::OpenOptions;

/// What every command shares.
pub struct Ctx {
    pub global: Global,
    pub report: Report,
    /// Padding unit the WAL uses on the current data directory's device.
    pub block_bytes: u32,
    /// The data directories (`--dir A,B`), each with its padding unit, and
    /// which one loads run on now.
    dirs: Vec<(PathBuf, u32)>,
    current: usize,
    /// Directories the harness created, removed at the end unless --keep.
    pub created: Vec<PathBuf>,
}

impl Ctx {
    /// Probes each data directory (see [`probe::environment`]) and starts
    /// the report with the command line and what the probes found.
    pub fn new(cli: &Cli) -> Result<Ctx> {
        let several = matches!(
            cli.command,
            Some(Command::Latency(_) | Command::Throughput(_) | Command::Sweep(_) | Command::Probe)
        );
        if cli.global.dir.len() > 1 && !several {
            anyhow::bail!("several --dir are measured by latency, throughput and sweep (and shown by probe); give one");
        }
        let mut dirs = Vec::new();
        let mut environments = Vec::new();
        for dir in &cli.global.dir {
            let (environment, block_bytes) = probe::environment(cli, dir)?;
            environments.push(environment);
            dirs.push((dir.clone(), block_bytes));
        }
        let config = serde_json::to_value(cli).context("serializing the configuration")?;
        let environment = environments.first().cloned().unwrap_or_default();
        let environments = if environments.len() > 1 { environments } else { Vec::new() };
        Ok(Ctx {
            global: cli.global.clone(),
            report: Report { config, environment, environments, ..Report::default() },
            block_bytes: dirs.first().map_or(4096, |d| d.1),
            dirs,
            current: 0,
            created: Vec::new(),
        })
    }

    /// The data directories, by index for [`Ctx::select`]; their paths as
    /// given, when there are several (results then name theirs).
    pub fn dir_labels(&self) -> Vec<Option<String>> {
        let several = self.dirs.len() > 1;
        self.dirs.iter().map(|(d, _)| several.then(|| d.display().to_string())).collect()
    }

    /// Makes the `i`-th data directory the one [`Ctx::subdir`] creates in.
    pub fn select(&mut self, i: usize) {
        self.current = i.min(self.dirs.len().saturating_sub(1));
        self.block_bytes = self.dirs.get(self.current).map_or(4096, |d| d.1);
    }

    pub fn open_options(&self, record_bytes_max: usize) -> OpenOptions {
        OpenOptions { record_bytes_max, allow_buffered: self.global.allow_buffered, ..OpenOptions::default() }
    }

    /// A fresh directory for `name` inside the data directory.
    pub fn subdir(&mut self, name: &str) -> Result<PathBuf> {
        let slug: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        let dir = self.dirs[self.current].0.join(slug);
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
