//! openraft's own storage suite, every test of it, against the store.

mod support;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use support::kv::{Kv, KvStateMachine};
use tempfile::TempDir;
use uring_wal_openraft::LogStore;

/// A fresh store in a fresh directory for each test of the suite; the
/// directory lives as long as the guard.
struct Builder {
    /// Entry cache size: the suite runs twice, with every entry cached and
    /// with none, so that reads go back to the log.
    cache_bytes: usize,
}

impl StoreBuilder<Kv, LogStore<Kv>, KvStateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore<Kv>, KvStateMachine), StorageError<Kv>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = support::open_with_cache(dir.path(), self.cache_bytes);
        Ok((dir, store, KvStateMachine::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_with_the_entry_cache() -> Result<(), StorageError<Kv>> {
    Suite::test_all(Builder { cache_bytes: 64 << 20 }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_reading_every_entry_back_from_the_log() -> Result<(), StorageError<Kv>> {
    Suite::test_all(Builder { cache_bytes: 0 }).await
}
