//! One writer per directory, and a restart right after a crash that just
//! works: an opener waits (up to `Options::lock_wait`) while the lock's
//! holder has exited and the kernel drains its I/O; a running holder, or a
//! second opener in the same process, is told at once.

mod common;
mod fusefs;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fusefs::{Faults, FsOptions};
use uring_wal::{Error, Options, RecordType, Wal};

const CHILD_DIR: &str = "URING_WAL_LOCK_CHILD_DIR";

/// The child: appends until killed, printing each acknowledged LSN.
#[test]
#[ignore = "entry point of the child process of the lock tests"]
fn lock_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let wal = Wal::open(Options::new(&dir).segment_bytes(1 << 20)).unwrap();
    for i in 0u64.. {
        let lsn = wal.append(RecordType::Put, &[i as u8; 3000]).unwrap();
        println!("{lsn}");
    }
}

/// Starts the child on `dir` and waits for its first acknowledgement.
fn start_child(dir: &Path) -> (std::process::Child, std::thread::JoinHandle<u64>) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "lock_child_writer", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut last = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(lsn) = line.trim().parse::<u64>() {
                if last == 0 {
                    let _ = first_tx.send(());
                }
                last = lsn;
            }
        }
        last
    });
    first_rx.recv_timeout(Duration::from_secs(10)).expect("the child acknowledged nothing");
    (child, reader)
}

#[test]
fn a_restart_right_after_a_kill_waits_for_the_dead_writers_io_to_drain() {
    // The dead process's ring holds the lock until its last write completes:
    // here FUSE holds that write for 600 ms after the kill.
    let Some(mount) = fusefs::mount_or_skip(FsOptions { threads: 4, ..FsOptions::default() }) else { return };
    let dir = mount.path().join("wal");
    let (mut child, reader) = start_child(&dir);
    mount.fs.set_faults(Faults { hang_write: Some(mount.fs.stats().data_writes + 5), ..Faults::default() });
    let t0 = Instant::now();
    while mount.fs.stats().faults == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "the child's write was never held");
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    let last_acked = reader.join().unwrap();
    let fs = mount.fs.clone();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        fs.release();
    });
    // Without waiting, the open fails at once: the holder is gone, yet its lock is held.
    match Wal::open(Options::new(&dir).lock_wait(Duration::ZERO)) {
        Err(Error::Locked { holder_pid, holder_exited: true, .. }) => assert_eq!(holder_pid, Some(pid)),
        Err(e) => panic!("expected Locked by an exited holder, got {e}"),
        Ok(_) => panic!("opened while the dead writer's write was still held: the lock no longer covers its I/O"),
    }
    let started = Instant::now();
    let wal = Wal::open(Options::new(&dir)).unwrap_or_else(|e| panic!("open after the kill: {e}"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "opened after {waited:?}, before the held write completed");
    assert!(wal.last_lsn() >= last_acked, "LSN {last_acked} was acknowledged, the log ends at {}", wal.last_lsn());
    eprintln!("opened {waited:?} after the kill, at LSN {} (last acknowledged {last_acked})", wal.last_lsn());
    releaser.join().unwrap();
}

#[test]
fn a_running_holder_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, reader) = start_child(dir.path());
    let started = Instant::now();
    let opened = Wal::open(Options::new(dir.path()));
    let took = started.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    match opened {
        Err(e @ Error::Locked { holder_exited: false, .. }) => {
            assert!(e.to_string().contains("running"), "{e}");
        }
        Err(e) => panic!("expected Locked by a running holder, got {e}"),
        Ok(_) => panic!("opened a directory another process writes"),
    }
    assert!(took < Duration::from_millis(500), "a running holder was waited for: {took:?}");
}

#[test]
fn a_second_open_in_the_same_process_fails_at_once_and_a_closed_log_reopens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(Options::new(dir.path())).unwrap();
    wal.append(RecordType::Put, b"one").unwrap();
    let started = Instant::now();
    match Wal::open(Options::new(dir.path())) {
        Err(e @ Error::AlreadyOpen { left_behind: false, .. }) => assert!(e.to_string().contains("share"), "{e}"),
        Err(e) => panic!("expected AlreadyOpen, got {e}"),
        Ok(_) => panic!("opened a directory twice"),
    }
    assert!(started.elapsed() < Duration::from_millis(100), "took {:?}", started.elapsed());
    // Through another path to the same directory too.
    let other = dir.path().join(".").join("..").join(dir.path().file_name().unwrap());
    assert!(matches!(Wal::open(Options::new(&other)), Err(Error::AlreadyOpen { .. })));
    let wal = Arc::new(wal);
    Arc::try_unwrap(wal).unwrap().close().unwrap();
    let started = Instant::now();
    let wal = Wal::open(Options::new(dir.path())).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(wal.last_lsn(), 1);
}

#[test]
fn a_file_given_as_the_directory_is_named_for_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"mine").unwrap();
    match Wal::open(Options::new(&file)) {
        Err(e @ Error::UnexpectedFile { .. }) => assert!(e.to_string().contains("not a directory"), "{e}"),
        Err(e) => panic!("expected UnexpectedFile, got {e}"),
        Ok(_) => panic!("opened a file as a log directory"),
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
}
