//! What a run measures, as data: printed as tables, written as JSON, `.hgrm`
//! and SVG, and read back from JSON (`report FILE`). JSON keys are stable;
//! units are in the key names.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in nanoseconds, up to 60 s, 3 significant digits.
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// A new latency histogram.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("valid histogram bounds")
}

/// The machine and storage the run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Environment {
    pub harness_version: String,
    pub library_version: String,
    pub timestamp_utc: String,
    pub kernel: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_bytes: u64,
    pub dir: String,
    pub fs_type: String,
    pub device: Option<String>,
    pub device_name: Option<String>,
    pub logical_block_bytes: Option<u32>,
    pub physical_block_bytes: Option<u32>,
    pub dio_mem_align: u32,
    pub dio_offset_align: u32,
    pub write_cache: Option<String>,
    pub fua: Option<bool>,
    pub atomic_write_unit_max_bytes: Option<u32>,
    pub rotational: Option<bool>,
    pub io_uring_available: bool,
    pub io_uring_unavailable_reason: Option<String>,
    pub o_direct_accepted: bool,
    pub o_direct_refused_reason: Option<String>,
}

/// Percentiles of a latency distribution, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    /// Summarizes a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            p9999_us: us(h.value_at_quantile(0.9999)),
            max_us: us(h.max()),
        }
    }
}

/// What a load measured. Serialized as its lowercase name (`"latency"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestKind {
    /// The device alone: one durable write at a time (`raw`, and the sync
    /// methods of `sweep`).
    Raw,
    Latency,
    Throughput,
    Sweep,
    /// One producer streaming, pipelined or batched (the suite).
    Stream,
    /// Client writes through three openraft nodes.
    Raft,
}

impl TestKind {
    /// The name in tables, labels and JSON.
    pub fn name(self) -> &'static str {
        match self {
            TestKind::Raw => "raw",
            TestKind::Latency => "latency",
            TestKind::Throughput => "throughput",
            TestKind::Sweep => "sweep",
            TestKind::Stream => "stream",
            TestKind::Raft => "raft",
        }
    }
}

impl std::fmt::Display for TestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One measured load: a backend, a number of writers, a record size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadResult {
    /// What was measured.
    pub test: TestKind,
    /// `uring-wal/group-sync`, `raw/fdatasync`, `okaywal`, ...
    pub backend: String,
    pub writers: usize,
    /// Payload bytes; for a size range, the mean.
    pub record_bytes: f64,
    /// `closed` (each writer waits for its append) or `open` (fixed rate).
    pub load: String,
    /// Target rate of an open-loop load, operations per second.
    pub rate_ops_per_sec: Option<f64>,
    /// Records per append call.
    pub batch: usize,
    /// Appends each writer keeps in flight (tickets).
    pub pipeline: usize,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    /// Append latency; for an open loop, from each operation's intended start
    /// (coordinated omission corrected).
    pub latency: LatencySummary,
    /// Open loop only: from each operation's actual start.
    pub latency_uncorrected: Option<LatencySummary>,
    /// Mean records per flush (group commit batch size), where known.
    pub records_per_flush: Option<f64>,
    /// Syncs per second, where known.
    pub syncs_per_sec: Option<f64>,
    /// `raft`: the Raft groups the writes went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_groups: Option<usize>,
    /// What the log's segments did during the measured window (uring-wal
    /// only): whether it grew (fresh, zero-filled files) or reused retired
    /// ones, which changes the tail.
    #[serde(default)]
    pub segments: Option<SegmentActivity>,
    /// User + system CPU time of the whole process per operation.
    pub cpu_us_per_op: f64,
    /// Peak resident set size during the load.
    pub peak_rss_bytes: u64,
    /// Errors (a failed load keeps its partial results).
    pub error: Option<String>,
    /// With `--dir A,B`: the directory measured (its path as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// With `--interval`: the measured window cut into intervals, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<IntervalPoint>,
    /// The latency histogram (nanoseconds), for `.hgrm` and SVG output; not
    /// in the JSON, so empty in a report read back from it.
    #[serde(skip, default = "latency_histogram")]
    pub histogram: Histogram<u64>,
}

/// One interval of a load (`--interval`): what it wrote, how fast, the
/// latency of the appends that completed in it, and what the log did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalPoint {
    /// End of the interval, seconds since the measured window began.
    pub end_s: f64,
    /// Its length (the last one of a run may be shorter).
    pub seconds: f64,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    /// Latency of the appends completed in the interval; zero when none did.
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Flushes and syncs the log issued in the interval (uring-wal only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flushes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syncs: Option<u64>,
    /// Segment activity in the interval (uring-wal only): fresh files,
    /// reused ones, and waits for a segment not yet prepared (zero-fills
    /// the appends waited for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<SegmentActivity>,
}

/// Segment activity of a uring-wal load, over its measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentActivity {
    /// Segments the log moved into.
    pub activated: u64,
    /// Fresh segment files prepared (zero-filled unless pre-writing is off).
    pub created: u64,
    /// Retired segments renamed for reuse.
    pub recycled: u64,
    /// Times the I/O thread waited for the next segment to be prepared.
    pub stalls: u64,
    /// Fresh segments handed over with their zero-fill cut short, because
    /// the I/O thread waited for them.
    #[serde(default)]
    pub fills_cut: u64,
}

/// Sequential bandwidth of the raw device.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BandwidthResult {
    /// `write` or `read`.
    pub direction: String,
    pub block_bytes: usize,
    pub queue_depth: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_sec: f64,
}

/// Time from open to ready of a log of a given size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryResult {
    /// How the writer stopped: `close` or `sigkill`.
    pub stop: String,
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_sec: f64,
    pub records_per_sec: f64,
    /// Records the writer reported acknowledged before it stopped.
    pub acknowledged_records: u64,
    /// A torn tail recovery cut off: `segment:offset`, records dropped.
    pub torn_tail: Option<String>,
    pub records_dropped: u64,
    /// The same segment files read through the page cache just before and
    /// just after the opening, the faster (the suite's recovery step), MB/s:
    /// the raw read of the same bytes at the same moment.
    #[serde(default)]
    pub read_mb_per_sec: Option<f64>,
}

/// A row of the final summary: a WAL figure next to the raw device's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryRow {
    pub metric: String,
    pub unit: String,
    pub wal: f64,
    pub raw: Option<f64>,
    /// `wal / raw` (for latencies, above 1 means slower than the device).
    pub ratio: Option<f64>,
    pub note: String,
}

/// Everything a run produced.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// The command line and every option as parsed.
    pub config: serde_json::Value,
    pub environment: Environment,
    /// With `--dir A,B`: each directory's environment, in the order given
    /// (`environment` is the first's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<Environment>,
    pub loads: Vec<LoadResult>,
    pub bandwidth: Vec<BandwidthResult>,
    pub recovery: Vec<RecoveryResult>,
    pub summary: Vec<SummaryRow>,
    /// `raft`: each store at each client count, medians over the runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<RaftResult>,
    /// `raft`: what the device alone allows a committed write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_bound: Option<RaftBound>,
}

/// One store at one client count of `raft`: medians over its runs, and the
/// spread of the write rate.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RaftResult {
    pub store: String,
    /// Raft groups the writes went to (each a 3-node cluster).
    pub groups: usize,
    pub clients: usize,
    pub runs: usize,
    pub writes_per_s: f64,
    pub writes_per_s_min: f64,
    pub writes_per_s_max: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// CPU time of the whole process (three nodes, clients) per write.
    pub cpu_us_per_write: f64,
    /// Syncs of all the uring-wal logs per write (none for other stores).
    #[serde(default)]
    pub syncs_per_write: Option<f64>,
    /// What the cluster cost besides the load: the process's threads, the
    /// resident memory the cluster added, the stores' bytes on disk
    /// (medians).
    #[serde(default)]
    pub threads: usize,
    #[serde(default)]
    pub rss_bytes: u64,
    #[serde(default)]
    pub disk_bytes: u64,
    pub error: Option<String>,
}

/// The device's own limit on a committed write, measured in the same run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RaftBound {
    /// The faster qd1 durable write of the device (write + fdatasync, or
    /// RWF_DSYNC), 4 KiB: its name and median latency.
    pub device_method: String,
    pub device_p50_us: f64,
    /// A commit needs the leader's flush and one follower's, on the same
    /// disk: twice the device's durable write.
    pub bound_p50_us: f64,
    /// One client at that latency.
    pub bound_writes_per_s: f64,
}
