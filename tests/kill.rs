//! A child process appends in a loop and reports each acknowledged LSN; it is
//! killed with SIGKILL at random moments, and a new child continues the log.
//! After every kill, every LSN any child reported, in this round or an
//! earlier one, must be recovered with exactly its payload, no LSN is
//! reported twice, and the log must be a gapless run of well-formed records.
//!
//! `URING_WAL_KILLS` sets the kills per I/O path (default 8; 3 paths).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{IoPath, PATHS, Rng, options};
use uring_wal::{Error, RecordType, Wal};

const CHILD_DIR: &str = "URING_WAL_KILL_CHILD_DIR";
const CHILD_PATH: &str = "URING_WAL_KILL_CHILD_PATH";

/// A payload that carries its writer and sequence, and a checksum of both, so
/// any record can be checked without knowing which process wrote it.
fn body(writer: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len.max(24));
    b.extend_from_slice(&writer.to_le_bytes());
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&(writer.wrapping_mul(31) ^ seq.wrapping_mul(0x9E37_79B9)).to_le_bytes());
    while b.len() < len {
        b.push((b.len() as u64 ^ seq) as u8);
    }
    b
}

fn check_body(b: &[u8]) -> Option<(u64, u64)> {
    let writer = u64::from_le_bytes(b.get(0..8)?.try_into().ok()?);
    let seq = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    (body(writer, seq, b.len()) == b).then_some((writer, seq))
}

fn path_named(name: &str) -> IoPath {
    PATHS.into_iter().find(|p| format!("{p:?}") == name).expect("known path")
}

/// The child: four writer threads append until killed, printing
/// `lsn writer seq len` for each acknowledged append.
#[test]
#[ignore = "entry point of the child process of the SIGKILL test"]
fn kill_child_writer() {
    let (Ok(dir), Ok(path)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_PATH)) else {
        return;
    };
    let wal = Arc::new(Wal::open(options(Path::new(&dir), path_named(&path))).unwrap());
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let seed = std::process::id() as u64;
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (wal, out) = (wal.clone(), out.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(seed * 8 + t + 1);
                let writer = (seed << 8) | t;
                for seq in 0.. {
                    let len = 24 + rng.below(2000) as usize;
                    let lsn = wal.append(RecordType::Put, &body(writer, seq, len)).unwrap();
                    use std::io::Write;
                    let mut o = out.lock().unwrap();
                    writeln!(o, "{lsn} {writer} {seq} {len}").unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn open_after_kill(dir: &Path, path: IoPath) -> Wal {
    // Right after a kill the dead process's writes may still drain; its lock
    // is held until they have, and opening waits for that (lock_wait): no
    // retry loop here, as none is needed by a service restarted at once.
    Wal::open(options(dir, path)).unwrap_or_else(|e| panic!("{path:?}: reopen right after kill: {e}"))
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_record() {
    let kills: u64 = std::env::var("URING_WAL_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let exe = std::env::current_exe().unwrap();
    let mut total_kills = 0;
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(0xC0FFEE ^ kills);
        // Every (LSN -> writer, seq, len) acknowledged in any round so far.
        let mut acked_ever: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
        for round in 0..kills {
            let mut child = Command::new(&exe)
                .args(["--exact", "kill_child_writer", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_DIR, dir.path())
                .env(CHILD_PATH, format!("{path:?}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let reader = std::thread::spawn(move || {
                let mut acked = Vec::new();
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let f: Vec<u64> = line.split(' ').filter_map(|x| x.parse().ok()).collect();
                    if f.len() == 4 {
                        acked.push((f[0], f[1], f[2], f[3]));
                    }
                }
                acked
            });
            // Let it start (and recover) and append for a random while.
            std::thread::sleep(Duration::from_millis(40 + rng.below(160)));
            if round == 0 {
                // While the child runs, a second opener is refused and told who holds it.
                match Wal::open(options(dir.path(), path)) {
                    Err(Error::Locked { holder_pid, .. }) => assert_eq!(holder_pid, Some(child.id())),
                    other => panic!("{path:?}: expected Locked while the child runs, got {:?}", other.map(|_| ())),
                }
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let acked = reader.join().unwrap();
            total_kills += 1;
            for (lsn, writer, seq, len) in acked {
                // An LSN is acknowledged once: a later round acknowledging it
                // again means an earlier acknowledgement was overwritten.
                let before = acked_ever.insert(lsn, (writer, seq, len));
                assert!(
                    before.is_none(),
                    "{path:?} round {round}: LSN {lsn} acknowledged again ({writer}, {seq}), first as {before:?}"
                );
            }

            let wal = open_after_kill(dir.path(), path);
            let log: Vec<_> = wal.read_from(1).unwrap().map(|r| r.unwrap()).collect();
            assert_eq!(log.len() as u64, wal.last_lsn(), "{path:?} round {round}: gapless from 1");
            for (i, rec) in log.iter().enumerate() {
                assert_eq!(rec.lsn, i as u64 + 1);
                assert!(check_body(&rec.payload).is_some(), "{path:?} round {round}: LSN {} malformed", rec.lsn);
            }
            // Every record acknowledged in this round or any earlier one.
            for (&lsn, &(writer, seq, len)) in &acked_ever {
                let rec = log.get(lsn as usize - 1);
                assert_eq!(
                    rec.map(|r| (check_body(&r.payload), r.payload.len())),
                    Some((Some((writer, seq)), len as usize)),
                    "{path:?} round {round}: acknowledged LSN {lsn} (writer {writer} seq {seq}, {len} bytes)"
                );
            }
        }
        assert!(!acked_ever.is_empty(), "{path:?}: the child appended something");
    }
    assert!(total_kills >= 20 || kills < 7, "at least 20 kills by default");
}
