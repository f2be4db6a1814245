//! A property test of the log against a simple model: random sequences of
//! append, batch, truncate_before, reopen and power-failure crash on the
//! simulated storage. With one thread and blocking appends, everything
//! acknowledged before a crash must survive it.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use uring_wal::storage::sim::{SimConfig, SimStorage};
use uring_wal::{Batch, BlockSize, Options, RecordType, Wal};

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    Batch(Vec<usize>),
    Truncate(u64),
    Reopen,
    Crash(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3000).prop_map(Op::Append),
        2 => proptest::collection::vec(0usize..1200, 1..8).prop_map(Op::Batch),
        1 => (0u64..60).prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(Op::Crash),
    ]
}

fn options() -> Options {
    Options::new("/wal").segment_bytes(64 * 1024).record_bytes_max(4096).block_size(BlockSize::Bytes(4096))
}

fn payload(lsn: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (lsn as usize * 31 + i * 7) as u8).collect()
}

fn open(sim: &SimStorage) -> Wal {
    Wal::open_with_storage(options(), Arc::new(sim.clone())).expect("open")
}

fn check(wal: &Wal, model: &BTreeMap<u64, Vec<u8>>) -> Result<(), TestCaseError> {
    let first = wal.first_lsn();
    let got: BTreeMap<u64, Vec<u8>> =
        wal.read_from(first).unwrap().map(|r| r.unwrap()).map(|r| (r.lsn, r.payload)).collect();
    let expected: BTreeMap<u64, Vec<u8>> = model.range(first..).map(|(k, v)| (*k, v.clone())).collect();
    prop_assert_eq!(got, expected);
    prop_assert_eq!(wal.last_lsn(), model.keys().next_back().copied().unwrap_or(0).max(first.saturating_sub(1)));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut sim = SimStorage::new(SimConfig::new(7));
        let mut wal = Some(open(&sim));
        let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut next = 1u64;
        for op in ops {
            let w = wal.as_ref().expect("open");
            match op {
                Op::Append(len) => {
                    let p = payload(next, len);
                    prop_assert_eq!(w.append(RecordType::Put, &p).unwrap(), next);
                    model.insert(next, p);
                    next += 1;
                }
                Op::Batch(lens) => {
                    let mut batch = Batch::new();
                    for (i, len) in lens.iter().enumerate() {
                        batch.push(RecordType::Update, &payload(next + i as u64, *len)).unwrap();
                    }
                    let range = w.append_batch(&mut batch).unwrap().unwrap();
                    prop_assert_eq!(*range.start(), next);
                    for len in lens {
                        model.insert(next, payload(next, len));
                        next += 1;
                    }
                }
                Op::Truncate(keep) => {
                    let upto = w.last_lsn().saturating_sub(keep);
                    let before = w.first_lsn();
                    w.truncate_before(upto).unwrap();
                    // Whole segments below `upto` go; the log never starts
                    // later than asked (nor moves back).
                    let first = w.first_lsn();
                    prop_assert!(first >= before && first <= upto.max(before));
                    model.retain(|lsn, _| *lsn >= first);
                }
                Op::Reopen => {
                    wal.take().unwrap().close().unwrap();
                    wal = Some(open(&sim));
                }
                Op::Crash(seed) => {
                    // Power failure right now: no close, pending writes torn.
                    let log = sim.log();
                    drop(wal.take());
                    sim = SimStorage::crash_image(&log, log.len(), seed, 512);
                    wal = Some(open(&sim));
                }
            }
            let w = wal.as_ref().unwrap();
            check(w, &model)?;
            prop_assert_eq!(w.next_lsn(), next);
        }
    }
}
