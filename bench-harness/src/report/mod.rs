//! Output: aligned tables for the terminal ([`table`]), the whole report as
//! JSON ([`json`]), HdrHistogram percentile distributions ([`hgrm`]) and SVG
//! charts ([`svg`]). Everything here only reads the data in [`crate::model`].

pub mod charts;
pub mod hgrm;
pub mod json;
pub mod spread;
pub mod svg;
pub mod table;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// `value` rounded to an integer, with `,` between groups of three digits.
pub(crate) fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_string();
    }
    let rounded = value.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A record size in bytes: an integer when whole (`4096`), else one decimal.
pub(crate) fn record_bytes(bytes: f64) -> String {
    if !bytes.is_finite() {
        "-".to_string()
    } else if bytes.fract() == 0.0 {
        format!("{bytes:.0}")
    } else {
        format!("{bytes:.1}")
    }
}

/// A file-name-safe form of a label: lowercase ASCII letters and digits, runs
/// of anything else turned into one `-`.
pub(crate) fn slug(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() { "series".to_string() } else { out }
}

/// `dir/<stem><suffix>.<ext>` next to `path` (`ext` when `path` has none).
pub(crate) fn sibling(path: &Path, suffix: &str, default_ext: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| default_ext.to_string());
    path.with_file_name(format!("{stem}{suffix}.{ext}"))
}

/// Writes `contents` to `path`, creating its parent directory if needed.
pub(crate) fn write_file(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent).with_context(|| format!("creating directory {}", parent.display()))?;
    }
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// Fake data for the tests of the report modules.
#[cfg(test)]
pub(crate) mod fixtures {
    use hdrhistogram::Histogram;

    use crate::model::{
        BandwidthResult, Environment, LatencySummary, LoadResult, RecoveryResult, Report, SummaryRow, TestKind,
        latency_histogram,
    };

    /// `n` latencies, log-uniform between `lo_us` and `hi_us` (deterministic).
    pub fn histogram(n: usize, lo_us: f64, hi_us: f64, seed: u64) -> Histogram<u64> {
        let mut h = latency_histogram();
        let mut rng = crate::random::rng(seed);
        let (ln_lo, ln_hi) = (lo_us.ln(), hi_us.ln());
        for _ in 0..n {
            let r = rng.f64();
            let us = (ln_lo + r * (ln_hi - ln_lo)).exp();
            h.record((us * 1000.0) as u64).expect("in range");
        }
        h
    }

    pub fn load(backend: &str, writers: usize, record: f64, ops_per_sec: f64, seed: u64) -> LoadResult {
        let histogram = histogram(3000, 50.0, 20_000.0, seed);
        let latency = LatencySummary::of(&histogram);
        LoadResult {
            test: TestKind::Throughput,
            backend: backend.to_string(),
            writers,
            record_bytes: record,
            load: "closed".to_string(),
            rate_ops_per_sec: None,
            batch: 1,
            pipeline: 1,
            ops: histogram.len(),
            seconds: histogram.len() as f64 / ops_per_sec,
            ops_per_sec,
            mb_per_sec: ops_per_sec * record / 1e6,
            latency,
            latency_uncorrected: None,
            records_per_flush: Some(writers as f64 * 0.8),
            syncs_per_sec: Some(ops_per_sec / (writers as f64 * 0.8).max(1.0)),
            raft_groups: None,
            segments: None,
            cpu_us_per_op: 12.5,
            peak_rss_bytes: 48 << 20,
            error: None,
            dir: None,
            intervals: Vec::new(),
            histogram,
        }
    }

    pub fn open_load() -> LoadResult {
        let mut l = load("uring-wal/group-sync", 4, 4096.0, 5000.0, 99);
        l.test = TestKind::Latency;
        l.load = "open".to_string();
        l.rate_ops_per_sec = Some(5000.0);
        let uncorrected = histogram(3000, 40.0, 5_000.0, 7);
        l.latency_uncorrected = Some(LatencySummary::of(&uncorrected));
        l.error = Some("writer 3: <timed out> & gave up".to_string());
        l
    }

    pub fn loads() -> Vec<LoadResult> {
        let mut v = Vec::new();
        for (i, &w) in [1usize, 2, 4, 8, 16].iter().enumerate() {
            v.push(load("uring-wal/group-sync", w, 4096.0, 3000.0 * (w as f64).sqrt() * 1.5, i as u64));
            v.push(load("raw/fdatasync", w, 4096.0, 2500.0 * (w as f64).sqrt(), 100 + i as u64));
        }
        v.push(open_load());
        v
    }

    pub fn environment() -> Environment {
        Environment {
            harness_version: "0.1.0".to_string(),
            library_version: "0.1.0".to_string(),
            timestamp_utc: "2026-01-02T03:04:05Z".to_string(),
            kernel: "6.8.0-generic".to_string(),
            cpus: 2,
            cpu_model: "Test CPU <v2> & co".to_string(),
            memory_bytes: 24 << 30,
            dir: "/tmp/bench".to_string(),
            fs_type: "ext4".to_string(),
            device: Some("/dev/nvme0n1".to_string()),
            device_name: Some("Fake NVMe".to_string()),
            logical_block_bytes: Some(512),
            physical_block_bytes: Some(4096),
            dio_mem_align: 512,
            dio_offset_align: 512,
            write_cache: Some("write back".to_string()),
            fua: Some(true),
            atomic_write_unit_max_bytes: None,
            rotational: Some(false),
            io_uring_available: false,
            io_uring_unavailable_reason: Some("io_uring_setup: EPERM (seccomp)".to_string()),
            o_direct_accepted: true,
            o_direct_refused_reason: None,
        }
    }

    pub fn report() -> Report {
        Report {
            config: serde_json::json!({"command": "all", "seconds": 5}),
            environment: environment(),
            environments: Vec::new(),
            loads: loads(),
            bandwidth: vec![BandwidthResult {
                direction: "write".to_string(),
                block_bytes: 1 << 20,
                queue_depth: 4,
                bytes: 4 << 30,
                seconds: 2.5,
                mb_per_sec: (4u64 << 30) as f64 / 2.5 / 1e6,
            }],
            recovery: vec![RecoveryResult {
                stop: "sigkill".to_string(),
                segments: 16,
                records: 1_000_000,
                bytes: 1 << 30,
                seconds: 0.8,
                mb_per_sec: (1u64 << 30) as f64 / 0.8 / 1e6,
                records_per_sec: 1_250_000.0,
                acknowledged_records: 999_990,
                torn_tail: Some("15:1048576".to_string()),
                records_dropped: 3,
                read_mb_per_sec: None,
            }],
            results: Vec::new(),
            raft_bound: None,
            summary: vec![
                SummaryRow {
                    metric: "p99 append latency, 1 writer".to_string(),
                    unit: "us".to_string(),
                    wal: 1080.0,
                    raw: Some(1000.0),
                    ratio: Some(1.08),
                    note: "fdatasync per append".to_string(),
                },
                SummaryRow {
                    metric: "recovery".to_string(),
                    unit: "MB/s".to_string(),
                    wal: 1342.2,
                    raw: None,
                    ratio: None,
                    note: String::new(),
                },
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(-12345.0), "-12,345");
        assert_eq!(thousands(f64::NAN), "-");
    }

    #[test]
    fn slug_and_sibling() {
        assert_eq!(slug("uring-wal/group-sync, 4 writers, 4096 B"), "uring-wal-group-sync-4-writers-4096-b");
        assert_eq!(slug("  //  "), "series");
        assert_eq!(sibling(Path::new("out/lat.hgrm"), "-2-x", "hgrm"), PathBuf::from("out/lat-2-x.hgrm"));
        assert_eq!(sibling(Path::new("lat"), "-throughput", "svg"), PathBuf::from("lat-throughput.svg"));
        assert_eq!(record_bytes(4096.0), "4096");
        assert_eq!(record_bytes(1536.25), "1536.2");
    }
}
