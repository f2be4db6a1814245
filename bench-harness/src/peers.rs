//! Peer logs, measured by the same loads as uring-wal: okaywal, raft-engine,
//! raft-log and a hand-written "naive" group commit.
//!
//! Every target here returns from `append`/`append_batch` only once the
//! records are on stable storage (an fdatasync of the file that holds them
//! has completed after they were written), each through the library's own
//! commit path and its own group commit. What exactly is synced is written
//! on each target below and in its `describe()`.

use std::cell::{Cell, RefCell};
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use anyhow::{Context, Result, bail};

use crate::target::{FlushStats, OpenOptions, Target, TargetSpec};

/// Versions locked in Cargo.lock (reported by `describe()`).
const OKAYWAL_VERSION: &str = "0.3.1";
const RAFT_ENGINE_VERSION: &str = "0.4.2";
const RAFT_LOG_VERSION: &str = "0.4.6";

/// Opens a peer target in `dir` (created if missing).
pub fn open(spec: &TargetSpec, dir: &Path, opts: &OpenOptions) -> Result<Box<dyn Target>> {
    match spec {
        TargetSpec::Okaywal => Ok(Box::new(OkaywalTarget::open(dir, opts)?)),
        TargetSpec::RaftEngine => Ok(Box::new(RaftEngineTarget::open(dir, opts)?)),
        TargetSpec::RaftLog { batch_wait } => Ok(Box::new(RaftLogTarget::open(dir, *batch_wait)?)),
        TargetSpec::Naive => Ok(Box::new(NaiveTarget::open(dir, opts)?)),
        other => bail!("{other} is not a peer backend"),
    }
}

/// Makes the directory entries in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync of directory {}", dir.display()))
}

fn record_len_u32(opts: &OpenOptions, what: &str) -> Result<()> {
    if u32::try_from(opts.record_bytes_max).is_err() {
        bail!("{what} records are limited to 4 GiB, not {} bytes", opts.record_bytes_max);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// okaywal
// ---------------------------------------------------------------------------

/// okaywal 0.3, default `Configuration` (1 MiB preallocated segments,
/// checkpoint after 768 KiB, 16 KiB write buffer).
///
/// Each record is one entry: `begin_entry`, `write_chunk(payload)`,
/// `commit`. `EntryWriter::commit` is documented as "Once this call returns,
/// all data is atomically updated and synchronized to disk"; in the 0.3.1
/// source (`WriteAheadLog::reclaim` → `LogFile::synchronize_locked`) it
/// writes the segment's user-space buffer to the file and calls
/// `File::sync_data` (fdatasync) on the segment, with one syncer per segment
/// at a time while later committers wait and are covered by it (its group
/// commit). When the segment was created since the last directory fsync,
/// commit also fsyncs the directory.
///
/// Caveat of okaywal itself (not worked around, we measure it as is): a
/// checkpointed segment is recycled by renaming `wal-N-cp` to `wal-M`
/// without a directory fsync before entries committed to it are
/// acknowledged, so after a power cut the rename (and with it those
/// entries) may be lost until the file system commits its journal.
///
/// The checkpointer discards: there is no store behind this log, so there
/// is nothing to apply before a segment is recycled. Recovery (on reopening
/// a directory) reads and counts complete entries.
pub struct OkaywalTarget {
    wal: okaywal::WriteAheadLog,
    recovered: Arc<Recovered>,
}

/// What recovery found when a log was opened.
#[derive(Debug, Default)]
struct Recovered {
    entries: AtomicU64,
    chunks: AtomicU64,
    bytes: AtomicU64,
}

/// okaywal log manager of a log without a store behind it.
#[derive(Debug)]
struct Discard {
    recovered: Arc<Recovered>,
}

impl okaywal::LogManager for Discard {
    fn recover(&mut self, entry: &mut okaywal::Entry<'_>) -> io::Result<()> {
        // An entry torn by a crash shows as aborted, a short read or a bad
        // checksum; it was never acknowledged, so it is not counted.
        match entry.read_all_chunks() {
            Ok(Some(chunks)) => {
                self.recovered.entries.fetch_add(1, Ordering::Relaxed);
                self.recovered.chunks.fetch_add(chunks.len() as u64, Ordering::Relaxed);
                let bytes: usize = chunks.iter().map(Vec::len).sum();
                self.recovered.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: okaywal::EntryId,
        _checkpointed_entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> io::Result<()> {
        // Nothing downstream to make durable first.
        Ok(())
    }
}

impl OkaywalTarget {
    pub fn open(dir: &Path, opts: &OpenOptions) -> Result<OkaywalTarget> {
        record_len_u32(opts, "okaywal")?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let recovered = Arc::new(Recovered::default());
        let wal = okaywal::Configuration::default_for(dir)
            .open(Discard { recovered: recovered.clone() })
            .with_context(|| format!("opening okaywal in {}", dir.display()))?;
        Ok(OkaywalTarget { wal, recovered })
    }

    fn commit(&self, payloads: &[&[u8]]) -> Result<()> {
        let mut entry = self.wal.begin_entry().context("okaywal begin_entry")?;
        for p in payloads {
            if let Err(e) = entry.write_chunk(p) {
                // Rolling back returns the segment to other writers.
                let _ = entry.rollback();
                return Err(e).context("okaywal write_chunk");
            }
        }
        entry.commit().context("okaywal commit")?;
        Ok(())
    }
}

impl Target for OkaywalTarget {
    fn append(&self, payload: &[u8]) -> Result<()> {
        self.commit(&[payload])
    }

    /// One entry holding one chunk per record: one commit, one fdatasync.
    fn append_batch(&self, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        self.commit(payloads)
    }

    fn describe(&self) -> String {
        let mut d = format!(
            "okaywal {OKAYWAL_VERSION}: entry per record (per batch with append_batch); commit writes the buffered \
             entry and fdatasyncs the segment (one syncer per segment, waiters covered), plus a directory fsync \
             for a newly created segment; defaults: 1 MiB preallocated segments, checkpoint after 768 KiB, 16 KiB \
             buffer; no-op checkpointer; recycled segments are renamed without a directory fsync"
        );
        let entries = self.recovered.entries.load(Ordering::Relaxed);
        if entries > 0 {
            d.push_str(&format!("; {entries} entries recovered when opened"));
        }
        d
    }

    fn close(self: Box<Self>) -> Result<()> {
        // Every commit has synced already; this stops the checkpoint thread.
        self.wal.shutdown().context("okaywal shutdown")
    }
}

// ---------------------------------------------------------------------------
// raft-engine
// ---------------------------------------------------------------------------

/// raft-engine 0.4, `Config` defaults except `batch_compression_threshold`
/// = 0 (no LZ4: payloads are incompressible, and compressing would only add
/// CPU work the other targets do not do).
///
/// Each record is `LogBatch::put(region, key, payload)` written with
/// `Engine::write(batch, sync = true)`. `Engine::write` is documented as "If
/// `sync` is true, the write will be followed by a call to `fdatasync` on
/// the log file"; in the 0.4.2 source the write-group leader `pwrite`s every
/// batch of its group to the active append-queue file and then calls
/// `pipe_log.sync` → `LogFd::sync` → `fdatasync` once for the group (its
/// group commit). A rotation (every 128 MiB) fdatasyncs the new file's
/// header and fsyncs the directory; on opening we fsync the directory once
/// because raft-engine does not after creating its first file. raft-engine
/// panics, by design, if fdatasync fails.
///
/// Every writer thread has its own region (Raft group) and overwrites one
/// key, so the in-memory index keeps one value per thread instead of every
/// payload ever written. Purge is never called (`purge_expired_files` is
/// the user's to call; nothing in the engine runs it), so no purge, rewrite
/// or file recycling work competes with appends; files accumulate.
pub struct RaftEngineTarget {
    engine: raft_engine::Engine,
}

/// Key each region's records are put under.
const RAFT_ENGINE_KEY: &[u8] = b"record";

static NEXT_REGION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static REGION: Cell<u64> = const { Cell::new(0) };
    static LOG_BATCH: RefCell<raft_engine::LogBatch> = RefCell::new(raft_engine::LogBatch::default());
}

/// The calling thread's region.
fn region() -> u64 {
    REGION.with(|r| {
        if r.get() == 0 {
            r.set(NEXT_REGION.fetch_add(1, Ordering::Relaxed));
        }
        r.get()
    })
}

impl RaftEngineTarget {
    pub fn open(dir: &Path, _opts: &OpenOptions) -> Result<RaftEngineTarget> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir_str = dir.to_str().with_context(|| format!("raft-engine needs a UTF-8 path, not {}", dir.display()))?;
        let cfg = raft_engine::Config {
            dir: dir_str.to_owned(),
            batch_compression_threshold: raft_engine::ReadableSize(0),
            ..raft_engine::Config::default()
        };
        let engine =
            raft_engine::Engine::open(cfg).with_context(|| format!("opening raft-engine in {}", dir.display()))?;
        sync_dir(dir)?;
        Ok(RaftEngineTarget { engine })
    }

    fn write(&self, payloads: &[&[u8]]) -> Result<()> {
        let region = region();
        LOG_BATCH.with(|b| {
            let mut batch = b.borrow_mut();
            let res = (|| {
                for p in payloads {
                    batch.put(region, RAFT_ENGINE_KEY.to_vec(), p.to_vec())?;
                }
                self.engine.write(&mut batch, true)
            })();
            if let Err(e) = res {
                // A failed write may leave the batch half encoded.
                *batch = raft_engine::LogBatch::default();
                return Err(e).context("raft-engine write");
            }
            Ok(())
        })
    }
}

impl Target for RaftEngineTarget {
    fn append(&self, payload: &[u8]) -> Result<()> {
        self.write(&[payload])
    }

    /// One `LogBatch` with one put per record: one write, one fdatasync.
    fn append_batch(&self, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        self.write(payloads)
    }

    fn describe(&self) -> String {
        format!(
            "raft-engine {RAFT_ENGINE_VERSION}: LogBatch of puts (region per thread, one key) per call, \
             Engine::write(sync=true): the write-group leader pwrites the group's batches and fdatasyncs the \
             append-queue file once; compression off; 128 MiB files, no purge/rewrite/recycling"
        )
    }

    fn close(self: Box<Self>) -> Result<()> {
        // Every write has synced already; dropping stops the metrics thread.
        drop(self.engine);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// raft-log
// ---------------------------------------------------------------------------

/// raft-log's types for plain records: the log id is `((term, node),
/// index)` with a fixed leader, the payload the record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RaftLogRecords;

impl raft_log::Types for RaftLogRecords {
    type LogId = ((u64, u64), u64);
    type LogPayload = Vec<u8>;
    type Vote = ((u64, u64), bool);
    type UserData = ();
    /// raft-log sends a synced flush's result to the appender waiting for
    /// it (its own `Callback` implementation for a channel).
    type Callback = std::sync::mpsc::SyncSender<io::Result<()>>;

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.1
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        payload.len() as u64
    }
}

/// raft-log's chunk size here: as uring-wal's segments, so that purging
/// frees files as the run goes.
const RAFT_LOG_CHUNK_BYTES: usize = 64 << 20;

/// Records kept behind the newest before older ones are purged (raft-log
/// keeps an index entry per record in memory).
const RAFT_LOG_RETAIN_RECORDS: u64 = 1 << 20;

/// raft-log 0.4.6 (the log store of Databend's meta-service) as a plain
/// WAL, as its Raft users drive it: each call appends its records under the
/// log's lock and asks for a synced flush (`flush(true, callback)`), then
/// waits for the callback, which raft-log's flush thread calls after the
/// chunk's fdatasync. Its flush thread gathers what arrived meanwhile: with
/// its default `flush_batch_wait` (1 ms) it waits for more before writing;
/// `raft-log-nowait` sets it to 0. Chunks of 64 MiB; records more than 1M
/// behind the newest are purged as an application would, so memory stays
/// bounded.
pub struct RaftLogTarget {
    log: Mutex<RaftLogState>,
    batch_wait: bool,
}

struct RaftLogState {
    log: raft_log::RaftLog<RaftLogRecords>,
    next_index: u64,
    purged_to: u64,
}

impl RaftLogTarget {
    pub fn open(dir: &Path, batch_wait: bool) -> Result<RaftLogTarget> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut config = raft_log::Config::new(dir.display().to_string());
        if !batch_wait {
            config.wal.flush_batch_wait = Some(std::time::Duration::ZERO);
        }
        config.wal.chunk_max_size = Some(RAFT_LOG_CHUNK_BYTES);
        let log = raft_log::RaftLog::<RaftLogRecords>::open(std::sync::Arc::new(config))
            .with_context(|| format!("opening raft-log in {}", dir.display()))?;
        let next_index = log.log_state().last().map_or(0, |l| l.1 + 1);
        sync_dir(dir)?;
        Ok(RaftLogTarget { log: Mutex::new(RaftLogState { log, next_index, purged_to: next_index }), batch_wait })
    }

    fn write(&self, payloads: &[&[u8]]) -> Result<()> {
        use raft_log::api::raft_log_writer::RaftLogWriter;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        {
            let mut st = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            let first = st.next_index;
            let records = payloads.iter().enumerate().map(|(i, p)| (((1, 1), first + i as u64), p.to_vec()));
            st.log.append(records).context("raft-log append")?;
            st.next_index += payloads.len() as u64;
            if st.next_index - st.purged_to > 2 * RAFT_LOG_RETAIN_RECORDS {
                let upto = st.next_index - RAFT_LOG_RETAIN_RECORDS;
                st.log.purge(((1, 1), upto - 1)).context("raft-log purge")?;
                st.purged_to = upto;
            }
            st.log.flush(true, Some(tx)).context("raft-log flush")?;
        }
        rx.recv().context("raft-log's flush thread stopped")?.context("raft-log synced flush")
    }
}

impl Target for RaftLogTarget {
    fn append(&self, payload: &[u8]) -> Result<()> {
        self.write(&[payload])
    }

    /// One append of all records, one synced flush.
    fn append_batch(&self, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        self.write(payloads)
    }

    fn describe(&self) -> String {
        let wait = if self.batch_wait { "its default flush_batch_wait (1 ms)" } else { "flush_batch_wait 0" };
        format!(
            "raft-log {RAFT_LOG_VERSION}: append under a lock, flush(sync) and wait for its callback (the flush \
             thread's fdatasync); {wait}; 64 MiB chunks, purged 1M records behind"
        )
    }

    fn close(self: Box<Self>) -> Result<()> {
        // Every append waited for its synced flush; dropping stops the
        // flush thread.
        drop(self.log);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// naive
// ---------------------------------------------------------------------------

/// File of the naive log inside its directory.
const NAIVE_FILE: &str = "naive.log";

/// A hand-written baseline: group commit with a leader, one buffered file.
///
/// Records are a u32 little-endian length and the payload (no checksum).
/// A writer adds its records to the pending buffer under the lock; if no
/// leader is active it becomes the leader: it takes the whole pending
/// buffer, releases the lock, `pwrite`s the buffer at the end of the file
/// and calls `fdatasync` (`File::sync_data`), then marks everything it wrote
/// durable and wakes the waiters. Writers that arrived meanwhile wait; after
/// each round the leader, whose own records are now durable, returns and one
/// of them leads the next round with everything pending by then (so no
/// caller's latency grows with the length of the run, as it would if one
/// thread led while any data is pending). The file is not preallocated, so
/// each fdatasync also commits the new file size. The file is created 0600
/// and the directory fsynced once when opening.
///
/// A failed write or fdatasync fails the records of that round and every
/// later append: fsync is never retried, as the page cache may have dropped
/// the data that failed to reach the disk.
pub struct NaiveTarget {
    file: File,
    path: PathBuf,
    state: Mutex<NaiveState>,
    durable: Condvar,
}

struct NaiveState {
    /// Encoded records not yet taken by a leader.
    pending: Vec<u8>,
    /// The buffer of the last round, kept to be reused.
    spare: Vec<u8>,
    /// Records added to the log.
    appended: u64,
    /// Records durable (the first `durable` of the `appended`).
    durable: u64,
    /// Whether a leader is writing and syncing.
    leading: bool,
    /// Where the next round writes.
    offset: u64,
    /// The first write or sync failure, after which everything fails.
    failure: Option<String>,
    stats: FlushStats,
}

impl NaiveTarget {
    pub fn open(dir: &Path, opts: &OpenOptions) -> Result<NaiveTarget> {
        record_len_u32(opts, "naive")?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(NAIVE_FILE);
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let offset = file.metadata().with_context(|| format!("stat of {}", path.display()))?.len();
        sync_dir(dir)?;
        Ok(NaiveTarget::with_file(file, path, offset))
    }

    /// A naive log appending to `file` from `offset` on.
    fn with_file(file: File, path: PathBuf, offset: u64) -> NaiveTarget {
        NaiveTarget {
            file,
            path,
            state: Mutex::new(NaiveState {
                pending: Vec::new(),
                spare: Vec::new(),
                appended: 0,
                durable: 0,
                leading: false,
                offset,
                failure: None,
                stats: FlushStats::default(),
            }),
            durable: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NaiveState> {
        // Nothing panics while holding the lock; if something did, the
        // state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failed(failure: &str) -> anyhow::Error {
        anyhow::anyhow!("naive log: a write or fdatasync failed ({failure}); no append succeeds after that")
    }

    fn commit(&self, payloads: &[&[u8]]) -> Result<()> {
        if payloads.iter().any(|p| u32::try_from(p.len()).is_err()) {
            bail!("naive records are limited to 4 GiB");
        }
        let mut st = self.lock();
        if let Some(f) = &st.failure {
            return Err(Self::failed(f));
        }
        for p in payloads {
            st.pending.extend_from_slice(&(p.len() as u32).to_le_bytes());
            st.pending.extend_from_slice(p);
        }
        st.appended += payloads.len() as u64;
        st.stats.appends += payloads.len() as u64;
        let mine = st.appended;
        loop {
            if let Some(f) = &st.failure {
                return Err(Self::failed(f));
            }
            if st.durable >= mine {
                return Ok(());
            }
            if st.leading {
                st = self.durable.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead a round: everything pending, our records included (they
            // are not durable, and no round is in flight).
            st.leading = true;
            let spare = std::mem::take(&mut st.spare);
            let buf = std::mem::replace(&mut st.pending, spare);
            let (end, offset) = (st.appended, st.offset);
            drop(st);
            let res = self.file.write_all_at(&buf, offset).and_then(|()| self.file.sync_data());
            st = self.lock();
            st.leading = false;
            match res {
                Ok(()) => {
                    st.offset += buf.len() as u64;
                    st.durable = end;
                    st.stats.flushes += 1;
                    st.stats.syncs += 1;
                    let mut buf = buf;
                    buf.clear();
                    st.spare = buf;
                }
                Err(e) => st.failure = Some(format!("{}: {e}", self.path.display())),
            }
            self.durable.notify_all();
        }
    }
}

impl Target for NaiveTarget {
    fn append(&self, payload: &[u8]) -> Result<()> {
        self.commit(&[payload])
    }

    /// All records of the batch join the same round: one fdatasync.
    fn append_batch(&self, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        self.commit(payloads)
    }

    fn flush_stats(&self) -> Option<FlushStats> {
        Some(self.lock().stats)
    }

    fn describe(&self) -> String {
        "naive: u32 length + payload records, no checksum; a leader pwrites everything pending into one buffered \
         file (not preallocated) and fdatasyncs it, then hands over to a waiter"
            .to_owned()
    }

    fn close(self: Box<Self>) -> Result<()> {
        let st = self.lock();
        if let Some(f) = &st.failure {
            return Err(Self::failed(f));
        }
        // Nothing can be pending once every append has returned; sync once
        // more so close never depends on that.
        debug_assert!(st.pending.is_empty() && !st.leading);
        drop(st);
        self.file.sync_all().with_context(|| format!("fsync of {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREADS: usize = 4;
    const PER_THREAD: usize = 200;
    const RECORD: usize = 256;
    const BATCH: usize = 10;

    fn opts() -> OpenOptions {
        OpenOptions { record_bytes_max: RECORD, allow_buffered: true, ..OpenOptions::default() }
    }

    fn payload(thread: usize, i: usize) -> Vec<u8> {
        (0..RECORD).map(|b| (thread * 31 + i * 7 + b) as u8).collect()
    }

    /// 4 threads × 200 records, then one batch of 10 from this thread.
    fn load(t: &dyn Target) {
        std::thread::scope(|s| {
            for thread in 0..THREADS {
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        t.append(&payload(thread, i)).unwrap();
                    }
                });
            }
        });
        let batch: Vec<Vec<u8>> = (0..BATCH).map(|i| payload(THREADS, i)).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        t.append_batch(&refs).unwrap();
        t.append_batch(&[]).unwrap();
        assert!(!t.describe().is_empty());
    }

    const RECORDS: usize = THREADS * PER_THREAD + BATCH;

    #[test]
    fn okaywal_appends_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let t = open(&TargetSpec::Okaywal, dir.path(), &opts()).unwrap();
        load(t.as_ref());
        t.close().unwrap();

        let t = OkaywalTarget::open(dir.path(), &opts()).unwrap();
        let r = &t.recovered;
        assert_eq!(r.entries.load(Ordering::Relaxed), (THREADS * PER_THREAD + 1) as u64);
        assert_eq!(r.chunks.load(Ordering::Relaxed), RECORDS as u64);
        assert_eq!(r.bytes.load(Ordering::Relaxed), (RECORDS * RECORD) as u64);
        Box::new(t).close().unwrap();
    }

    #[test]
    fn okaywal_checkpoints_segments() {
        // 4 threads × 200 × 4 KiB: several segments filled, checkpointed and
        // recycled while appends go on.
        let dir = tempfile::tempdir().unwrap();
        let o = OpenOptions { record_bytes_max: 4096, allow_buffered: true, ..OpenOptions::default() };
        let t = open(&TargetSpec::Okaywal, dir.path(), &o).unwrap();
        std::thread::scope(|s| {
            for thread in 0..THREADS {
                let t = t.as_ref();
                s.spawn(move || {
                    let p = vec![thread as u8; 4096];
                    for _ in 0..PER_THREAD {
                        t.append(&p).unwrap();
                    }
                });
            }
        });
        t.close().unwrap();
        let t = OkaywalTarget::open(dir.path(), &o).unwrap();
        // Only entries of segments not yet checkpointed are replayed.
        let entries = t.recovered.entries.load(Ordering::Relaxed);
        assert!(entries > 0 && entries < (THREADS * PER_THREAD) as u64, "{entries}");
        assert!(t.describe().contains("recovered"));
        Box::new(t).close().unwrap();
    }

    #[test]
    fn raft_engine_appends_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let t = open(&TargetSpec::RaftEngine, dir.path(), &opts()).unwrap();
        load(t.as_ref());
        t.close().unwrap();

        let items = raft_engine::Engine::dump(dir.path()).unwrap().collect::<raft_engine::Result<Vec<_>>>().unwrap();
        assert_eq!(items.len(), RECORDS);
        let mut regions: Vec<u64> = items.iter().map(|i| i.raft_group_id).collect();
        regions.sort_unstable();
        regions.dedup();
        assert_eq!(regions.len(), THREADS + 1);

        let t = RaftEngineTarget::open(dir.path(), &opts()).unwrap();
        let mut groups = t.engine.raft_groups();
        groups.sort_unstable();
        assert_eq!(groups, regions);
        for g in groups {
            assert_eq!(t.engine.get(g, RAFT_ENGINE_KEY).map(|v| v.len()), Some(RECORD));
        }
        Box::new(t).close().unwrap();
    }

    #[test]
    fn raft_log_appends_and_reopens_with_every_record() {
        for batch_wait in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let t = open(&TargetSpec::RaftLog { batch_wait }, dir.path(), &opts()).unwrap();
            load(t.as_ref());
            t.close().unwrap();
            let t = RaftLogTarget::open(dir.path(), batch_wait).unwrap();
            let st = t.log.lock().unwrap();
            assert_eq!(st.next_index, RECORDS as u64, "every acknowledged record is back");
            let read: Vec<_> = st.log.read(0, RECORDS as u64).collect::<Result<_, _>>().unwrap();
            assert_eq!(read.len(), RECORDS);
            assert!(read.iter().all(|(_, p)| p.len() == RECORD));
        }
    }

    #[test]
    fn naive_appends_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let t = open(&TargetSpec::Naive, dir.path(), &opts()).unwrap();
        load(t.as_ref());
        let stats = t.flush_stats().unwrap();
        assert_eq!(stats.appends, RECORDS as u64);
        assert!(stats.syncs >= 1 && stats.syncs <= stats.appends);
        t.close().unwrap();

        let path = dir.path().join(NAIVE_FILE);
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let data = fs::read(&path).unwrap();
        let (mut at, mut records) = (0, 0);
        while at < data.len() {
            let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(len, RECORD);
            at += 4 + len;
            records += 1;
        }
        assert_eq!(at, data.len());
        assert_eq!(records, RECORDS);

        // Reopening appends after what is there.
        let t = open(&TargetSpec::Naive, dir.path(), &opts()).unwrap();
        t.append(&payload(0, 0)).unwrap();
        t.close().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, data.len() + 4 + RECORD);
    }

    #[test]
    fn naive_failure_is_sticky() {
        let Ok(file) = fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let t = NaiveTarget::with_file(file, PathBuf::from("/dev/full"), 0);
        let first = t.append(b"x").unwrap_err().to_string();
        assert!(first.contains("/dev/full"), "{first}");
        let later = t.append_batch(&[b"y", b"z"]).unwrap_err().to_string();
        assert_eq!(later, first);
        assert_eq!(t.flush_stats().unwrap().syncs, 0);
        assert!(Box::new(t).close().is_err());
    }
}
