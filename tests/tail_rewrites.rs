//! Format version 2: a lone appender's flushes rewrite the partly filled
//! last block of the flush before into its other slot, so the log consumes
//! segment space at about the payload's rate. What it must keep: every
//! record readable (by a reader, a follower racing the rewrites, recovery),
//! logs of both versions readable and writable, and no rewrite while the
//! copy it keeps is not durable (tests/crash_sim.rs tears every pending
//! write; the walker's unit tests tear each rewrite sector by sector).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{IoPath, PATHS, options, payload};
use uring_wal::{Durability, RecordType, Wal};

const RECORDS: u64 = 300;
const PAYLOAD_BYTES: usize = 256;

fn append_singles(wal: &Wal, from: u64, to: u64) {
    for lsn in from..=to {
        assert_eq!(wal.append(RecordType::Put, &payload(lsn, PAYLOAD_BYTES)).unwrap(), lsn);
    }
}

fn assert_reads_back(wal: &Wal, last: u64) {
    let read: Vec<_> = wal.read_from(1).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(read.len() as u64, last);
    for (i, r) in read.iter().enumerate() {
        assert_eq!((r.lsn, &r.payload), (i as u64 + 1, &payload(i as u64 + 1, PAYLOAD_BYTES)));
    }
}

#[test]
fn a_lone_appender_takes_a_block_per_blockful_of_records() {
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(options(dir.path(), path)).unwrap();
        append_singles(&wal, 1, RECORDS);
        let stats = wal.stats();
        // 288 bytes a record: 14 to a 4 KiB block, each block in two slots.
        let per_block = 4096 / 288;
        let blocks_max = 2 * RECORDS.div_ceil(per_block) + 2;
        assert!(stats.tail_rewrites >= RECORDS - RECORDS / per_block - 4, "{path:?}: {stats:?}");
        assert!(stats.segment_bytes_used <= blocks_max * 4096, "{path:?}: {}", stats.segment_bytes_used);
        assert_reads_back(&wal, RECORDS);
        drop(wal);
        let wal = Wal::open(options(dir.path(), path)).unwrap();
        assert!(wal.recovery_report().torn_tail.is_none(), "{path:?}");
        assert_reads_back(&wal, RECORDS);

        // Without rewrites every flush takes a block of its own.
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(options(dir.path(), path).rewrite_tail_blocks(false)).unwrap();
        append_singles(&wal, 1, RECORDS);
        let stats = wal.stats();
        assert_eq!((stats.tail_rewrites, stats.segment_bytes_used), (0, RECORDS * 4096), "{path:?}");
    }
}

#[test]
fn logs_of_either_version_open_and_go_on_in_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = |d: &Path| options(d, IoPath::UringDirect).rewrite_tail_blocks(false);
    let v2 = |d: &Path| options(d, IoPath::UringDirect);
    let wal = Wal::open(v1(dir.path())).unwrap();
    append_singles(&wal, 1, 10);
    drop(wal);
    // Reopened by a writer of version 2: it goes on in the version-1
    // segment (128 KiB: 31 blocks, 11 taken) without rewriting a block there.
    let wal = Wal::open(v2(dir.path())).unwrap();
    append_singles(&wal, 11, 25);
    let stats = wal.stats();
    assert_eq!((stats.tail_rewrites, stats.segments_activated), (0, 0), "no rewrite inside a version-1 segment");
    // ... and rewrites in the segments it creates.
    append_singles(&wal, 26, RECORDS);
    assert!(wal.stats().tail_rewrites > 0);
    assert_reads_back(&wal, RECORDS);
    drop(wal);
    let wal = Wal::open(v1(dir.path())).unwrap();
    assert_reads_back(&wal, RECORDS);
    append_singles(&wal, RECORDS + 1, RECORDS + 50);
    assert_eq!(wal.stats().tail_rewrites, 0);
    drop(wal);
    let wal = Wal::open(v2(dir.path())).unwrap();
    assert_reads_back(&wal, RECORDS + 50);
}

#[test]
fn a_follower_reads_every_record_while_its_block_is_rewritten() {
    // The follower waits at the end of what is durable, inside the tail
    // block; the next copy of the block goes to the slot behind it or after
    // it. It must find every record, in order, on every I/O path.
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(options(dir.path(), path).durability(Durability::GroupSync)).unwrap();
        let mut follower = wal.follow(1).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| append_singles(&wal, 1, RECORDS));
            for lsn in 1..=RECORDS {
                let r = follower.next_timeout(Some(Duration::from_secs(10))).unwrap().expect("record in time");
                assert_eq!((r.lsn, r.payload), (lsn, payload(lsn, PAYLOAD_BYTES).as_slice()), "{path:?}");
            }
        });
        assert!(wal.stats().tail_rewrites > 0, "{path:?}");
    }
}

#[test]
fn many_appenders_still_rewrite_when_nothing_is_in_flight() {
    // Several appenders: a flush in flight keeps the next from rewriting
    // (its copy is not durable yet), so the next takes fresh blocks; every
    // record still reads back after a reopen.
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..100u32 {
                    wal.append(RecordType::Put, &i.to_le_bytes().repeat(40)).unwrap();
                }
            });
        }
    });
    assert_eq!(wal.last_lsn(), 400);
    drop(wal);
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    let read: Vec<_> = wal.read_from(1).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(read.len(), 400);
    assert!(read.iter().all(|r| r.payload.len() == 160));
}
