//! An in-process network for test clusters: node id to its running `Raft`.
//! A node that is not in the map is down.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::VoteOf;
use openraft::{BasicNode, OptionalSend, RaftNetworkFactory};

use super::kv::{self, Kv, KvStateMachine};

pub type Raft = openraft::Raft<Kv, KvStateMachine>;

/// The network.
#[derive(Clone, Default)]
pub struct Router {
    pub nodes: Arc<Mutex<BTreeMap<u64, Raft>>>,
}

pub struct Connection {
    router: Router,
    target: u64,
}

impl Connection {
    fn target(&self) -> Result<Raft, Unreachable<Kv>> {
        let nodes = self.router.nodes.lock().unwrap();
        nodes
            .get(&self.target)
            .cloned()
            .ok_or_else(|| Unreachable::from_string(format!("node {} is down", self.target)))
    }
}

impl RaftNetworkFactory<Kv> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection { router: self.clone(), target }
    }
}

impl RaftNetworkV2<Kv> for Connection {
    type SnapshotData = kv::Data;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Kv>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<Kv>, RPCError<Kv>> {
        let raft = self.target()?;
        raft.append_entries(rpc).await.map_err(|e| Unreachable::new(&e).into())
    }

    async fn vote(&mut self, rpc: VoteRequest<Kv>, _option: RPCOption) -> Result<VoteResponse<Kv>, RPCError<Kv>> {
        let raft = self.target()?;
        raft.vote(rpc).await.map_err(|e| Unreachable::new(&e).into())
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<Kv>, _option: RPCOption) -> Result<VoteResponse<Kv>, RPCError<Kv>> {
        let raft = self.target()?;
        raft.pre_vote(rpc).await.map_err(|e| Unreachable::new(&e).into())
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<Kv>,
        snapshot: kv::Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<Kv>, StreamingError<Kv>> {
        let raft = self.target()?;
        raft.install_full_snapshot(vote, snapshot).await.map_err(|e| Unreachable::new(&e).into())
    }
}
