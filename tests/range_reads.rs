//! Range reads and the sparse index: exactly the records asked for, typed
//! errors for what is gone or not yet written, and a cost that does not
//! grow with the position of the record in its segment.

mod common;

use common::{IoPath, PATHS, options, payload};
use uring_wal::{Error, RecordType, Wal};

fn len_of(lsn: u64) -> usize {
    50 + (lsn as usize * 97) % 1500
}

#[test]
fn a_range_reads_exactly_its_records_on_every_path_and_after_reopening() {
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let open = || Wal::open(options(dir.path(), path).segment_bytes(1 << 20).flush_bytes_max(16 * 1024)).unwrap();
        let wal = open();
        for lsn in 1..=3000 {
            assert_eq!(wal.append(RecordType::Put, &payload(lsn, len_of(lsn))).unwrap(), lsn);
        }
        let check = |wal: &Wal| {
            let mut rng = common::Rng(0x5EED ^ path as u64);
            for _ in 0..60 {
                let a = 1 + rng.below(3000);
                let b = (a + rng.below(300)).min(3000);
                let got: Vec<_> = wal.read_range(a..=b).unwrap().map(|r| r.unwrap()).collect();
                assert_eq!(got.len() as u64, b - a + 1, "{path:?} {a}..={b}");
                for (r, lsn) in got.iter().zip(a..=b) {
                    assert_eq!((r.lsn, &r.payload), (lsn, &payload(lsn, len_of(lsn))), "{path:?}");
                }
            }
            // Empty, beyond the end, single records at the edges.
            let (start, end) = (10, 9);
            assert_eq!(wal.read_range(start..=end).unwrap().count(), 0);
            assert!(matches!(wal.read_range(2990..=3001), Err(Error::BeyondEnd { requested: 3001, last_lsn: 3000 })));
            assert_eq!(wal.read_range(3000..=3000).unwrap().next().unwrap().unwrap().lsn, 3000);
            assert_eq!(wal.read_range(1..=1).unwrap().next().unwrap().unwrap().lsn, 1);
        };
        check(&wal);
        drop(wal);
        // Recovery rebuilds the index.
        let wal = open();
        check(&wal);
        // What truncate_before removed is a typed error naming the first LSN left.
        assert!(wal.truncate_before(2000).unwrap() > 0);
        let first = wal.first_lsn();
        match wal.read_range(1..=5) {
            Err(Error::Truncated { requested: 1, first_available }) => assert_eq!(first_available, first),
            other => panic!("{path:?}: {other:?}"),
        }
        assert_eq!(wal.read_range(first..=first).unwrap().next().unwrap().unwrap().lsn, first);
    }
}

#[test]
fn reading_one_record_costs_the_same_anywhere_in_a_large_segment() {
    // One 32 MiB segment of ~4 KiB flushes: without the index, a read of the
    // last record walks the whole segment.
    for reopen in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let opts = || options(dir.path(), IoPath::UringDirect).segment_bytes(32 << 20).record_bytes_max(4096);
        let wal = Wal::open(opts()).unwrap();
        let mut batch = uring_wal::Batch::new();
        for lsn in 1..=7000u64 {
            batch.push(RecordType::Put, &payload(lsn, 3000)).unwrap();
            if lsn % 500 == 0 {
                wal.append_batch(&mut batch).unwrap();
            }
        }
        let wal = if reopen {
            drop(wal);
            Wal::open(opts()).unwrap()
        } else {
            wal
        };
        assert_eq!(wal.stats().segments, 1, "one segment");
        let mut costs = Vec::new();
        for lsn in [1, 3500, 7000] {
            let mut reader = wal.read_range(lsn..=lsn).unwrap();
            assert_eq!(reader.next().unwrap().unwrap().payload, payload(lsn, 3000));
            costs.push(reader.bytes_read());
        }
        // A window of reading (1 MiB) at most, wherever the record is: the
        // segment holds ~28 MiB of records.
        for (lsn, cost) in [1, 3500, 7000].iter().zip(&costs) {
            assert!(*cost <= 1 << 20, "reopen {reopen}: reading LSN {lsn} read {cost} bytes");
        }
    }
}
