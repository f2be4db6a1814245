//! Charts as hand-written SVG 1.1: latency by percentile (the HdrHistogram
//! plotter's view) and throughput against writers. All text is XML-escaped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use hdrhistogram::Histogram;

use super::{hgrm, record_bytes, thousands};
use crate::model::{LoadResult, Report};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 45.0;
const TOP: f64 = 50.0;
const PLOT_HEIGHT: f64 = 400.0;
/// Below the plot: tick labels and the axis title.
const AXIS_SPACE: f64 = 56.0;
const LEGEND_ROW: f64 = 20.0;
const CHAR_WIDTH: f64 = 7.0;

/// Tableau 10: distinct colors; past ten series the dash pattern changes.
const PALETTE: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const DASHES: [&str; 4] = ["", "8,4", "2,3", "10,3,2,3"];

const GRID: &str = "#dddddd";
const MINOR_GRID: &str = "#f0f0f0";

/// `s` escaped for XML text and attribute values; characters XML 1.0 does not
/// allow become U+FFFD.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// ` stroke-dasharray="…"` for series `i`, or nothing.
fn dash(i: usize) -> String {
    match DASHES[(i / PALETTE.len()) % DASHES.len()] {
        "" => String::new(),
        d => format!(" stroke-dasharray=\"{d}\""),
    }
}

/// The plot area, in SVG coordinates.
struct Area {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

const AREA: Area = Area { x0: LEFT, x1: WIDTH - RIGHT, y0: TOP, y1: TOP + PLOT_HEIGHT };

impl Area {
    /// `t` in 0..=1 from left to right.
    fn x(&self, t: f64) -> f64 {
        self.x0 + t * (self.x1 - self.x0)
    }
    /// `t` in 0..=1 from bottom to top.
    fn y(&self, t: f64) -> f64 {
        self.y1 - t * (self.y1 - self.y0)
    }
}

/// How many legend rows `labels` need, and the width of one entry.
fn legend_layout(labels: &[&str]) -> (usize, usize, f64) {
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let plot_width = AREA.x1 - AREA.x0;
    let entry = (40.0 + longest * CHAR_WIDTH).min(plot_width);
    let columns = ((plot_width / entry).floor() as usize).max(1);
    let rows = labels.len().div_ceil(columns);
    (rows, columns, entry)
}

fn height_for(labels: &[&str]) -> f64 {
    let (rows, _, _) = legend_layout(labels);
    AREA.y1 + AXIS_SPACE + rows as f64 * LEGEND_ROW + 16.0
}

fn start(out: &mut String, title: &str, height: f64, clip_id: &str) {
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let title = escape(title);
    let _ = writeln!(out, "<title>{title}</title>");
    let _ = writeln!(
        out,
        r#"<defs><clipPath id="{clip_id}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath></defs>"#,
        AREA.x0,
        AREA.y0,
        AREA.x1 - AREA.x0,
        AREA.y1 - AREA.y0
    );
    let _ = writeln!(out, r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="30" text-anchor="middle" font-size="16" font-weight="bold">{title}</text>"#,
        WIDTH / 2.0
    );
}

fn finish(out: &mut String, x_title: &str, y_title: &str) {
    // Frame over the grid and the series.
    let _ = writeln!(
        out,
        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        AREA.x0,
        AREA.y0,
        AREA.x1 - AREA.x0,
        AREA.y1 - AREA.y0
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">{}</text>"#,
        (AREA.x0 + AREA.x1) / 2.0,
        AREA.y1 + 44.0,
        escape(x_title)
    );
    let (yx, yy) = (22.0, (AREA.y0 + AREA.y1) / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{yx}" y="{yy}" transform="rotate(-90 {yx} {yy})" text-anchor="middle" font-size="13">{}</text>"#,
        escape(y_title)
    );
}

fn vertical_grid(out: &mut String, x: f64, stroke: &str) {
    let _ = writeln!(out, r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="{stroke}"/>"#, AREA.y0, AREA.y1);
}

fn horizontal_grid(out: &mut String, y: f64, stroke: &str) {
    let _ = writeln!(out, r#"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{stroke}"/>"#, AREA.x0, AREA.x1);
}

fn x_tick_label(out: &mut String, x: f64, text: &str) {
    let _ = writeln!(out, r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, AREA.y1 + 18.0, escape(text));
}

fn y_tick_label(out: &mut String, y: f64, text: &str) {
    let _ =
        writeln!(out, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, AREA.x0 - 8.0, y + 4.0, escape(text));
}

fn no_data(out: &mut String) {
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="14" fill="#777777">no data</text>"##,
        (AREA.x0 + AREA.x1) / 2.0,
        (AREA.y0 + AREA.y1) / 2.0
    );
}

fn legend(out: &mut String, labels: &[&str], markers: bool) {
    let (_, columns, entry) = legend_layout(labels);
    let top = AREA.y1 + AXIS_SPACE + 8.0;
    let _ = writeln!(out, r#"<g class="legend">"#);
    for (i, label) in labels.iter().enumerate() {
        let x = AREA.x0 + (i % columns) as f64 * entry;
        let y = top + (i / columns) as f64 * LEGEND_ROW;
        let c = color(i);
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{c}" stroke-width="2"{}/>"#,
            x + 26.0,
            dash(i)
        );
        if markers {
            let _ = writeln!(out, r#"<circle cx="{:.1}" cy="{y:.1}" r="3.5" fill="{c}"/>"#, x + 13.0);
        }
        let _ = writeln!(out, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x + 32.0, y + 4.0, escape(label));
    }
    let _ = writeln!(out, "</g>");
}

fn points_attr(points: &[(f64, f64)]) -> String {
    let mut s = String::with_capacity(points.len() * 14);
    for (i, (x, y)) in points.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{x:.1},{y:.1}");
    }
    s
}

/// Percentile label of `10^k` on the `1/(1-p)` axis: 0%, 90%, 99%, 99.9%, ...
fn percentile_label(k: u32) -> String {
    match k {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        k => format!("99.{}%", "9".repeat(k as usize - 2)).replace(".%", "%"),
    }
}

/// A power of ten in microseconds: `0.01`, `1`, `1,000`.
fn decade_label(k: i32) -> String {
    if k < 0 { format!("{:.*}", (-k) as usize, 10f64.powi(k)) } else { thousands(10f64.powi(k)) }
}

/// The chart's points of one histogram: `(log10(1/(1-p)), microseconds)`.
/// The 100% row (where `1/(1-p)` is infinite, so the HdrHistogram plotter
/// drops it) is drawn at `p = 1 - 1/count`, where the maximum of `count`
/// samples sits, so the curve ends at the max.
fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    for row in hgrm::rows(h) {
        let prev = points.last().map_or(0.0, |p| p.0);
        let x = if row.quantile < 1.0 {
            (1.0 / (1.0 - row.quantile)).log10().max(prev)
        } else {
            (h.len() as f64).log10().max(prev)
        };
        points.push((x, row.value_us.max(0.001)));
    }
    points
}

/// Latency (µs, log scale) against percentile (log scale of `1/(1-p)`, ticks
/// at 0%, 90%, 99%, ... 99.999%, further when a series has more than 10^5
/// values), one polyline per non-empty series, like the HdrHistogram plotter.
/// Empty histograms are listed in the legend as `(no data)` and not drawn.
pub fn latency_by_percentile(title: &str, series: &[(String, &Histogram<u64>)]) -> String {
    let data: Vec<Vec<(f64, f64)>> = series.iter().map(|(_, h)| percentile_points(h)).collect();
    let max_count = series.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    let decades = if max_count > 1 { ((max_count as f64).log10().ceil() as u32).clamp(5, 8) } else { 5 };
    let values = || data.iter().flatten().map(|p| p.1);
    let (lo, hi) = (values().fold(f64::INFINITY, f64::min), values().fold(0.0, f64::max));
    let (y_lo, mut y_hi) = if lo.is_finite() { (lo.log10().floor() as i32, hi.log10().ceil() as i32) } else { (0, 4) };
    if y_hi <= y_lo {
        y_hi = y_lo + 1;
    }
    let sx = |d: f64| AREA.x(d / f64::from(decades));
    let sy = |us: f64| AREA.y((us.log10() - f64::from(y_lo)) / f64::from(y_hi - y_lo));

    let labels: Vec<String> = series
        .iter()
        .map(|(label, h)| if h.is_empty() { format!("{label} (no data)") } else { label.clone() })
        .collect();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let mut out = String::new();
    start(&mut out, title, height_for(&label_refs), "latency-plot");

    let _ = writeln!(out, r#"<g class="grid">"#);
    for k in y_lo..y_hi {
        if y_hi - y_lo <= 6 {
            for m in 2..=9 {
                horizontal_grid(&mut out, sy(f64::from(m) * 10f64.powi(k)), MINOR_GRID);
            }
        }
    }
    for k in y_lo..=y_hi {
        let y = sy(10f64.powi(k));
        horizontal_grid(&mut out, y, GRID);
        y_tick_label(&mut out, y, &decade_label(k));
    }
    for k in 0..=decades {
        let x = sx(f64::from(k));
        vertical_grid(&mut out, x, GRID);
        x_tick_label(&mut out, x, &percentile_label(k));
    }
    let _ = writeln!(out, "</g>");

    let _ = writeln!(
        out,
        r#"<g class="series" clip-path="url(#latency-plot)" fill="none" stroke-width="2" stroke-linejoin="round">"#
    );
    for (i, points) in data.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let scaled: Vec<(f64, f64)> = points.iter().map(|&(d, us)| (sx(d), sy(us))).collect();
        let _ = writeln!(
            out,
            r#"<polyline stroke="{}"{} points="{}"><title>{}</title></polyline>"#,
            color(i),
            dash(i),
            points_attr(&scaled),
            escape(&series[i].0)
        );
    }
    let _ = writeln!(out, "</g>");
    if data.iter().all(Vec::is_empty) {
        no_data(&mut out);
    }
    finish(&mut out, "Percentile", "Latency (µs)");
    legend(&mut out, &label_refs, false);
    out.push_str("</svg>\n");
    out
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
        thousands(v)
    } else {
        let decimals = (-step.log10()).ceil().max(1.0) as usize;
        let decimals = if (step * 10f64.powi(decimals as i32)).fract().abs() > 1e-6 { decimals + 1 } else { decimals };
        format!("{v:.decimals$}")
    }
}

/// Records per second (linear from 0) against writers (log2 scale, a tick at
/// each writer count given), one line with point markers per series.
/// Points with 0 writers or a non-finite rate are left out.
pub fn throughput_vs_writers(title: &str, series: &[(String, Vec<(usize, f64)>)]) -> String {
    let data: Vec<Vec<(usize, f64)>> = series
        .iter()
        .map(|(_, pts)| {
            let mut pts: Vec<(usize, f64)> =
                pts.iter().copied().filter(|&(w, r)| w > 0 && r.is_finite() && r >= 0.0).collect();
            pts.sort_by_key(|p| p.0);
            pts
        })
        .collect();
    let writers: BTreeSet<usize> = data.iter().flatten().map(|p| p.0).collect();
    let (w_lo, w_hi) = match (writers.first(), writers.last()) {
        (Some(&lo), Some(&hi)) => ((lo as f64).log2(), (hi as f64).log2()),
        _ => (0.0, 3.0),
    };
    let pad = if w_hi > w_lo { (0.05 * (w_hi - w_lo)).max(0.25) } else { 1.0 };
    let (x_lo, x_hi) = (w_lo - pad, w_hi + pad);
    let max_rate = data.iter().flatten().map(|p| p.1).fold(0.0, f64::max);
    let (step, top) = nice_ticks(max_rate);
    let sx = |w: usize| AREA.x(((w as f64).log2() - x_lo) / (x_hi - x_lo));
    let sy = |r: f64| AREA.y(r / top);

    let labels: Vec<&str> = series.iter().map(|(l, _)| l.as_str()).collect();
    let mut out = String::new();
    start(&mut out, title, height_for(&labels), "throughput-plot");

    let _ = writeln!(out, r#"<g class="grid">"#);
    let ticks = (top / step).round() as usize;
    for i in 0..=ticks {
        let v = i as f64 * step;
        let y = sy(v);
        horizontal_grid(&mut out, y, GRID);
        y_tick_label(&mut out, y, &tick_value(v, step));
    }
    let mut last_label_x = f64::NEG_INFINITY;
    for &w in &writers {
        let x = sx(w);
        vertical_grid(&mut out, x, GRID);
        // Keep labels of close writer counts (…, 31, 32) from overlapping.
        let width = w.to_string().len() as f64 * CHAR_WIDTH;
        if x - last_label_x >= width + 6.0 {
            x_tick_label(&mut out, x, &w.to_string());
            last_label_x = x;
        }
    }
    let _ = writeln!(out, "</g>");

    let _ = writeln!(out, r#"<g class="series" clip-path="url(#throughput-plot)">"#);
    for (i, pts) in data.iter().enumerate() {
        if pts.is_empty() {
            continue;
        }
        let c = color(i);
        let label = escape(&series[i].0);
        let scaled: Vec<(f64, f64)> = pts.iter().map(|&(w, r)| (sx(w), sy(r))).collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round"{} points="{}"><title>{label}</title></polyline>"#,
            dash(i),
            points_attr(&scaled)
        );
        for (&(w, r), &(x, y)) in pts.iter().zip(&scaled) {
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{c}"><title>{label}: {w} writers, {} records/s</title></circle>"#,
                thousands(r)
            );
        }
    }
    let _ = writeln!(out, "</g>");
    if data.iter().all(Vec::is_empty) {
        no_data(&mut out);
    }
    finish(&mut out, "Writers (log2 scale)", "Records per second");
    legend(&mut out, &labels, true);
    out.push_str("</svg>\n");
    out
}

/// `backend, N writers, B B`, made unique: a label shared by several loads
/// gets the test (and open-loop rate) appended, then a counter if needed.
fn load_labels(loads: &[&LoadResult]) -> Vec<String> {
    let base: Vec<String> = loads
        .iter()
        .map(|l| {
            let noun = if l.writers == 1 { "writer" } else { "writers" };
            format!("{}, {} {noun}, {} B", l.backend, l.writers, record_bytes(l.record_bytes))
        })
        .collect();
    let count = |labels: &[String], s: &str| labels.iter().filter(|l| *l == s).count();
    let with_test: Vec<String> = base
        .iter()
        .zip(loads)
        .map(|(b, l)| {
            if count(&base, b) < 2 {
                return b.clone();
            }
            match l.rate_ops_per_sec {
                Some(rate) => format!("{b} ({} @{}/s)", l.test, thousands(rate)),
                None => format!("{b} ({})", l.test),
            }
        })
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    with_test
        .iter()
        .map(|l| {
            if count(&with_test, l) < 2 {
                return l.clone();
            }
            let n = seen.entry(l.clone()).or_insert(0);
            *n += 1;
            format!("{l} #{n}")
        })
        .collect()
}

/// A labelled series of `(writers, records per second)`.
type ThroughputSeries = (String, Vec<(usize, f64)>);

/// Closed-loop, error-free loads grouped per backend and record size, if any
/// backend ran at two or more writer counts. A writer count measured more than
/// once (say by the latency and the throughput test) keeps its highest rate.
fn throughput_series(loads: &[LoadResult]) -> Option<Vec<ThroughputSeries>> {
    let usable: Vec<&LoadResult> = loads
        .iter()
        .filter(|l| l.load != "open" && l.error.is_none() && l.writers > 0 && l.ops_per_sec.is_finite())
        .collect();
    let mut writers_per_backend: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for l in &usable {
        writers_per_backend.entry(l.backend.as_str()).or_default().insert(l.writers);
    }
    if !writers_per_backend.values().any(|w| w.len() >= 2) {
        return None;
    }
    let mut series: Vec<(String, BTreeMap<usize, f64>)> = Vec::new();
    for l in &usable {
        let mut label = format!("{}, {} B", l.backend, record_bytes(l.record_bytes));
        // Pipelined or batched loads are a different curve, not a better
        // point on the same one.
        if l.batch > 1 {
            label.push_str(&format!(", batch {}", l.batch));
        }
        if l.pipeline > 1 {
            label.push_str(&format!(", pipeline {}", l.pipeline));
        }
        let index = match series.iter().position(|(s, _)| *s == label) {
            Some(i) => i,
            None => {
                series.push((label, BTreeMap::new()));
                series.len() - 1
            }
        };
        let rate = series[index].1.entry(l.writers).or_insert(l.ops_per_sec);
        *rate = rate.max(l.ops_per_sec);
    }
    Some(series.into_iter().map(|(label, points)| (label, points.into_iter().collect())).collect())
}

/// Writes the latency-by-percentile chart of every load with a non-empty
/// histogram to `path` (always, with "no data" if there is none), and, if a
/// backend has closed-loop results at two or more writer counts,
/// `<stem>-throughput.svg` next to it. Returns the paths written.
pub fn write_charts(path: &Path, report: &Report) -> Result<Vec<PathBuf>> {
    let measured: Vec<&LoadResult> = report.loads.iter().filter(|l| !l.histogram.is_empty()).collect();
    let series: Vec<(String, &Histogram<u64>)> =
        load_labels(&measured).into_iter().zip(&measured).map(|(label, l)| (label, &l.histogram)).collect();
    super::write_file(path, &latency_by_percentile("Append latency by percentile", &series))?;
    let mut written = vec![path.to_path_buf()];
    if let Some(series) = throughput_series(&report.loads) {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let throughput = path.with_file_name(format!("{stem}-throughput.svg"));
        super::write_file(&throughput, &throughput_vs_writers("Append throughput by writers", &series))?;
        written.push(throughput);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::latency_histogram;
    use crate::report::fixtures;

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{svg}"))
    }

    fn count(doc: &roxmltree::Document<'_>, tag: &str) -> usize {
        doc.descendants().filter(|n| n.has_tag_name(tag)).count()
    }

    fn texts(doc: &roxmltree::Document<'_>) -> Vec<String> {
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::to_string).collect()
    }

    #[test]
    fn escapes_text() {
        assert_eq!(escape(r#"a<b>&"c"'d'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
        assert_eq!(escape("x\u{1}y"), "x\u{fffd}y");
    }

    #[test]
    fn labels_and_ticks() {
        let labels: Vec<String> = (0..=5).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(decade_label(-2), "0.01");
        assert_eq!(decade_label(4), "10,000");
        assert_eq!(nice_ticks(12_345.0), (2500.0, 12_500.0));
        assert_eq!(nice_ticks(10_000.0), (2000.0, 10_000.0));
        assert_eq!(nice_ticks(0.0), (0.2, 1.0));
        assert_eq!(tick_value(0.4, 0.2), "0.4");
        assert_eq!(tick_value(0.75, 0.25), "0.75");
    }

    #[test]
    fn latency_chart_is_well_formed() {
        let a = fixtures::histogram(3000, 50.0, 20_000.0, 1);
        let b = fixtures::histogram(5000, 80.0, 5_000.0, 2);
        let empty = latency_histogram();
        let series = vec![
            ("uring-wal/group-sync, 4 writers, 4096 B".to_string(), &a),
            ("raw <fdatasync> & co".to_string(), &b),
            ("nothing".to_string(), &empty),
        ];
        let svg = latency_by_percentile("Latency \"by\" percentile", &series);
        let doc = parse(&svg);
        let root = doc.root_element();
        assert!(root.has_tag_name(("http://www.w3.org/2000/svg", "svg")));
        assert_eq!(root.attribute("version"), Some("1.1"));
        let polylines: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("polyline")).collect();
        assert_eq!(polylines.len(), 2);
        assert_ne!(polylines[0].attribute("stroke"), polylines[1].attribute("stroke"));
        for p in &polylines {
            let points = p.attribute("points").unwrap().split(' ').count();
            assert!(points > 40, "{points}");
        }
        let texts = texts(&doc);
        for t in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "Percentile", "Latency (µs)", "100", "10,000"] {
            assert!(texts.iter().any(|x| x == t), "no text {t:?} in {texts:?}");
        }
        assert!(texts.iter().any(|x| x == "raw <fdatasync> & co"));
        assert!(texts.iter().any(|x| x == "nothing (no data)"));
        assert!(texts.iter().any(|x| x == "Latency \"by\" percentile"));
        assert!(count(&doc, "line") > 10);
    }

    #[test]
    fn latency_chart_without_data() {
        let svg = latency_by_percentile("empty", &[]);
        let doc = parse(&svg);
        assert_eq!(count(&doc, "polyline"), 0);
        assert!(texts(&doc).iter().any(|t| t == "no data"));
    }

    #[test]
    fn throughput_chart_is_well_formed() {
        let series = vec![
            ("uring-wal, 4096 B".to_string(), vec![(1, 3000.0), (4, 9000.5), (16, 25_000.0), (2, 5000.0)]),
            ("raw & co, 4096 B".to_string(), vec![(1, 2500.0), (16, 2600.0)]),
            ("single".to_string(), vec![(8, 100.0), (0, 5.0)]),
        ];
        let svg = throughput_vs_writers("Throughput", &series);
        let doc = parse(&svg);
        assert_eq!(count(&doc, "polyline"), 3);
        // A marker per point plus one per legend entry (the 0-writer point is dropped).
        assert_eq!(count(&doc, "circle"), 4 + 2 + 1 + 3);
        let texts = texts(&doc);
        for t in ["1", "2", "4", "8", "16", "0", "25,000", "Records per second", "raw & co, 4096 B"] {
            assert!(texts.iter().any(|x| x == t), "no text {t:?} in {texts:?}");
        }
        // Writers sorted along x.
        let first = doc.descendants().find(|n| n.has_tag_name("polyline")).unwrap();
        let xs: Vec<f64> = first
            .attribute("points")
            .unwrap()
            .split(' ')
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
    }

    #[test]
    fn writes_both_charts() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = fixtures::report();
        // A load without samples is left out of the latency chart.
        let mut empty = fixtures::load("okaywal", 1, 4096.0, 10.0, 5);
        empty.histogram = latency_histogram();
        report.loads.push(empty);
        let path = dir.path().join("charts").join("latency.svg");
        let written = write_charts(&path, &report).unwrap();
        assert_eq!(written, vec![path.clone(), dir.path().join("charts").join("latency-throughput.svg")]);

        let latency = std::fs::read_to_string(&written[0]).unwrap();
        let doc = parse(&latency);
        assert_eq!(count(&doc, "polyline"), report.loads.len() - 1);
        let labels = texts(&doc);
        assert!(labels.iter().any(|t| t == "uring-wal/group-sync, 1 writer, 4096 B"), "{labels:?}");
        assert!(labels.iter().any(|t| t == "raw/fdatasync, 16 writers, 4096 B"), "{labels:?}");
        // Same backend, writers and size as a closed-loop load: told apart by test and rate.
        assert!(labels.iter().any(|t| t == "uring-wal/group-sync, 4 writers, 4096 B (latency @5,000/s)"), "{labels:?}");
        assert!(!labels.iter().any(|t| t.starts_with("okaywal")), "{labels:?}");

        let throughput = std::fs::read_to_string(&written[1]).unwrap();
        let doc = parse(&throughput);
        // One series per backend and record size (okaywal ran at one writer
        // count only, but others ran at several); the open loop is left out.
        assert_eq!(count(&doc, "polyline"), 3);
        let names = texts(&doc);
        for t in ["uring-wal/group-sync, 4096 B", "raw/fdatasync, 4096 B", "okaywal, 4096 B"] {
            assert!(names.iter().any(|x| x == t), "no {t:?} in {names:?}");
        }
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
