//! One node's disk stops answering; the three nodes share one runtime of
//! two workers. The store must never block a worker on that disk, or every
//! node's timers and heartbeats stop with it. Real kernel: each node's log
//! is on a FUSE file system of its own, and the stalled node's holds its
//! next segment `fdatasync` until the test lets it go.
//!
//! - A follower's disk stalls: the leader and the other follower go on as
//!   if nothing happened: the same leader and term on the healthy follower
//!   (heartbeats go on), and writes keep committing.
//! - The leader's disk stalls: its RaftCore waits for its storage (openraft
//!   awaits `save_committed`, which is durable here), so its heartbeats
//!   stop, as they should for a leader that cannot write: a healthy node is
//!   elected and writes commit through it.
//!
//! Throughout, a 10 ms timer on the same runtime keeps ticking.
//!
//! These are availability tests of the cluster as a whole: a store that
//! blocked a worker only while its own queue was full would pass them too,
//! because openraft keeps a follower's queue short. The proof that no call
//! of the store blocks a worker, with the queue full, is `tests/stall.rs`.

#[path = "../../tests/fusefs/mod.rs"]
mod fusefs;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fusefs::{Faults, FsOptions, Mount};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::{BasicNode, Config};
use support::kv::{Kv, KvStateMachine, Set};
use support::net::{Raft, Router};
use uring_wal::Options;
use uring_wal_openraft::LogStore;

/// How long the stall is watched, within the log's io_timeout.
const WATCH: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(8);
/// How late a 10 ms tick may come on a shared 2-vCPU machine before the
/// runtime counts as blocked (a blocked worker shows as seconds).
const TICK_LATE_MAX: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stalled {
    Follower,
    Leader,
}

#[test]
fn a_follower_with_a_stalled_disk_stops_no_one_else() {
    run(Stalled::Follower);
}

#[test]
fn a_leader_with_a_stalled_disk_is_replaced_and_the_runtime_goes_on() {
    run(Stalled::Leader);
}

/// The leader as of the newest term any node knows (a node stuck waiting
/// on its disk reports an old one).
fn current_leader(nodes: &BTreeMap<u64, Raft>) -> Option<u64> {
    let views = nodes.values().map(|r| {
        let m = r.metrics().borrow_watched().clone();
        (m.current_term, m.current_leader)
    });
    views.max_by_key(|(term, leader)| (*term, leader.is_some())).and_then(|(_, leader)| leader)
}

/// Writes through whichever node leads, retrying while there is none;
/// returns how many committed.
async fn write_for(nodes: &BTreeMap<u64, Raft>, how_long: Duration, tag: &str) -> u64 {
    let until = Instant::now() + how_long;
    let mut committed = 0;
    while Instant::now() < until {
        let Some(raft) = current_leader(nodes).and_then(|id| nodes.get(&id)) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let set = Set { key: format!("{tag}-{committed}"), value: "v".into() };
        match tokio::time::timeout(Duration::from_millis(300), raft.client_write(set)).await {
            Ok(Ok(_)) => committed += 1,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    committed
}

fn run(stalled: Stalled) {
    let mounts: Vec<Mount> = match (0..3).map(|_| fusefs::mount_or_skip(FsOptions::default())).collect() {
        Some(m) => m,
        None => return,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let config = Arc::new(
            Config {
                heartbeat_interval: 50,
                election_timeout_min: 400,
                election_timeout_max: 800,
                ..Default::default()
            }
            .validate()
            .unwrap(),
        );
        let router = Router::default();
        let mut nodes = BTreeMap::new();
        for (id, mount) in (1..=3u64).zip(&mounts) {
            // A small queue: a store that blocked on a full one would block
            // the runtime after a few writes.
            let o = Options::new(mount.path().join("raft")).queue_requests_max(8).io_timeout(IO_TIMEOUT);
            let store = LogStore::<Kv>::open(o).unwrap();
            let raft = Raft::new(id, config.clone(), router.clone(), store, KvStateMachine::default()).await.unwrap();
            router.nodes.lock().unwrap().insert(id, raft.clone());
            nodes.insert(id, raft);
        }
        let members: BTreeMap<u64, BasicNode> = (1..=3).map(|id| (id, BasicNode::default())).collect();
        nodes[&1].initialize(members).await.unwrap();
        assert!(write_for(&nodes, Duration::from_millis(500), "warm").await > 0, "the cluster took no write");
        let leader = current_leader(&nodes).unwrap();
        let term = nodes[&leader].metrics().borrow_watched().current_term;
        // Before any disk stalls, every node knows this leader and term.
        for (id, raft) in &nodes {
            raft.wait(Some(Duration::from_secs(5)))
                .metrics(|m| (m.current_term, m.current_leader) == (term, Some(leader)), "leader known")
                .await
                .unwrap_or_else(|e| panic!("node {id} never learned leader {leader} of term {term}: {e}"));
        }
        let victim = match stalled {
            Stalled::Leader => leader,
            Stalled::Follower => {
                if leader == 1 {
                    2
                } else {
                    1
                }
            }
        };
        let healthy_follower = (1..=3).find(|&id| id != leader && id != victim).unwrap();

        let fs = &mounts[(victim - 1) as usize].fs;
        fs.set_faults(Faults { hang_fsync: Some(fs.stats().segment_fsyncs), ..Faults::default() });
        let stop = Arc::new(AtomicBool::new(false));
        let late_us = Arc::new(AtomicU64::new(0));
        let ticker = tokio::spawn(support::tick_every_10ms(stop.clone(), late_us.clone()));
        let watcher = stalled == Stalled::Follower;
        let watch = {
            let (stop, follower) = (stop.clone(), nodes[&healthy_follower].clone());
            tokio::spawn(async move {
                // The healthy follower keeps hearing its leader.
                while watcher && !stop.load(Ordering::Relaxed) {
                    let m = follower.metrics().borrow_watched().clone();
                    if (m.current_term, m.current_leader) != (term, Some(leader)) {
                        return Some(format!("term {} leader {:?}", m.current_term, m.current_leader));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                None
            })
        };
        let committed = write_for(&nodes, WATCH, "stalled").await;
        assert_eq!(fs.stats().faults, 1, "{stalled:?}: the disk never stalled");
        stop.store(true, Ordering::Relaxed);
        ticker.await.unwrap();
        let lost = watch.await.unwrap();
        let late = Duration::from_micros(late_us.load(Ordering::Relaxed));
        let now_leader = current_leader(&nodes);
        eprintln!(
            "{stalled:?} (node {victim}) stalled for {WATCH:?}: {committed} writes committed meanwhile, leader \
             {leader} -> {now_leader:?}; a 10 ms timer was at most {late:?} late"
        );
        assert!(late <= TICK_LATE_MAX, "{stalled:?}: the runtime was blocked: a 10 ms timer {late:?} late");
        assert!(committed > 0, "{stalled:?}: no write committed while one disk stalled");
        match stalled {
            Stalled::Follower => assert_eq!(lost, None, "the healthy follower lost its leader: heartbeats stopped"),
            Stalled::Leader => assert!(
                now_leader.is_some_and(|l| l != victim),
                "no healthy leader replaced the stalled one: {now_leader:?}"
            ),
        }
        fs.release();
        router.nodes.lock().unwrap().clear();
        for (_, raft) in nodes {
            let _ = raft.shutdown().await;
        }
    });
}
