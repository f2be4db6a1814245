//! A replicated key-value store: three openraft nodes in one process, each
//! with its own uring-wal log directory, talking through an in-process
//! network. It writes, stops node 3, writes more, restarts node 3 from its
//! log, and shows it catching up.
//!
//! ```sh
//! cargo run -p uring-wal-openraft --example kv_cluster [DIR]
//! ```
//!
//! Without `DIR` the logs go to a temporary directory.

#[path = "../tests/support/kv.rs"]
mod kv;
#[path = "../tests/support/net.rs"]
mod net;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv::{Kv, KvStateMachine, Set};
use net::{Raft, Router};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, Config};
use uring_wal::Options;
use uring_wal_openraft::LogStore;

/// Opens node `id`'s log in `dir`, says what it recovered, and starts it.
async fn start(id: u64, dir: &Path, router: &Router, config: &Arc<Config>) -> (Raft, KvStateMachine) {
    let mut store = LogStore::<Kv>::open(Options::durable(dir.join(format!("node{id}")))).expect("open the log");
    let state = store.get_log_state().await.unwrap();
    let last = state.last_log_id.map_or(0, |l| l.index);
    println!("node {id}: log opened with entries up to index {last} ({:?})", store.wal().backend().kind);
    let sm = KvStateMachine::default();
    let raft = Raft::new(id, config.clone(), router.clone(), store, sm.clone()).await.expect("start raft");
    router.nodes.lock().unwrap().insert(id, raft.clone());
    (raft, sm)
}

async fn write(leader: &Raft, key: &str, value: &str) -> u64 {
    let set = Set { key: key.into(), value: value.into() };
    leader.client_write(set).await.expect("write through the leader").log_id.index
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::args().nth(1).map_or_else(|| temp.path().to_path_buf(), Into::into);
    let config = Arc::new(
        Config { heartbeat_interval: 100, election_timeout_min: 300, election_timeout_max: 600, ..Default::default() }
            .validate()
            .unwrap(),
    );
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(id, &dir, &router, &config).await);
    }
    // A fresh cluster (a rerun on the same DIR is already initialized).
    let members: BTreeMap<u64, BasicNode> = (1..=3).map(|id| (id, BasicNode::default())).collect();
    let _ = nodes[&1].0.initialize(members).await;

    let wait = Some(Duration::from_secs(10));
    let leader_id = loop {
        if let Some(id) = nodes[&1].0.current_leader().await {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("leader: node {leader_id}");
    let leader = nodes[&leader_id].0.clone();
    let started = Instant::now();
    for i in 0..100 {
        write(&leader, &format!("key{i}"), &format!("value{i}")).await;
    }
    println!("100 writes, each durable on a majority, in {:?}", started.elapsed());

    // Stop a follower; the other two go on.
    let down = if leader_id == 3 { 2 } else { 3 };
    let (raft, _) = nodes.remove(&down).unwrap();
    router.nodes.lock().unwrap().remove(&down);
    raft.shutdown().await.unwrap();
    drop(raft); // closes its log
    println!("node {down}: stopped");
    let mut last = 0;
    for i in 100..150 {
        last = write(&leader, &format!("key{i}"), &format!("value{i}")).await;
    }
    println!("50 more writes while node {down} is down, up to log index {last}");

    // Restart it from its log: it replays what it had and catches up.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (raft, sm) = start(down, &dir, &router, &config).await;
    raft.wait(wait).applied_index_at_least(Some(last), "catch up").await.expect("node caught up");
    println!(
        "node {down}: caught up to index {last}: {} keys, key149 = {:?}",
        sm.map().len(),
        sm.get("key149").as_deref()
    );
    assert_eq!(sm.map(), nodes[&leader_id].1.map(), "the restarted node holds what the leader holds");
    nodes.insert(down, (raft, sm));

    for (_, (raft, _)) in nodes {
        raft.shutdown().await.unwrap();
    }
}
