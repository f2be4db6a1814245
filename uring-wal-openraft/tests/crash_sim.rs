//! The store on uring-wal's simulated storage, which logs every operation:
//! a workload of votes, pipelined appends, truncations and purges runs
//! once, then for many crash points the state after a power failure there
//! (pending writes torn per sector) is rebuilt, the store reopened on it,
//! and an oracle checks it:
//!
//! - it opens, and its entries follow the purge point with no hole;
//! - every entry whose callback had fired by the crash point is there, with
//!   its value, unless a truncation or purge covering it had begun;
//! - no entry removed by a truncation that had returned comes back;
//! - the vote and the purge point are at least those that had returned.
//!
//! `URING_WAL_RAFT_CRASH_RUNS` sets the number of workloads (default 6,
//! 60 crash points each).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use support::kv::Kv;
use support::{contents, entry, log_id, read_vote, vote};
use uring_wal::storage::sim::{SimConfig, SimOp, SimRng, SimStorage};
use uring_wal::{BlockSize, Options};
use uring_wal_openraft::{LogStore, StoreConfig};

const DIR: &str = "/raft";
const POINTS_PER_RUN: u64 = 60;

fn options() -> Options {
    Options::new(DIR)
        .segment_bytes(64 << 10)
        .record_bytes_max(8 << 10)
        .block_size(BlockSize::Bytes(4096))
        .flush_bytes_max(16 << 10)
}

fn open(storage: &SimStorage, cache_bytes: usize) -> std::io::Result<LogStore<Kv>> {
    LogStore::open_with_storage(options(), Arc::new(storage.clone()), StoreConfig::default().cache_bytes(cache_bytes))
}

/// What the workload did, with the simulated storage's operation count at
/// each moment that matters.
enum Event {
    /// An entry whose callback had fired by operation `op`.
    Durable {
        index: u64,
        seq: u64,
        op: usize,
    },
    /// `truncate_after` removing `since..`, called at `start`, returned at `end`.
    Truncate {
        since: u64,
        start: usize,
        end: usize,
    },
    Purge {
        upto: u64,
        start: usize,
        end: usize,
    },
    Vote {
        term: u64,
        end: usize,
    },
}

fn value(seq: u64, rng: &mut SimRng) -> String {
    format!("{seq}:{}", "s".repeat(rng.below(3000) as usize))
}

async fn workload(sim: &SimStorage, seed: u64) -> Vec<Event> {
    let mut rng = SimRng::new(seed);
    let mut store = open(sim, if seed.is_multiple_of(2) { 64 << 20 } else { 4 << 10 }).expect("open a new store");
    let mut events = Vec::new();
    let (mut next, mut purged, mut seq) = (1u64, 0u64, 0u64);
    for term in 1..=3u64 {
        store.save_vote(&vote(term)).await.unwrap();
        events.push(Event::Vote { term, end: sim.op_count() });
        let mut pending = std::collections::VecDeque::new();
        for _ in 0..40 {
            let roll = rng.below(100);
            if roll < 8 && next > purged + 6 {
                for (rx, ids) in pending.drain(..) {
                    durable(rx, ids, sim, &mut events).await;
                }
                let since = next - 1 - rng.below(5);
                let start = sim.op_count();
                store.truncate_after(Some(log_id(term, since - 1))).await.unwrap();
                events.push(Event::Truncate { since, start, end: sim.op_count() });
                next = since;
            } else if roll < 14 && next > purged + 20 {
                for (rx, ids) in pending.drain(..) {
                    durable(rx, ids, sim, &mut events).await;
                }
                let upto = next - 10;
                let start = sim.op_count();
                store.purge(log_id(term, upto)).await.unwrap();
                events.push(Event::Purge { upto, start, end: sim.op_count() });
                purged = upto;
            } else {
                let n = 1 + rng.below(4);
                let mut batch = Vec::new();
                let mut ids = Vec::new();
                for index in next..next + n {
                    seq += 1;
                    batch.push(entry(term, index, &value(seq, &mut rng)));
                    ids.push((index, seq));
                }
                let (tx, rx) = Kv::oneshot();
                store.append(batch, IOFlushed::signal(tx)).await.unwrap();
                pending.push_back((rx, ids));
                next += n;
                while pending.len() > 3 {
                    let (rx, ids) = pending.pop_front().unwrap();
                    durable(rx, ids, sim, &mut events).await;
                }
            }
        }
        for (rx, ids) in pending.drain(..) {
            durable(rx, ids, sim, &mut events).await;
        }
    }
    store.close().unwrap();
    events
}

/// Waits for an append's callback; the operation count read after it is an
/// upper bound of the moment the entries became durable.
async fn durable(
    rx: impl std::future::Future<Output = Result<std::io::Result<()>, impl std::fmt::Debug>>,
    ids: Vec<(u64, u64)>,
    sim: &SimStorage,
    events: &mut Vec<Event>,
) {
    rx.await.expect("callback").expect("durable");
    let op = sim.op_count();
    events.extend(ids.into_iter().map(|(index, seq)| Event::Durable { index, seq, op }));
}

/// Checks the store recovered from a crash after `k` operations.
async fn check_point(log: &[SimOp], events: &[Event], k: usize, seed: u64) -> Result<(), String> {
    let image = SimStorage::crash_image(log, k, seed, 4096);
    let mut store = open(&image, 4 << 10).map_err(|e| format!("reopen failed: {e}"))?;
    let got = contents(&mut store).await;
    let state = store.get_log_state().await.unwrap();
    let purged = state.last_purged_log_id.map_or(0, |l| l.index);
    for (n, (_, index, _)) in got.iter().enumerate() {
        if *index != purged + 1 + n as u64 {
            return Err(format!("entries {:?} do not follow the purge point {purged}", got.first().map(|e| e.1)));
        }
    }
    let by_index: BTreeMap<u64, u64> =
        got.iter().map(|(_, i, v)| (*i, v.split(':').next().unwrap().parse().unwrap())).collect();

    // Replay the history up to the crash point.
    let mut must: BTreeMap<u64, u64> = BTreeMap::new();
    let mut gone: Vec<(u64, u64)> = Vec::new();
    let (mut vote_min, mut purged_min) = (None, 0);
    for event in events {
        match *event {
            Event::Durable { index, seq, op } if op <= k => {
                must.insert(index, seq);
            }
            Event::Durable { .. } => {}
            Event::Truncate { since, start, end } if start <= k => {
                let removed = must.split_off(&since);
                if end <= k {
                    gone.extend(removed);
                }
            }
            Event::Truncate { .. } => {}
            Event::Purge { upto, start, end } if start <= k => {
                must = must.split_off(&(upto + 1));
                if end <= k {
                    purged_min = upto;
                }
            }
            Event::Purge { .. } => {}
            Event::Vote { term, end } if end <= k => vote_min = Some(term),
            Event::Vote { .. } => {}
        }
    }
    for (index, seq) in &must {
        if by_index.get(index) != Some(seq) {
            return Err(format!("durable entry {index} (seq {seq}) is lost: got {:?}", by_index.get(index)));
        }
    }
    for (index, seq) in &gone {
        if by_index.get(index) == Some(seq) {
            return Err(format!("truncated entry {index} (seq {seq}) came back"));
        }
    }
    if purged < purged_min {
        return Err(format!("purge point {purged} is before {purged_min}"));
    }
    let v = read_vote(&mut store).await;
    if v < vote_min.map(vote) {
        return Err(format!("vote {v:?} is older than term {vote_min:?}"));
    }
    store.close().map_err(|e| format!("close: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_keeps_what_was_durable_and_nothing_truncated() {
    let runs: u64 = std::env::var("URING_WAL_RAFT_CRASH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let mut checked = 0;
    for seed in 1..=runs {
        let sim = SimStorage::new(SimConfig { sector_bytes: 4096, ..SimConfig::new(seed) });
        let events = workload(&sim, seed).await;
        let log = sim.log();
        let mut rng = SimRng::new(seed ^ 0x5EED);
        let mut points: Vec<usize> = (0..POINTS_PER_RUN).map(|_| rng.below(log.len() as u64 + 1) as usize).collect();
        points.push(log.len());
        for k in points {
            if let Err(e) = check_point(&log, &events, k, seed.wrapping_mul(1000) + k as u64).await {
                panic!("seed {seed}, crash after {k} of {} operations: {e}", log.len());
            }
            checked += 1;
        }
    }
    eprintln!("{checked} crash points checked");
}
