//! `report FILE`: the tables and charts of a saved report, without
//! measuring anything (to redraw the charts in docs/bench, say).

use anyhow::{Context, Result};

use crate::cli::{Global, ReportArgs};
use crate::model::{LoadResult, Report, TestKind};
use crate::report::table;

pub fn run(args: &ReportArgs, global: &Global) -> Result<()> {
    let path = &args.file;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let report: Report =
        serde_json::from_str(&text).with_context(|| format!("{}: not a report written by --json", path.display()))?;
    if report.environments.is_empty() {
        println!("{}", table::environment(&report.environment));
    }
    for environment in &report.environments {
        println!("{}", table::environment(environment));
    }
    print_tables(&report);
    super::write_outputs(global, &report)
}

/// Every table the report has data for.
fn print_tables(report: &Report) {
    let of = |test: fn(TestKind) -> bool| -> Vec<LoadResult> {
        report.loads.iter().filter(|l| test(l.test)).cloned().collect()
    };
    let raw = of(|t| t == TestKind::Raw);
    let loads = of(|t| t != TestKind::Raw && t != TestKind::Raft);
    if !raw.is_empty() {
        println!("{}", table::sync_methods(&raw));
    }
    if !report.bandwidth.is_empty() {
        println!("{}", table::bandwidth(&report.bandwidth));
    }
    if !loads.is_empty() {
        println!("{}", table::loads(&loads));
    }
    if !report.results.is_empty() {
        println!("{}", table::raft(&report.results, report.raft_bound.as_ref()));
    }
    if !report.recovery.is_empty() {
        println!("{}", table::recovery(&report.recovery));
    }
    if !report.summary.is_empty() {
        println!("{}", table::summary(&report.summary));
    }
}
