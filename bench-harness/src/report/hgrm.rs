//! HdrHistogram percentile distributions (`.hgrm`), the text Java
//! HdrHistogram's `outputPercentileDistribution(out, 5, 1000.0)` prints and
//! the HdrHistogram plotter (hdrhistogram.github.io/HdrHistogram/plotFiles.html)
//! reads: values in microseconds (the histograms hold nanoseconds).
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!       50.015 0.000000000000          1           1.00
//!      ...
//!    19988.479 1.000000000000       3000            inf
//! #[Mean    =     2917.357, StdDeviation   =     4115.027]
//! #[Max     =    19988.479, Total count    =         3000]
//! #[Buckets =           29, SubBuckets     =         2048]
//! ```
//!
//! Two deliberate details:
//!
//! - The final (100%) row. Java prints only three columns there (it omits
//!   `1/(1-Percentile)`, which is infinite). We print `inf` in the fourth
//!   column instead, right-aligned in the same 14 characters, as
//!   HdrHistogram_c's `hdr_percentiles_print` (and so wrk2) does. Every data
//!   row thus has four columns, each of which parses as a number (`inf` is
//!   accepted by Rust's and Python's float parsing), and the plotter, which
//!   keeps only rows whose fourth column is not NaN under JavaScript's
//!   `parseFloat`, skips that row exactly as it skips Java's three-column one.
//! - An empty histogram gives the header, no data rows, and a footer of
//!   zeros (mean, deviation, max, count), as Java prints for one; nothing
//!   panics and the file is still written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use hdrhistogram::Histogram;

/// Percentile ticks per half distance to 100%, Java's default.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Histogram values are nanoseconds; output is in microseconds.
const OUTPUT_SCALING_RATIO: f64 = 1000.0;

/// One step of the percentile distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Row {
    /// Highest value equivalent to the bucket iterated to, in microseconds.
    pub value_us: f64,
    /// The quantile iterated to, 0..=1 (exactly 1.0 on the last row).
    pub quantile: f64,
    /// Count of values up to and including this one.
    pub total_count: u64,
}

/// The rows Java's `PercentileIterator` would give, via the crate's
/// `iter_quantiles`. Empty for an empty histogram.
pub(crate) fn rows(h: &Histogram<u64>) -> Vec<Row> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut total = 0u64;
    h.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| {
            total = total.saturating_add(v.count_since_last_iteration());
            Row {
                value_us: v.value_iterated_to() as f64 / OUTPUT_SCALING_RATIO,
                quantile: v.quantile_iterated_to(),
                total_count: total,
            }
        })
        .collect()
}

/// Java's `subBucketCount` for a number of significant digits.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest_with_unit_resolution = 2.0 * 10f64.powi(i32::from(sigfig));
    let magnitude = (largest_with_unit_resolution.log2().ceil() as u32).max(1);
    1u64 << magnitude
}

/// The percentile distribution of `h` (nanoseconds) in microseconds.
pub fn render(h: &Histogram<u64>) -> String {
    let digits = usize::from(h.sigfig());
    let mut out = String::new();
    let _ = write!(out, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    for row in rows(h) {
        let _ = write!(out, "{:12.digits$} {:2.12} {:10} ", row.value_us, row.quantile, row.total_count);
        if row.quantile < 1.0 {
            let _ = writeln!(out, "{:14.2}", 1.0 / (1.0 - row.quantile));
        } else {
            let _ = writeln!(out, "{:>14}", "inf");
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / OUTPUT_SCALING_RATIO, h.stdev() / OUTPUT_SCALING_RATIO, h.max() as f64 / OUTPUT_SCALING_RATIO)
    };
    let _ = writeln!(out, "#[Mean    = {mean:12.digits$}, StdDeviation   = {stdev:12.digits$}]");
    let _ = writeln!(out, "#[Max     = {max:12.digits$}, Total count    = {:12}]", h.len());
    let _ = writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), sub_bucket_count(h.sigfig()));
    out
}

/// Writes one `.hgrm` per item. A single item goes to `path`; several go
/// next to it as `<stem>-<n>-<label-slug>.<ext>`, `n` counting from 1 in the
/// order given (`ext` is `hgrm` if `path` has none). Empty histograms are
/// written too (header and zero footer), so the numbering follows `items`.
/// Returns the paths written.
pub fn write_all(path: &Path, items: &[(String, &Histogram<u64>)]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::with_capacity(items.len());
    for (i, (label, h)) in items.iter().enumerate() {
        let target = if items.len() == 1 {
            path.to_path_buf()
        } else {
            super::sibling(path, &format!("-{}-{}", i + 1, super::slug(label)), "hgrm")
        };
        super::write_file(&target, &render(h))?;
        written.push(target);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::latency_histogram;
    use crate::report::fixtures;

    const HEADER: &str = "       Value     Percentile TotalCount 1/(1-Percentile)";

    /// The data rows of an `.hgrm`, each parsed as four numbers.
    fn parse(text: &str) -> Vec<[f64; 4]> {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(HEADER));
        assert_eq!(lines.next(), Some(""));
        lines
            .take_while(|l| !l.starts_with("#["))
            .map(|l| {
                let cols: Vec<f64> = l
                    .split_whitespace()
                    .map(|c| c.parse::<f64>().unwrap_or_else(|e| panic!("{c:?} in {l:?}: {e}")))
                    .collect();
                assert_eq!(cols.len(), 4, "{l:?}");
                [cols[0], cols[1], cols[2], cols[3]]
            })
            .collect()
    }

    #[test]
    fn renders_java_format() {
        let h = fixtures::histogram(3000, 50.0, 20_000.0, 1);
        let text = render(&h);
        let rows = parse(&text);
        assert!(rows.len() > 40, "{text}");
        // Fixed widths as Java's `%12.3f %2.12f %10d %14.2f`.
        for line in text.lines().skip(2).take(rows.len()) {
            assert_eq!(line.len(), 12 + 1 + 14 + 1 + 10 + 1 + 14, "{line:?}");
            assert_eq!(line.as_bytes()[12], b' ');
            assert!(line[13..].starts_with("0.") || line[13..].starts_with("1."), "{line:?}");
        }
        let first = rows[0];
        assert_eq!(first[1], 0.0);
        assert_eq!(first[3], 1.0);
        assert!((first[0] - h.min() as f64 / 1000.0).abs() < 0.1, "{first:?}");
        let last = *rows.last().unwrap();
        assert_eq!(last[1], 1.0);
        assert!(last[3].is_infinite());
        assert_eq!(last[2], 3000.0);
        assert_eq!(last[0], h.max() as f64 / 1000.0);
        // Monotonic value, percentile and count; 1/(1-p) matches p.
        for w in rows.windows(2) {
            assert!(w[1][0] >= w[0][0] && w[1][1] >= w[0][1] && w[1][2] >= w[0][2], "{w:?}");
        }
        for r in &rows[..rows.len() - 1] {
            assert!((r[3] - 1.0 / (1.0 - r[1])).abs() < 0.01, "{r:?}");
        }
        // 5 ticks per half distance: 0, 0.1, ... 0.5, 0.55, ...
        assert!((rows[1][1] - 0.1).abs() < 1e-9 && (rows[6][1] - 0.55).abs() < 1e-9, "{text}");
        let footer: Vec<&str> = text.lines().filter(|l| l.starts_with("#[")).collect();
        assert_eq!(footer.len(), 3);
        assert!(footer[0].starts_with("#[Mean    = ") && footer[0].contains(", StdDeviation   = "));
        assert_eq!(footer[1], format!("#[Max     = {:12.3}, Total count    = {:12}]", h.max() as f64 / 1000.0, 3000));
        assert_eq!(footer[2], format!("#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), 2048));
        assert!(text.ends_with("]\n"));
    }

    #[test]
    fn single_value_and_empty() {
        let mut h = latency_histogram();
        h.record(1_000_000).unwrap();
        let rows = parse(&render(&h));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][1], 1.0);

        let empty = latency_histogram();
        let text = render(&empty);
        assert!(parse(&text).is_empty());
        assert!(text.contains("#[Mean    =        0.000, StdDeviation   =        0.000]"), "{text}");
        assert!(text.contains("#[Max     =        0.000, Total count    =            0]"), "{text}");
    }

    #[test]
    fn sub_buckets_as_java() {
        assert_eq!(sub_bucket_count(0), 2);
        assert_eq!(sub_bucket_count(1), 32);
        assert_eq!(sub_bucket_count(2), 256);
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(5), 262_144);
    }

    #[test]
    fn write_all_names_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = fixtures::histogram(2000, 50.0, 20_000.0, 3);
        let b = latency_histogram();
        let one = dir.path().join("lat.hgrm");
        let written = write_all(&one, &[("x".to_string(), &a)]).unwrap();
        assert_eq!(written, vec![one.clone()]);
        parse(&std::fs::read_to_string(&one).unwrap());

        let items = [("uring-wal/group-sync, 4 writers, 4096 B".to_string(), &a), ("empty".to_string(), &b)];
        let written = write_all(&one, &items).unwrap();
        assert_eq!(
            written,
            vec![
                dir.path().join("lat-1-uring-wal-group-sync-4-writers-4096-b.hgrm"),
                dir.path().join("lat-2-empty.hgrm")
            ]
        );
        for p in &written {
            let text = std::fs::read_to_string(p).unwrap();
            parse(&text);
            assert_eq!(text.lines().filter(|l| l.starts_with("#[")).count(), 3);
        }
        assert!(write_all(&one, &[]).unwrap().is_empty());
    }
}
