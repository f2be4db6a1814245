//! Multi-Raft: many Raft groups on three nodes, each node with one shared
//! uring-wal log for all its groups (`MultiLog`), and one network shared by
//! all groups (`openraft-multi`). It writes to every group at once, shows
//! that each node's log synced far fewer times than it took writes, removes
//! a group, restarts a node from its log and shows every group caught up.
//!
//! ```sh
//! cargo run -p uring-wal-openraft --example multi_raft [GROUPS] [DIR]
//! ```
//!
//! 16 groups by default; without `DIR` the logs go to a temporary
//! directory.

#[path = "../tests/support/kv.rs"]
mod kv;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use kv::{Kv, KvStateMachine, Set};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::VoteOf;
use openraft::{BasicNode, Config, OptionalSend, RaftNetworkFactory};
use openraft_multi::{GroupNetworkAdapter, GroupRouter};
use uring_wal::Options;
use uring_wal_openraft::MultiLog;

type Raft = openraft::Raft<Kv, KvStateMachine>;

/// The network every group shares: (node, group) to that group's `Raft` on
/// that node. A pair not in the map is down.
#[derive(Clone, Default)]
struct Router {
    rafts: Arc<Mutex<BTreeMap<(u64, u64), Raft>>>,
}

impl Router {
    fn get(&self, node: u64, group: u64) -> Result<Raft, Unreachable<Kv>> {
        let rafts = self.rafts.lock().unwrap();
        rafts.get(&(node, group)).cloned().ok_or_else(|| Unreachable::from_string(format!("node {node} is down")))
    }
}

impl GroupRouter<Kv, u64> for Router {
    type SnapshotData = kv::Data;

    fn append_entries(
        &self,
        target: u64,
        group: u64,
        rpc: AppendEntriesRequest<Kv>,
        _option: RPCOption,
    ) -> impl Future<Output = Result<AppendEntriesResponse<Kv>, RPCError<Kv>>> + OptionalSend {
        let raft = self.get(target, group);
        async move { raft?.append_entries(rpc).await.map_err(|e| Unreachable::new(&e).into()) }
    }

    fn vote(
        &self,
        target: u64,
        group: u64,
        rpc: VoteRequest<Kv>,
        _option: RPCOption,
    ) -> impl Future<Output = Result<VoteResponse<Kv>, RPCError<Kv>>> + OptionalSend {
        let raft = self.get(target, group);
        async move { raft?.vote(rpc).await.map_err(|e| Unreachable::new(&e).into()) }
    }

    fn pre_vote(
        &self,
        target: u64,
        group: u64,
        rpc: VoteRequest<Kv>,
        _option: RPCOption,
    ) -> impl Future<Output = Result<VoteResponse<Kv>, RPCError<Kv>>> + OptionalSend {
        let raft = self.get(target, group);
        async move { raft?.pre_vote(rpc).await.map_err(|e| Unreachable::new(&e).into()) }
    }

    fn full_snapshot(
        &self,
        target: u64,
        group: u64,
        vote: VoteOf<Kv>,
        snapshot: kv::Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> impl Future<Output = Result<SnapshotResponse<Kv>, StreamingError<Kv>>> + OptionalSend {
        let raft = self.get(target, group);
        async move { raft?.install_full_snapshot(vote, snapshot).await.map_err(|e| Unreachable::new(&e).into()) }
    }
}

/// One group's view of the shared network.
#[derive(Clone)]
struct GroupNetwork {
    router: Router,
    group: u64,
}

impl RaftNetworkFactory<Kv> for GroupNetwork {
    type Network = GroupNetworkAdapter<Kv, u64, Router>;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Self::Network {
        GroupNetworkAdapter::new(self.router.clone(), target, self.group)
    }
}

/// A node: its shared log, and its groups' Rafts and state machines.
struct Node {
    log: MultiLog<Kv>,
    groups: BTreeMap<u64, (Raft, KvStateMachine)>,
}

/// Opens node `id`'s log in `dir` and starts `groups` on it.
async fn start(id: u64, dir: &Path, groups: &[u64], router: &Router, config: &Arc<Config>) -> Node {
    let log = MultiLog::<Kv>::open(Options::durable(dir.join(format!("node{id}")))).expect("open the log");
    let mut node = Node { log, groups: BTreeMap::new() };
    for &group in groups {
        let store = node.log.group(group).expect("the group's store");
        let sm = KvStateMachine::default();
        let network = GroupNetwork { router: router.clone(), group };
        let raft = Raft::new(id, config.clone(), network, store, sm.clone()).await.expect("start raft");
        router.rafts.lock().unwrap().insert((id, group), raft.clone());
        node.groups.insert(group, (raft, sm));
    }
    node
}

/// Stops node `id`'s groups and closes its log.
async fn stop(id: u64, node: Node, router: &Router) {
    for (group, (raft, _)) in node.groups {
        router.rafts.lock().unwrap().remove(&(id, group));
        raft.shutdown().await.unwrap();
    }
    tokio::task::spawn_blocking(move || node.log.close()).await.unwrap().expect("close the log");
}

/// Writes `n` keys into `group` through whichever node leads it, retrying
/// while leadership moves; returns the last index.
async fn write(nodes: &BTreeMap<u64, Node>, group: u64, n: usize, tag: &str) -> u64 {
    let mut last = 0;
    let give_up = Instant::now() + Duration::from_secs(30);
    for i in 0..n {
        let set = Set { key: format!("{tag}{i}"), value: format!("g{group}-{i}") };
        loop {
            assert!(Instant::now() < give_up, "group {group}: no leader took the write");
            let leader = nodes
                .values()
                .find_map(|node| node.groups[&group].0.metrics().borrow_watched().current_leader)
                .and_then(|id| nodes.get(&id));
            let Some(leader) = leader else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            match leader.groups[&group].0.client_write(set.clone()).await {
                Ok(written) => {
                    last = written.log_id.index;
                    break;
                }
                // Leadership moved (or its lease lapsed): ask again.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    last
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let groups: u64 = std::env::args().nth(1).map_or(16, |g| g.parse().expect("GROUPS: a number"));
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::args().nth(2).map_or_else(|| temp.path().to_path_buf(), Into::into);
    let config = Arc::new(
        Config { heartbeat_interval: 200, election_timeout_min: 600, election_timeout_max: 1200, ..Default::default() }
            .validate()
            .unwrap(),
    );
    let router = Router::default();
    let ids: Vec<u64> = (0..groups).collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(id, &dir, &ids, &router, &config).await);
    }
    // Each group's leader on a different node, as a Multi-Raft deployment
    // spreads them (a rerun on the same DIR is already initialized).
    let members: BTreeMap<u64, BasicNode> = (1..=3).map(|id| (id, BasicNode::default())).collect();
    for &group in &ids {
        let _ = nodes[&(group % 3 + 1)].groups[&group].0.initialize(members.clone()).await;
    }

    let syncs_before: u64 = nodes.values().map(|n| n.log.wal().stats().syncs).sum();
    let started = Instant::now();
    let lasts = join_all(ids.iter().map(|&g| write(&nodes, g, 20, "key"))).await;
    let elapsed = started.elapsed();
    let syncs: u64 = nodes.values().map(|n| n.log.wal().stats().syncs).sum::<u64>() - syncs_before;
    let writes = 20 * groups;
    println!(
        "{writes} writes across {groups} groups in {elapsed:?}: the three logs synced {syncs} times ({:.2} per write)",
        syncs as f64 / writes as f64
    );
    for (id, node) in &nodes {
        println!("node {id}: {}", node.log.memory());
    }

    // Remove the last group: stop it everywhere, then drop it from each log.
    let removed = groups - 1;
    for (id, node) in &mut nodes {
        let (raft, _) = node.groups.remove(&removed).unwrap();
        router.rafts.lock().unwrap().remove(&(*id, removed));
        raft.shutdown().await.unwrap();
        drop(raft); // and its store
        assert!(node.log.remove_group(removed).await.unwrap());
    }
    println!("group {removed}: removed from every node");
    let ids: Vec<u64> = (0..removed).collect();

    // Restart node 3 from its log: every group replays what it had.
    let node3 = nodes.remove(&3).unwrap();
    stop(3, node3, &router).await;
    for &group in &ids {
        write(&nodes, group, 5, "more").await;
    }
    let node3 = start(3, &dir, &ids, &router, &config).await;
    assert!(!node3.log.groups().contains(&removed), "a removed group stays removed");
    nodes.insert(3, node3);
    for &group in &ids {
        let leader_sm = {
            let leader = nodes[&1].groups[&group].0.current_leader().await.expect("a leader");
            nodes[&leader].groups[&group].1.clone()
        };
        let (raft, sm) = &nodes[&3].groups[&group];
        let last = lasts[group as usize] + 5;
        raft.wait(Some(Duration::from_secs(10))).applied_index_at_least(Some(last), "catch up").await.unwrap();
        assert_eq!(sm.map(), leader_sm.map(), "group {group}: node 3 holds what its leader holds");
    }
    println!("node 3: restarted from its log, all {} groups caught up", ids.len());
    println!("node 3: {}", nodes[&3].log.space());

    for (id, node) in std::mem::take(&mut nodes) {
        stop(id, node, &router).await;
    }
}
