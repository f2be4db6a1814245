//! Command-line interface.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::sys::{SizeRange, parse_bytes, parse_duration, parse_duration_or_zero, parse_size_range};
use crate::target::TargetSpec;

const EXAMPLES: &str = "\
Examples:
  bench-harness                                   default suite (~1 min) in ./wal-bench-data
  bench-harness probe                             what the device and file system offer
  bench-harness raw --record-bytes 4KiB           device ceiling: qd1 durable writes, bandwidth
  bench-harness latency --writers 1 --duration 10s --hgrm lat.hgrm
  bench-harness latency --interval 1s --duration 1h --json long.json --svg long.svg   over time; Ctrl-C ends it
  bench-harness throughput --dir /mnt/a/wal,/mnt/b/wal --writers 16   two devices side by side
  bench-harness latency --rate 5000 --writers 8   open loop, coordinated omission corrected
  bench-harness throughput --writers 1,16,64 --record-bytes 128..4096 --json out.json
  bench-harness sweep --backend uring-wal:group-sync,uring-wal:dsync --writers 1,4,16,64 --svg sweep.svg
  bench-harness recovery --bytes 1GiB --kill
  bench-harness raft --clients 1,16 --duration 5s  three openraft nodes: in memory vs uring-wal
  bench-harness raft --groups 1,16,256 --clients 64   Multi-Raft: one shared log per node vs one per group
  bench-harness report sweep.json --svg sweep.svg  tables and charts of a saved report, again
  bench-harness latency --repeat 3 --backend raw:fdatasync,uring-wal,uring-wal:spin   spreads, ratios
Backends: uring-wal[:MODE][:PATH][:spin] with MODE group-sync | dsync | periodic[=MS] | none and
PATH auto | uring | threaded | buffered (spin: Options::spin()); raw[:fdatasync | dsync |
pwrite-fdatasync | pwrite-dsync], the device alone at one writer; with --features peers also
okaywal, raft-engine, raft-log, raft-log-nowait, naive.";

/// Measures uring-wal: append latency, throughput, recovery time, durability
/// settings, against the raw device and other WAL libraries.
#[derive(Parser, Debug, Serialize)]
#[command(name = "bench-harness", version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Without a command: `run`, the default suite.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options of every command.
#[derive(Args, Debug, Serialize, Clone)]
pub struct Global {
    /// Data directory; created if missing. What the harness writes there is
    /// removed at the end unless --keep. Several, comma separated (`latency`,
    /// `throughput`, `sweep`): each load runs on each, side by side.
    #[arg(long, global = true, value_delimiter = ',', default_value = "wal-bench-data")]
    pub dir: Vec<PathBuf>,
    /// Write configuration, environment and results as JSON.
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write latency distributions in HdrHistogram's percentile format.
    #[arg(long, global = true, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write charts: latency by percentile; throughput by writers.
    #[arg(long, global = true, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Measure where O_DIRECT is refused (tmpfs, overlayfs), with buffered I/O.
    #[arg(long, global = true)]
    pub allow_buffered: bool,
    /// Keep the files written in the data directory.
    #[arg(long, global = true)]
    pub keep: bool,
    /// No progress line on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug, Serialize)]
pub enum Command {
    /// The default suite: probe, raw device, latency, throughput at 1/4/16/64
    /// writers, recovery; a summary of each figure against the raw device.
    Run(RunArgs),
    /// What the device and file system offer.
    Probe,
    /// The device with no WAL: qd1 durable writes, sequential bandwidth.
    Raw(RawArgs),
    /// Append latency: closed loop, or open loop with --rate.
    Latency(LoadArgs),
    /// Records/s and MB/s over writer counts.
    Throughput(LoadArgs),
    /// Every combination of backends, writers and record sizes, plus a table
    /// of sync methods.
    Sweep(LoadArgs),
    /// Write a log, close or SIGKILL the writer, time open-to-ready.
    Recovery(RecoveryArgs),
    /// Client writes through a three-node in-process openraft cluster: a log
    /// store that acknowledges at once (in memory) next to uring-wal-openraft
    /// in group sync and DSYNC.
    Raft(RaftArgs),
    /// The tables of a report saved with --json, and its charts with --svg,
    /// without measuring anything. Its latency curves go through the saved
    /// percentiles (the JSON holds no histograms).
    Report(ReportArgs),
    /// (internal) The writer process of `recovery --kill`.
    #[command(hide = true)]
    RecoveryChild(ChildArgs),
}

fn writers(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("{s:?} is not a number of writers"))?;
    if !(1..=1024).contains(&n) {
        return Err(format!("writers must be 1..=1024, got {n}"));
    }
    Ok(n)
}

fn runs(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("{s:?} is not a number of runs"))?;
    if !(1..=100).contains(&n) {
        return Err(format!("runs must be 1..=100, got {n}"));
    }
    Ok(n)
}

fn positive_u64(s: &str) -> Result<u64, String> {
    let n: u64 = parse_bytes(s)?;
    if n == 0 {
        return Err("must be positive".into());
    }
    Ok(n)
}

fn rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a rate in operations per second"))?;
    if !r.is_finite() || r <= 0.0 || r > 10_000_000.0 {
        return Err(format!("rate must be in (0, 10000000] operations per second, got {s}"));
    }
    Ok(r)
}

fn batch(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("{s:?} is not a batch size"))?;
    if !(1..=65536).contains(&n) {
        return Err(format!("batch must be 1..=65536 records, got {n}"));
    }
    Ok(n)
}

impl LoadArgs {
    /// The uring-wal overrides these options ask for.
    pub fn tuning(&self) -> crate::target::WalTuning {
        crate::target::WalTuning {
            flushes_in_flight_max: self.wal_flushes_in_flight.map(|n| n as usize),
            flush_bytes_max: self.wal_flush_bytes.map(|b| b as usize),
            block_bytes: self.wal_block_bytes.map(|b| b as u32),
            spin: self.wal_spin,
            io_spin: self.wal_io_spin,
            prewrite: self.wal_no_prewrite.then_some(false),
            segment_bytes: self.wal_segment_bytes,
            spare_segments_max: self.wal_spares.map(|n| n as usize),
            retain_bytes: (self.wal_retain > 0).then_some(self.wal_retain),
        }
    }
}

fn ser_specs<S: serde::Serializer>(v: &[TargetSpec], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

fn ser_opt_spec<S: serde::Serializer>(v: &Option<TargetSpec>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(spec) => s.serialize_some(&spec.to_string()),
        None => s.serialize_none(),
    }
}

/// Options of a load.
#[derive(Args, Debug, Serialize, Clone)]
pub struct LoadArgs {
    /// Logs to measure, comma separated.
    #[arg(long = "backend", value_name = "BACKEND", value_delimiter = ',', default_value = "uring-wal")]
    #[serde(serialize_with = "ser_specs")]
    pub backends: Vec<TargetSpec>,
    /// Writer threads, comma separated (default: 1 for latency, 1,4,16,64 otherwise).
    #[arg(long, value_delimiter = ',', value_parser = writers)]
    pub writers: Vec<usize>,
    /// Payload bytes: fixed (256), a range (128..4096), or a comma-separated
    /// list for sweeps.
    #[arg(long, value_delimiter = ',', value_parser = parse_size_range, default_value = "256")]
    pub record_bytes: Vec<SizeRange>,
    /// Measured time per load (default 5s; with --ops, until that many records).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Measured records per load.
    #[arg(long, value_parser = positive_u64)]
    pub ops: Option<u64>,
    /// Unmeasured time before each load (0: none).
    #[arg(long, value_parser = parse_duration_or_zero, default_value = "1s")]
    pub warmup: Duration,
    /// Open loop: operations per second across all writers; latency counts
    /// from each operation's intended start.
    #[arg(long, value_parser = rate)]
    pub rate: Option<f64>,
    /// Records per append call (uring-wal: one batch, one wait).
    #[arg(long, value_parser = batch, default_value = "1")]
    pub batch: usize,
    /// Appends (or, with --batch, batches) each writer keeps in flight with
    /// tickets (uring-wal), awaiting the oldest when the window is full; 1
    /// appends synchronously.
    #[arg(long, value_parser = batch, default_value = "1")]
    pub pipeline: usize,
    /// Runs of every load, backends interleaved round by round; above 1 a
    /// table gives each figure's spread and marks ratios whose spreads
    /// overlap as not significant.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20), default_value = "1")]
    pub repeat: u32,
    /// The backend the spread table's ratios divide by (default: the first
    /// given).
    #[arg(long, value_name = "BACKEND")]
    #[serde(serialize_with = "ser_opt_spec")]
    pub baseline: Option<TargetSpec>,
    /// uring-wal: flushes in flight at most (library default 4).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub wal_flushes_in_flight: Option<u32>,
    /// uring-wal: a flush is sealed once it holds this many bytes (default 1MiB).
    #[arg(long, value_parser = positive_u64)]
    pub wal_flush_bytes: Option<u64>,
    /// uring-wal: padding unit, a power of two 512..=65536 (default: the
    /// device's physical block).
    #[arg(long, value_parser = positive_u64)]
    pub wal_block_bytes: Option<u64>,
    /// uring-wal: how long a waiting appender spins before it sleeps (0: never).
    #[arg(long, value_parser = parse_duration_or_zero)]
    pub wal_spin: Option<Duration>,
    /// uring-wal: how long the idle I/O thread polls for requests before it sleeps (0: never).
    #[arg(long, value_parser = parse_duration_or_zero)]
    pub wal_io_spin: Option<Duration>,
    /// uring-wal: only allocate fresh segments instead of zero-filling them
    /// (cheaper for large records near the device's bandwidth).
    #[arg(long)]
    pub wal_no_prewrite: bool,
    /// uring-wal: segment file size (default 64MiB, or 4 records if larger).
    #[arg(long, value_parser = positive_u64)]
    pub wal_segment_bytes: Option<u64>,
    /// uring-wal: retired segments kept for reuse instead of deleted, 1 to 16
    /// (library default 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub wal_spares: Option<u32>,
    /// uring-wal: checkpoint as an application would, keeping about this
    /// much segment space (what the flushes took, padding included) behind
    /// the durable end and truncating older segments (which are then
    /// recycled); 0 keeps everything.
    #[arg(long, value_parser = parse_bytes, default_value = "1GiB")]
    pub wal_retain: u64,
    /// Cut each load's measured time into intervals this long (e.g. 1s): a
    /// line per interval while it runs (records/s, MB/s, percentiles, what
    /// the log did), `intervals` in the JSON, a chart over time with --svg.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// (testing) Make the N-th append stall for --debug-stall-ms.
    #[arg(long, hide = true)]
    pub debug_stall_after: Option<u64>,
    /// (testing) Length of the stall in milliseconds.
    #[arg(long, hide = true, default_value = "100")]
    pub debug_stall_ms: u64,
}

/// Options of `raw`.
#[derive(Args, Debug, Serialize, Clone)]
pub struct RawArgs {
    /// Size of the records to compare with; writes are this padded to 4 KiB
    /// blocks, as the WAL writes them (see --write-bytes).
    #[arg(long, value_parser = parse_size_range, default_value = "256")]
    pub record_bytes: SizeRange,
    /// Write size of the qd1 tests, overriding the padded record size.
    #[arg(long, value_parser = positive_u64)]
    pub write_bytes: Option<u64>,
    /// Time per qd1 sync method.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub duration: Duration,
    /// Size of the baseline file, also the sequential test's size.
    #[arg(long, value_parser = positive_u64, default_value = "256MiB")]
    pub file_bytes: u64,
    /// Sequential test block size.
    #[arg(long, value_parser = positive_u64, default_value = "1MiB")]
    pub seq_block_bytes: u64,
    /// Sequential test operations in flight.
    #[arg(long, default_value = "8", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub queue_depth: u32,
    /// Also every sync method (pg_test_fsync-like), not just io_uring's two.
    #[arg(long)]
    pub all_methods: bool,
    /// Cut each qd1 test into intervals this long: a line per interval,
    /// `intervals` in the JSON, a chart over time with --svg.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
}

/// Options of `recovery`.
#[derive(Args, Debug, Serialize, Clone)]
pub struct RecoveryArgs {
    /// The uring-wal mode to write with.
    #[arg(long, default_value = "uring-wal")]
    #[serde(serialize_with = "ser_spec")]
    pub backend: TargetSpec,
    /// Log size to write before recovering.
    #[arg(long, value_parser = positive_u64, default_value = "1GiB")]
    pub bytes: u64,
    /// Payload bytes per record.
    #[arg(long, value_parser = parse_size_range, default_value = "4KiB")]
    pub record_bytes: SizeRange,
    /// Records per append call while writing.
    #[arg(long, value_parser = batch, default_value = "64")]
    pub batch: usize,
    /// Writer threads while writing.
    #[arg(long, value_parser = writers, default_value = "4")]
    pub writers: usize,
    /// SIGKILL the writer process instead of closing the log.
    #[arg(long)]
    pub kill: bool,
}

fn ser_spec<S: serde::Serializer>(v: &TargetSpec, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// Options of the hidden writer process.
#[derive(Args, Debug, Serialize, Clone)]
pub struct ChildArgs {
    #[command(flatten)]
    pub recovery: RecoveryArgs,
    /// Where the child writes.
    #[arg(long)]
    pub log_dir: PathBuf,
}

/// A log store of the `raft` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RaftStore {
    /// In memory, each append acknowledged at once: consensus without a disk.
    Memory,
    /// uring-wal-openraft, `Durability::GroupSync`.
    GroupSync,
    /// uring-wal-openraft, `Durability::Dsync`.
    Dsync,
    /// uring-wal-openraft's `MultiLog`: one log per node shared by all its
    /// groups (`Durability::GroupSync`).
    Shared,
    /// raft-log (Databend's meta-service store) with its defaults (needs
    /// `--features peers`).
    RaftLog,
    /// raft-log with `flush_batch_wait = 0` (needs `--features peers`).
    RaftLogNowait,
}

impl RaftStore {
    /// The name in tables and JSON.
    pub fn label(self) -> &'static str {
        match self {
            RaftStore::Memory => "memory",
            RaftStore::GroupSync => "uring-wal/group-sync",
            RaftStore::Dsync => "uring-wal/dsync",
            RaftStore::Shared => "uring-wal/shared",
            RaftStore::RaftLog => "raft-log",
            RaftStore::RaftLogNowait => "raft-log-nowait",
        }
    }

    /// What `--store` measures when not given: every store this build has.
    pub fn defaults() -> Vec<RaftStore> {
        let mut stores = vec![RaftStore::Memory, RaftStore::Shared, RaftStore::GroupSync, RaftStore::Dsync];
        if cfg!(feature = "peers") {
            stores.extend([RaftStore::RaftLog, RaftStore::RaftLogNowait]);
        }
        stores
    }
}

fn groups(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ 1..=4096) => Ok(n),
        _ => Err(format!("group count {s:?} is not between 1 and 4096")),
    }
}

fn record_bytes(s: &str) -> Result<u64, String> {
    let n = positive_u64(s)?;
    if n > 1 << 20 {
        return Err(format!("record size {s:?} is above 1MiB, the log store's default entry limit"));
    }
    Ok(n)
}

/// Options of `raft`.
#[derive(Args, Debug, Serialize, Clone)]
pub struct RaftArgs {
    /// Concurrent clients writing through the leader, comma separated; one
    /// load per count.
    #[arg(long, value_delimiter = ',', value_parser = writers, default_value = "1,16")]
    pub clients: Vec<usize>,
    /// Raft groups on the three nodes, comma separated; one cluster per
    /// count. Each client writes to the next group at each write.
    #[arg(long, value_delimiter = ',', value_parser = groups, default_value = "1")]
    pub groups: Vec<usize>,
    /// Log stores to measure, comma separated, each with its own cluster
    /// (default: memory, shared, group-sync, dsync, and with
    /// `--features peers` raft-log and raft-log-nowait).
    #[arg(long = "store", value_delimiter = ',')]
    pub stores: Vec<RaftStore>,
    /// Runs of every load, the stores alternating round by round; the
    /// tables and JSON give medians (and each figure's spread).
    #[arg(long, value_parser = runs, default_value = "3")]
    pub repeat: usize,
    /// Payload bytes of each client write.
    #[arg(long, value_parser = record_bytes, default_value = "256")]
    pub record_bytes: u64,
    /// Measured time per load.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub duration: Duration,
    /// Unmeasured time before each load (0: none).
    #[arg(long, value_parser = parse_duration_or_zero, default_value = "1s")]
    pub warmup: Duration,
    /// uring-wal: how long a waiting appender spins before it sleeps (0: never).
    #[arg(long, value_parser = parse_duration_or_zero)]
    pub wal_spin: Option<Duration>,
    /// uring-wal: how long the idle I/O thread polls for requests before it sleeps (0: never).
    #[arg(long, value_parser = parse_duration_or_zero)]
    pub wal_io_spin: Option<Duration>,
    /// uring-wal: flushes (each with its sync) in flight at once, at most
    /// (`Options::flushes_in_flight_max`; default: the library's).
    #[arg(long)]
    pub wal_flushes_in_flight: Option<usize>,
}

/// Options of `report`.
#[derive(Args, Debug, Serialize, Clone)]
pub struct ReportArgs {
    /// A report written with --json.
    pub file: PathBuf,
}

/// Options of `run`.
#[derive(Args, Debug, Serialize, Clone, Default)]
pub struct RunArgs {
    /// Shorter loads (for smoke tests): durations divided by 10.
    #[arg(long)]
    pub quick: bool,
    /// Log size for the recovery measurement (topped up after the loads).
    #[arg(long, value_parser = positive_u64, default_value = "512MiB")]
    pub recovery_bytes: u64,
    /// Cut each load's measured time into intervals this long: a line per
    /// interval while it runs, `intervals` in the JSON, a chart over time.
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
}
