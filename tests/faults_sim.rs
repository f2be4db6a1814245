//! Injected faults on the simulated storage.
//!
//! While appending: EIO and ENOSPC on write, EIO on sync, short writes,
//! EINTR/EAGAIN, writes landing at the wrong offset, completions out of
//! order. The oracle: retryable faults are retried and cost nothing; any
//! other fault poisons the log, after which nothing more is accepted; after
//! a restart, and after a power failure at the end, every acknowledged
//! record reads back with exactly its payload, or recovery refuses with a
//! typed error when the storage lied (a misdirected write acknowledged as
//! written).
//!
//! While recovering: bit flips and unreadable sectors on read. Recovery may
//! fail, but never truncates a record that is intact on the medium and never
//! panics.

use std::collections::BTreeMap;
use std::sync::Arc;

use uring_wal::storage::sim::{FaultKind, SimConfig, SimRng, SimStorage, Trigger};
use uring_wal::{Error, Options, RecordType, Wal};

fn options() -> Options {
    Options::new("/wal")
        .segment_bytes(64 * 1024)
        .record_bytes_max(4096)
        .block_size(uring_wal::BlockSize::Bytes(512))
        .flush_bytes_max(4096)
        .flushes_in_flight_max(4)
}

fn payload(writer: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut p = writer.to_le_bytes().to_vec();
    p.extend_from_slice(&seq.to_le_bytes());
    p.resize(len.max(16), (writer * 7 + seq) as u8 | 1);
    p
}

/// Every record of the log, by LSN.
fn read_all(wal: &Wal) -> Result<BTreeMap<u64, Vec<u8>>, Error> {
    wal.read_from(wal.first_lsn())?.map(|r| r.map(|r| (r.lsn, r.payload))).collect()
}

/// A writer's acknowledged (LSN, payload) pairs and the error that stopped it.
type WriterResult = (u64, Vec<(u64, Vec<u8>)>, Option<Error>);

const KINDS: [FaultKind; 6] = [
    FaultKind::WriteEio,
    FaultKind::WriteEnospc,
    FaultKind::SyncEio,
    FaultKind::ShortWrite,
    FaultKind::WriteInterrupted,
    FaultKind::MisdirectedWrite,
];

fn retryable(kind: FaultKind) -> bool {
    matches!(kind, FaultKind::ShortWrite | FaultKind::WriteInterrupted)
}

#[test]
fn write_and_sync_faults_never_lose_an_acknowledged_record() {
    let runs: u64 = std::env::var("URING_WAL_FAULT_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let mut poisoned_runs = 0;
    for seed in 0..runs {
        let mut rng = SimRng::new(seed);
        let kind = KINDS[(seed % KINDS.len() as u64) as usize];
        let trigger = if rng.below(2) == 0 { Trigger::Nth(rng.below(60)) } else { Trigger::PerMillion(20_000) };
        let cfg =
            SimConfig { faults: vec![(kind, trigger)], shuffle_completions: seed % 3 != 0, ..SimConfig::new(seed) };
        let sim = SimStorage::new(cfg);
        let wal = Wal::open_with_storage(options(), Arc::new(sim.clone())).unwrap();
        let results: Vec<WriterResult> = std::thread::scope(|s| {
            (0..3u64)
                .map(|w| {
                    let wal = &wal;
                    s.spawn(move || {
                        let mut rng = SimRng::new(seed * 17 + w);
                        let mut acked = Vec::new();
                        for seq in 0..40 {
                            let p = payload(w, seq, 16 + rng.below(1500) as usize);
                            match wal.append(RecordType::Put, &p) {
                                Ok(lsn) => acked.push((lsn, p)),
                                Err(e) => return (w, acked, Some(e)),
                            }
                        }
                        (w, acked, None)
                    })
                })
                .map(|h| h.join().unwrap())
                .collect()
        });
        let injected = sim.injected().values().sum::<u64>();
        let failure = wal.poisoned();
        let acked: Vec<(u64, Vec<u8>)> = results.iter().flat_map(|(_, a, _)| a.clone()).collect();
        let errors: Vec<&Error> = results.iter().filter_map(|(_, _, e)| e.as_ref()).collect();
        let ctx = format!("seed {seed}, {kind:?} {trigger:?}, {injected} injected");
        if retryable(kind) {
            assert!(errors.is_empty() && failure.is_none(), "{ctx}: a retryable fault failed an append: {errors:?}");
        }
        for e in &errors {
            assert!(matches!(e, Error::Poisoned(_)), "{ctx}: unexpected error {e}");
        }
        if !errors.is_empty() {
            poisoned_runs += 1;
            // Poisoned for good: nothing is accepted any more.
            assert!(matches!(wal.append(RecordType::Put, b"after"), Err(Error::Poisoned(_))), "{ctx}");
        }
        let _ = wal.close();
        let log = sim.log();

        // Reopened (a restart, no power failure; no more faults): every
        // acknowledged record reads back with exactly its payload, or (only
        // where a write was misdirected) recovery reports corruption.
        sim.set_faults(Vec::new());
        match Wal::open_with_storage(options(), Arc::new(sim.clone())) {
            Ok(wal) => {
                let got = read_all(&wal).unwrap_or_else(|e| panic!("{ctx}: reading after reopen: {e}"));
                for (lsn, p) in &acked {
                    assert!(
                        got.get(lsn) == Some(p),
                        "{ctx}: after reopen, acknowledged LSN {lsn} reads {:?}",
                        got.get(lsn).map(|g| g.len())
                    );
                }
            }
            Err(Error::Corruption { .. } | Error::UnexpectedFile { .. })
                if kind == FaultKind::MisdirectedWrite && injected > 0 => {}
            Err(e) => panic!("{ctx}: reopening failed: {e}"),
        }

        // A power failure instead: every acknowledged record must come back,
        // or (only where a write was misdirected) recovery reports corruption.
        let image = SimStorage::crash_image(&log, log.len(), seed ^ 0x55, 512);
        match Wal::open_with_storage(options(), Arc::new(image)) {
            Ok(wal) => {
                let got = read_all(&wal).unwrap_or_else(|e| panic!("{ctx}: reading after the power failure: {e}"));
                for (lsn, p) in &acked {
                    assert_eq!(got.get(lsn), Some(p), "{ctx}: acknowledged LSN {lsn} lost");
                }
            }
            // A misdirected write was acknowledged where it did not land:
            // recovery must notice (damage proven by later records, or a
            // segment grown past its size), not open short of the record.
            Err(Error::Corruption { .. } | Error::UnexpectedFile { .. })
                if kind == FaultKind::MisdirectedWrite && injected > 0 => {}
            Err(e) => panic!("{ctx}: recovery failed: {e}"),
        }
    }
    assert!(poisoned_runs >= runs / 4, "faults poisoned only {poisoned_runs} of {runs} runs");
}

#[test]
fn read_faults_during_recovery_never_truncate_intact_records() {
    let runs: u64 = std::env::var("URING_WAL_FAULT_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let mut refused = 0;
    for seed in 0..runs {
        let sim = SimStorage::new(SimConfig::new(seed));
        let wal = Wal::open_with_storage(options(), Arc::new(sim.clone())).unwrap();
        let mut rng = SimRng::new(seed);
        let mut acked = Vec::new();
        for seq in 0..60 {
            let p = payload(0, seq, 16 + rng.below(1500) as usize);
            acked.push((wal.append(RecordType::Put, &p).unwrap(), p));
        }
        wal.close().unwrap();
        let image = sim.clean_copy();
        let kind = if seed % 2 == 0 { FaultKind::ReadBitFlip } else { FaultKind::ReadEio };
        image.set_faults(vec![(kind, Trigger::Nth(rng.below(40)))]);
        let ctx = format!("seed {seed}, {kind:?}");
        match Wal::open_with_storage(options(), Arc::new(image.clone())) {
            Ok(wal) => {
                // Whatever was read, nothing may have been cut: every record
                // is still there (reading again, without faults now).
                assert!(wal.recovery_report().torn_tail.is_none(), "{ctx}: cut a tail: {:?}", wal.recovery_report());
                drop(wal);
                image.set_faults(Vec::new());
                let wal = Wal::open_with_storage(options(), Arc::new(image)).unwrap();
                let got: Vec<(u64, Vec<u8>)> =
                    wal.read_from(1).unwrap().map(|r| r.unwrap()).map(|r| (r.lsn, r.payload)).collect();
                assert_eq!(got, acked, "{ctx}");
            }
            Err(e) => {
                refused += 1;
                assert!(
                    matches!(e, Error::Io { .. } | Error::Corruption { .. }),
                    "{ctx}: expected an I/O or corruption error, got {e}"
                );
                // Refusing changed nothing: without the fault, all is there.
                image.set_faults(Vec::new());
                let wal = Wal::open_with_storage(options(), Arc::new(image)).unwrap();
                assert_eq!(wal.last_lsn(), 60, "{ctx}");
            }
        }
    }
    assert!(refused > 0, "some read fault must have been noticed");
}
