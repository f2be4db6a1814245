//! Human-readable tables for stdout: fixed-width aligned columns with the unit
//! in each header, `-` for a value that is missing.

use std::fmt::Write as _;

use super::{record_bytes, thousands};
use crate::model::{
    BandwidthResult, Environment, LatencySummary, LoadResult, RaftBound, RaftResult, RecoveryResult, SummaryRow,
};

const MISSING: &str = "-";

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment as Align, ContentLineStyle, LineStyle, TableStyle};

/// Columns two spaces apart, each as wide as its widest cell, a rule of `-`
/// under the header; no borders.
const STYLE: TableStyle = NOTHING
    .header_lines(ContentLineStyle::none().junction(' '))
    .header_separator(LineStyle::none().fill('-').junction(' '))
    .content_lines(ContentLineStyle::none().junction(' '));

/// A table for the terminal (comfy-table), and lines of free text below
/// some of its rows (an error), which are not part of the columns.
struct Table {
    table: comfy_table::Table,
    /// `(rows above, text)`.
    notes: Vec<(usize, String)>,
}

impl Table {
    fn new(columns: &[(&'static str, Align)]) -> Table {
        let mut table = comfy_table::Table::new();
        table.load_style(STYLE).set_header(columns.iter().map(|c| c.0));
        for (i, (column, &(_, align))) in table.column_iter_mut().zip(columns).enumerate() {
            // The padding before a column and the junction: two spaces.
            column.set_cell_alignment(align);
            column.set_padding((u16::from(i > 0), 0));
        }
        Table { table, notes: Vec::new() }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.table.add_row(cells);
    }

    fn note(&mut self, text: String) {
        self.notes.push((self.table.row_count(), text));
    }

    fn render(&self) -> String {
        let mut out = String::new();
        let mut notes = self.notes.iter().peekable();
        for (i, line) in self.table.lines().enumerate() {
            out.push_str(line.trim_end());
            out.push('\n');
            // Header and rule, then one line per row.
            while let Some((_, text)) = notes.next_if(|n| i >= 2 && n.0 == i - 1) {
                out.push_str("    ");
                out.push_str(text);
                out.push('\n');
            }
        }
        out
    }
}

/// A latency in microseconds: one decimal under 100 us, an integer above.
fn latency(us: f64) -> String {
    if !us.is_finite() {
        MISSING.to_string()
    } else if us.abs() < 100.0 {
        format!("{us:.1}")
    } else {
        thousands(us)
    }
}

/// A rate: one decimal under 100, an integer with separators above.
fn rate(v: f64) -> String {
    if !v.is_finite() {
        MISSING.to_string()
    } else if v.abs() < 100.0 {
        format!("{v:.1}")
    } else {
        thousands(v)
    }
}

/// A figure with two decimals under 10, one under 1000, an integer above.
fn number(v: f64) -> String {
    if !v.is_finite() {
        MISSING.to_string()
    } else if v == 0.0 {
        "0".to_string()
    } else if v.abs() < 0.01 {
        format!("{v:.4}")
    } else if v.abs() < 10.0 {
        format!("{v:.2}")
    } else if v.abs() < 1000.0 {
        format!("{v:.1}")
    } else {
        thousands(v)
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| MISSING.to_string())
}

fn mib(bytes: u64) -> String {
    if bytes == 0 { MISSING.to_string() } else { format!("{:.1}", bytes as f64 / (1u64 << 20) as f64) }
}

fn mb(bytes: u64) -> String {
    number(bytes as f64 / 1e6)
}

fn yes_no(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".to_string(),
        Some(false) => "no".to_string(),
        None => "unknown".to_string(),
    }
}

fn or_missing(s: &str) -> String {
    if s.trim().is_empty() { MISSING.to_string() } else { s.to_string() }
}

fn bytes_opt(v: Option<u32>) -> String {
    opt(v, |b| format!("{} B", thousands(f64::from(b))))
}

/// The machine and storage measured, one `label: value` per line.
pub fn environment(env: &Environment) -> String {
    let device = match (&env.device, &env.device_name) {
        (Some(d), Some(n)) if !n.trim().is_empty() => format!("{d} ({n})"),
        (Some(d), _) => d.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => MISSING.to_string(),
    };
    let memory = if env.memory_bytes == 0 {
        MISSING.to_string()
    } else {
        format!("{:.1} GiB", env.memory_bytes as f64 / (1u64 << 30) as f64)
    };
    let cpus = match (env.cpus, env.cpu_model.trim()) {
        (0, "") => MISSING.to_string(),
        (0, model) => model.to_string(),
        (n, "") => n.to_string(),
        (n, model) => format!("{n} x {model}"),
    };
    let io_uring = if env.io_uring_available {
        "available".to_string()
    } else {
        format!("unavailable: {}", env.io_uring_unavailable_reason.as_deref().unwrap_or("reason unknown"))
    };
    let o_direct = if env.o_direct_accepted {
        "accepted".to_string()
    } else {
        format!("refused: {}", env.o_direct_refused_reason.as_deref().unwrap_or("reason unknown"))
    };
    let atomic = match env.atomic_write_unit_max_bytes {
        Some(0) => "none".to_string(),
        v => bytes_opt(v),
    };
    let items: Vec<(&str, String)> = vec![
        ("bench-harness", or_missing(&env.harness_version)),
        ("uring-wal", or_missing(&env.library_version)),
        ("timestamp (UTC)", or_missing(&env.timestamp_utc)),
        ("kernel", or_missing(&env.kernel)),
        ("CPUs", cpus),
        ("memory", memory),
        ("directory", or_missing(&env.dir)),
        ("file system", or_missing(&env.fs_type)),
        ("device", device),
        ("logical block", bytes_opt(env.logical_block_bytes)),
        ("physical block", bytes_opt(env.physical_block_bytes)),
        (
            "O_DIRECT alignment",
            format!(
                "memory {} B, offset {} B",
                thousands(f64::from(env.dio_mem_align)),
                thousands(f64::from(env.dio_offset_align))
            ),
        ),
        ("write cache", opt(env.write_cache.as_deref(), or_missing)),
        ("FUA", yes_no(env.fua)),
        ("atomic write max", atomic),
        ("rotational", yes_no(env.rotational)),
        ("io_uring", io_uring),
        ("O_DIRECT", o_direct),
    ];
    let width = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::from("Environment\n");
    for (key, value) in items {
        let _ = writeln!(out, "  {:<width$} {value}", format!("{key}:"));
    }
    out
}

fn latency_cells(l: &LatencySummary) -> Vec<String> {
    if l.count == 0 {
        return vec![MISSING.to_string(); 7];
    }
    [l.min_us, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us, l.max_us].into_iter().map(latency).collect()
}

/// The test name, with the target rate of an open-loop load and the
/// records each writer has in flight when more than one.
fn test_label(r: &LoadResult) -> String {
    let mut label = r.test.to_string();
    if let Some(rate) = r.rate_ops_per_sec {
        label.push_str(&format!(" @{}/s", thousands(rate)));
    }
    if r.batch > 1 {
        label.push_str(&format!(" batch {}", r.batch));
    }
    if r.pipeline > 1 {
        label.push_str(&format!(" pipeline {}", r.pipeline));
    }
    label
}

/// One row per load (a second, `(uncorrected)`, for an open loop), its error
/// on a line of its own below it.
pub fn loads(results: &[LoadResult]) -> String {
    let mut t = Table::new(&[
        ("test", Align::Left),
        ("backend", Align::Left),
        ("writers", Align::Right),
        ("record B", Align::Right),
        ("ops/s", Align::Right),
        ("MB/s", Align::Right),
        ("min us", Align::Right),
        ("p50 us", Align::Right),
        ("p90 us", Align::Right),
        ("p99 us", Align::Right),
        ("p99.9 us", Align::Right),
        ("p99.99 us", Align::Right),
        ("max us", Align::Right),
        ("rec/flush", Align::Right),
        ("syncs/s", Align::Right),
        ("segs new/reused", Align::Right),
        ("CPU us/op", Align::Right),
        ("RSS MiB", Align::Right),
    ]);
    for r in results {
        let mut cells = vec![
            test_label(r),
            r.backend.clone(),
            r.writers.to_string(),
            record_bytes(r.record_bytes),
            rate(r.ops_per_sec),
            number(r.mb_per_sec),
        ];
        cells.extend(latency_cells(&r.latency));
        cells.extend([
            opt(r.records_per_flush, |v| format!("{v:.1}")),
            opt(r.syncs_per_sec, rate),
            opt(r.segments, |s| format!("{}/{}", s.created, s.recycled)),
            number(r.cpu_us_per_op),
            mib(r.peak_rss_bytes),
        ]);
        t.row(cells);
        if let Some(u) = &r.latency_uncorrected {
            let mut cells = vec![String::new(), "  (uncorrected)".to_string()];
            cells.extend(std::iter::repeat_n(String::new(), 4));
            cells.extend(latency_cells(u));
            cells.extend(std::iter::repeat_n(String::new(), 5));
            t.row(cells);
        }
        if let Some(s) = r.segments.filter(|s| s.stalls > 0) {
            let cut = match s.fills_cut {
                0 => String::new(),
                n => format!(" ({n} zero-fills cut short to end the wait)"),
            };
            t.note(format!(
                "{}: the I/O thread waited {} times for its next segment to be prepared{cut}",
                r.backend, s.stalls
            ));
        }
        if let Some(e) = &r.error {
            t.note(format!("error: {e}"));
        }
    }
    t.render()
}

/// Repeated runs: per backend and load, each figure as `median (min-max)`
/// over the runs; then each backend's medians over `baseline`'s for the same
/// load, `~` marking a ratio whose spreads overlap (not significant).
pub fn spread(results: &[LoadResult], baseline: &str) -> String {
    use super::spread::{FIGURES, Ratio, baseline_of, groups};
    let mut columns =
        vec![("backend", Align::Left), ("writers", Align::Right), ("record B", Align::Right), ("runs", Align::Right)];
    columns.extend(FIGURES.iter().map(|(name, _)| (*name, Align::Right)));
    let mut t = Table::new(&columns);
    let gs = groups(results);
    for g in &gs {
        let mut cells =
            vec![g.backend.to_string(), g.writers.to_string(), record_bytes(g.record_bytes), g.runs.len().to_string()];
        for (_, f) in FIGURES {
            cells.push(g.spread(f).map_or_else(
                || MISSING.to_string(),
                |s| format!("{} ({}-{})", number(s.median), number(s.min), number(s.max)),
            ));
        }
        t.row(cells);
    }
    let mut r = Table::new(&columns);
    for g in &gs {
        let Some(b) = baseline_of(&gs, g, baseline) else { continue };
        let mut cells =
            vec![g.backend.to_string(), g.writers.to_string(), record_bytes(g.record_bytes), g.runs.len().to_string()];
        for (_, f) in FIGURES {
            cells.push(match (g.spread(f), b.spread(f)) {
                (Some(a), Some(b)) => {
                    let ratio = Ratio::of(&a, &b);
                    format!("{}{:.2}x", if ratio.significant { "" } else { "~" }, ratio.value)
                }
                _ => MISSING.to_string(),
            });
        }
        r.row(cells);
    }
    format!(
        "Spread over repeated runs: median (min-max)\n{}\nRatios of medians to {baseline} (~: the spreads overlap, not significant)\n{}",
        t.render(),
        r.render()
    )
}

/// `raft`: each store at each client count, medians over the runs, next to
/// the in-memory store (consensus without a disk), the best peer and the
/// device's bound.
pub fn raft(results: &[RaftResult], bound: Option<&RaftBound>) -> String {
    let mut t = Table::new(&[
        ("store", Align::Left),
        ("groups", Align::Right),
        ("clients", Align::Right),
        ("runs", Align::Right),
        ("writes/s", Align::Right),
        ("spread", Align::Right),
        ("p50 us", Align::Right),
        ("p99 us", Align::Right),
        ("p99.9 us", Align::Right),
        ("CPU us/write", Align::Right),
        ("syncs/write", Align::Right),
        ("vs memory", Align::Right),
        ("vs best raft-log", Align::Right),
        ("shared vs it", Align::Right),
        ("p50 vs bound", Align::Right),
    ]);
    let ratio = |a: f64, b: f64| {
        if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() { format!("{:.2}x", a / b) } else { MISSING.into() }
    };
    for r in results {
        let same =
            |store: &str| results.iter().find(|x| x.store == store && x.clients == r.clients && x.groups == r.groups);
        let memory = same("memory");
        let peer = [same("raft-log"), same("raft-log-nowait")]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.writes_per_s.total_cmp(&b.writes_per_s));
        let vs_bound = match bound {
            Some(b) if r.store != "memory" && r.clients == 1 => ratio(r.p50_us, b.bound_p50_us),
            _ => MISSING.into(),
        };
        t.row(vec![
            r.store.clone(),
            r.groups.to_string(),
            r.clients.to_string(),
            r.runs.to_string(),
            rate(r.writes_per_s),
            format!("{}-{}", rate(r.writes_per_s_min), rate(r.writes_per_s_max)),
            latency(r.p50_us),
            latency(r.p99_us),
            latency(r.p999_us),
            number(r.cpu_us_per_write),
            r.syncs_per_write.map_or(MISSING.into(), |s| format!("{s:.2}")),
            memory.map_or(MISSING.into(), |m| ratio(r.writes_per_s, m.writes_per_s)),
            peer.filter(|_| !r.store.starts_with("raft-log"))
                .map_or(MISSING.into(), |p| ratio(r.writes_per_s, p.writes_per_s)),
            same("uring-wal/shared")
                .filter(|_| r.store != "uring-wal/shared" && r.store != "memory")
                .map_or(MISSING.into(), |sh| ratio(sh.writes_per_s, r.writes_per_s)),
            vs_bound,
        ]);
        if let Some(e) = &r.error {
            t.note(format!("{}: error: {e}", r.store));
        }
    }
    if let Some(b) = bound {
        t.note(format!(
            "bound: a commit needs the leader's flush and one follower's on this disk, 2 x {} us ({}, 4 KiB, qd1 \
             p50) = {} us, {} writes/s for one client",
            latency(b.device_p50_us),
            b.device_method,
            latency(b.bound_p50_us),
            rate(b.bound_writes_per_s)
        ));
    }
    let mut out = t.render();
    if results.iter().any(|r| r.threads > 0) {
        out.push_str(
            "\nWhat each configuration costs: threads of the process, resident memory the cluster added (after \
             its loads), the logs on disk\n",
        );
        out.push_str(&raft_costs(results));
    }
    out
}

/// `raft`: the threads, memory and disk of each store and group count.
fn raft_costs(results: &[RaftResult]) -> String {
    let mut t = Table::new(&[
        ("store", Align::Left),
        ("groups", Align::Right),
        ("threads", Align::Right),
        ("memory MiB", Align::Right),
        ("disk MiB", Align::Right),
    ]);
    let mut seen = Vec::new();
    for r in results {
        if seen.contains(&(&r.store, r.groups)) {
            continue;
        }
        seen.push((&r.store, r.groups));
        let same = || results.iter().filter(|x| x.store == r.store && x.groups == r.groups);
        let mib = |b: u64| format!("{:.0}", b as f64 / f64::from(1 << 20));
        t.row(vec![
            r.store.clone(),
            r.groups.to_string(),
            r.threads.to_string(),
            mib(same().map(|x| x.rss_bytes).max().unwrap_or(0)),
            mib(r.disk_bytes),
        ]);
    }
    t.render()
}

/// Like pg_test_fsync: one row per sync method (the backend), its operations
/// per second and mean microseconds per operation.
pub fn sync_methods(results: &[LoadResult]) -> String {
    let mut t = Table::new(&[("method", Align::Left), ("ops/s", Align::Right), ("us/op", Align::Right)]);
    for r in results {
        let us_per_op = if r.latency.count == 0 { MISSING.to_string() } else { latency(r.latency.mean_us) };
        t.row(vec![r.backend.clone(), rate(r.ops_per_sec), us_per_op]);
        if let Some(e) = &r.error {
            t.note(format!("error: {e}"));
        }
    }
    t.render()
}

/// Sequential bandwidth of the raw device.
pub fn bandwidth(results: &[BandwidthResult]) -> String {
    let mut t = Table::new(&[
        ("direction", Align::Left),
        ("block B", Align::Right),
        ("queue depth", Align::Right),
        ("MB", Align::Right),
        ("seconds", Align::Right),
        ("MB/s", Align::Right),
    ]);
    for r in results {
        t.row(vec![
            r.direction.clone(),
            thousands(r.block_bytes as f64),
            r.queue_depth.to_string(),
            mb(r.bytes),
            format!("{:.3}", r.seconds),
            number(r.mb_per_sec),
        ]);
    }
    t.render()
}

/// Time from open to ready of logs of several sizes; "read MB/s" is the
/// same files read through the page cache around the opening, the faster of
/// the reads before and after (the suite only).
pub fn recovery(results: &[RecoveryResult]) -> String {
    let mut t = Table::new(&[
        ("stop", Align::Left),
        ("segments", Align::Right),
        ("records", Align::Right),
        ("MB", Align::Right),
        ("seconds", Align::Right),
        ("MB/s", Align::Right),
        ("read MB/s", Align::Right),
        ("records/s", Align::Right),
        ("acked records", Align::Right),
        ("dropped records", Align::Right),
        ("torn tail", Align::Left),
    ]);
    for r in results {
        t.row(vec![
            r.stop.clone(),
            r.segments.to_string(),
            thousands(r.records as f64),
            mb(r.bytes),
            format!("{:.3}", r.seconds),
            number(r.mb_per_sec),
            opt(r.read_mb_per_sec, number),
            rate(r.records_per_sec),
            thousands(r.acknowledged_records as f64),
            thousands(r.records_dropped as f64),
            opt(r.torn_tail.as_deref(), or_missing),
        ]);
    }
    t.render()
}

/// The final summary: each WAL figure next to the raw device's, and their
/// ratio (`1.08x`).
pub fn summary(rows: &[SummaryRow]) -> String {
    let mut t = Table::new(&[
        ("metric", Align::Left),
        ("unit", Align::Left),
        ("WAL", Align::Right),
        ("raw device", Align::Right),
        ("ratio", Align::Right),
        ("note", Align::Left),
    ]);
    for r in rows {
        t.row(vec![
            r.metric.clone(),
            r.unit.clone(),
            number(r.wal),
            opt(r.raw, number),
            opt(r.ratio.filter(|v| v.is_finite()), |v| format!("{v:.2}x")),
            r.note.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SegmentActivity;
    use crate::report::fixtures;

    /// The byte offset of every column of a table's header, from its rule line.
    fn rule_columns(table: &str) -> Vec<(usize, usize)> {
        let rule = table.lines().nth(1).expect("rule line");
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in rule.char_indices() {
            match (c, start) {
                ('-', None) => start = Some(i),
                (' ', Some(s)) => {
                    spans.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            spans.push((s, rule.len()));
        }
        spans
    }

    #[test]
    fn raft_rows_carry_their_ratios_to_memory_the_best_peer_and_the_bound() {
        let row = |store: &str, clients, writes_per_s, p50_us| RaftResult {
            store: store.into(),
            groups: 1,
            clients,
            runs: 3,
            writes_per_s,
            writes_per_s_min: writes_per_s,
            writes_per_s_max: writes_per_s,
            p50_us,
            ..RaftResult::default()
        };
        let results = vec![
            row("memory", 1, 20_000.0, 40.0),
            row("raft-log", 1, 500.0, 2000.0),
            row("raft-log-nowait", 1, 1_000.0, 900.0),
            row("uring-wal/group-sync", 1, 2_000.0, 400.0),
            row("uring-wal/group-sync", 16, 9_000.0, 900.0),
        ];
        let bound = RaftBound { device_p50_us: 100.0, bound_p50_us: 200.0, ..RaftBound::default() };
        let out = raft(&results, Some(&bound));
        let rows: Vec<&str> = out.lines().skip(2).collect();
        assert!(rows[0].starts_with("memory") && rows[0].contains("1.00x"), "{out}");
        let ours = rows[3];
        assert!(ours.contains("0.10x") && ours.contains("2.00x"), "vs memory and vs raft-log-nowait: {out}");
        assert!(ours.trim_end().ends_with("2.00x"), "p50 vs the bound: {out}");
        // No memory, peer or bound at 16 clients: no ratio.
        assert!(rows[4].trim_end().ends_with('-'), "{out}");
        assert!(out.contains("bound:"), "{out}");
    }

    #[test]
    fn loads_has_unit_headers_and_aligned_rows() {
        let results = fixtures::loads();
        let out = loads(&results);
        let header = out.lines().next().unwrap();
        for h in [
            "test",
            "backend",
            "writers",
            "record B",
            "ops/s",
            "MB/s",
            "min us",
            "p50 us",
            "p90 us",
            "p99 us",
            "p99.9 us",
            "p99.99 us",
            "max us",
            "rec/flush",
            "syncs/s",
            "segs new/reused",
            "CPU us/op",
            "RSS MiB",
        ] {
            assert!(header.contains(h), "header lacks {h:?}: {header}");
        }
        // Header, rule, a row per result, plus the open loop's uncorrected row and error line.
        assert_eq!(out.lines().count(), 2 + results.len() + 2, "{out}");
        assert!(out.contains("(uncorrected)"));
        assert!(out.contains("    error: writer 3: <timed out> & gave up"));
        assert!(out.contains("latency @5,000/s"));
        // Right-aligned cells end where their column's rule ends.
        let spans = rule_columns(&out);
        assert_eq!(spans.len(), 18);
        let first_row = out.lines().nth(2).unwrap();
        let (_, p99_end) = spans[9];
        assert!(first_row.as_bytes()[p99_end - 1].is_ascii_digit(), "{out}");
        assert!(first_row.len() >= p99_end);
    }

    #[test]
    fn loads_prints_dashes_for_missing_values() {
        let mut r = fixtures::load("okaywal", 1, 100.0, 50.0, 1);
        r.latency = LatencySummary::default();
        r.records_per_flush = None;
        r.syncs_per_sec = None;
        r.peak_rss_bytes = 0;
        let out = loads(&[r]);
        let row = out.lines().nth(2).unwrap();
        let dashes = row.split_whitespace().filter(|c| *c == "-").count();
        // Latencies, rec/flush and syncs/s, segments, RSS.
        assert_eq!(dashes, 7 + 2 + 1 + 1, "{out}");
    }

    #[test]
    fn loads_show_what_the_segments_did_and_say_when_the_io_thread_waited() {
        let mut r = fixtures::load("uring-wal/group-sync", 1, 256.0, 9000.0, 1);
        r.segments = Some(SegmentActivity { activated: 4, created: 3, recycled: 1, stalls: 0, fills_cut: 0 });
        let out = loads(&[r.clone()]);
        assert!(out.lines().nth(2).unwrap().split_whitespace().any(|c| c == "3/1"), "{out}");
        assert!(!out.contains("waited"), "{out}");
        r.segments = Some(SegmentActivity { activated: 4, created: 4, recycled: 0, stalls: 2, fills_cut: 1 });
        let out = loads(&[r]);
        assert!(out.contains("uring-wal/group-sync: the I/O thread waited 2 times for its next segment"), "{out}");
        assert!(out.contains("(1 zero-fills cut short to end the wait)"), "{out}");
    }

    #[test]
    fn spread_marks_overlapping_ratios() {
        let mut results = Vec::new();
        for (i, (a, b)) in [(100.0, 300.0), (120.0, 310.0), (110.0, 105.0)].into_iter().enumerate() {
            results.push(fixtures::load("a", 1, 256.0, a, i as u64));
            results.push(fixtures::load("b", 1, 256.0, b, 10 + i as u64));
        }
        let out = spread(&results, "a");
        assert!(out.contains("110.0 (100.0-120.0)"), "{out}");
        // b's ops/s spread (105-310) overlaps a's (100-120): not significant.
        let ratio_row = out.lines().rev().find(|l| l.starts_with('b')).unwrap();
        assert!(ratio_row.contains("~2.73x"), "{ratio_row}");
    }

    #[test]
    fn number_formats() {
        assert_eq!(latency(57.25), "57.2");
        assert_eq!(latency(0.04), "0.0");
        assert_eq!(latency(12345.6), "12,346");
        assert_eq!(rate(45.25), "45.2");
        assert_eq!(rate(123456.0), "123,456");
        assert_eq!(number(1.08), "1.08");
        assert_eq!(number(1342.2), "1,342");
    }

    #[test]
    fn sync_methods_table() {
        let results = fixtures::loads();
        let out = sync_methods(&results[..2]);
        let header = out.lines().next().unwrap();
        assert!(header.starts_with("method") && header.contains("ops/s") && header.contains("us/op"), "{out}");
        assert!(out.contains("uring-wal/group-sync") && out.contains("raw/fdatasync"));
        assert_eq!(out.lines().count(), 4);
    }

    #[test]
    fn other_tables() {
        let report = fixtures::report();
        let env = environment(&report.environment);
        for needle in [
            "kernel:",
            "2 x Test CPU",
            "24.0 GiB",
            "/dev/nvme0n1 (Fake NVMe)",
            "4,096 B",
            "memory 512 B, offset 512 B",
            "write back",
            "FUA:",
            "atomic write max:",
            "unavailable: io_uring_setup: EPERM",
            "O_DIRECT:",
            "accepted",
        ] {
            assert!(env.contains(needle), "environment lacks {needle:?}:\n{env}");
        }
        let bw = bandwidth(&report.bandwidth);
        assert!(bw.lines().next().unwrap().contains("MB/s"), "{bw}");
        assert!(bw.contains("1,048,576"), "{bw}");
        let rec = recovery(&report.recovery);
        assert!(rec.contains("records/s") && rec.contains("15:1048576") && rec.contains("1,000,000"), "{rec}");
        let sum = summary(&report.summary);
        assert!(sum.lines().next().unwrap().contains("raw device"), "{sum}");
        assert!(sum.contains("1.08x"), "{sum}");
        let recovery_row = sum.lines().nth(3).unwrap();
        assert_eq!(recovery_row.split_whitespace().filter(|c| *c == "-").count(), 2, "{sum}");
    }

    #[test]
    fn empty_inputs_give_headers_only() {
        assert_eq!(loads(&[]).lines().count(), 2);
        assert_eq!(summary(&[]).lines().count(), 2);
        let env = environment(&Environment::default());
        assert!(env.contains("unavailable: reason unknown"));
    }
}
