//! Small multiples as hand-written SVG 1.1: panels in a grid sharing their
//! axes, one colour per backend in every panel, the device alone as grey
//! reference lines in each, one legend below. All text is XML-escaped.
//! What goes on a chart is decided in [`super::charts`].
//!
//! Hand-written rather than drawn with plotters (evaluated): a
//! plotters grid of these panels is less code to draw, but it writes
//! anonymous geometry where this writes a tooltip (`<title>`) on every line
//! and point and classes (`panel`, `series`, `reference`, `legend`) that the
//! tests check; its panels are as wide as what is left beside their tick
//! labels, so the first column comes out narrower; it draws every
//! minor grid line as its own element (twice the file size); and a legend
//! shared by all panels, with line styles and markers, would be drawn by
//! hand there too.

use std::fmt::Write as _;

/// Width of a chart of one or two columns of panels.
const MIN_WIDTH: f64 = 960.0;
/// Width of a panel's plot in a grid of three or more columns.
const MIN_PLOT_WIDTH: f64 = 330.0;
/// Left of the grid, besides the y tick labels: the y axis title.
const LEFT: f64 = 44.0;
/// Right of the grid: half of the last x tick label.
const RIGHT: f64 = 44.0;
const TOP: f64 = 48.0;
/// Below the title: a note, if the chart has one.
const NOTE: f64 = 18.0;
const GAP_X: f64 = 48.0;
const PANEL_TITLE: f64 = 24.0;
const X_TICKS: f64 = 22.0;
const GAP_Y: f64 = 14.0;
const AXIS_TITLE: f64 = 30.0;
const LEGEND_ROW: f64 = 20.0;
/// Width of a character of 12 px sans-serif, roughly, for laying out text.
const CHAR_WIDTH: f64 = 7.0;

/// Tableau 10 without its grey, which the references use; a tenth backend
/// shares the first one's colour.
const PALETTE: [&str; 9] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"];
const REFERENCE: &str = "#7f7f7f";
const REFERENCE_DASHES: [&str; 3] = ["", "6,3", "2,2"];
/// Line styles that tell the variants in one panel apart (with a marker
/// each, on charts with markers).
pub const STYLES: usize = 4;
const DASHES: [&str; STYLES] = ["", "8,4", "2,3", "10,3,2,3"];
const GRID: &str = "#dddddd";
const MINOR_GRID: &str = "#f0f0f0";

/// The colour of the `i`-th backend.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// One line, in axis units.
pub struct Series {
    pub backend: String,
    /// What tells it apart from the backend's other lines in a panel.
    pub variant: String,
    /// The whole label, shown as a tooltip.
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// A tooltip per point, on charts with markers.
    pub point_titles: Vec<String>,
}

pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// An axis in its own units (log10 of microseconds, log2 of writers):
/// its range, labelled ticks, and unlabelled minor grid lines.
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<(f64, String)>,
    pub minor: Vec<f64>,
    pub title: String,
}

pub struct Chart {
    pub title: String,
    /// A line under the title (how the data was drawn).
    pub note: Option<String>,
    pub x: Axis,
    pub y: Axis,
    pub panels: Vec<Panel>,
    pub columns: usize,
    /// The device alone, in grey in every panel.
    pub references: Vec<Series>,
    /// The variants told apart by line style in a panel, in style order;
    /// empty where each panel holds one variant.
    pub styles: Vec<String>,
    pub markers: bool,
    /// Every backend's colour, the same in every panel and chart.
    pub colours: Vec<(String, &'static str)>,
}

impl Chart {
    fn colour_of(&self, backend: &str) -> &'static str {
        self.colours.iter().find(|(b, _)| b == backend).map_or(colour(0), |c| c.1)
    }

    fn style_of(&self, s: &Series) -> usize {
        self.styles.iter().position(|v| *v == s.variant).unwrap_or(0) % STYLES
    }
}

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

/// A panel's plot area, in SVG coordinates.
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    first_column: bool,
}

impl Rect {
    fn x(&self, axis: &Axis, v: f64) -> f64 {
        self.x0 + (v - axis.lo) / (axis.hi - axis.lo) * (self.x1 - self.x0)
    }

    fn y(&self, axis: &Axis, v: f64) -> f64 {
        self.y1 - (v - axis.lo) / (axis.hi - axis.lo) * (self.y1 - self.y0)
    }
}

/// Where the panels go.
struct Grid {
    width: f64,
    /// Left edge of the first column.
    left: f64,
    columns: usize,
    top: f64,
    plot_width: f64,
    plot_height: f64,
    bottom: f64,
}

impl Grid {
    fn new(chart: &Chart) -> Grid {
        let n = chart.panels.len().max(1);
        let columns = chart.columns.clamp(1, n);
        let rows = n.div_ceil(columns);
        let longest_y = chart.y.ticks.iter().map(|t| t.1.chars().count()).max().unwrap_or(0);
        let left = LEFT + longest_y as f64 * CHAR_WIDTH;
        let gaps = GAP_X * (columns - 1) as f64;
        let width = MIN_WIDTH.max(left + RIGHT + gaps + MIN_PLOT_WIDTH * columns as f64).ceil();
        let plot_width = (width - left - RIGHT - gaps) / columns as f64;
        let plot_height = match (rows, columns) {
            (1, 1) => 400.0,
            (1, _) => 300.0,
            _ => 230.0,
        };
        let top = TOP + if chart.note.is_some() { NOTE } else { 0.0 };
        let bottom = top + rows as f64 * (PANEL_TITLE + plot_height + X_TICKS + GAP_Y);
        Grid { width, left, columns, top, plot_width, plot_height, bottom }
    }

    fn rect(&self, i: usize) -> Rect {
        let (row, column) = (i / self.columns, i % self.columns);
        let x0 = self.left + column as f64 * (self.plot_width + GAP_X);
        let y0 = self.top + row as f64 * (PANEL_TITLE + self.plot_height + X_TICKS + GAP_Y) + PANEL_TITLE;
        Rect { x0, y0, x1: x0 + self.plot_width, y1: y0 + self.plot_height, first_column: column == 0 }
    }
}

/// The chart as an SVG document.
pub fn render(chart: &Chart) -> String {
    render_stacked(std::slice::from_ref(chart))
}

/// Charts one above the other in one SVG document (each keeps its own axes
/// and legend), the first chart's title the document's.
pub fn render_stacked(charts: &[Chart]) -> String {
    let bodies: Vec<(String, f64, f64)> = charts
        .iter()
        .enumerate()
        .map(|(k, c)| body(c, if k == 0 { String::new() } else { format!("c{k}-") }))
        .collect();
    let width = bodies.iter().map(|b| b.1).fold(0.0, f64::max);
    let height: f64 = bodies.iter().map(|b| b.2).sum();
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let title = charts.first().map(|c| escape(&c.title)).unwrap_or_default();
    let _ = writeln!(out, "<title>{title}</title>");
    let _ = writeln!(out, r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#);
    let mut y = 0.0;
    for (k, (text, w, h)) in bodies.iter().enumerate() {
        if k == 0 {
            out.push_str(text);
        } else {
            let _ = writeln!(out, r#"<svg x="0" y="{y}" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#);
            out.push_str(text);
            out.push_str("</svg>\n");
        }
        y += h;
    }
    out.push_str("</svg>\n");
    out
}

/// A chart's elements, its clip paths' ids starting with `ids`, and its
/// width and height.
fn body(chart: &Chart, ids: String) -> (String, f64, f64) {
    let grid = Grid::new(chart);
    let legend = Legend::new(chart, &grid);
    let height = (grid.bottom + AXIS_TITLE + legend.rows() as f64 * LEGEND_ROW + 4.0).ceil();
    let mut out = String::new();
    heading(&mut out, chart, grid.width);
    for (i, panel) in chart.panels.iter().enumerate() {
        draw_panel(&mut out, chart, panel, &grid.rect(i), &format!("{ids}panel-{i}"));
    }
    if chart.panels.is_empty() {
        let empty = Panel { title: String::new(), series: Vec::new() };
        draw_panel(&mut out, chart, &empty, &grid.rect(0), &format!("{ids}panel-0"));
    }
    axis_titles(&mut out, chart, &grid);
    legend.draw(&mut out, grid.bottom + AXIS_TITLE);
    (out, grid.width, height)
}

fn heading(out: &mut String, chart: &Chart, width: f64) {
    let title = escape(&chart.title);
    let mid = width / 2.0;
    let _ = writeln!(
        out,
        r#"<text x="{mid}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{title}</text>"#
    );
    if let Some(note) = &chart.note {
        let _ =
            writeln!(out, r##"<text x="{mid}" y="48" text-anchor="middle" fill="#555555">{}</text>"##, escape(note));
    }
}

fn draw_panel(out: &mut String, chart: &Chart, panel: &Panel, r: &Rect, id: &str) {
    let (w, h) = (r.x1 - r.x0, r.y1 - r.y0);
    let _ = writeln!(out, r#"<g class="panel">"#);
    if !panel.title.is_empty() {
        let _ = writeln!(
            out,
            r#"<text class="panel-title" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
            (r.x0 + r.x1) / 2.0,
            r.y0 - 8.0,
            escape(&panel.title)
        );
    }
    let _ = writeln!(
        out,
        r#"<defs><clipPath id="{id}"><rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}"/></clipPath></defs>"#,
        r.x0, r.y0
    );
    grid_lines(out, chart, r);
    let _ = writeln!(out, r#"<g clip-path="url(#{id})" fill="none" stroke-linejoin="round">"#);
    for (i, s) in chart.references.iter().enumerate() {
        let dash = REFERENCE_DASHES[i % REFERENCE_DASHES.len()];
        polyline(out, chart, r, s, ("reference", REFERENCE, dash, 1.5));
    }
    for s in &panel.series {
        let style = chart.style_of(s);
        polyline(out, chart, r, s, ("series", chart.colour_of(&s.backend), DASHES[style], 2.0));
        if chart.markers {
            markers(out, chart, r, s, style);
        }
    }
    let _ = writeln!(out, "</g>");
    if panel.series.is_empty() {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="14" fill="#777777">no data</text>"##,
            (r.x0 + r.x1) / 2.0,
            (r.y0 + r.y1) / 2.0
        );
    }
    let _ = writeln!(
        out,
        r#"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="black"/>"#,
        r.x0, r.y0
    );
    let _ = writeln!(out, "</g>");
}

/// Grid lines; y tick labels in the first column only; x tick labels under
/// every panel, leaving out a label that would touch the one before it.
fn grid_lines(out: &mut String, chart: &Chart, r: &Rect) {
    let hline = |out: &mut String, y: f64, stroke: &str| {
        let _ = writeln!(out, r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{stroke}"/>"#, r.x0, r.x1);
    };
    for &v in &chart.y.minor {
        hline(out, r.y(&chart.y, v), MINOR_GRID);
    }
    for (v, label) in &chart.y.ticks {
        let y = r.y(&chart.y, *v);
        hline(out, y, GRID);
        if r.first_column {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                r.x0 - 8.0,
                y + 4.0,
                escape(label)
            );
        }
    }
    for (v, _) in &chart.x.ticks {
        let x = r.x(&chart.x, *v);
        let _ = writeln!(out, r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{GRID}"/>"#, r.y0, r.y1);
    }
    for (x, label) in x_labels(chart, r) {
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
            r.y1 + 16.0,
            escape(label)
        );
    }
}

/// The x tick labels that fit side by side, from the left, and always the
/// last one (in place of those before it that it would touch).
fn x_labels<'a>(chart: &'a Chart, r: &Rect) -> Vec<(f64, &'a str)> {
    let half = |label: &str| label.chars().count() as f64 * CHAR_WIDTH * 0.85 / 2.0;
    let touch = |(xa, a): (f64, &str), (xb, b): (f64, &str)| xb - half(b) < xa + half(a) + 6.0;
    let mut shown: Vec<(f64, &str)> = Vec::new();
    let ticks: Vec<(f64, &str)> = chart.x.ticks.iter().map(|(v, l)| (r.x(&chart.x, *v), l.as_str())).collect();
    for &t in &ticks {
        if shown.last().is_none_or(|&prev| !touch(prev, t)) {
            shown.push(t);
        }
    }
    if let Some(&last) = ticks.last()
        && shown.last() != Some(&last)
    {
        while shown.last().is_some_and(|&prev| touch(prev, last)) {
            shown.pop();
        }
        shown.push(last);
    }
    shown
}

fn polyline(
    out: &mut String,
    chart: &Chart,
    r: &Rect,
    s: &Series,
    (class, colour, dash, width): (&str, &str, &str, f64),
) {
    if s.points.is_empty() {
        return;
    }
    let mut points = String::with_capacity(s.points.len() * 14);
    for (i, &(x, y)) in s.points.iter().enumerate() {
        let sep = if i > 0 { " " } else { "" };
        let _ = write!(points, "{sep}{:.1},{:.1}", r.x(&chart.x, x), r.y(&chart.y, y));
    }
    let dash = if dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{dash}""#) };
    let _ = writeln!(
        out,
        r#"<polyline class="{class}" stroke="{colour}" stroke-width="{width}"{dash} points="{points}"><title>{}</title></polyline>"#,
        escape(&s.label)
    );
}

/// A marker of shape `style` at `(x, y)` filled with `colour`.
fn marker(style: usize, (x, y): (f64, f64), colour: &str) -> String {
    match style % STYLES {
        0 => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{colour}""#),
        1 => format!(r#"<rect x="{:.1}" y="{:.1}" width="6.4" height="6.4" fill="{colour}""#, x - 3.2, y - 3.2),
        2 => format!(
            r#"<polygon points="{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{colour}""#,
            y - 4.5,
            x + 4.2,
            y + 3.2,
            x - 4.2,
            y + 3.2
        ),
        _ => format!(
            r#"<polygon points="{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}" fill="{colour}""#,
            y - 4.5,
            x + 4.5,
            y + 4.5,
            x - 4.5
        ),
    }
}

fn markers(out: &mut String, chart: &Chart, r: &Rect, s: &Series, style: usize) {
    let colour = chart.colour_of(&s.backend);
    for (i, &(x, y)) in s.points.iter().enumerate() {
        let at = (r.x(&chart.x, x), r.y(&chart.y, y));
        let title = escape(s.point_titles.get(i).unwrap_or(&s.label));
        let _ = writeln!(out, "{}><title>{title}</title></{}>", marker(style, at, colour), shape(style));
    }
}

fn shape(style: usize) -> &'static str {
    match style % STYLES {
        0 => "circle",
        1 => "rect",
        _ => "polygon",
    }
}

fn axis_titles(out: &mut String, chart: &Chart, grid: &Grid) {
    let x = (grid.left + grid.width - RIGHT) / 2.0;
    let _ = writeln!(
        out,
        r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="13">{}</text>"#,
        grid.bottom + 8.0,
        escape(&chart.x.title)
    );
    let (yx, yy) = (20.0, (grid.top + grid.bottom) / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{yx}" y="{yy:.1}" transform="rotate(-90 {yx} {yy:.1})" text-anchor="middle" font-size="13">{}</text>"#,
        escape(&chart.y.title)
    );
}

/// One legend entry: a line sample (and marker) and its label.
struct Entry {
    colour: &'static str,
    dash: &'static str,
    marker: Option<usize>,
    label: String,
}

/// The legend below the grid: the backends on the chart (each once), the
/// references, and the line styles of the variants, each group starting a
/// row of its own.
struct Legend {
    groups: Vec<Vec<Entry>>,
    left: f64,
    columns: usize,
    entry_width: f64,
}

impl Legend {
    fn new(chart: &Chart, grid: &Grid) -> Legend {
        let on_chart = |b: &str| chart.panels.iter().flat_map(|p| &p.series).any(|s| s.backend == b);
        let backend_marker = (chart.markers && chart.styles.is_empty()).then_some(0);
        let backends = chart
            .colours
            .iter()
            .filter(|(b, _)| on_chart(b))
            .map(|(b, c)| Entry { colour: c, dash: "", marker: backend_marker, label: b.clone() })
            .collect();
        let references = (chart.references.iter().enumerate())
            .map(|(i, s)| Entry {
                colour: REFERENCE,
                dash: REFERENCE_DASHES[i % REFERENCE_DASHES.len()],
                marker: None,
                label: s.label.clone(),
            })
            .collect();
        let styles = (chart.styles.iter().enumerate())
            .map(|(i, v)| Entry {
                colour: "#333333",
                dash: DASHES[i % STYLES],
                marker: chart.markers.then_some(i),
                label: v.clone(),
            })
            .collect();
        let groups: Vec<Vec<Entry>> = vec![backends, references, styles];
        let longest = groups.iter().flatten().map(|e| e.label.chars().count()).max().unwrap_or(0) as f64;
        let usable = grid.width - grid.left - RIGHT;
        let entry_width = (44.0 + longest * CHAR_WIDTH).min(usable);
        let columns = ((usable / entry_width).floor() as usize).max(1);
        Legend { groups, left: grid.left, columns, entry_width }
    }

    fn rows(&self) -> usize {
        self.groups.iter().map(|g| g.len().div_ceil(self.columns)).sum()
    }

    fn draw(&self, out: &mut String, top: f64) {
        let _ = writeln!(out, r#"<g class="legend">"#);
        let mut row = 0;
        for group in &self.groups {
            for (i, e) in group.iter().enumerate() {
                let x = self.left + (i % self.columns) as f64 * self.entry_width;
                let y = top + (row + i / self.columns) as f64 * LEGEND_ROW;
                let dash = if e.dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{}""#, e.dash) };
                let _ = writeln!(
                    out,
                    r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="2"{dash}/>"#,
                    x + 30.0,
                    e.colour
                );
                if let Some(style) = e.marker {
                    let _ = writeln!(out, "{}/>", marker(style, (x + 15.0, y), e.colour));
                }
                let _ = writeln!(out, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x + 36.0, y + 4.0, escape(&e.label));
            }
            row += group.len().div_ceil(self.columns);
        }
        let _ = writeln!(out, "</g>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(backend: &str, variant: &str, points: Vec<(f64, f64)>) -> Series {
        let label = format!("{backend}, {variant}");
        Series { backend: backend.into(), variant: variant.into(), label, points, point_titles: Vec::new() }
    }

    fn axis(lo: f64, hi: f64) -> Axis {
        Axis { lo, hi, ticks: vec![(lo, "lo".into()), (hi, "hi".into())], minor: vec![], title: "t".into() }
    }

    fn chart(panels: Vec<Panel>, styles: Vec<String>) -> Chart {
        Chart {
            title: "A \"chart\" & <co>".into(),
            note: Some("note".into()),
            x: axis(0.0, 10.0),
            y: axis(0.0, 5.0),
            panels,
            columns: 2,
            references: vec![series("raw/x", "", vec![(0.0, 1.0), (10.0, 1.0)])],
            styles,
            markers: true,
            colours: vec![("a".into(), colour(0)), ("b <&>".into(), colour(1)), ("unused".into(), colour(2))],
        }
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{svg}"))
    }

    #[test]
    fn escapes_text() {
        assert_eq!(escape(r#"a<b>&"c"'d'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
        assert_eq!(escape("x\u{1}y"), "x\u{fffd}y");
    }

    #[test]
    fn panels_references_markers_and_one_legend() {
        let p = |t: &str| Panel {
            title: t.into(),
            series: vec![
                series("a", "v1", vec![(1.0, 1.0), (2.0, 2.0)]),
                series("b <&>", "v2", vec![(1.0, 3.0), (5.0, 4.0), (9.0, 4.5)]),
            ],
        };
        let svg = render(&chart(vec![p("one"), p("two"), p("three")], vec!["v1".into(), "v2".into()]));
        let doc = parse(&svg);
        let panels: Vec<_> = doc.descendants().filter(|n| n.attribute("class") == Some("panel")).collect();
        assert_eq!(panels.len(), 3);
        for panel in &panels {
            let class = |c: &str| panel.descendants().filter(|n| n.attribute("class") == Some(c)).count();
            assert_eq!((class("series"), class("reference")), (2, 1));
            // Circles for the first variant, squares for the second.
            assert_eq!(panel.descendants().filter(|n| n.has_tag_name("circle")).count(), 2);
            assert_eq!(panel.descendants().filter(|n| n.has_tag_name("rect")).count(), 3 + 2);
        }
        let legend = doc.descendants().find(|n| n.attribute("class") == Some("legend")).unwrap();
        let labels: Vec<&str> =
            legend.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).collect();
        assert_eq!(labels, ["a", "b <&>", "raw/x, ", "v1", "v2"], "backends on the chart, references, styles");
        let texts: Vec<&str> = doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).collect();
        assert!(texts.contains(&"A \"chart\" & <co>") && texts.contains(&"note") && texts.contains(&"three"));
        // Tick labels of y only in the first column: two panels of three.
        assert_eq!(texts.iter().filter(|t| **t == "lo").count(), 2 + 3);
    }

    #[test]
    fn an_empty_chart_says_no_data() {
        let svg = render(&chart(Vec::new(), Vec::new()));
        let doc = parse(&svg);
        assert!(doc.descendants().any(|n| n.text() == Some("no data")));
        assert_eq!(doc.descendants().filter(|n| n.attribute("class") == Some("series")).count(), 0);
    }
}
