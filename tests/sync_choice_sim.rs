//! How a durable flush reaches stable storage, seen in the simulated
//! storage's log of operations.

use std::sync::Arc;

use uring_wal::storage::sim::{SimConfig, SimOp, SimStorage};
use uring_wal::{BlockSize, Options, RecordType, Wal};

/// The writes of log data (not headers at offset 0, not zero-fill), in
/// order: whether each carried `RWF_DSYNC`.
fn data_writes(log: &[SimOp]) -> Vec<bool> {
    log.iter()
        .filter_map(|op| match op {
            SimOp::Write { offset, data, durable, .. } if *offset > 0 && data.iter().any(|&b| b != 0) => Some(*durable),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lone_group_sync_appender_writes_with_rwf_dsync_once_it_stays_alone() {
    let sim = SimStorage::new(SimConfig::new(7));
    let options = Options::new("/wal").block_size(BlockSize::Bytes(4096)).segment_bytes(1 << 20).record_bytes_max(4096);
    let wal = Wal::open_with_storage(options, Arc::new(sim.clone())).unwrap();
    for i in 0..40u64 {
        wal.append(RecordType::Put, &i.to_le_bytes()).unwrap();
    }
    wal.close().unwrap();
    let writes = data_writes(&sim.log());
    assert!(writes.len() >= 40, "one flush per append: {}", writes.len());
    // The first flushes are written and then synced, until the appender has
    // been alone for a while; from then on each is one RWF_DSYNC write.
    assert!(!writes[0], "{writes:?}");
    let tail = &writes[20..40];
    assert!(tail.iter().all(|&d| d), "a lone appender's flushes carry RWF_DSYNC: {writes:?}");
}
