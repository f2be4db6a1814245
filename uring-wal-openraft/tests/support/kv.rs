//! A small in-memory key-value state machine and its openraft type config,
//! shared by the tests and the `kv_cluster` example.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine, SnapshotMeta};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StoredMembership};
use serde::{Deserialize, Serialize};

/// A write: set `key` to `value`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Set {
    pub key: String,
    pub value: String,
}

impl fmt::Display for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// The value a write replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced(pub Option<String>);

openraft::declare_raft_types!(
    /// The type config of the tests and the example.
    pub Kv: D = Set, R = Replaced
);

pub type LogId = openraft::type_config::alias::LogIdOf<Kv>;
pub type Membership = openraft::type_config::alias::StoredMembershipOf<Kv>;
pub type Meta = openraft::type_config::alias::SnapshotMetaOf<Kv>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<Kv, Data>;

/// What the state machine holds; also its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Data {
    pub last_applied: Option<LogId>,
    pub membership: Membership,
    pub map: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Inner {
    data: Data,
    snapshot: Option<(Meta, Data)>,
}

/// The state machine: a map, applied entries' effects, and the last
/// snapshot. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct KvStateMachine {
    inner: Arc<Mutex<Inner>>,
}

impl KvStateMachine {
    /// The value of `key`, as applied here.
    pub fn get(&self, key: &str) -> Option<String> {
        self.inner.lock().unwrap().data.map.get(key).cloned()
    }

    /// Every key and value, as applied here.
    pub fn map(&self) -> BTreeMap<String, String> {
        self.inner.lock().unwrap().data.map.clone()
    }
}

impl RaftSnapshotBuilder<Kv> for KvStateMachine {
    type SnapshotData = Data;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut inner = self.inner.lock().unwrap();
        let data = inner.data.clone();
        let meta = SnapshotMeta { last_log_id: data.last_applied, last_membership: data.membership.clone() };
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: data })
    }
}

impl RaftStateMachine<Kv> for KvStateMachine {
    type SnapshotData = Data;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), io::Error> {
        let inner = self.inner.lock().unwrap();
        Ok((inner.data.last_applied, inner.data.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<Kv>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let replaced = {
                let mut inner = self.inner.lock().unwrap();
                let data = &mut inner.data;
                data.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Replaced(None),
                    EntryPayload::Normal(set) => Replaced(data.map.insert(set.key, set.value)),
                    EntryPayload::Membership(m) => {
                        data.membership = StoredMembership::new(Some(entry.log_id), m);
                        Replaced(None)
                    }
                }
            };
            if let Some(responder) = responder {
                responder.send(replaced);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Data) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().unwrap();
        inner.data = snapshot.clone();
        inner.snapshot = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let inner = self.inner.lock().unwrap();
        Ok(inner.snapshot.clone().map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}
