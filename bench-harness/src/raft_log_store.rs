//! raft-log (crate `raft-log`, the log store of Databend's meta-service, by
//! openraft's author) as an openraft log store, for `bench-harness raft`.
//!
//! raft-log keeps the Raft state in memory and writes its actions to a
//! chunked WAL through a flush thread; `flush(true, callback)` calls the
//! callback once the batch is synced. The adapter does what its users do:
//! `append` appends and asks for a synced flush whose callback is openraft's;
//! `save_vote` and `truncate_after` wait for their synced flush;
//! `save_committed` and `purge` are flushed without waiting for a sync (the
//! next synced flush covers them, as raft-log documents). Two
//! configurations are measured: its default (`flush_batch_wait` 1 ms: the
//! flush thread waits to gather a batch) and `flush_batch_wait = 0`.

use std::fmt;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::vote::{RaftLeaderId, RaftVote};
use openraft::{OptionalSend, RaftTypeConfig};
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::{RaftLog, Types};

/// raft-log's types for an openraft type config whose log ids and votes
/// are `(term, node)` leaders with `u64` indexes: log id `((term, node),
/// index)`, vote `((term, node), committed)`, payload the postcard-encoded
/// entry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RlTypes;

/// Where raft-log reports that a flush completed.
pub enum Done<C: RaftTypeConfig> {
    /// openraft's append callback.
    Flushed(IOFlushed<C>),
    /// A waiting `save_vote` or `truncate_after`.
    Waiter(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl<C: RaftTypeConfig> raft_log::Callback for Done<C> {
    fn send(self, res: Result<(), io::Error>) {
        match self {
            Done::Flushed(cb) => cb.io_completed(res),
            Done::Waiter(tx) => {
                let _ = tx.send(res);
            }
        }
    }
}

impl<C: RaftTypeConfig> fmt::Debug for Done<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Done")
    }
}

/// The openraft type config the adapter serves (the benchmark's).
type B = crate::raft::Bench;

impl Types for RlTypes {
    type LogId = ((u64, u64), u64);
    type LogPayload = Vec<u8>;
    type Vote = ((u64, u64), bool);
    type UserData = ();
    type Callback = Done<B>;

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.1
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        payload.len() as u64
    }
}

fn log_id_of(id: &LogIdOf<B>) -> ((u64, u64), u64) {
    let leader = id.committed_leader_id();
    ((leader.term, leader.node_id), id.index())
}

fn log_id_from(id: &((u64, u64), u64)) -> LogIdOf<B> {
    let leader = <B as RaftTypeConfig>::LeaderId::new(id.0.0, id.0.1).to_committed();
    LogIdOf::<B>::new(leader, id.1)
}

fn vote_of(v: &VoteOf<B>) -> ((u64, u64), bool) {
    let leader = v.leader_id();
    ((leader.term, leader.node_id), v.is_committed())
}

fn vote_from(v: &((u64, u64), bool)) -> VoteOf<B> {
    VoteOf::<B>::from_leader_id(<B as RaftTypeConfig>::LeaderId::new(v.0.0, v.0.1), v.1)
}

fn other(e: impl fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// An openraft log store on raft-log. Cloning shares it (it is its own
/// reader).
#[derive(Clone)]
pub struct RaftLogStore {
    log: Arc<Mutex<RaftLog<RlTypes>>>,
}

impl RaftLogStore {
    /// Opens raft-log in `dir`; `batch_wait` is its `flush_batch_wait`
    /// (`None`: its default, 1 ms), `chunk_bytes` its `chunk_max_size`
    /// (`None`: its default, 1 GiB).
    pub fn open(dir: &Path, batch_wait: Option<Duration>, chunk_bytes: Option<usize>) -> io::Result<RaftLogStore> {
        std::fs::create_dir_all(dir)?;
        let mut config = raft_log::Config::new(dir.display().to_string());
        config.wal.flush_batch_wait = batch_wait;
        config.wal.chunk_max_size = chunk_bytes;
        let log = RaftLog::<RlTypes>::open(Arc::new(config))?;
        Ok(RaftLogStore { log: Arc::new(Mutex::new(log)) })
    }

    fn lock(&self) -> MutexGuard<'_, RaftLog<RlTypes>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a synced flush and waits for it.
    async fn synced(&self) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.lock().flush(true, Some(Done::Waiter(tx)))?;
        rx.await.map_err(other)?
    }
}

impl RaftLogReader<B> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<openraft::type_config::alias::EntryOf<B>>, io::Error> {
        let start = match range.start_bound() {
            std::ops::Bound::Included(&s) => s,
            std::ops::Bound::Excluded(&s) => s + 1,
            std::ops::Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            std::ops::Bound::Included(&e) => e + 1,
            std::ops::Bound::Excluded(&e) => e,
            std::ops::Bound::Unbounded => u64::MAX,
        };
        let log = self.lock();
        log.read(start, end).map(|r| r.and_then(|(_, payload)| postcard::from_bytes(&payload).map_err(other))).collect()
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<B>>, io::Error> {
        Ok(self.lock().log_state().vote().map(vote_from))
    }
}

impl RaftLogStorage<B> for RaftLogStore {
    type LogReader = RaftLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<B>, io::Error> {
        let log = self.lock();
        let st = log.log_state();
        let last_purged_log_id = st.purged().map(log_id_from);
        let last_log_id = st.last().map(log_id_from).or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> RaftLogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<B>) -> Result<(), io::Error> {
        self.lock().save_vote(vote_of(vote))?;
        self.synced().await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<B>>) -> Result<(), io::Error> {
        if let Some(c) = committed {
            let mut log = self.lock();
            log.commit(log_id_of(&c))?;
            log.flush(false, None)?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<B>>, io::Error> {
        Ok(self.lock().log_state().committed().map(log_id_from))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<B>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = openraft::type_config::alias::EntryOf<B>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Vec::new();
        for e in entries {
            batch.push((log_id_of(&e.log_id()), postcard::to_stdvec(&e).map_err(other)?));
        }
        let mut log = self.lock();
        log.append(batch)?;
        log.flush(true, Some(Done::Flushed(callback)))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<B>>) -> Result<(), io::Error> {
        let since = last_log_id.map_or(0, |l| l.index() + 1);
        self.lock().truncate(since)?;
        self.synced().await
    }

    async fn purge(&mut self, log_id: LogIdOf<B>) -> Result<(), io::Error> {
        let mut log = self.lock();
        log.purge(log_id_of(&log_id))?;
        log.flush(false, None)
    }
}
