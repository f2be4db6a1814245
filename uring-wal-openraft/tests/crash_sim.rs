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
//! It runs with one group (`LogStore`) and with several groups on one
//! shared log (`MultiLog`), where one group goes idle (so old segments are
//! freed by rewriting it forward) and groups are removed and created again;
//! there the oracle also checks, for each group, that no entry of another
//! group shows in it and that a removal that had returned is never undone.
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
use uring_wal_openraft::{LogStore, MultiLog, StoreConfig};

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

/// The shared log: rewrites start from 4 segments of 64 KiB.
fn open_multi(storage: &SimStorage, cache_bytes: usize) -> std::io::Result<MultiLog<Kv>> {
    let config = StoreConfig::default().cache_bytes(cache_bytes).rewrite_segments_min(4);
    MultiLog::open_with_storage(options(), Arc::new(storage.clone()), config)
}

/// The stores of a workload: one `LogStore`, or a `MultiLog`'s groups.
struct Stores {
    multi: Option<MultiLog<Kv>>,
    groups: Vec<Option<LogStore<Kv>>>,
}

impl Stores {
    fn open(storage: &SimStorage, cache_bytes: usize, groups: u64) -> std::io::Result<Stores> {
        if groups == 1 {
            return Ok(Stores { multi: None, groups: vec![Some(open(storage, cache_bytes)?)] });
        }
        let multi = open_multi(storage, cache_bytes)?;
        let groups = (0..groups).map(|g| multi.group(g).map(Some)).collect::<std::io::Result<_>>()?;
        Ok(Stores { multi: Some(multi), groups })
    }

    fn get(&mut self, group: u64) -> &mut LogStore<Kv> {
        self.groups[group as usize].as_mut().expect("open")
    }

    fn close(mut self) -> std::io::Result<()> {
        let first = self.groups[0].take().expect("open");
        self.groups.clear();
        drop(self.multi);
        first.close()
    }
}

/// What the workload did, with the simulated storage's operation count at
/// each moment that matters.
enum Event {
    /// An entry whose callback had fired by operation `op`.
    Durable {
        group: u64,
        index: u64,
        seq: u64,
        op: usize,
    },
    /// `truncate_after` removing `since..`, called at `start`, returned at `end`.
    Truncate {
        group: u64,
        since: u64,
        start: usize,
        end: usize,
    },
    Purge {
        group: u64,
        upto: u64,
        start: usize,
        end: usize,
    },
    Vote {
        group: u64,
        term: u64,
        end: usize,
    },
    /// `remove_group`, called at `start`, returned at `end`.
    Remove {
        group: u64,
        start: usize,
        end: usize,
    },
}

impl Event {
    fn group(&self) -> u64 {
        match *self {
            Event::Durable { group, .. }
            | Event::Truncate { group, .. }
            | Event::Purge { group, .. }
            | Event::Vote { group, .. }
            | Event::Remove { group, .. } => group,
        }
    }
}

/// An entry's value: its group, its unique sequence number, padding.
fn value(group: u64, seq: u64, rng: &mut SimRng) -> String {
    format!("{group}:{seq}:{}", "s".repeat(rng.below(3000) as usize))
}

/// Per group: the next index and the purge point.
#[derive(Clone, Copy, Default)]
struct Cursor {
    next: u64,
    purged: u64,
}

/// Votes, pipelined appends, truncations and purges on `groups` groups;
/// with several, group 0 goes idle after the first term and the others are
/// now and then removed and created again. Returns what happened, and how
/// many rewrites the shared log made.
async fn workload(sim: &SimStorage, seed: u64, groups: u64) -> (Vec<Event>, u64) {
    let mut rng = SimRng::new(seed);
    let cache = if seed.is_multiple_of(2) { 64 << 20 } else { 4 << 10 };
    let mut stores = Stores::open(sim, cache, groups).expect("open a new store");
    let mut events = Vec::new();
    let mut cursors = vec![Cursor { next: 1, purged: 0 }; groups as usize];
    let mut seq = 0u64;
    for term in 1..=3u64 {
        for group in 0..groups {
            stores.get(group).save_vote(&vote(term)).await.unwrap();
            events.push(Event::Vote { group, term, end: sim.op_count() });
        }
        let mut pending = std::collections::VecDeque::new();
        for _ in 0..40 * groups.min(3) {
            let group = match groups {
                1 => 0,
                _ if term == 1 => rng.below(groups),
                _ => 1 + rng.below(groups - 1), // group 0 is idle
            };
            let Cursor { next, purged } = cursors[group as usize];
            let roll = rng.below(100);
            if roll < 2 && group != 0 && stores.multi.is_some() {
                for (rx, ids) in pending.drain(..) {
                    durable(rx, ids, sim, &mut events).await;
                }
                let multi = stores.multi.clone().expect("shared");
                drop(stores.groups[group as usize].take());
                let start = sim.op_count();
                assert!(multi.remove_group(group).await.unwrap());
                events.push(Event::Remove { group, start, end: sim.op_count() });
                let mut store = multi.group(group).unwrap();
                store.save_vote(&vote(term)).await.unwrap();
                events.push(Event::Vote { group, term, end: sim.op_count() });
                stores.groups[group as usize] = Some(store);
                cursors[group as usize] = Cursor { next: 1, purged: 0 };
            } else if roll < 8 && next > purged + 6 {
                for (rx, ids) in pending.drain(..) {
                    durable(rx, ids, sim, &mut events).await;
                }
                let since = next - 1 - rng.below(5);
                let start = sim.op_count();
                stores.get(group).truncate_after(Some(log_id(term, since - 1))).await.unwrap();
                events.push(Event::Truncate { group, since, start, end: sim.op_count() });
                cursors[group as usize].next = since;
            } else if roll < 14 && next > purged + 20 {
                for (rx, ids) in pending.drain(..) {
                    durable(rx, ids, sim, &mut events).await;
                }
                let upto = next - 10;
                let start = sim.op_count();
                stores.get(group).purge(log_id(term, upto)).await.unwrap();
                events.push(Event::Purge { group, upto, start, end: sim.op_count() });
                cursors[group as usize].purged = upto;
            } else {
                let n = 1 + rng.below(4);
                let mut batch = Vec::new();
                let mut ids = Vec::new();
                for index in next..next + n {
                    seq += 1;
                    batch.push(entry(term, index, &value(group, seq, &mut rng)));
                    ids.push((group, index, seq));
                }
                let (tx, rx) = Kv::oneshot();
                stores.get(group).append(batch, IOFlushed::signal(tx)).await.unwrap();
                pending.push_back((rx, ids));
                cursors[group as usize].next += n;
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
    let rewrites = stores.multi.as_ref().map_or(0, |m| m.space().rewrites);
    stores.close().unwrap();
    (events, rewrites)
}

/// Waits for an append's callback; the operation count read after it is an
/// upper bound of the moment the entries became durable.
async fn durable(
    rx: impl std::future::Future<Output = Result<std::io::Result<()>, impl std::fmt::Debug>>,
    ids: Vec<(u64, u64, u64)>,
    sim: &SimStorage,
    events: &mut Vec<Event>,
) {
    rx.await.expect("callback").expect("durable");
    let op = sim.op_count();
    events.extend(ids.into_iter().map(|(group, index, seq)| Event::Durable { group, index, seq, op }));
}

/// Checks the store recovered from a crash after `k` operations.
async fn check_point(log: &[SimOp], events: &[Event], k: usize, seed: u64, groups: u64) -> Result<(), String> {
    let image = SimStorage::crash_image(log, k, seed, 4096);
    let mut stores = Stores::open(&image, 4 << 10, groups).map_err(|e| format!("reopen failed: {e}"))?;
    for group in 0..groups {
        let history = events.iter().filter(|e| e.group() == group);
        check_group(stores.get(group), history, k).await.map_err(|e| format!("group {group}: {e}"))?;
    }
    stores.close().map_err(|e| format!("close: {e}"))
}

/// Checks one group's store against its history up to operation `k`.
async fn check_group(store: &mut LogStore<Kv>, history: impl Iterator<Item = &Event>, k: usize) -> Result<(), String> {
    let got = contents(store).await;
    let state = store.get_log_state().await.unwrap();
    let purged = state.last_purged_log_id.map_or(0, |l| l.index);
    for (n, (_, index, _)) in got.iter().enumerate() {
        if *index != purged + 1 + n as u64 {
            return Err(format!("entries {:?} do not follow the purge point {purged}", got.first().map(|e| e.1)));
        }
    }
    let mut by_index: BTreeMap<u64, u64> = BTreeMap::new();
    for (_, index, v) in &got {
        let mut fields = v.split(':').map(|f| f.parse::<u64>());
        let (Some(Ok(_group)), Some(Ok(seq))) = (fields.next(), fields.next()) else {
            return Err(format!("entry {index} holds {v:?}"));
        };
        by_index.insert(*index, seq);
    }
    let groups_seen: std::collections::BTreeSet<&str> =
        got.iter().filter_map(|(_, _, v)| v.split(':').next()).collect();
    let vote_now = read_vote(store).await;

    // Replay the history up to the crash point.
    let mut must: BTreeMap<u64, u64> = BTreeMap::new();
    let mut gone: Vec<(u64, u64)> = Vec::new();
    let (mut vote_min, mut purged_min) = (None, 0);
    let mut own_group = None;
    for event in history {
        own_group = Some(event.group());
        match *event {
            Event::Durable { index, seq, op, .. } if op <= k => {
                must.insert(index, seq);
            }
            Event::Durable { .. } => {}
            Event::Truncate { since, start, end, .. } if start <= k => {
                let removed = must.split_off(&since);
                if end <= k {
                    gone.extend(removed);
                }
            }
            Event::Truncate { .. } => {}
            Event::Purge { upto, start, end, .. } if start <= k => {
                must = must.split_off(&(upto + 1));
                if end <= k {
                    purged_min = upto;
                }
            }
            Event::Purge { .. } => {}
            Event::Vote { term, end, .. } if end <= k => vote_min = Some(term),
            Event::Vote { .. } => {}
            // Begun by the crash: done, or not; what came back says which.
            Event::Remove { start, end, .. } if start <= k => {
                let done = end <= k || (got.is_empty() && vote_now.is_none());
                if done {
                    gone.extend(std::mem::take(&mut must));
                    (vote_min, purged_min) = (None, 0);
                }
            }
            Event::Remove { .. } => {}
        }
    }
    if let Some(g) = own_group
        && groups_seen.iter().any(|seen| *seen != g.to_string())
    {
        return Err(format!("entries of groups {groups_seen:?} in it"));
    }
    for (index, seq) in &must {
        if by_index.get(index) != Some(seq) {
            return Err(format!("durable entry {index} (seq {seq}) is lost: got {:?}", by_index.get(index)));
        }
    }
    for (index, seq) in &gone {
        if by_index.get(index) == Some(seq) {
            return Err(format!("entry {index} (seq {seq}), truncated or removed, came back"));
        }
    }
    if purged < purged_min {
        return Err(format!("purge point {purged} is before {purged_min}"));
    }
    if vote_now < vote_min.map(vote) {
        return Err(format!("vote {vote_now:?} is older than term {vote_min:?}"));
    }
    Ok(())
}

/// Runs the workloads, and checks random crash points of each.
async fn crash_points(groups: u64) -> (usize, u64) {
    let runs: u64 = std::env::var("URING_WAL_RAFT_CRASH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let (mut checked, mut rewrites) = (0, 0);
    for seed in 1..=runs {
        let sim = SimStorage::new(SimConfig { sector_bytes: 4096, ..SimConfig::new(seed) });
        let (events, run_rewrites) = workload(&sim, seed, groups).await;
        rewrites += run_rewrites;
        let log = sim.log();
        let mut rng = SimRng::new(seed ^ 0x5EED);
        let mut points: Vec<usize> = (0..POINTS_PER_RUN).map(|_| rng.below(log.len() as u64 + 1) as usize).collect();
        points.push(log.len());
        for k in points {
            if let Err(e) = check_point(&log, &events, k, seed.wrapping_mul(1000) + k as u64, groups).await {
                panic!("seed {seed}, crash after {k} of {} operations: {e}", log.len());
            }
            checked += 1;
        }
    }
    (checked, rewrites)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_keeps_what_was_durable_and_nothing_truncated() {
    let (checked, _) = crash_points(1).await;
    eprintln!("{checked} crash points checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_many_groups_every_crash_point_keeps_each_groups_own_entries() {
    let (checked, rewrites) = crash_points(5).await;
    eprintln!("{checked} crash points checked; the workloads made {rewrites} rewrites");
    assert!(rewrites > 0, "no rewrite happened: the idle group was never rewritten forward");
}
