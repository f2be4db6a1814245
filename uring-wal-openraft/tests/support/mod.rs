//! Test support: the key-value state machine, and stores in temporary
//! directories.

#![allow(dead_code)]

pub mod kv;

use std::path::Path;

use uring_wal::Options;
use uring_wal_openraft::{LogStore, StoreConfig};

/// Small segments, so that purges drop whole segments in short tests.
pub fn options(dir: &Path) -> Options {
    Options::durable(dir).segment_bytes(256 << 10).record_bytes_max(64 << 10)
}

pub fn open(dir: &Path) -> LogStore<kv::Kv> {
    LogStore::open(options(dir)).expect("open the log store")
}

pub fn open_with_cache(dir: &Path, cache_bytes: usize) -> LogStore<kv::Kv> {
    LogStore::open_with(options(dir), StoreConfig::default().cache_bytes(cache_bytes)).expect("open the log store")
}
