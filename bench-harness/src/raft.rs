//! `raft`: client writes through a three-node openraft cluster in this
//! process, on two kinds of log store side by side.
//!
//! - `memory`: a log store that keeps entries in a map and acknowledges each
//!   append at once. No disk: what consensus itself costs here (the
//!   in-process network, openraft's tasks, the state machine), the upper
//!   bound for any durable store.
//! - `uring-wal/group-sync` and `uring-wal/dsync`: `uring-wal-openraft`'s
//!   `LogStore`, one log directory per node, each append acknowledged once
//!   it is durable.
//!
//! The three nodes share one tokio runtime, one in-process network and the
//! same state machine (it counts what it applies); only the log store
//! differs. Each client is a task calling `client_write` on the leader in a
//! closed loop; a write's latency is from the call to its return (the entry
//! committed on a majority and applied on the leader).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures_util::{Stream, TryStreamExt};
use hdrhistogram::Histogram;
use openraft::entry::RaftEntry;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::storage::{
    EntryResponder, IOFlushed, LogState, RaftLogReader, RaftLogStorage, RaftStateMachine, SnapshotMeta,
};
use openraft::type_config::alias::{EntryOf, LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf};
use openraft::{BasicNode, EntryPayload, OptionalSend, RaftNetworkFactory, RaftSnapshotBuilder, StoredMembership};
use serde::{Deserialize, Serialize};
use uring_wal::{DirectIo, Durability, Options};
use uring_wal_openraft::LogStore;

use crate::cli::{RaftArgs, RaftStore};
use crate::model::{LatencySummary, LoadResult, TestKind, latency_histogram};
use crate::sys;

/// A client write: opaque bytes of the requested size.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write(Vec<u8>);

impl fmt::Debug for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Write({} B)", self.0.len())
    }
}

impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

openraft::declare_raft_types!(
    /// The type config of the benchmark's cluster.
    pub Bench: D = Write, R = ()
);

type Raft = openraft::Raft<Bench, Counter>;
type Entry = EntryOf<Bench>;
type LogId = LogIdOf<Bench>;

// ---------------------------------------------------------------------------
// The state machine: counts the entries it applies.

/// What the state machine holds; also its snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    last: Option<LogId>,
    membership: StoredMembershipOf<Bench>,
    writes: u64,
}

#[derive(Debug, Default)]
struct CounterInner {
    applied: Applied,
    snapshot: Option<(SnapshotMetaOf<Bench>, Applied)>,
}

/// The state machine every store runs with. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Counter {
    inner: Arc<Mutex<CounterInner>>,
}

impl RaftSnapshotBuilder<Bench> for Counter {
    type SnapshotData = Applied;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<Bench, Applied>, io::Error> {
        let mut inner = self.inner.lock().unwrap();
        let applied = inner.applied.clone();
        let meta = SnapshotMeta { last_log_id: applied.last, last_membership: applied.membership.clone() };
        inner.snapshot = Some((meta.clone(), applied.clone()));
        Ok(SnapshotOf::<Bench, Applied> { meta, snapshot: applied })
    }
}

impl RaftStateMachine<Bench> for Counter {
    type SnapshotData = Applied;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembershipOf<Bench>), io::Error> {
        let inner = self.inner.lock().unwrap();
        Ok((inner.applied.last, inner.applied.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<Bench>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            {
                let mut inner = self.inner.lock().unwrap();
                let applied = &mut inner.applied;
                applied.last = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(_) => applied.writes += 1,
                    EntryPayload::Membership(m) => applied.membership = StoredMembership::new(Some(entry.log_id), m),
                }
            }
            if let Some(responder) = responder {
                responder.send(());
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<Bench>, snapshot: Applied) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().unwrap();
        inner.applied = snapshot.clone();
        inner.snapshot = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<Bench, Applied>>, io::Error> {
        let inner = self.inner.lock().unwrap();
        Ok(inner.snapshot.clone().map(|(meta, snapshot)| SnapshotOf::<Bench, Applied> { meta, snapshot }))
    }
}

// ---------------------------------------------------------------------------
// The log store that acknowledges at once.

#[derive(Default)]
struct MemoryInner {
    vote: Option<VoteOf<Bench>>,
    committed: Option<LogId>,
    purged: Option<LogId>,
    entries: BTreeMap<u64, Entry>,
}

/// Entries in a map under a mutex; every append's callback fires before
/// `append` returns. It is its own reader (cloning shares it).
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl RaftLogReader<Bench> for MemoryStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<Bench>>, io::Error> {
        Ok(self.lock().vote)
    }
}

impl RaftLogStorage<Bench> for MemoryStore {
    type LogReader = MemoryStore;

    async fn get_log_state(&mut self) -> Result<LogState<Bench>, io::Error> {
        let st = self.lock();
        let last = st.entries.last_key_value().map(|(_, e)| e.log_id()).or(st.purged);
        Ok(LogState { last_purged_log_id: st.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> MemoryStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<Bench>) -> Result<(), io::Error> {
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<Bench>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut st = self.lock();
            for e in entries {
                st.entries.insert(e.index(), e);
            }
        }
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let since = last_log_id.map_or(0, |l| l.index() + 1);
        self.lock().entries.split_off(&since);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut st = self.lock();
        let keep = st.entries.split_off(&(log_id.index() + 1));
        st.entries = keep;
        st.purged = Some(log_id);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The in-process network.

/// Node id to its running `Raft`.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, Raft>>>,
}

struct Connection {
    router: Router,
    target: u64,
}

impl Connection {
    fn target(&self) -> Result<Raft, Unreachable<Bench>> {
        let nodes = self.router.nodes.lock().unwrap();
        nodes
            .get(&self.target)
            .cloned()
            .ok_or_else(|| Unreachable::from_string(format!("node {} is down", self.target)))
    }
}

impl RaftNetworkFactory<Bench> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection { router: self.clone(), target }
    }
}

impl RaftNetworkV2<Bench> for Connection {
    type SnapshotData = Applied;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Bench>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<Bench>, RPCError<Bench>> {
        let raft = self.target()?;
        raft.append_entries(rpc).await.map_err(|e| Unreachable::new(&e).into())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Bench>,
        _option: RPCOption,
    ) -> Result<VoteResponse<Bench>, RPCError<Bench>> {
        let raft = self.target()?;
        raft.vote(rpc).await.map_err(|e| Unreachable::new(&e).into())
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<Bench>,
        _option: RPCOption,
    ) -> Result<VoteResponse<Bench>, RPCError<Bench>> {
        let raft = self.target()?;
        raft.pre_vote(rpc).await.map_err(|e| Unreachable::new(&e).into())
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<Bench>,
        snapshot: SnapshotOf<Bench, Applied>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<Bench>, StreamingError<Bench>> {
        let raft = self.target()?;
        raft.install_full_snapshot(vote, snapshot).await.map_err(|e| Unreachable::new(&e).into())
    }
}

// ---------------------------------------------------------------------------
// The cluster and the load.

const NODES: u64 = 3;

/// A running cluster: its nodes (the first one the leader) and the router.
struct Cluster {
    router: Router,
    leader: Raft,
    nodes: Vec<Raft>,
}

impl Cluster {
    /// Starts one node per store, initializes the cluster and waits for a
    /// leader.
    async fn start<LS: RaftLogStorage<Bench>>(stores: Vec<LS>) -> Result<Cluster> {
        // Timeouts far above a write's latency: a busy 2-core machine must
        // not see elections in the middle of a load.
        let config = Arc::new(
            openraft::Config {
                cluster_name: "bench".into(),
                heartbeat_interval: 100,
                election_timeout_min: 1000,
                election_timeout_max: 2000,
                ..Default::default()
            }
            .validate()
            .context("openraft configuration")?,
        );
        let router = Router::default();
        let mut nodes = Vec::new();
        for (id, store) in (1..).zip(stores) {
            let raft = Raft::new(id, config.clone(), router.clone(), store, Counter::default())
                .await
                .map_err(|e| anyhow!("starting node {id}: {e}"))?;
            router.nodes.lock().unwrap().insert(id, raft.clone());
            nodes.push(raft);
        }
        let members: BTreeMap<u64, BasicNode> = (1..=NODES).map(|id| (id, BasicNode::default())).collect();
        nodes[0].initialize(members).await.map_err(|e| anyhow!("initializing the cluster: {e}"))?;
        // A leader is known before it can commit: one empty write through
        // it says it can.
        let give_up = Instant::now() + Duration::from_secs(30);
        let leader = loop {
            if let Some(id) = nodes[0].current_leader().await {
                let leader = nodes[(id - 1) as usize].clone();
                if leader.client_write(Write(Vec::new())).await.is_ok() {
                    break leader;
                }
            }
            if Instant::now() > give_up {
                anyhow::bail!("no leader committed a write within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Ok(Cluster { router, leader, nodes })
    }

    /// Stops every node; their stores are dropped (and logs closed) with them.
    async fn stop(self) -> Result<()> {
        self.router.nodes.lock().unwrap().clear();
        let mut first_error = None;
        for raft in &self.nodes {
            if let Err(e) = raft.shutdown().await {
                first_error.get_or_insert(anyhow!("shutting a node down: {e}"));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// What one load measured.
struct Measured {
    histogram: Histogram<u64>,
    writes: u64,
    seconds: f64,
    cpu: Duration,
    error: Option<String>,
}

/// `clients` tasks writing in a closed loop: unmeasured for `warmup`, then
/// measured for `duration`. A write counts if it started in the measured
/// window.
async fn load(leader: &Raft, clients: usize, record_bytes: usize, warmup: Duration, duration: Duration) -> Measured {
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let leader = leader.clone();
        let payload = vec![c as u8; record_bytes];
        tasks.push(tokio::spawn(async move {
            let mut h = latency_histogram();
            let mut last_done = measure_from;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    return (h, last_done, None);
                }
                if let Err(e) = leader.client_write(Write(payload.clone())).await {
                    return (h, last_done, Some(format!("client {c}: {e}")));
                }
                let done = Instant::now();
                if t0 >= measure_from {
                    let _ = h.record(((done - t0).as_nanos() as u64).max(1));
                    last_done = done;
                }
            }
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu0 = sys::cpu_time();
    let mut histogram = latency_histogram();
    let mut last = measure_from;
    let mut error = None;
    for t in tasks {
        match t.await {
            Ok((h, done, e)) => {
                let _ = histogram.add(&h);
                last = last.max(done);
                if let Some(e) = e {
                    error.get_or_insert(e);
                }
            }
            Err(e) => {
                error.get_or_insert(format!("a client task failed: {e}"));
            }
        }
    }
    let cpu = sys::cpu_time().saturating_sub(cpu0);
    let seconds = (last - measure_from).as_secs_f64().max(duration.as_secs_f64());
    Measured { writes: histogram.len(), histogram, seconds, cpu, error }
}

fn result(store: RaftStore, clients: usize, record_bytes: usize, m: Measured) -> LoadResult {
    let ops_per_sec = if m.seconds > 0.0 { m.writes as f64 / m.seconds } else { 0.0 };
    LoadResult {
        test: TestKind::Raft,
        backend: store.label().into(),
        writers: clients,
        record_bytes: record_bytes as f64,
        load: "closed".into(),
        rate_ops_per_sec: None,
        batch: 1,
        pipeline: 1,
        ops: m.writes,
        seconds: m.seconds,
        ops_per_sec,
        mb_per_sec: ops_per_sec * record_bytes as f64 / 1e6,
        latency: LatencySummary::of(&m.histogram),
        latency_uncorrected: None,
        records_per_flush: None,
        syncs_per_sec: None,
        segments: None,
        cpu_us_per_op: if m.writes > 0 { m.cpu.as_secs_f64() * 1e6 / m.writes as f64 } else { 0.0 },
        peak_rss_bytes: sys::peak_rss_bytes(),
        error: m.error,
        histogram: m.histogram,
    }
}

/// The three uring-wal log stores of a cluster, one directory per node.
fn wal_stores(
    dir: &Path,
    durability: Durability,
    args: &RaftArgs,
    allow_buffered: bool,
) -> Result<Vec<LogStore<Bench>>> {
    (1..=NODES)
        .map(|id| {
            let node_dir = dir.join(format!("node{id}"));
            let mut o = Options::durable(&node_dir).durability(durability);
            if !allow_buffered {
                o = o.direct_io(DirectIo::Required);
            }
            if let Some(s) = args.wal_spin {
                o = o.wait_spin(s);
            }
            if let Some(s) = args.wal_io_spin {
                o = o.io_spin(s);
            }
            LogStore::open(o).with_context(|| format!("opening the log store in {}", node_dir.display()))
        })
        .collect()
}

/// A cluster on raft-log, one directory per node: its defaults, or with
/// `flush_batch_wait = 0`.
#[cfg(feature = "peers")]
async fn start_raft_log(store: RaftStore, dir: &Path) -> Result<Cluster> {
    let wait = (store == RaftStore::RaftLogNowait).then_some(Duration::ZERO);
    let stores = (1..=NODES)
        .map(|id| crate::raft_log_store::RaftLogStore::open(&dir.join(format!("node{id}")), wait))
        .collect::<io::Result<Vec<_>>>()
        .context("opening raft-log")?;
    Cluster::start(stores).await
}

#[cfg(not(feature = "peers"))]
async fn start_raft_log(store: RaftStore, _dir: &Path) -> Result<Cluster> {
    anyhow::bail!("{} needs bench-harness built with --features peers", store.label())
}

/// Starts a cluster on `store` and runs each client count through it.
pub async fn measure_store(
    store: RaftStore,
    args: &RaftArgs,
    dir: Option<&Path>,
    allow_buffered: bool,
    quiet: bool,
) -> Result<Vec<LoadResult>> {
    let cluster = match (store, dir) {
        (RaftStore::Memory, _) => Cluster::start((1..=NODES).map(|_| MemoryStore::default()).collect()).await?,
        (RaftStore::GroupSync, Some(d)) => {
            Cluster::start(wal_stores(d, Durability::GroupSync, args, allow_buffered)?).await?
        }
        (RaftStore::Dsync, Some(d)) => Cluster::start(wal_stores(d, Durability::Dsync, args, allow_buffered)?).await?,
        (RaftStore::RaftLog | RaftStore::RaftLogNowait, Some(d)) => start_raft_log(store, d).await?,
        (_, None) => unreachable!("a store on disk has a directory"),
    };
    let mut out = Vec::new();
    for &clients in &args.clients {
        if !quiet {
            eprintln!("raft: {} with {clients} client{}", store.label(), if clients == 1 { "" } else { "s" });
        }
        sys::reset_peak_rss();
        let m = load(&cluster.leader, clients, args.record_bytes as usize, args.warmup, args.duration).await;
        let failed = m.error.is_some();
        out.push(result(store, clients, args.record_bytes as usize, m));
        if failed {
            break;
        }
    }
    cluster.stop().await?;
    Ok(out)
}
