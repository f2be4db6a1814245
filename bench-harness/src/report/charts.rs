//! What the charts show: latency by percentile (the HdrHistogram plotter's
//! view) and throughput against writers, cut into panels of at most about
//! eight series ([`plan`]), with the device alone (the raw io_uring writes
//! at qd1) as the reference in every panel.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use hdrhistogram::Histogram;

use super::svg::{self, Axis, Chart, Panel, STYLES, Series};
use super::{hgrm, record_bytes, thousands};
use crate::model::{IntervalPoint, LatencySummary, LoadResult, Report, TestKind};

/// Series a panel holds at most, where the data allows.
pub const SERIES_PER_PANEL: usize = 8;

/// Writes the latency-by-percentile chart to `path` (always, with "no data"
/// if there is none); if a backend has closed-loop results at two or more
/// writer counts, `<stem>-throughput.svg` next to it; and if loads were cut
/// into intervals, `<stem>-over-time.svg`. Returns the paths written.
pub fn write_charts(path: &Path, report: &Report) -> Result<Vec<PathBuf>> {
    let colours = colours(report);
    super::write_file(path, &svg::render(&latency(report, &colours)))?;
    let mut written = vec![path.to_path_buf()];
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(chart) = throughput(report, &colours) {
        let throughput = path.with_file_name(format!("{stem}-throughput.svg"));
        super::write_file(&throughput, &svg::render(&chart))?;
        written.push(throughput);
    }
    if let Some(charts) = over_time(report, &colours) {
        let over_time = path.with_file_name(format!("{stem}-over-time.svg"));
        super::write_file(&over_time, &svg::render_stacked(&charts))?;
        written.push(over_time);
    }
    Ok(written)
}

/// The device alone's colour on the charts over time (the references'
/// grey of the other charts).
const DEVICE_GREY: &str = "#7f7f7f";

/// The percentiles drawn over time, each in a colour of its own.
const OVER_TIME_PERCENTILES: [(&str, &str); 4] =
    [("p50", "#1f77b4"), ("p99", "#ff7f0e"), ("p99.9", "#d62728"), ("max", "#7f7f7f")];

/// Loads cut into intervals (`--interval`), over time: records per second,
/// then latency percentiles (log scale), one panel per load in each, the
/// two charts stacked in one document.
fn over_time(report: &Report, colours: &[(String, &'static str)]) -> Option<Vec<Chart>> {
    let loads: Vec<&LoadResult> = report.loads.iter().filter(|l| !l.intervals.is_empty()).collect();
    if loads.is_empty() {
        return None;
    }
    let title = |l: &LoadResult| format!("{}, {}, {}", l.backend, writers(l.writers), variant(l));
    let end = loads.iter().flat_map(|l| &l.intervals).map(|p| p.end_s).fold(0.0, f64::max);
    // A window ends a hair after its nominal length (60.00007 s): the axis
    // stops at the length, not at the next round step after it.
    let (step, top) = nice_ticks(end * (1.0 - 1e-4));
    let ticks = (0..=(top / step).round() as usize).map(|i| (i as f64 * step, tick_value(i as f64 * step, step)));
    let x = Axis { lo: 0.0, hi: top, ticks: ticks.collect(), minor: Vec::new(), title: "Time (s)".into() };
    let count = loads.iter().map(|l| l.intervals.len()).max().unwrap_or(0);
    let columns = match loads.len() {
        1 => 1,
        2..=4 => 2,
        _ => 3,
    };
    // Each interval's point at its middle.
    let at = |p: &IntervalPoint| p.end_s - p.seconds / 2.0;
    let rate_panels: Vec<Panel> = loads
        .iter()
        .map(|l| {
            let label = title(l);
            let points = l.intervals.iter().map(|p| (at(p), p.ops_per_sec)).collect();
            let point_titles = l
                .intervals
                .iter()
                .map(|p| format!("{label}: {:.1} s, {} records/s", p.end_s, thousands(p.ops_per_sec)));
            let series = Series {
                backend: l.backend.clone(),
                variant: String::new(),
                label: label.clone(),
                points,
                point_titles: point_titles.collect(),
            };
            Panel { title: label, series: vec![series] }
        })
        .collect();
    let rate_max = loads.iter().flat_map(|l| &l.intervals).map(|p| p.ops_per_sec).fold(0.0, f64::max);
    // The device alone has no colour of the backends': grey, as everywhere.
    let mut rate_colours = colours.to_vec();
    for l in loads.iter().filter(|l| l.test == TestKind::Raw) {
        if !rate_colours.iter().any(|(b, _)| *b == l.backend) {
            rate_colours.push((l.backend.clone(), DEVICE_GREY));
        }
    }
    let interval_s = loads[0].intervals[0].seconds;
    let rates = Chart {
        title: "Throughput over time".into(),
        note: Some(format!("One point per interval of {interval_s:.3} s, at its middle")),
        x: Axis { ticks: x.ticks.clone(), minor: Vec::new(), title: x.title.clone(), ..x },
        y: rate_axis(rate_max),
        panels: rate_panels,
        columns,
        references: Vec::new(),
        styles: Vec::new(),
        markers: count <= 60,
        colours: rate_colours,
    };
    let latency_panels: Vec<Panel> = loads
        .iter()
        .map(|l| {
            let label = title(l);
            let series = OVER_TIME_PERCENTILES.iter().map(|&(name, _)| {
                let value = |p: &IntervalPoint| match name {
                    "p50" => p.p50_us,
                    "p99" => p.p99_us,
                    "p99.9" => p.p999_us,
                    _ => p.max_us,
                };
                // An interval in which no append completed has no latency.
                let measured: Vec<&IntervalPoint> = l.intervals.iter().filter(|p| p.ops > 0).collect();
                Series {
                    backend: name.to_string(),
                    variant: String::new(),
                    label: format!("{label}: {name}"),
                    points: measured.iter().map(|p| (at(p), value(p).max(0.001).log10())).collect(),
                    point_titles: measured
                        .iter()
                        .map(|p| format!("{label}: {:.1} s, {name} {} µs", p.end_s, thousands(value(p))))
                        .collect(),
                }
            });
            let series = series.collect();
            Panel { title: label, series }
        })
        .collect();
    let latencies = Chart {
        title: "Append latency over time".into(),
        note: Some("Percentiles of the appends completed in each interval".into()),
        y: latency_axis(latency_panels.iter().flat_map(|p| &p.series)),
        x,
        panels: latency_panels,
        columns,
        references: Vec::new(),
        styles: Vec::new(),
        markers: false,
        colours: OVER_TIME_PERCENTILES.iter().map(|&(n, c)| (n.to_string(), c)).collect(),
    };
    Some(vec![rates, latencies])
}

/// One colour per backend, in the order the report has them, for every
/// chart of the report.
fn colours(report: &Report) -> Vec<(String, &'static str)> {
    let mut backends: Vec<String> = Vec::new();
    for l in report.loads.iter().filter(|l| l.test != TestKind::Raw) {
        if !backends.contains(&l.backend) {
            backends.push(l.backend.clone());
        }
    }
    backends.into_iter().enumerate().map(|(i, b)| (b, svg::colour(i))).collect()
}

/// What tells a load apart from the same backend's others at the same
/// writer count: record size, batch, pipeline, open-loop rate, Raft groups.
fn variant(l: &LoadResult) -> String {
    let mut v = format!("{} B", record_bytes(l.record_bytes));
    if l.batch > 1 {
        v.push_str(&format!(", batch {}", l.batch));
    }
    if l.pipeline > 1 {
        v.push_str(&format!(", pipeline {}", l.pipeline));
    }
    if let Some(rate) = l.rate_ops_per_sec {
        v.push_str(&format!(", open loop {}/s", thousands(rate)));
    }
    if let Some(groups) = l.raft_groups {
        v.push_str(&format!(", {groups} Raft group{}", if groups == 1 { "" } else { "s" }));
    }
    v
}

fn writers(n: usize) -> String {
    format!("{n} writer{}", if n == 1 { "" } else { "s" })
}

/// A series, and the group (sort key, title) of the panel it joins when
/// panels are cut by group.
struct Placed {
    group: (usize, String),
    series: Series,
}

/// Cuts the series into panels, with the titles and line styles that tell
/// them apart: one panel per group, variants by line style, if that keeps
/// every panel within [`SERIES_PER_PANEL`] and the variants within the line
/// styles; else one panel per variant and group, each holding a backend
/// once. Returns the panels, the styles, and the columns of the grid.
fn plan(placed: Vec<Placed>) -> (Vec<Panel>, Vec<String>, usize) {
    let mut variants: Vec<String> = Vec::new();
    for p in &placed {
        if !variants.contains(&p.series.variant) {
            variants.push(p.series.variant.clone());
        }
    }
    let mut by_group: BTreeMap<(usize, String), Vec<Series>> = BTreeMap::new();
    for p in placed {
        by_group.entry(p.group).or_default().push(p.series);
    }
    let groups = by_group.len();
    let title = |v: &str, group: &str| if group.is_empty() { v.to_string() } else { format!("{v}, {group}") };
    let fits = by_group.values().all(|s| s.len() <= SERIES_PER_PANEL);
    if fits && variants.len() <= STYLES {
        if let [only] = &variants[..] {
            let panels = by_group.into_iter().map(|((_, g), series)| Panel { title: title(only, &g), series });
            return (panels.collect(), Vec::new(), groups.min(4));
        }
        let panels = by_group.into_iter().map(|((_, title), series)| Panel { title, series }).collect();
        return (panels, variants, groups.min(4));
    }
    let mut panels = Vec::new();
    for v in &variants {
        for ((_, group), series) in &mut by_group {
            let (mine, rest): (Vec<Series>, Vec<Series>) = series.drain(..).partition(|s| s.variant == *v);
            *series = rest;
            if !mine.is_empty() {
                panels.push(Panel { title: title(v, group), series: mine });
            }
        }
    }
    let columns = if groups > 1 { groups } else { panels.len() };
    (panels, Vec::new(), columns.min(4))
}

/// One run per load. With `--repeat`, the run whose records/s is the
/// median (the lower middle one of an even count): a run that happened,
/// next to the medians of the spread tables, where drawing every run would
/// stack them and drawing the best would flatter. Also the most runs of a
/// load, for the chart's note.
fn representatives(loads: &[LoadResult]) -> (Vec<&LoadResult>, usize) {
    type Key<'a> = (&'a str, TestKind, usize, String);
    let mut groups: Vec<(Key<'_>, Vec<&LoadResult>)> = Vec::new();
    for l in loads {
        let key = (l.backend.as_str(), l.test, l.writers, variant(l));
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(l),
            None => groups.push((key, vec![l])),
        }
    }
    let runs_max = groups.iter().map(|g| g.1.len()).max().unwrap_or(0);
    let picked = groups
        .into_iter()
        .map(|(_, mut runs)| {
            runs.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
            runs[(runs.len() - 1) / 2]
        })
        .collect();
    (picked, runs_max)
}

/// What the chart's note says of repeated runs.
fn repeats_note(runs_max: usize) -> Option<String> {
    (runs_max > 1).then(|| format!("Repeated loads (up to {runs_max} runs): the run with the median records/s"))
}

fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}. {b}")),
        (a, b) => a.or(b),
    }
}

/// The raw loads drawn as references: the io_uring ones (the path the log
/// writes through), or every raw load if none is.
fn references(report: &Report) -> Vec<&LoadResult> {
    let raw: Vec<&LoadResult> =
        representatives(&report.loads).0.into_iter().filter(|l| l.test == TestKind::Raw).collect();
    let uring: Vec<&LoadResult> = raw.iter().copied().filter(|l| l.backend.contains("io_uring")).collect();
    if uring.is_empty() { raw } else { uring }
}

fn reference_label(l: &LoadResult) -> String {
    format!("device alone, qd1: {}", l.backend.strip_prefix("raw/").unwrap_or(&l.backend))
}

/// The chart's points of one histogram: `(log10(1/(1-p)), microseconds)`.
/// The 100% row (where `1/(1-p)` is infinite, so the HdrHistogram plotter
/// drops it) is drawn at `p = 1 - 1/count`, where the maximum of `count`
/// samples sits, so the curve ends at the max.
fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    for row in hgrm::rows(h) {
        let prev = points.last().map_or(0.0, |p| p.0);
        let q = if row.quantile < 1.0 { 1.0 / (1.0 - row.quantile) } else { h.len() as f64 };
        points.push((q.log10().max(prev), row.value_us.max(0.001)));
    }
    points
}

/// The same from a saved summary (a report read back from JSON has no
/// histograms): min, p50, p90, p99, p99.9, p99.99 where the count reaches
/// them, and the max.
fn summary_points(l: &LatencySummary) -> Vec<(f64, f64)> {
    let end = (l.count.max(2) as f64).log10();
    let mut points = vec![(0.0, l.min_us)];
    for (x, us) in [(2f64.log10(), l.p50_us), (1.0, l.p90_us), (2.0, l.p99_us), (3.0, l.p999_us), (4.0, l.p9999_us)] {
        if x < end {
            points.push((x, us));
        }
    }
    points.push((end, l.max_us));
    points.into_iter().map(|(x, us)| (x, us.max(0.001))).collect()
}

/// A load's latency curve in axis units: `(log10(1/(1-p)), log10(µs))`.
fn latency_series(l: &LoadResult, label: String) -> Series {
    let points = if l.histogram.is_empty() { summary_points(&l.latency) } else { percentile_points(&l.histogram) };
    let points = points.into_iter().map(|(x, us)| (x, us.log10())).collect();
    Series { backend: l.backend.clone(), variant: variant(l), label, points, point_titles: Vec::new() }
}

fn has_latency(l: &LoadResult) -> bool {
    !l.histogram.is_empty() || l.latency.count > 0
}

/// Latency (µs, log scale) against percentile (log scale of `1/(1-p)`,
/// ticks at 0%, 90%, 99%, ... 99.999%, further when a load has more than
/// 10^5 values), a panel per writer count or per record size and writers.
fn latency(report: &Report, colours: &[(String, &'static str)]) -> Chart {
    let (representative, runs_max) = representatives(&report.loads);
    let loads: Vec<&LoadResult> =
        representative.into_iter().filter(|l| l.test != TestKind::Raw && has_latency(l)).collect();
    let refs: Vec<&LoadResult> = references(report).into_iter().filter(|l| has_latency(l)).collect();
    let placed = loads
        .iter()
        .map(|l| {
            let label = format!("{}, {}, {}", l.backend, writers(l.writers), variant(l));
            Placed { group: (l.writers, writers(l.writers)), series: latency_series(l, label) }
        })
        .collect();
    let (panels, styles, columns) = plan(placed);
    let references: Vec<Series> = refs.iter().map(|l| latency_series(l, reference_label(l))).collect();
    let count = loads.iter().chain(&refs).map(|l| l.histogram.len().max(l.latency.count)).max().unwrap_or(0);
    let summaries = loads.iter().chain(&refs).any(|l| l.histogram.is_empty());
    Chart {
        title: "Append latency by percentile".into(),
        note: join_notes(
            summaries.then(|| "Curves through the saved percentiles: min, 50%, 90%, 99%, 99.9%, 99.99%, max".into()),
            repeats_note(runs_max),
        ),
        x: percentile_axis(count),
        y: latency_axis(panels.iter().flat_map(|p| &p.series).chain(&references)),
        panels,
        columns,
        references,
        styles,
        markers: false,
        colours: colours.to_vec(),
    }
}

/// Percentile label of `10^k` on the `1/(1-p)` axis: 0, 90, 99, 99.9, ...
/// (the axis title says %, so that small panels fit every label).
fn percentile_label(k: u32) -> String {
    match k {
        0 => "0".to_string(),
        1 => "90".to_string(),
        2 => "99".to_string(),
        k => format!("99.{}", "9".repeat(k as usize - 2)),
    }
}

fn percentile_axis(count: u64) -> Axis {
    let decades = if count > 1 { ((count as f64).log10().ceil() as u32).clamp(5, 8) } else { 5 };
    Axis {
        lo: 0.0,
        hi: f64::from(decades),
        ticks: (0..=decades).map(|k| (f64::from(k), percentile_label(k))).collect(),
        minor: Vec::new(),
        title: "Percentile (%)".into(),
    }
}

/// A power of ten in microseconds: `0.01`, `1`, `1,000`.
fn decade_label(k: i32) -> String {
    if k < 0 { format!("{:.*}", (-k) as usize, 10f64.powi(k)) } else { thousands(10f64.powi(k)) }
}

/// Whole decades of microseconds around every point (values are log10).
fn latency_axis<'a>(series: impl Iterator<Item = &'a Series>) -> Axis {
    let values: Vec<f64> = series.flat_map(|s| s.points.iter().map(|p| p.1)).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, mut hi) = if lo.is_finite() { (lo.floor() as i32, hi.ceil() as i32) } else { (0, 4) };
    if hi <= lo {
        hi = lo + 1;
    }
    let minor = if hi - lo <= 6 {
        (lo..hi).flat_map(|k| (2..=9).map(move |m| (f64::from(m) * 10f64.powi(k)).log10())).collect()
    } else {
        Vec::new()
    };
    Axis {
        lo: f64::from(lo),
        hi: f64::from(hi),
        ticks: (lo..=hi).map(|k| (f64::from(k), decade_label(k))).collect(),
        minor,
        title: "Latency (µs)".into(),
    }
}

/// Records per second (linear from 0) against writers (log2 scale, a tick
/// at each writer count), if a backend ran at two or more writer counts:
/// closed-loop, error-free loads, one series per backend and variant (a
/// writer count measured twice keeps its highest rate); one panel, or one
/// per record size (see [`plan`]). A series of one writer count is no line
/// by writers (and a streaming load's rate would flatten the others): those
/// are left out, and the note says how many. The device alone is a
/// horizontal line.
fn throughput(report: &Report, colours: &[(String, &'static str)]) -> Option<Chart> {
    let (representative, runs_max) = representatives(&report.loads);
    let usable: Vec<&LoadResult> = representative
        .into_iter()
        .filter(|l| l.test != TestKind::Raw && l.load != "open" && l.error.is_none())
        .filter(|l| l.writers > 0 && l.ops_per_sec.is_finite() && l.ops_per_sec >= 0.0)
        .collect();
    let mut rates: BTreeMap<(String, String), BTreeMap<usize, f64>> = BTreeMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    for l in &usable {
        let key = (l.backend.clone(), variant(l));
        if !order.contains(&key) {
            order.push(key.clone());
        }
        // One representative run per load, so one rate per writer count
        // (a latency and a throughput test of the same load: the higher).
        let rate = rates.entry(key).or_default().entry(l.writers).or_insert(l.ops_per_sec);
        *rate = rate.max(l.ops_per_sec);
    }
    let (lines, points): (Vec<_>, Vec<_>) = order.into_iter().partition(|key| rates[key].len() >= 2);
    if lines.is_empty() {
        return None;
    }
    let writer_counts: BTreeSet<usize> = lines.iter().flat_map(|key| rates[key].keys().copied()).collect();
    let placed = lines.into_iter().map(|key| throughput_series(&rates[&key], key)).collect();
    let (panels, styles, columns) = plan(placed);
    let x = writers_axis(&writer_counts);
    let references: Vec<Series> = references(report)
        .into_iter()
        .map(|l| {
            let points = vec![(x.lo, l.ops_per_sec), (x.hi, l.ops_per_sec)];
            Series {
                backend: l.backend.clone(),
                variant: String::new(),
                label: reference_label(l),
                points,
                point_titles: Vec::new(),
            }
        })
        .collect();
    let max = panels.iter().flat_map(|p| &p.series).chain(&references).flat_map(|s| &s.points).map(|p| p.1);
    Some(Chart {
        title: "Append throughput by writers".into(),
        note: join_notes(
            (!points.is_empty()).then(|| {
                let n = points.len();
                format!("Left out: {n} load{} at one writer count only (see the tables)", if n == 1 { "" } else { "s" })
            }),
            repeats_note(runs_max),
        ),
        y: rate_axis(max.fold(0.0, f64::max)),
        x,
        panels,
        columns,
        references,
        styles,
        markers: true,
        colours: colours.to_vec(),
    })
}

fn throughput_series(rates: &BTreeMap<usize, f64>, (backend, variant): (String, String)) -> Placed {
    let label = format!("{backend}, {variant}");
    let points = rates.iter().map(|(&w, &r)| ((w as f64).log2(), r)).collect();
    let point_titles =
        rates.iter().map(|(&w, &r)| format!("{label}: {}, {} records/s", writers(w), thousands(r))).collect();
    Placed { group: (0, String::new()), series: Series { backend, variant, label, points, point_titles } }
}

/// log2 of the writer counts, padded on both sides.
fn writers_axis(counts: &BTreeSet<usize>) -> Axis {
    let (lo, hi) = match (counts.first(), counts.last()) {
        (Some(&lo), Some(&hi)) => ((lo as f64).log2(), (hi as f64).log2()),
        _ => (0.0, 3.0),
    };
    let pad = if hi > lo { (0.05 * (hi - lo)).max(0.25) } else { 1.0 };
    Axis {
        lo: lo - pad,
        hi: hi + pad,
        ticks: counts.iter().map(|&w| ((w as f64).log2(), w.to_string())).collect(),
        minor: Vec::new(),
        title: "Writers (log2 scale)".into(),
    }
}

/// A round step (1, 2, 2.5 or 5 times a power of ten) for about five ticks
/// from 0 to at least `max`, and the top of the axis.
fn nice_ticks(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = magnitude
        * match raw / magnitude {
            n if n <= 1.0 => 1.0,
            n if n <= 2.0 => 2.0,
            n if n <= 2.5 => 2.5,
            n if n <= 5.0 => 5.0,
            _ => 10.0,
        };
    let top = (max / step - 1e-9).ceil().max(1.0) * step;
    (step, top)
}

fn tick_value(v: f64, step: f64) -> String {
    if step >= 1.0 {
        return thousands(v);
    }
    let decimals = (-step.log10()).ceil().max(1.0) as usize;
    let decimals = if (step * 10f64.powi(decimals as i32)).fract().abs() > 1e-6 { decimals + 1 } else { decimals };
    format!("{v:.decimals$}")
}

fn rate_axis(max: f64) -> Axis {
    let (step, top) = nice_ticks(max);
    let ticks = (0..=(top / step).round() as usize).map(|i| (i as f64 * step, tick_value(i as f64 * step, step)));
    Axis { lo: 0.0, hi: top, ticks: ticks.collect(), minor: Vec::new(), title: "Records per second".into() }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::latency_histogram;
    use crate::report::fixtures;

    /// A line on a rendered chart: its tooltip, colour and dash pattern.
    #[derive(Debug)]
    struct Line {
        title: String,
        stroke: String,
        dash: Option<String>,
    }

    /// The panels of a rendered chart: title, series and reference lines.
    fn panels(svg: &str) -> Vec<(String, Vec<Line>, usize)> {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{svg}"));
        let class = |n: &roxmltree::Node<'_, '_>, c: &str| n.attribute("class") == Some(c);
        doc.descendants()
            .filter(|n| class(n, "panel"))
            .map(|p| {
                let title = p.descendants().find(|n| class(n, "panel-title")).and_then(|n| n.text()).unwrap_or("");
                let lines = (p.descendants().filter(|n| class(n, "series")))
                    .map(|n| Line {
                        title: n.children().find(|c| c.has_tag_name("title")).unwrap().text().unwrap().to_string(),
                        stroke: n.attribute("stroke").unwrap().to_string(),
                        dash: n.attribute("stroke-dasharray").map(str::to_string),
                    })
                    .collect();
                (title.to_string(), lines, p.descendants().filter(|n| class(n, "reference")).count())
            })
            .collect()
    }

    /// Each backend's colours over every panel given.
    fn colours_of<'a>(lines: impl Iterator<Item = &'a Line>) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for l in lines {
            let backend = l.title.split(", ").next().unwrap().to_string();
            out.entry(backend).or_default().insert(l.stroke.clone());
        }
        out
    }

    fn raw(backend: &str, seed: u64) -> LoadResult {
        let mut l = fixtures::load(backend, 1, 4096.0, 10_000.0, seed);
        l.test = TestKind::Raw;
        l
    }

    /// Seven backends at four writer counts and two record sizes, and the
    /// device alone, as a sweep against the peers has them.
    fn sweep() -> Report {
        let mut report = fixtures::report();
        report.loads = vec![raw("raw/io_uring write+fdatasync", 1), raw("raw/io_uring write RWF_DSYNC", 2)];
        report.loads.push(raw("raw/pwrite, no sync", 3));
        let backends =
            ["uring-wal/group-sync", "uring-wal/dsync", "a/threaded", "b/threaded", "okaywal", "raft-engine"];
        for (i, b) in backends.iter().chain(&["naive"]).enumerate() {
            for size in [256.0, 4096.0] {
                for w in [1, 4, 16, 64] {
                    let rate = 1000.0 * (i + 1) as f64 * w as f64;
                    report.loads.push(fixtures::load(b, w, size, rate, (i * 100 + w) as u64));
                }
            }
        }
        report
    }

    #[test]
    fn a_sweep_gets_a_panel_per_record_size_and_writer_count_and_one_colour_per_backend() {
        let report = sweep();
        let colours = colours(&report);
        let latency = panels(&svg::render(&latency(&report, &colours)));
        let titles: Vec<&str> = latency.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(titles[..2], ["256 B, 1 writer", "256 B, 4 writers"]);
        assert_eq!(titles.len(), 8, "{titles:?}");
        for (title, lines, references) in &latency {
            assert_eq!(lines.len(), 7, "{title}");
            assert!(lines.len() <= SERIES_PER_PANEL);
            // The two io_uring methods of the device, not the unsynced write.
            assert_eq!(*references, 2, "{title}");
        }
        let throughput = panels(&svg::render(&throughput(&report, &colours).unwrap()));
        assert_eq!(throughput.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["256 B", "4096 B"]);
        assert!(throughput.iter().all(|p| p.1.len() == 7 && p.2 == 2));
        // One colour per backend in every panel of both charts, seven colours in all.
        let all = latency.iter().chain(&throughput).flat_map(|p| &p.1);
        let by_backend = colours_of(all);
        assert_eq!(by_backend.len(), 7);
        assert!(by_backend.values().all(|c| c.len() == 1), "{by_backend:?}");
        let distinct: BTreeSet<_> = by_backend.values().flatten().collect();
        assert_eq!(distinct.len(), 7);
    }

    #[test]
    fn few_series_share_a_panel_per_writer_count_told_apart_by_line_style() {
        let mut report = fixtures::report();
        report.loads = vec![raw("raw/io_uring write+fdatasync", 1)];
        for w in [1, 4, 16, 64] {
            report.loads.push(fixtures::load("uring-wal/group-sync", w, 256.0, 10_000.0 * w as f64, w as u64));
        }
        report.loads.push(fixtures::load("uring-wal/dsync", 1, 256.0, 9_000.0, 7));
        for (record, batch, pipeline) in [(256.0, 1, 1024), (256.0, 1024, 1), (65536.0, 1, 64)] {
            let mut l = fixtures::load("uring-wal/group-sync", 1, record, 1e6, 8);
            (l.test, l.batch, l.pipeline) = (TestKind::Stream, batch, pipeline);
            report.loads.push(l);
        }
        let colours = colours(&report);
        let chart = latency(&report, &colours);
        assert_eq!(chart.styles, ["256 B", "256 B, pipeline 1024", "256 B, batch 1024", "65536 B, pipeline 64"]);
        let latency = panels(&svg::render(&chart));
        let titles: Vec<&str> = latency.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(titles, ["1 writer", "4 writers", "16 writers", "64 writers"]);
        let one_writer = &latency[0].1;
        assert_eq!(one_writer.len(), 5);
        let dashes: BTreeSet<_> =
            one_writer.iter().filter(|l| l.title.starts_with("uring-wal/group-sync")).map(|l| &l.dash).collect();
        assert_eq!(dashes.len(), 4, "each variant of a backend has its own line style: {one_writer:?}");
        // The throughput chart: one line (the others ran at one writer count).
        let chart = throughput(&report, &colours).unwrap();
        assert_eq!(chart.note.as_deref(), Some("Left out: 4 loads at one writer count only (see the tables)"));
        let throughput = panels(&svg::render(&chart));
        assert_eq!(throughput.len(), 1);
        assert_eq!(throughput[0].0, "256 B");
        assert_eq!(throughput[0].1.len(), 1);
        assert_eq!(throughput[0].1[0].stroke, one_writer.iter().find(|l| l.title.contains("group")).unwrap().stroke);
    }

    #[test]
    fn a_saved_report_draws_its_curves_through_the_percentiles() {
        let mut report = fixtures::report();
        for l in &mut report.loads {
            l.histogram = latency_histogram();
        }
        let chart = latency(&report, &colours(&report));
        assert!(chart.note.as_deref().is_some_and(|n| n.contains("saved percentiles")));
        let series: Vec<&Series> = chart.panels.iter().flat_map(|p| &p.series).collect();
        assert_eq!(series.len(), report.loads.len());
        for s in series {
            // 3000 values: min, p50, p90, p99, p99.9, and the max at log10(3000).
            assert_eq!(s.points.len(), 6, "{}", s.label);
            assert!(s.points.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{:?}", s.points);
        }
    }

    #[test]
    fn labels_and_ticks() {
        let labels: Vec<String> = (0..=5).map(percentile_label).collect();
        assert_eq!(labels, ["0", "90", "99", "99.9", "99.99", "99.999"]);
        assert_eq!(decade_label(-2), "0.01");
        assert_eq!(decade_label(4), "10,000");
        assert_eq!(nice_ticks(12_345.0), (2500.0, 12_500.0));
        assert_eq!(nice_ticks(10_000.0), (2000.0, 10_000.0));
        assert_eq!(nice_ticks(0.0), (0.2, 1.0));
        assert_eq!(tick_value(0.4, 0.2), "0.4");
        assert_eq!(tick_value(0.75, 0.25), "0.75");
    }

    #[test]
    fn histogram_curves_end_at_the_max_and_rise() {
        let h = fixtures::histogram(3000, 50.0, 20_000.0, 1);
        let points = percentile_points(&h);
        assert!(points.len() > 40);
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let last = points.last().unwrap();
        assert!(last.0 >= 3000f64.log10() && last.1 >= 19_000.0, "{last:?}");
    }

    #[test]
    fn writes_both_charts() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = fixtures::report();
        // A load without samples is left out of the latency chart.
        let mut empty = fixtures::load("okaywal", 1, 4096.0, 10.0, 5);
        empty.histogram = latency_histogram();
        empty.latency = LatencySummary::default();
        report.loads.push(empty);
        let path = dir.path().join("charts").join("latency.svg");
        let written = write_charts(&path, &report).unwrap();
        assert_eq!(written, vec![path.clone(), dir.path().join("charts").join("latency-throughput.svg")]);
        let latency = panels(&std::fs::read_to_string(&written[0]).unwrap());
        let lines: Vec<&Line> = latency.iter().flat_map(|p| &p.1).collect();
        assert_eq!(lines.len(), report.loads.len() - 1);
        assert!(lines.iter().any(|l| l.title == "uring-wal/group-sync, 4 writers, 4096 B, open loop 5,000/s"));
        assert!(!lines.iter().any(|l| l.title.starts_with("okaywal")));
        let throughput = panels(&std::fs::read_to_string(&written[1]).unwrap());
        // Two backends at several writer counts; okaywal at one, and the open loop, left out.
        let lines: Vec<&str> = throughput.iter().flat_map(|p| &p.1).map(|l| l.title.as_str()).collect();
        assert_eq!(lines, ["uring-wal/group-sync, 4096 B", "raw/fdatasync, 4096 B"]);
    }

    #[test]
    fn repeated_runs_are_drawn_once_by_the_run_with_the_median_rate() {
        let mut report = fixtures::report();
        report.loads.clear();
        for (w, rates) in [(1, [300.0, 100.0, 200.0]), (4, [900.0, 700.0, 800.0])] {
            for (i, rate) in rates.into_iter().enumerate() {
                report.loads.push(fixtures::load("a", w, 512.0, rate, (w * 10 + i) as u64));
            }
        }
        let colours = colours(&report);
        let throughput = svg::render(&throughput(&report, &colours).unwrap());
        assert!(throughput.contains("a, 512 B: 1 writer, 200 records/s"), "{throughput}");
        assert!(throughput.contains("a, 512 B: 4 writers, 800 records/s"), "{throughput}");
        assert!(!throughput.contains("300 records/s") && !throughput.contains("900 records/s"));
        assert!(throughput.contains("the run with the median records/s"));
        let latency = panels(&svg::render(&latency(&report, &colours)));
        assert_eq!(latency.iter().map(|p| p.1.len()).sum::<usize>(), 2, "one curve per load");
    }

    #[test]
    fn no_throughput_chart_for_one_writer_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = fixtures::report();
        report.loads = vec![fixtures::load("a", 4, 512.0, 1000.0, 1), fixtures::load("b", 4, 512.0, 900.0, 2)];
        let path = dir.path().join("lat.svg");
        assert_eq!(write_charts(&path, &report).unwrap(), vec![path]);
    }
}
