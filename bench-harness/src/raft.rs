//! `raft`: client writes through three openraft nodes in this process,
//! hosting one Raft group or many (Multi-Raft), on each kind of log store
//! side by side.
//!
//! - `memory`: a log store that keeps entries in a map and acknowledges each
//!   append at once. No disk: what consensus itself costs here (the
//!   in-process network, openraft's tasks, the state machine), the upper
//!   bound for any durable store.
//! - `uring-wal/group-sync` and `uring-wal/dsync`: `uring-wal-openraft`, one
//!   log per group on each node, each append acknowledged once durable.
//! - `uring-wal/shared`: `uring-wal-openraft`'s `MultiLog`, one log per node
//!   shared by all its groups (group sync).
//! - `raft-log`, `raft-log-nowait` (`--features peers`): raft-log, one per
//!   group on each node.
//!
//! With more than one group, the logs of one-per-group stores are small:
//! uring-wal segments of [`PER_GROUP_SEGMENT_BYTES`], raft-log chunks of
//! [`PER_GROUP_CHUNK_BYTES`], so that 256 groups x 3 nodes fit.
//!
//! The nodes share one tokio runtime, one in-process network (shared by all
//! groups, through `openraft-multi`) and the same state machine (it counts
//! what it applies); only the log store differs. Each group's leader is on
//! another node (group `g` on node `g % 3 + 1`). Each client is a task
//! calling `client_write` on a group's leader in a closed loop, the next
//! group at each write (client `c`'s `i`th write goes to group
//! `(c + i * clients) % groups`); a write's latency is from the call to its
//! return (the entry committed on a majority and applied on the leader).

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
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::storage::{
    EntryResponder, IOFlushed, LogState, RaftLogReader, RaftLogStorage, RaftStateMachine, SnapshotMeta,
};
use openraft::type_config::alias::{EntryOf, LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf};
use openraft::{BasicNode, EntryPayload, OptionalSend, RaftNetworkFactory, RaftSnapshotBuilder, StoredMembership};
use openraft_multi::{GroupNetworkAdapter, GroupRouter};
use serde::{Deserialize, Serialize};
use uring_wal::{DirectIo, Durability, Options};
use uring_wal_openraft::{LogStore, MultiLog};

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
// The in-process network, shared by every group.

/// (node, group) to that group's `Raft` on that node.
#[derive(Clone, Default)]
struct Router {
    rafts: Arc<Mutex<BTreeMap<(u64, u64), Raft>>>,
}

impl Router {
    fn get(&self, node: u64, group: u64) -> Result<Raft, Unreachable<Bench>> {
        let rafts = self.rafts.lock().unwrap();
        rafts.get(&(node, group)).cloned().ok_or_else(|| Unreachable::from_string(format!("node {node} is down")))
    }
}

impl GroupRouter<Bench, u64> for Router {
    type SnapshotData = Applied;

    fn append_entries(
        &self,
        target: u64,
        group: u64,
        rpc: AppendEntriesRequest<Bench>,
        _option: RPCOption,
    ) -> impl Future<Output = Result<AppendEntriesResponse<Bench>, RPCError<Bench>>> + OptionalSend {
        let raft = self.get(target, group);
        async move { raft?.append_entries(rpc).await.map_err(|e| Unreachable::new(&e).into()) }
    }

    fn vote(
        &self,
        target: u64,
        group: u64,
        rpc: VoteRequest<Bench>,
        _option: RPCOption,
    ) -> impl Future<Output = Result<VoteResponse<Bench>, RPCError<Bench>>> + OptionalSend {
        let raft = self.get(target, group);
        async move { raft?.vote(rpc).await.map_err(|e| Unreachable::new(&e).into()) }
    }

    fn pre_vote(
        &self,
        target: u64,
        group: u64,
        rpc: VoteRequest<Bench>,
        _option: RPCOption,
    ) -> impl Future<Output = Result<VoteResponse<Bench>, RPCError<Bench>>> + OptionalSend {
        let raft = self.get(target, group);
        async move { raft?.pre_vote(rpc).await.map_err(|e| Unreachable::new(&e).into()) }
    }

    fn full_snapshot(
        &self,
        target: u64,
        group: u64,
        vote: VoteOf<Bench>,
        snapshot: SnapshotOf<Bench, Applied>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> impl Future<Output = Result<SnapshotResponse<Bench>, StreamingError<Bench>>> + OptionalSend {
        let raft = self.get(target, group);
        async move { raft?.install_full_snapshot(vote, snapshot).await.map_err(|e| Unreachable::new(&e).into()) }
    }
}

/// One group's view of the network.
#[derive(Clone)]
struct GroupNetwork {
    router: Router,
    group: u64,
}

impl RaftNetworkFactory<Bench> for GroupNetwork {
    type Network = GroupNetworkAdapter<Bench, u64, Router>;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Self::Network {
        GroupNetworkAdapter::new(self.router.clone(), target, self.group)
    }
}

// ---------------------------------------------------------------------------
// The cluster and the load.

const NODES: u64 = 3;

/// Segment size of each uring-wal log when every group has its own.
pub const PER_GROUP_SEGMENT_BYTES: u64 = 1 << 20;

/// Chunk size of each raft-log when every group has its own.
#[cfg_attr(not(feature = "peers"), expect(dead_code, reason = "raft-log is built with --features peers"))]
pub const PER_GROUP_CHUNK_BYTES: usize = 4 << 20;

/// Running groups: their nodes, the leader of each, and the logs under
/// uring-wal stores (for their sync counts).
struct Cluster {
    router: Router,
    leaders: Vec<Raft>,
    rafts: Vec<Raft>,
    logs: Vec<MultiLog<Bench>>,
}

impl Cluster {
    /// Starts `stores[group][node]`, initializes each group from its own
    /// node and waits until each has a leader that committed a write.
    async fn start<LS: RaftLogStorage<Bench>>(stores: Vec<Vec<LS>>, logs: Vec<MultiLog<Bench>>) -> Result<Cluster> {
        // Timeouts far above a write's latency: a busy 2-core machine
        // running hundreds of groups must not see elections in a load.
        let config = Arc::new(
            openraft::Config {
                cluster_name: "bench".into(),
                heartbeat_interval: 250,
                election_timeout_min: 3000,
                election_timeout_max: 6000,
                ..Default::default()
            }
            .validate()
            .context("openraft configuration")?,
        );
        let router = Router::default();
        let mut by_group = Vec::new();
        for (group, nodes) in (0u64..).zip(stores) {
            let mut rafts = Vec::new();
            for (id, store) in (1..).zip(nodes) {
                let network = GroupNetwork { router: router.clone(), group };
                let raft = Raft::new(id, config.clone(), network, store, Counter::default())
                    .await
                    .map_err(|e| anyhow!("starting group {group} on node {id}: {e}"))?;
                router.rafts.lock().unwrap().insert((id, group), raft.clone());
                rafts.push(raft);
            }
            by_group.push(rafts);
        }
        let members: BTreeMap<u64, BasicNode> = (1..=NODES).map(|id| (id, BasicNode::default())).collect();
        let leaders = futures_util::future::try_join_all(by_group.iter().enumerate().map(|(group, rafts)| {
            let members = members.clone();
            async move {
                let first = group % rafts.len();
                rafts[first].initialize(members).await.map_err(|e| anyhow!("initializing group {group}: {e}"))?;
                // A leader is known before it can commit: one empty write
                // through it says it can.
                let give_up = Instant::now() + Duration::from_secs(60);
                loop {
                    if let Some(id) = rafts[first].current_leader().await {
                        let leader = rafts[(id - 1) as usize].clone();
                        if leader.client_write(Write(Vec::new())).await.is_ok() {
                            return Ok::<_, anyhow::Error>(leader);
                        }
                    }
                    if Instant::now() > give_up {
                        anyhow::bail!("group {group}: no leader committed a write within 60 s");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }))
        .await?;
        Ok(Cluster { router, leaders, rafts: by_group.into_iter().flatten().collect(), logs })
    }

    /// Syncs of every uring-wal log so far.
    fn syncs(&self) -> u64 {
        self.logs.iter().map(|l| l.wal().stats().syncs).sum()
    }

    /// Stops every node; their stores are dropped (and logs closed) with them.
    async fn stop(self) -> Result<()> {
        self.router.rafts.lock().unwrap().clear();
        let mut first_error = None;
        for raft in &self.rafts {
            if let Err(e) = raft.shutdown().await {
                first_error.get_or_insert(anyhow!("shutting a node down: {e}"));
            }
        }
        drop(self.logs);
        first_error.map_or(Ok(()), Err)
    }
}

/// What one load measured.
struct Measured {
    histogram: Histogram<u64>,
    writes: u64,
    seconds: f64,
    cpu: Duration,
    syncs: Option<u64>,
    error: Option<String>,
}

/// `clients` tasks writing in a closed loop, each to the next group at each
/// write: unmeasured for `warmup`, then measured for `duration`. A write
/// counts if it started in the measured window.
async fn load(
    cluster: &Cluster,
    clients: usize,
    record_bytes: usize,
    warmup: Duration,
    duration: Duration,
) -> Measured {
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    let leaders = Arc::new(cluster.leaders.clone());
    for c in 0..clients {
        let leaders = leaders.clone();
        let payload = vec![c as u8; record_bytes];
        tasks.push(tokio::spawn(async move {
            let mut h = latency_histogram();
            let mut last_done = measure_from;
            let mut group = c % leaders.len();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    return (h, last_done, None);
                }
                if let Err(e) = leaders[group].client_write(Write(payload.clone())).await {
                    return (h, last_done, Some(format!("client {c}, group {group}: {e}")));
                }
                let done = Instant::now();
                if t0 >= measure_from {
                    let _ = h.record(((done - t0).as_nanos() as u64).max(1));
                    last_done = done;
                }
                group = (group + clients) % leaders.len();
            }
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu0 = sys::cpu_time();
    let syncs0 = cluster.syncs();
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
    let syncs = (!cluster.logs.is_empty()).then(|| cluster.syncs() - syncs0);
    let seconds = (last - measure_from).as_secs_f64().max(duration.as_secs_f64());
    Measured { writes: histogram.len(), histogram, seconds, cpu, syncs, error }
}

fn result(store: RaftStore, groups: usize, clients: usize, record_bytes: usize, m: Measured) -> LoadResult {
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
        syncs_per_sec: m.syncs.map(|s| s as f64 / m.seconds),
        raft_groups: Some(groups),
        segments: None,
        cpu_us_per_op: if m.writes > 0 { m.cpu.as_secs_f64() * 1e6 / m.writes as f64 } else { 0.0 },
        peak_rss_bytes: sys::peak_rss_bytes(),
        error: m.error,
        dir: None,
        intervals: Vec::new(),
        histogram: m.histogram,
    }
}

/// Options of a uring-wal log in `dir`: the defaults, or with `small`
/// (one log per group of many) segments of [`PER_GROUP_SEGMENT_BYTES`] and
/// smaller buffers and queues.
fn wal_options(dir: &Path, durability: Durability, args: &RaftArgs, allow_buffered: bool, small: bool) -> Options {
    let mut o = Options::durable(dir).durability(durability);
    if small {
        o = o.segment_bytes(PER_GROUP_SEGMENT_BYTES).flush_bytes_max(64 << 10).queue_bytes_max(1 << 20);
    }
    if !allow_buffered {
        o = o.direct_io(DirectIo::Required);
    }
    if let Some(s) = args.wal_spin {
        o = o.wait_spin(s);
    }
    if let Some(s) = args.wal_io_spin {
        o = o.io_spin(s);
    }
    if let Some(n) = args.wal_flushes_in_flight {
        o = o.flushes_in_flight_max(n);
    }
    o
}

/// Stores by group, then by node.
type ByGroup<S> = Vec<Vec<S>>;

/// uring-wal stores by group and node, and the logs under them.
type WalStores = (ByGroup<LogStore<Bench>>, Vec<MultiLog<Bench>>);

/// The uring-wal stores of `groups` groups on each node: one log per group
/// (`shared` false), or one per node shared by its groups; and the logs.
fn wal_stores(
    dir: &Path,
    durability: Durability,
    groups: usize,
    shared: bool,
    args: &RaftArgs,
    allow_buffered: bool,
) -> Result<WalStores> {
    let open = |d: &Path, small: bool| {
        MultiLog::<Bench>::open(wal_options(d, durability, args, allow_buffered, small))
            .with_context(|| format!("opening the log in {}", d.display()))
    };
    let mut stores: ByGroup<LogStore<Bench>> = (0..groups).map(|_| Vec::new()).collect();
    let mut logs = Vec::new();
    for node in 1..=NODES {
        let node_dir = dir.join(format!("node{node}"));
        if shared {
            let log = open(&node_dir, false)?;
            for (group, nodes) in (0u64..).zip(&mut stores) {
                nodes.push(log.group(group)?);
            }
            logs.push(log);
        } else {
            for (group, nodes) in stores.iter_mut().enumerate() {
                let log = open(&node_dir.join(format!("group{group}")), groups > 1)?;
                nodes.push(log.group(0)?);
                logs.push(log);
            }
        }
    }
    Ok((stores, logs))
}

/// raft-log stores, one per group on each node: its defaults, or with
/// `flush_batch_wait = 0`.
#[cfg(feature = "peers")]
fn raft_log_stores(
    store: RaftStore,
    dir: &Path,
    groups: usize,
) -> Result<ByGroup<crate::raft_log_store::RaftLogStore>> {
    let wait = (store == RaftStore::RaftLogNowait).then_some(Duration::ZERO);
    let chunk = (groups > 1).then_some(PER_GROUP_CHUNK_BYTES);
    (0..groups)
        .map(|group| {
            (1..=NODES)
                .map(|node| {
                    let d = dir.join(format!("node{node}")).join(format!("group{group}"));
                    crate::raft_log_store::RaftLogStore::open(&d, wait, chunk)
                })
                .collect::<io::Result<Vec<_>>>()
        })
        .collect::<io::Result<Vec<_>>>()
        .context("opening raft-log")
}

/// Starts `groups` groups on `store` (in `dir`, unless in memory).
async fn start_store(
    store: RaftStore,
    groups: usize,
    args: &RaftArgs,
    dir: Option<&Path>,
    allow_buffered: bool,
) -> Result<Cluster> {
    let wal = |durability, shared| {
        let d = dir.context("a store on disk has a directory")?;
        wal_stores(d, durability, groups, shared, args, allow_buffered)
    };
    match store {
        RaftStore::Memory => {
            let stores = (0..groups).map(|_| (0..NODES).map(|_| MemoryStore::default()).collect()).collect();
            Cluster::start(stores, Vec::new()).await
        }
        RaftStore::GroupSync | RaftStore::Dsync | RaftStore::Shared => {
            let durability = if store == RaftStore::Dsync { Durability::Dsync } else { Durability::GroupSync };
            let (stores, logs) = wal(durability, store == RaftStore::Shared)?;
            Cluster::start(stores, logs).await
        }
        #[cfg(feature = "peers")]
        RaftStore::RaftLog | RaftStore::RaftLogNowait => {
            let d = dir.context("a store on disk has a directory")?;
            Cluster::start(raft_log_stores(store, d, groups)?, Vec::new()).await
        }
        #[cfg(not(feature = "peers"))]
        RaftStore::RaftLog | RaftStore::RaftLogNowait => {
            anyhow::bail!("{} needs bench-harness built with --features peers", store.label())
        }
    }
}

/// What a run's cluster costs besides the load: threads, memory, disk.
#[derive(Clone, Copy, Debug, Default)]
pub struct Footprint {
    /// Threads of the process with the cluster running.
    pub threads: usize,
    /// Resident memory the cluster added to the process, after its loads
    /// (from a baseline taken with the allocator's free memory returned).
    pub rss_bytes: u64,
    /// Bytes the stores' directories take on disk (allocated blocks).
    pub disk_bytes: u64,
}

/// Resident memory of this process now.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        // SAFETY: sysconf has no preconditions.
        .map_or(0, |pages| pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64)
}

/// Gives the allocator's free memory back to the kernel, so that resident
/// memory measures what is in use (glibc keeps what earlier runs freed).
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Allocated bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Starts `groups` groups on `store` and runs each client count through
/// them; with what the cluster cost.
pub async fn measure_store(
    store: RaftStore,
    groups: usize,
    args: &RaftArgs,
    dir: Option<&Path>,
    allow_buffered: bool,
    quiet: bool,
) -> Result<(Vec<LoadResult>, Footprint)> {
    trim_heap();
    let rss_before = rss_bytes();
    let cluster = start_store(store, groups, args, dir, allow_buffered).await?;
    let mut out = Vec::new();
    for &clients in &args.clients {
        if !quiet {
            let s = |n: usize| if n == 1 { "" } else { "s" };
            eprintln!("raft: {} with {groups} group{}, {clients} client{}", store.label(), s(groups), s(clients));
        }
        sys::reset_peak_rss();
        let m = load(&cluster, clients, args.record_bytes as usize, args.warmup, args.duration).await;
        let failed = m.error.is_some();
        out.push(result(store, groups, clients, args.record_bytes as usize, m));
        if failed {
            break;
        }
    }
    let footprint = Footprint {
        threads: threads(),
        rss_bytes: rss_bytes().saturating_sub(rss_before),
        disk_bytes: dir.map_or(0, disk_bytes),
    };
    cluster.stop().await?;
    Ok((out, footprint))
}
