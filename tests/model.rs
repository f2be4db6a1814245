//! A property test of the log against a simple model: random sequences of
//! append, batch, truncate_before, reopen and power-failure crash on the
//! simulated storage. With one thread and blocking appends, everything
//! acknowledged before a crash must survive it. The model knows where the
//! log starts (1, moved only by `truncate_before`, and never past its
//! argument), so a recovery that dropped leading segments fails.

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

/// What the log must hold: every record from `first` on, and nothing else.
struct Model {
    /// The first LSN of the log: 1 until a truncation moved it, and only
    /// truncations move it.
    first: u64,
    /// Every record from `first` on.
    records: BTreeMap<u64, Vec<u8>>,
    /// The LSN the next append gets.
    next: u64,
}

fn check(wal: &Wal, model: &Model) -> Result<(), TestCaseError> {
    // The log's own idea of where it starts is checked, not trusted: a
    // recovery that dropped leading segments must not pass.
    prop_assert_eq!(wal.first_lsn(), model.first, "the log starts elsewhere than the model");
    let got: BTreeMap<u64, Vec<u8>> =
        wal.read_from(model.first).unwrap().map(|r| r.unwrap()).map(|r| (r.lsn, r.payload)).collect();
    prop_assert_eq!(&got, &model.records);
    prop_assert_eq!(wal.last_lsn(), model.next - 1);
    prop_assert_eq!(wal.next_lsn(), model.next);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut sim = SimStorage::new(SimConfig::new(7));
        let mut wal = Some(open(&sim));
        let mut model = Model { first: 1, records: BTreeMap::new(), next: 1 };
        for op in ops {
            let w = wal.as_ref().expect("open");
            match op {
                Op::Append(len) => {
                    let p = payload(model.next, len);
                    prop_assert_eq!(w.append(RecordType::Put, &p).unwrap(), model.next);
                    model.records.insert(model.next, p);
                    model.next += 1;
                }
                Op::Batch(lens) => {
                    let mut batch = Batch::new();
                    for (i, len) in lens.iter().enumerate() {
                        batch.push(RecordType::Update, &payload(model.next + i as u64, *len)).unwrap();
                    }
                    let range = w.append_batch(&mut batch).unwrap().unwrap();
                    prop_assert_eq!(*range.start(), model.next);
                    for len in lens {
                        model.records.insert(model.next, payload(model.next, len));
                        model.next += 1;
                    }
                }
                Op::Truncate(keep) => {
                    let upto = (model.next - 1).saturating_sub(keep);
                    w.truncate_before(upto).unwrap();
                    // Whole segments below `upto` go: the log may start
                    // anywhere from where it started up to `upto` (never
                    // later, nor earlier than before); everything from there
                    // on stays.
                    let first = w.first_lsn();
                    prop_assert!(
                        first >= model.first && first <= upto.max(model.first),
                        "truncate_before({}) moved the start from {} to {}",
                        upto,
                        model.first,
                        first
                    );
                    model.first = first;
                    model.records.retain(|lsn, _| *lsn >= first);
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
            check(wal.as_ref().unwrap(), &model)?;
        }
    }
}
