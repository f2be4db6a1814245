//! Randomized crash testing on the simulated storage.
//!
//! A run: several writers append records of random sizes (now and then one
//! truncates the log, calls `sync()` or reads `durable_lsn()`) on a
//! [`SimStorage`] that logs every operation, and the log's I/O thread logs
//! every watermark it publishes (`SimOp::Acked`, before any waiter is
//! woken). Runs cycle through the four durability modes. Then, for many crash points, the state after
//! a power failure at that point is rebuilt (pending writes torn per sector)
//! and recovered, and an oracle checks the result:
//!
//! - the log is a gapless run of LSNs, each holding the very record appended
//!   at that LSN (each payload names its writer and sequence number);
//! - what was promised before the crash point is there: with `p` the last
//!   `Acked` marker before it, every LSN up to `p.synced` (and up to
//!   `p.acked` where acknowledged means synced: `GroupSync`, `Dsync`), and
//!   up to any value `sync()` or `durable_lsn()` returned before it, unless
//!   a `truncate_before` past it had started;
//! - recovering the same image twice, or after a crash part-way through the
//!   first recovery, gives the same log.
//!
//! The markers are checked against what the writers saw: an append that
//! returned had its LSN covered by a marker already logged, and so had a
//! durable LSN a writer was told (synced); `sync()` returns at least every
//! LSN acknowledged before the call.
//!
//! `URING_WAL_CRASH_RUNS` sets the number of runs (default 200, 10,000
//! crash points); `URING_WAL_CRASH_SEED` replays one run. A failure prints the
//! run's seed and writes its operation log to a file.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use uring_wal::storage::sim::{SimConfig, SimOp, SimRng, SimStorage};
use uring_wal::{BlockSize, Durability, Options, RecordType, Wal};

const DIR: &str = "/wal";

/// Crash points whose recovery cut a torn tail, and those that also dropped
/// records after a gap: evidence the points hit in-flight writes.
static TORN: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
const POINTS_PER_RUN: usize = 50;

fn body(writer: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len.max(24));
    b.extend_from_slice(&writer.to_le_bytes());
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&(writer.wrapping_mul(0x100_0000_01B3) ^ seq.wrapping_mul(0x9E37_79B9)).to_le_bytes());
    while b.len() < len {
        b.push((b.len() as u64 ^ seq ^ writer << 3) as u8);
    }
    b
}

fn parse_body(b: &[u8]) -> Option<(u64, u64)> {
    let writer = u64::from_le_bytes(b.get(0..8)?.try_into().ok()?);
    let seq = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    (body(writer, seq, b.len()) == b).then_some((writer, seq))
}

#[derive(Clone, Copy, Debug)]
struct Setting {
    sector: usize,
    block: u32,
    shuffle: bool,
    durability: Durability,
    /// Fresh segments zero-filled (else only allocated).
    prewrite: bool,
}

impl Setting {
    fn of(seed: u64) -> Setting {
        let block = if seed % 3 == 0 { 512 } else { 4096 };
        Setting {
            // A block smaller than the physical sector is documented as
            // unsafe (`BlockSize::DirectIoAlignment`): a torn read-modify-write
            // of the sector takes acknowledged records of the block before
            // with it. So 512-byte blocks run on 512-byte sectors only.
            sector: if block == 512 || seed % 2 == 0 { 512 } else { 4096 },
            block,
            shuffle: seed % 5 != 0,
            durability: match (seed / 2) % 4 {
                0 => Durability::GroupSync,
                1 => Durability::Periodic { interval: Duration::from_millis(1) },
                2 => Durability::None,
                _ => Durability::Dsync,
            },
            prewrite: seed % 7 != 3,
        }
    }

    /// Whether an acknowledgement means the record is synced.
    fn acked_is_synced(&self) -> bool {
        matches!(self.durability, Durability::GroupSync | Durability::Dsync)
    }

    fn options(&self) -> Options {
        Options::new(DIR)
            .segment_bytes(64 * 1024)
            .record_bytes_max(4096)
            .block_size(BlockSize::Bytes(self.block))
            .flush_bytes_max(4096)
            .flushes_in_flight_max(4)
            .durability(self.durability)
            .prewrite_segments(self.prewrite)
    }
}

#[derive(Clone, Debug)]
struct Acked {
    lsn: u64,
    writer: u64,
    seq: u64,
    len: usize,
    /// Operations logged when the append returned (after its
    /// acknowledgement was logged).
    op: usize,
}

/// What a writer was told is durable: after `op` operations, every LSN up
/// to `lsn`.
#[derive(Clone, Debug)]
struct Promise {
    op: usize,
    lsn: u64,
    /// `sync()` or `durable_lsn()`.
    by: &'static str,
}

#[derive(Default)]
struct Run {
    log: Vec<SimOp>,
    acked: Vec<Acked>,
    promises: Vec<Promise>,
    /// (operations logged when the call started, LSN) of truncate_before calls.
    truncations: Vec<(usize, u64)>,
}

/// The watermarks (acked, synced) published within the first `k`
/// operations: the last `Acked` marker among them.
fn promised(log: &[SimOp], k: usize) -> (u64, u64) {
    log[..k]
        .iter()
        .rev()
        .find_map(|op| match op {
            SimOp::Acked { acked, synced } => Some((*acked, *synced)),
            _ => None,
        })
        .unwrap_or((0, 0))
}

/// Writers `writers` each append `appends` records to `wal`; now and then
/// one calls `sync()` or reads `durable_lsn()`, and with `truncate` writer
/// 0 truncates the log now and then.
fn write(wal: &Wal, sim: &SimStorage, seed: u64, writers: std::ops::Range<u64>, appends: u64, truncate: bool) -> Run {
    std::thread::scope(|s| {
        let workers: Vec<_> = writers
            .map(|w| {
                s.spawn(move || {
                    let mut rng = SimRng::new(seed * 31 + w);
                    let mut run = Run::default();
                    for seq in 0..appends {
                        let span = if rng.below(8) == 0 { 4000 } else { 600 };
                        let len = 24 + rng.below(span) as usize;
                        if truncate && w == 0 && seq % 7 == 6 {
                            let upto = wal.last_lsn().saturating_sub(rng.below(40));
                            run.truncations.push((sim.op_count(), upto));
                            wal.truncate_before(upto).expect("truncate");
                        }
                        let lsn = if rng.below(4) == 0 {
                            let mut batch = uring_wal::Batch::new();
                            batch.push(RecordType::Put, &body(w, seq, len)).unwrap();
                            *wal.append_batch(&mut batch).expect("append").expect("non-empty").start()
                        } else {
                            wal.append(RecordType::Put, &body(w, seq, len)).expect("append")
                        };
                        run.acked.push(Acked { lsn, writer: w, seq, len, op: sim.op_count() });
                        match rng.below(8) {
                            0 => {
                                let synced = wal.sync().expect("sync");
                                // Everything acknowledged before the call.
                                assert!(synced >= lsn, "sync() after LSN {lsn} was acknowledged returned {synced}");
                                run.promises.push(Promise { op: sim.op_count(), lsn: synced, by: "sync()" });
                            }
                            1 => {
                                let durable = wal.durable_lsn();
                                run.promises.push(Promise { op: sim.op_count(), lsn: durable, by: "durable_lsn()" });
                            }
                            _ => {}
                        }
                    }
                    run
                })
            })
            .collect();
        let mut all = Run::default();
        for h in workers {
            let run = h.join().expect("writer");
            all.acked.extend(run.acked);
            all.promises.extend(run.promises);
            all.truncations.extend(run.truncations);
        }
        all
    })
}

fn run_workload(seed: u64, setting: Setting) -> Run {
    let cfg = SimConfig { sector_bytes: setting.sector, shuffle_completions: setting.shuffle, ..SimConfig::new(seed) };
    let sim = SimStorage::new(cfg);
    let wal = Wal::open_with_storage(setting.options(), Arc::new(sim.clone())).expect("open a new log");
    let mut run = write(&wal, &sim, seed, 0..4, 20, true);
    wal.close().expect("close");
    run.log = sim.log();
    run
}

/// Checks that what the writers saw agrees with the markers: an append that
/// returned, and a durable LSN a writer was told, are covered by a marker
/// logged before the writer looked.
fn check_markers(run: &Run) -> Result<(), String> {
    for a in &run.acked {
        let (acked, _) = promised(&run.log, a.op);
        if acked < a.lsn {
            return Err(format!(
                "the append of LSN {} returned after {} operations, but the last marker by then acknowledges \
                 only up to {acked}",
                a.lsn, a.op
            ));
        }
    }
    for p in &run.promises {
        let (_, synced) = promised(&run.log, p.op);
        if synced < p.lsn {
            return Err(format!(
                "{} returned {} after {} operations, but the last marker by then has synced {synced}",
                p.by, p.lsn, p.op
            ));
        }
    }
    Ok(())
}

/// Every LSN up to the first value must survive a power failure after the
/// first `k` operations of `run.log`; the second says who promised it.
fn durable_bound(run: &Run, setting: Setting, k: usize) -> (u64, String) {
    let (acked, synced) = promised(&run.log, k);
    let mut durable = if setting.acked_is_synced() { acked.max(synced) } else { synced };
    let mut by = format!("the last marker before the crash (acked {acked}, synced {synced})");
    for p in run.promises.iter().filter(|p| p.op <= k) {
        if p.lsn > durable {
            durable = p.lsn;
            by = format!("{} (returned {} after {} operations)", p.by, p.lsn, p.op);
        }
    }
    (durable, by)
}

/// Everything the log holds, by LSN.
fn contents(wal: &Wal) -> Result<BTreeMap<u64, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    let first = wal.first_lsn();
    let mut expect = first;
    for rec in wal.read_from(first).map_err(|e| e.to_string())? {
        let rec = rec.map_err(|e| e.to_string())?;
        if rec.lsn != expect {
            return Err(format!("gap: expected LSN {expect}, read {}", rec.lsn));
        }
        expect += 1;
        out.insert(rec.lsn, rec.payload);
    }
    if expect != wal.last_lsn() + 1 {
        return Err(format!("read up to {} but the log says it ends at {}", expect - 1, wal.last_lsn()));
    }
    Ok(out)
}

fn open(storage: &SimStorage, setting: Setting) -> Result<Wal, String> {
    Wal::open_with_storage(setting.options(), Arc::new(storage.clone())).map_err(|e| e.to_string())
}

/// Checks one crash point; returns a description of the first violation.
fn check_point(run: &Run, setting: Setting, k: usize, seed: u64) -> Result<(), String> {
    let image = SimStorage::crash_image(&run.log, k, seed, setting.sector);
    let setup_ops = image.op_count();
    let recovered = {
        let wal = open(&image, setting).map_err(|e| format!("recovery failed: {e}"))?;
        if let Some(t) = &wal.recovery_report().torn_tail {
            TORN.fetch_add(1, Ordering::Relaxed);
            if t.records_dropped > 0 {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        let got = contents(&wal)?;
        let mut seen = HashSet::new();
        for (lsn, payload) in &got {
            let id = parse_body(payload).ok_or_else(|| format!("LSN {lsn} holds a payload nobody appended"))?;
            if !seen.insert(id) {
                return Err(format!("LSN {lsn}: record {id:?} appears twice"));
            }
        }
        let by_lsn: BTreeMap<u64, &Acked> = run.acked.iter().map(|a| (a.lsn, a)).collect();
        for (lsn, payload) in &got {
            let a = by_lsn.get(lsn).ok_or_else(|| format!("LSN {lsn} was never appended"))?;
            if parse_body(payload) != Some((a.writer, a.seq)) || payload.len() != a.len {
                return Err(format!("LSN {lsn} holds another record than the one appended at it"));
            }
        }
        let truncated_upto = run.truncations.iter().filter(|(op, _)| *op < k).map(|(_, upto)| *upto).max().unwrap_or(0);
        let (durable, by) = durable_bound(run, setting, k);
        for lsn in truncated_upto.max(1)..=durable {
            let a = by_lsn.get(&lsn).ok_or_else(|| format!("LSN {lsn} promised by {by} but never appended"))?;
            if !got.contains_key(&lsn) {
                return Err(format!(
                    "LSN {lsn} (writer {} seq {}) is lost, promised durable by {by}; log {}..={}, report {:?}",
                    a.writer,
                    a.seq,
                    wal.first_lsn(),
                    wal.last_lsn(),
                    wal.recovery_report()
                ));
            }
        }
        wal.close().map_err(|e| format!("close after recovery: {e}"))?;
        got
    };
    // The same image recovered again, and the image crashed part-way through
    // that recovery (or right after it), give the same log.
    let after = image.log();
    let mut rng = SimRng::new(seed ^ 0xABCD);
    for r in [setup_ops, setup_ops + rng.below((after.len() - setup_ops) as u64 + 1) as usize, after.len()] {
        let again = SimStorage::crash_image(&after, r, seed.wrapping_add(r as u64), setting.sector);
        let wal = open(&again, setting).map_err(|e| format!("second recovery (crash at {r}) failed: {e}"))?;
        let got = contents(&wal)?;
        if got != recovered {
            return Err(format!(
                "second recovery (crash at {r} of {}) differs: {} records vs {}",
                after.len(),
                got.len(),
                recovered.len()
            ));
        }
    }
    Ok(())
}

fn save_log(seed: u64, log: &[SimOp]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("uring-wal-crash-{seed}.log"));
    let text: String = log.iter().map(|op| format!("{op:?}\n")).collect();
    let _ = std::fs::write(&path, text);
    path
}

fn run_seed(seed: u64) -> usize {
    let setting = Setting::of(seed);
    let run = run_workload(seed, setting);
    assert!(run.acked.len() == 80, "every append was acknowledged");
    if let Err(e) = check_markers(&run) {
        let saved = save_log(seed, &run.log);
        panic!("seed {seed} ({setting:?}): {e}; operation log: {}", saved.display());
    }
    let mut rng = SimRng::new(seed);
    let mut points = 0;
    // Right after a data write (past a segment's header block): a crash
    // there finds that write, and maybe others, in flight.
    let in_flight: Vec<usize> = run
        .log
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, SimOp::Write { offset, durable: false, .. } if *offset >= 4096))
        .map(|(i, _)| i + 1)
        .collect();
    // Right after a marker: the moment a promise is made.
    let markers: Vec<usize> =
        run.log.iter().enumerate().filter(|(_, op)| matches!(op, SimOp::Acked { .. })).map(|(i, _)| i + 1).collect();
    for i in 0..POINTS_PER_RUN {
        // The very end, then in turn in the middle of writes, right after a
        // promise, and anywhere.
        let k = if i == 0 {
            run.log.len()
        } else if i % 3 == 1 && !in_flight.is_empty() {
            in_flight[rng.below(in_flight.len() as u64) as usize]
        } else if i % 3 == 2 && !markers.is_empty() {
            markers[rng.below(markers.len() as u64) as usize]
        } else {
            rng.below(run.log.len() as u64 + 1) as usize
        };
        let crash_seed = rng.next_u64();
        if let Err(e) = check_point(&run, setting, k, crash_seed) {
            let saved = save_log(seed, &run.log);
            panic!(
                "seed {seed} ({setting:?}), crash after {k} of {} operations (tear seed {crash_seed}): {e}\n\
                 operation log: {}\nreplay: URING_WAL_CRASH_SEED={seed} cargo test --test crash_sim",
                run.log.len(),
                saved.display()
            );
        }
        points += 1;
    }
    points
}

#[test]
fn crash_points_recover_every_acknowledged_record() {
    if let Ok(seed) = std::env::var("URING_WAL_CRASH_SEED") {
        let seed: u64 = seed.parse().expect("a seed");
        run_seed(seed);
        return;
    }
    let runs: u64 = std::env::var("URING_WAL_CRASH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let next = AtomicU64::new(0);
    let points = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= runs {
                        break;
                    }
                    points.fetch_add(run_seed(seed) as u64, Ordering::Relaxed);
                }
            });
        }
    });
    let points = points.load(Ordering::Relaxed);
    let (torn, dropped) = (TORN.load(Ordering::Relaxed), DROPPED.load(Ordering::Relaxed));
    eprintln!(
        "{points} crash points over {runs} runs; {torn} torn tails cut, {dropped} of them with records after a gap"
    );
    assert!(points >= runs * POINTS_PER_RUN as u64);
    // The points must reach writes in flight, not only quiet moments.
    // A sanity floor against a degenerate test: with 4 KiB sectors a
    // one-block flush lands whole or not at all (a clean end), so only part
    // of the points can show a torn tail.
    assert!(torn * 50 >= points, "too few torn tails: {torn} of {points}");
    assert!(dropped > 0, "no crash point found records after a gap");
}

/// A process killed, the log reopened by another one, then a power failure:
/// checks one kill point `p` of `a`'s history; returns the crash points
/// checked, or a description of the first violation.
fn check_kill(a: &Run, setting: Setting, seed: u64, p: usize) -> Result<usize, String> {
    let cfg = SimConfig {
        sector_bytes: setting.sector,
        shuffle_completions: setting.shuffle,
        ..SimConfig::new(seed ^ (p as u64) << 20)
    };
    let sim = SimStorage::after_kill(&a.log, p, cfg);
    let a_by_lsn: BTreeMap<u64, &Acked> = a.acked.iter().map(|x| (x.lsn, x)).collect();
    let truncated_upto = a.truncations.iter().filter(|(op, _)| *op < p).map(|(_, upto)| *upto).max().unwrap_or(0);

    // The kill: the page cache survives, so everything acknowledged does,
    // in every durability mode.
    let wal = open(&sim, setting).map_err(|e| format!("reopening after the kill failed: {e}"))?;
    let reopened = contents(&wal).map_err(|e| format!("after the kill: {e}"))?;
    for (lsn, payload) in &reopened {
        let x = a_by_lsn.get(lsn).ok_or_else(|| format!("after the kill, LSN {lsn} was never appended"))?;
        if parse_body(payload) != Some((x.writer, x.seq)) || payload.len() != x.len {
            return Err(format!("after the kill, LSN {lsn} holds another record than the one appended at it"));
        }
    }
    let (killed_acked, _) = promised(&a.log, p);
    for lsn in truncated_upto.max(1)..=killed_acked {
        if !reopened.contains_key(&lsn) {
            return Err(format!(
                "LSN {lsn}, acknowledged before the kill, is lost by it; report {:?}",
                wal.recovery_report()
            ));
        }
    }
    // The second process appends (and syncs now and then).
    let mut b = write(&wal, &sim, seed ^ 0xB0B, 10..13, 16, false);
    wal.close().map_err(|e| format!("close of the reopened log: {e}"))?;
    b.log = sim.log();
    check_markers(&b).map_err(|e| format!("second process: {e}"))?;
    // Where the reopened log holds a record, the one it held (or appended).
    let mut expected: BTreeMap<u64, (u64, u64, usize)> = reopened
        .iter()
        .map(|(lsn, payload)| {
            let (writer, seq) = parse_body(payload).expect("checked above");
            (*lsn, (writer, seq, payload.len()))
        })
        .collect();
    expected.extend(b.acked.iter().map(|x| (x.lsn, (x.writer, x.seq, x.len))));
    // Below the killed process's last truncation point its own records may
    // come back: a truncation (a segment removed or renamed for reuse) is
    // durable only once the directory is synced, and a power failure can
    // undo it. What comes back must be what it appended there.
    for x in a.acked.iter().filter(|x| x.lsn < truncated_upto) {
        expected.entry(x.lsn).or_insert((x.writer, x.seq, x.len));
    }
    let a_durable = durable_bound(a, setting, p);
    power_failures_after_kill(&b, setting, seed, p, &expected, a_durable, truncated_upto).map_err(|e| {
        let saved = std::env::temp_dir().join(format!("uring-wal-crash-{seed}-reopened-after-{p}.log"));
        let text: String = b.log.iter().map(|op| format!("{op:?}\n")).collect();
        let _ = std::fs::write(&saved, text);
        format!("{e}\ncombined operation log (killed + reopened): {}", saved.display())
    })
}

/// Power failures anywhere in the reopened log's history `b` (which starts
/// with the `p` operations of the killed process).
fn power_failures_after_kill(
    b: &Run,
    setting: Setting,
    seed: u64,
    p: usize,
    expected: &BTreeMap<u64, (u64, u64, usize)>,
    a_durable: (u64, String),
    truncated_upto: u64,
) -> Result<usize, String> {
    // Power failures anywhere in the second process's history: the end,
    // right after its markers, anywhere.
    let mut rng = SimRng::new(seed ^ p as u64);
    let markers: Vec<usize> =
        (p..b.log.len()).filter(|&i| matches!(b.log[i], SimOp::Acked { .. })).map(|i| i + 1).collect();
    let mut points = vec![b.log.len()];
    for i in 0..KILL_CRASH_POINTS {
        points.push(if i % 2 == 0 && !markers.is_empty() {
            markers[rng.below(markers.len() as u64) as usize]
        } else {
            p + rng.below((b.log.len() - p) as u64 + 1) as usize
        });
    }
    for &k in &points {
        let crash_seed = rng.next_u64();
        let at = format!("power failure after {k} of {} operations (tear seed {crash_seed})", b.log.len());
        let image = SimStorage::crash_image(&b.log, k, crash_seed, setting.sector);
        let wal = open(&image, setting).map_err(|e| format!("{at}: recovery failed: {e}"))?;
        let got = contents(&wal).map_err(|e| format!("{at}: {e}"))?;
        for (lsn, payload) in &got {
            let ok = expected
                .get(lsn)
                .is_some_and(|&(w, q, len)| parse_body(payload) == Some((w, q)) && payload.len() == len);
            if !ok {
                return Err(format!("{at}: LSN {lsn} holds a record that the reopened log never held there"));
            }
        }
        let (mut durable, mut by) = durable_bound(b, setting, k);
        if a_durable.0 > durable {
            (durable, by) = (a_durable.0, format!("the killed process: {}", a_durable.1));
        }
        for lsn in truncated_upto.max(1)..=durable {
            if !got.contains_key(&lsn) {
                let who = expected.get(&lsn).map_or("nobody".to_owned(), |(w, q, _)| format!("writer {w} seq {q}"));
                return Err(format!(
                    "{at}: LSN {lsn} ({who}) is lost, promised durable by {by}; log {}..={}, report {:?}",
                    wal.first_lsn(),
                    wal.last_lsn(),
                    wal.recovery_report()
                ));
            }
        }
        wal.close().map_err(|e| format!("{at}: close after recovery: {e}"))?;
    }
    Ok(points.len())
}

const KILL_CRASH_POINTS: usize = 10;

fn kill_seed(seed: u64) -> usize {
    let setting = Setting::of(seed);
    let a = run_workload(seed, setting);
    let mut rng = SimRng::new(seed ^ 0x4B11);
    // Kill right after a rename (before the directory sync that makes it
    // durable), and anywhere.
    let renames: Vec<usize> =
        a.log.iter().enumerate().filter(|(_, op)| matches!(op, SimOp::Rename { .. })).map(|(i, _)| i + 1).collect();
    let mut kills = vec![1 + rng.below(a.log.len() as u64 - 1) as usize];
    if !renames.is_empty() {
        kills.push(renames[rng.below(renames.len() as u64) as usize]);
    }
    let mut points = 0;
    for p in kills {
        match check_kill(&a, setting, seed, p) {
            Ok(n) => points += n,
            Err(e) => {
                let saved = save_log(seed, &a.log);
                panic!(
                    "seed {seed} ({setting:?}), killed after {p} of {} operations: {e}\n\
                     operation log of the killed process: {}\n\
                     replay: URING_WAL_KILL_SEED={seed} cargo test --test crash_sim kill",
                    a.log.len(),
                    saved.display()
                );
            }
        }
    }
    points
}

/// Process A appends and is killed (at random, or right after renaming a
/// file and before syncing the directory); process B reopens the log on what
/// the page cache holds, appends, syncs; then power fails anywhere in B's
/// history. Every record either process was told is durable must survive,
/// and the log holds only records B's process held at their LSNs.
///
/// `URING_WAL_KILL_RUNS` sets the number of runs (default 40);
/// `URING_WAL_KILL_SEED` replays one.
#[test]
fn kill_then_reopen_then_power_failure_keeps_every_promise() {
    if let Ok(seed) = std::env::var("URING_WAL_KILL_SEED") {
        kill_seed(seed.parse().expect("a seed"));
        return;
    }
    let runs: u64 = std::env::var("URING_WAL_KILL_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let points: usize = (0..runs).map(kill_seed).sum();
    eprintln!("{points} power failures after a kill and reopen, over {runs} runs");
    assert!(points as u64 >= runs * (KILL_CRASH_POINTS as u64 + 1));
}
