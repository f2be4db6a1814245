//! The logs a load can be run against, behind one trait.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::raw::SyncMethod;
use anyhow::{Context, Result};
use uring_wal::{Backend, Batch, DirectIo, Durability, Options, RecordType, Wal};

/// A log under test: appends durably from many threads at once.
pub trait Target: Send + Sync {
    /// Appends one record and returns once it is durable as the target
    /// defines it (for uring-wal: acknowledged under its durability mode).
    fn append(&self, payload: &[u8]) -> Result<()>;

    /// Appends several records in one call, returning once all are durable.
    fn append_batch(&self, payloads: &[&[u8]]) -> Result<()> {
        for p in payloads {
            self.append(p)?;
        }
        Ok(())
    }

    /// Queues one record without waiting; `None` where the target has no
    /// such path (the load then appends synchronously).
    fn submit(&self, _payload: &[u8]) -> Result<Option<uring_wal::Ticket>> {
        Ok(None)
    }

    /// Queues a batch without waiting; `None` where the target has no such
    /// path (the load then fails: a pipelined batch load needs tickets).
    fn submit_batch(&self, _payloads: &[&[u8]]) -> Result<Option<uring_wal::Ticket>> {
        Ok(None)
    }

    /// Group-commit counters since opening, where the target knows them.
    fn flush_stats(&self) -> Option<FlushStats> {
        None
    }

    /// A short description of how it runs (backend, I/O mode).
    fn describe(&self) -> String;

    /// Closes, after making everything appended durable.
    fn close(self: Box<Self>) -> Result<()>;
}

/// Counters of a target that batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub appends: u64,
    pub flushes: u64,
    pub syncs: u64,
    pub segments_activated: u64,
    pub segments_created: u64,
    pub segments_recycled: u64,
    pub segment_stalls: u64,
    pub segment_fills_cut: u64,
}

/// I/O path of uring-wal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoPath {
    Auto,
    Uring,
    Threaded,
    Buffered,
}

/// Which log, and how: `uring-wal[:MODE][:PATH][:spin][:v1]`, `raw:METHOD` (the
/// device alone, one writer), `okaywal`, `raft-engine`, `raft-log`,
/// `raft-log-nowait`, `naive` (the last five with the `peers` feature).
#[derive(Clone, Debug, PartialEq)]
pub enum TargetSpec {
    /// `spin`: with `Options::spin()` (a lone appender and the idle I/O
    /// thread spin before they sleep). `v1`: `rewrite_tail_blocks(false)`
    /// (format version 1: every flush takes blocks of its own).
    UringWal {
        durability: Durability,
        path: IoPath,
        spin: bool,
        rewrites: bool,
    },
    /// No log: durable writes of the padded record at queue depth 1.
    Raw(SyncMethod),
    Okaywal,
    RaftEngine,
    /// raft-log; `batch_wait: false` sets its `flush_batch_wait` to 0.
    RaftLog {
        batch_wait: bool,
    },
    Naive,
}

impl TargetSpec {
    /// Default: uring-wal, group sync, io_uring where available.
    pub fn default_wal() -> TargetSpec {
        TargetSpec::UringWal { durability: Durability::GroupSync, path: IoPath::Auto, spin: false, rewrites: true }
    }

    /// Whether appends are synced before they return.
    pub fn is_durable(&self) -> bool {
        match self {
            TargetSpec::UringWal { durability, .. } => durability.syncs_before_ack(),
            _ => true,
        }
    }
}

fn durability_name(d: Durability) -> String {
    match d {
        Durability::GroupSync => "group-sync".into(),
        Durability::Dsync => "dsync".into(),
        Durability::Periodic { interval } => format!("periodic={}ms", interval.as_millis()),
        Durability::None => "none".into(),
        _ => "other".into(),
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::UringWal { durability, path, spin, rewrites } => {
                write!(f, "uring-wal/{}", durability_name(*durability))?;
                match path {
                    IoPath::Auto => {}
                    IoPath::Uring => write!(f, "/uring")?,
                    IoPath::Threaded => write!(f, "/threaded")?,
                    IoPath::Buffered => write!(f, "/buffered")?,
                }
                if *spin {
                    write!(f, "/spin")?;
                }
                if *rewrites { Ok(()) } else { write!(f, "/v1") }
            }
            TargetSpec::Raw(m) => write!(f, "{}", m.name()),
            TargetSpec::Okaywal => write!(f, "okaywal"),
            TargetSpec::RaftEngine => write!(f, "raft-engine"),
            TargetSpec::RaftLog { batch_wait: true } => write!(f, "raft-log"),
            TargetSpec::RaftLog { batch_wait: false } => write!(f, "raft-log-nowait"),
            TargetSpec::Naive => write!(f, "naive"),
        }
    }
}

impl FromStr for TargetSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<TargetSpec, String> {
        let mut parts = s.split([':', '/']);
        let head = parts.next().unwrap_or_default();
        match head {
            "uring-wal" | "wal" => {
                let mut durability = Durability::GroupSync;
                let mut path = IoPath::Auto;
                let mut spin = false;
                let mut rewrites = true;
                for part in parts {
                    match part {
                        "group-sync" | "groupsync" | "fdatasync" => durability = Durability::GroupSync,
                        "dsync" => durability = Durability::Dsync,
                        "none" => durability = Durability::None,
                        "periodic" => durability = Durability::Periodic { interval: Duration::from_millis(100) },
                        p if p.starts_with("periodic=") => {
                            let ms = p["periodic=".len()..].trim_end_matches("ms");
                            let ms: u64 = ms.parse().map_err(|_| format!("bad periodic interval in {s:?}"))?;
                            if ms == 0 {
                                return Err(format!("periodic interval must be positive in {s:?}"));
                            }
                            durability = Durability::Periodic { interval: Duration::from_millis(ms) };
                        }
                        "uring" | "io-uring" => path = IoPath::Uring,
                        "threaded" => path = IoPath::Threaded,
                        "buffered" => path = IoPath::Buffered,
                        "auto" => path = IoPath::Auto,
                        "spin" => spin = true,
                        "v1" => rewrites = false,
                        other => {
                            return Err(format!(
                                "unknown part {other:?} in {s:?}: modes are group-sync, dsync, periodic[=MS], none; \
                                 paths are auto, uring, threaded, buffered; spin spins; v1 writes format version 1 \
                                 (no tail-block rewrites)"
                            ));
                        }
                    }
                }
                Ok(TargetSpec::UringWal { durability, path, spin, rewrites })
            }
            "raw" => {
                let method = match parts.next() {
                    Some("fdatasync") | None => SyncMethod::UringFdatasync,
                    Some("dsync") => SyncMethod::UringDsync,
                    Some("pwrite-fdatasync") => SyncMethod::PwriteFdatasync,
                    Some("pwrite-dsync") => SyncMethod::PwriteDsync,
                    Some(other) => {
                        return Err(format!(
                            "unknown raw method {other:?} in {s:?}: fdatasync, dsync (io_uring), \
                             pwrite-fdatasync, pwrite-dsync"
                        ));
                    }
                };
                if parts.next().is_some() {
                    return Err(format!("{s:?}: raw takes one method"));
                }
                Ok(TargetSpec::Raw(method))
            }
            "okaywal" if parts.next().is_none() => Ok(TargetSpec::Okaywal),
            "raft-engine" if parts.next().is_none() => Ok(TargetSpec::RaftEngine),
            "raft-log" if parts.next().is_none() => Ok(TargetSpec::RaftLog { batch_wait: true }),
            "raft-log-nowait" if parts.next().is_none() => Ok(TargetSpec::RaftLog { batch_wait: false }),
            "naive" if parts.next().is_none() => Ok(TargetSpec::Naive),
            _ => Err(format!(
                "unknown backend {s:?}: uring-wal[:MODE][:PATH][:spin][:v1], raw[:METHOD], okaywal, raft-engine, raft-log, \
                 raft-log-nowait, naive (the last five need --features peers)"
            )),
        }
    }
}

/// How targets are opened.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Largest record the load appends.
    pub record_bytes_max: usize,
    /// Accept a directory where O_DIRECT is refused.
    pub allow_buffered: bool,
    /// uring-wal tuning (None: the library's default).
    pub wal: WalTuning,
    /// uring-wal: how long opening waits for the lock of a writer that has
    /// exited (None: the library's default).
    pub lock_wait: Option<Duration>,
}

/// uring-wal options a load may override.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct WalTuning {
    pub flushes_in_flight_max: Option<usize>,
    pub flush_bytes_max: Option<usize>,
    pub block_bytes: Option<u32>,
    pub spin: Option<Duration>,
    pub io_spin: Option<Duration>,
    pub prewrite: Option<bool>,
    pub segment_bytes: Option<u64>,
    pub spare_segments_max: Option<usize>,
    /// Checkpoint like an application would: keep about this many bytes of
    /// segment space (what the flushes took, `Stats::segment_bytes_used`)
    /// behind the durable end, truncating older segments (None: keep
    /// everything).
    pub retain_bytes: Option<u64>,
}

/// uring-wal under test.
pub struct WalTarget {
    wal: std::sync::Arc<Wal>,
    checkpointer: Option<Checkpointer>,
}

/// A thread that truncates the log behind its durable end, as an
/// application that checkpoints would, so long loads neither fill the disk
/// nor measure a log that never reuses a segment.
struct Checkpointer {
    stop: crossbeam_channel::Sender<()>,
    thread: std::thread::JoinHandle<Result<()>>,
}

/// How often the checkpointer looks: often enough that at several GB/s a
/// 64 MiB segment is retired (and recycled) before the next is needed.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(5);

impl Checkpointer {
    fn start(wal: std::sync::Arc<Wal>, retain_bytes: u64) -> Result<Checkpointer> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let thread = std::thread::Builder::new().name("bench-checkpoint".into()).spawn(move || {
            // (segment bytes used, durable LSN) samples, oldest first;
            // bounded: one per interval, dropped once older than the window.
            // Segment space, not payload nor bytes written: what is retained
            // is disk space; a lone appender's 256 B record takes ~600 B of
            // it (a 4 KiB block in format version 1) while its flush writes
            // a whole block each time.
            let mut samples = std::collections::VecDeque::<(u64, u64)>::new();
            loop {
                match stopped.recv_timeout(CHECKPOINT_INTERVAL) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    _ => return Ok(()),
                }
                if wal.poisoned().is_some() {
                    return Ok(());
                }
                let durable = wal.durable_lsn();
                let bytes = wal.stats().segment_bytes_used;
                samples.push_back((bytes, durable));
                // The newest sample at least `retain_bytes` old marks where
                // the log may start.
                let mut cut = None;
                while let Some(&(b, lsn)) = samples.front() {
                    if bytes.saturating_sub(b) < retain_bytes {
                        break;
                    }
                    cut = Some(lsn);
                    samples.pop_front();
                }
                if let Some(lsn) = cut.filter(|&l| l > 0) {
                    wal.truncate_before(lsn).context("checkpoint: truncate_before")?;
                }
            }
        })?;
        Ok(Checkpointer { stop, thread })
    }

    fn finish(self) -> Result<()> {
        let _ = self.stop.send(());
        self.thread.join().map_err(|_| anyhow::anyhow!("checkpoint thread panicked"))?
    }
}

impl WalTarget {
    pub fn open(
        dir: &Path,
        durability: Durability,
        path: IoPath,
        spin: bool,
        rewrites: bool,
        opts: &OpenOptions,
    ) -> Result<WalTarget> {
        let record_max = u32::try_from(opts.record_bytes_max.max(1024))
            .ok()
            .filter(|&m| m <= uring_wal::format::RECORD_PAYLOAD_BYTES_LIMIT)
            .with_context(|| format!("record size {} is above the 64 MiB limit", opts.record_bytes_max))?;
        let segment_bytes = opts
            .wal
            .segment_bytes
            .unwrap_or_else(|| (64u64 << 20).max((u64::from(record_max) * 4).next_multiple_of(64 << 10)));
        let mut o = Options::durable(dir)
            .durability(durability)
            .record_bytes_max(record_max)
            .segment_bytes(segment_bytes)
            .queue_bytes_max((16usize << 20).max(record_max as usize * 2));
        o = o.rewrite_tail_blocks(rewrites);
        if spin {
            o = o.spin();
        }
        let t = opts.wal;
        if let Some(n) = t.flushes_in_flight_max {
            o = o.flushes_in_flight_max(n);
        }
        if let Some(b) = t.flush_bytes_max {
            o = o.flush_bytes_max(b);
        }
        if let Some(b) = t.block_bytes {
            o = o.block_size(uring_wal::BlockSize::Bytes(b));
        }
        if let Some(s) = t.spin {
            o = o.wait_spin(s);
        }
        if let Some(s) = t.io_spin {
            o = o.io_spin(s);
        }
        if let Some(n) = t.spare_segments_max {
            o = o.spare_segments_max(n);
        }
        if let Some(p) = t.prewrite {
            o = o.prewrite_segments(p);
        }
        if let Some(w) = opts.lock_wait {
            o = o.lock_wait(w);
        }
        o = match path {
            IoPath::Auto => o,
            IoPath::Uring => o.backend(Backend::IoUring),
            IoPath::Threaded => o.backend(Backend::Threaded),
            IoPath::Buffered => o.direct_io(DirectIo::Off),
        };
        if path != IoPath::Buffered && !opts.allow_buffered {
            o = o.direct_io(DirectIo::Required);
        }
        let wal = std::sync::Arc::new(Wal::open(o).with_context(|| format!("opening uring-wal in {}", dir.display()))?);
        let checkpointer = match t.retain_bytes {
            Some(b) => Some(Checkpointer::start(wal.clone(), b)?),
            None => None,
        };
        Ok(WalTarget { wal, checkpointer })
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }
}

/// Fills this thread's batch with `payloads` and hands it to `send`. A
/// batch per call; its buffers come back from (and return to) the log's
/// pool, so steady state does not allocate.
fn with_batch<T>(payloads: &[&[u8]], send: impl FnOnce(&mut Batch) -> Result<T>) -> Result<T> {
    thread_local! {
        static BATCH: std::cell::RefCell<Batch> = std::cell::RefCell::new(Batch::new());
    }
    BATCH.with(|b| {
        let mut batch = b.borrow_mut();
        for p in payloads {
            batch.push(RecordType::Put, p)?;
        }
        send(&mut batch)
    })
}

impl Target for WalTarget {
    fn append(&self, payload: &[u8]) -> Result<()> {
        self.wal.append(RecordType::Put, payload)?;
        Ok(())
    }

    fn append_batch(&self, payloads: &[&[u8]]) -> Result<()> {
        with_batch(payloads, |batch| {
            self.wal.append_batch(batch)?;
            Ok(())
        })
    }

    fn submit(&self, payload: &[u8]) -> Result<Option<uring_wal::Ticket>> {
        Ok(Some(self.wal.submit(RecordType::Put, payload)?))
    }

    fn submit_batch(&self, payloads: &[&[u8]]) -> Result<Option<uring_wal::Ticket>> {
        with_batch(payloads, |batch| Ok(self.wal.submit_batch(batch)?))
    }

    fn flush_stats(&self) -> Option<FlushStats> {
        let s = self.wal.stats();
        Some(FlushStats {
            appends: s.appends,
            flushes: s.flushes,
            syncs: s.syncs,
            segments_activated: s.segments_activated,
            segments_created: s.segments_created,
            segments_recycled: s.segments_recycled,
            segment_stalls: s.segment_stalls,
            segment_fills_cut: s.segment_fills_cut,
        })
    }

    fn describe(&self) -> String {
        let b = self.wal.backend();
        let mut d =
            format!("{:?}, {}, block {} B", b.kind, if b.direct_io { "O_DIRECT" } else { "buffered" }, b.block_bytes);
        if let Some(r) = &b.fallback_reason {
            d.push_str(&format!(" (io_uring: {r})"));
        }
        if let Some(r) = &b.buffered_reason {
            d.push_str(&format!(" (buffered: {r})"));
        }
        d
    }

    fn close(self: Box<Self>) -> Result<()> {
        let WalTarget { wal, checkpointer } = *self;
        if let Some(c) = checkpointer {
            c.finish()?;
        }
        let wal = std::sync::Arc::try_unwrap(wal).map_err(|_| anyhow::anyhow!("log still shared at close"))?;
        wal.close()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        let s: TargetSpec = "uring-wal:dsync:threaded".parse().unwrap();
        assert_eq!(
            s,
            TargetSpec::UringWal { durability: Durability::Dsync, path: IoPath::Threaded, spin: false, rewrites: true }
        );
        let v1: TargetSpec = "uring-wal:v1".parse().unwrap();
        assert_eq!(v1.to_string(), "uring-wal/group-sync/v1");
        assert_eq!(v1.to_string().replace('/', ":").parse::<TargetSpec>().unwrap(), v1);
        assert_eq!(s.to_string(), "uring-wal/dsync/threaded");
        let spun: TargetSpec = "uring-wal:group-sync:spin".parse().unwrap();
        assert_eq!(spun.to_string(), "uring-wal/group-sync/spin");
        assert_eq!(spun.to_string().replace('/', ":").parse::<TargetSpec>().unwrap(), spun);
        assert_eq!("raw:dsync".parse::<TargetSpec>().unwrap(), TargetSpec::Raw(SyncMethod::UringDsync));
        assert!("raw:fsync".parse::<TargetSpec>().is_err());
        let p: TargetSpec = "uring-wal:periodic=20".parse().unwrap();
        assert_eq!(p.to_string(), "uring-wal/periodic=20ms");
        assert!(!p.is_durable());
        assert_eq!("okaywal".parse::<TargetSpec>().unwrap(), TargetSpec::Okaywal);
        assert!("uring-wal:fast".parse::<TargetSpec>().is_err());
        assert!("uring-wal:periodic=0".parse::<TargetSpec>().is_err());
        assert!("sqlite".parse::<TargetSpec>().is_err());
    }

    #[test]
    fn the_checkpointer_retains_log_bytes_not_payload_bytes() {
        // 256 B records appended one at a time, in format version 1, each
        // take a 4 KiB block: 3,000 of them take ~12 MiB of segments but
        // only 0.75 MiB of payload. Retaining 2 MiB must then truncate to a
        // few 1 MiB segments; by payload it would truncate nothing.
        let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        let wal = WalTuning { segment_bytes: Some(1 << 20), retain_bytes: Some(2 << 20), ..WalTuning::default() };
        let opts = OpenOptions { record_bytes_max: 256, allow_buffered: true, wal, lock_wait: None };
        let t = WalTarget::open(dir.path(), Durability::GroupSync, IoPath::Auto, false, false, &opts).unwrap();
        for _ in 0..3000 {
            t.append(&[7u8; 256]).unwrap();
        }
        let written = t.wal().stats().segment_bytes_used;
        assert!(written >= 10 << 20, "{written} bytes of log");
        // The checkpointer looks every few milliseconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while t.wal().stats().segments > 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let segments = t.wal().stats().segments;
        Box::new(t).close().unwrap();
        assert!(segments <= 4, "{segments} live segments of 1 MiB with 2 MiB retained");
    }
}
