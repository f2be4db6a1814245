//! Appending and reading back on every I/O path: sizes, reopening, threads,
//! batches, tickets, durability modes, truncation.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{IoPath, PATHS, Rng, len_for, options, payload};
use uring_wal::{Batch, Durability, Error, Options, RecordType, Wal};

fn check_log(wal: &Wal, first: u64, last: u64, len_of: impl Fn(u64) -> usize) {
    let mut expect = first;
    for rec in wal.read_from(first).unwrap() {
        let rec = rec.unwrap();
        assert_eq!(rec.lsn, expect);
        assert_eq!(rec.payload, payload(rec.lsn, len_of(rec.lsn)), "payload of LSN {}", rec.lsn);
        expect += 1;
    }
    assert_eq!(expect, last + 1, "read up to LSN {last}");
}

#[test]
fn every_record_size_round_trips_on_every_path() {
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let max = 16 * 1024;
        // Every size up to 300, then a spread up to the maximum, then the maximum.
        let mut sizes: Vec<usize> = (0..=300).collect();
        sizes.extend((301..max).step_by(997));
        sizes.push(max);
        let wal = Wal::open(options(dir.path(), path)).unwrap();
        for (i, &len) in sizes.iter().enumerate() {
            let lsn = wal.append(RecordType::Put, &payload(i as u64 + 1, len)).unwrap();
            assert_eq!(lsn, i as u64 + 1);
        }
        let too_big = wal.append(RecordType::Put, &vec![1u8; max + 1]).unwrap_err();
        assert!(matches!(too_big, Error::RecordTooLarge { len, max: m } if len == max as u64 + 1 && m == max as u32));
        let len_of = |lsn: u64| sizes[lsn as usize - 1];
        check_log(&wal, 1, sizes.len() as u64, len_of);
        assert!(wal.stats().segments > 1, "{path:?}: the sweep spans several segments");
        drop(wal);
        let wal = Wal::open(options(dir.path(), path)).unwrap();
        assert_eq!(wal.last_lsn(), sizes.len() as u64);
        assert!(wal.recovery_report().torn_tail.is_none(), "{path:?}: {:?}", wal.recovery_report());
        check_log(&wal, 1, sizes.len() as u64, len_of);
    }
}

#[test]
fn segments_that_are_only_allocated_round_trip() {
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let opts = || options(dir.path(), path).prewrite_segments(false);
        let wal = Wal::open(opts()).unwrap();
        let n = 200u64;
        for lsn in 1..=n {
            assert_eq!(wal.append(RecordType::Put, &payload(lsn, len_for(lsn, 3000))).unwrap(), lsn);
        }
        let stats = wal.stats();
        assert!(stats.segments > 2 && stats.segments_created > 2, "{path:?}: {stats:?}");
        for f in common::segment_files(dir.path()) {
            assert_eq!(std::fs::metadata(&f).unwrap().len(), 128 * 1024, "{path:?}: {} has its full size", f.display());
        }
        check_log(&wal, 1, n, |l| len_for(l, 3000));
        drop(wal);
        let wal = Wal::open(opts()).unwrap();
        assert_eq!(wal.last_lsn(), n);
        assert!(wal.recovery_report().torn_tail.is_none(), "{path:?}: {:?}", wal.recovery_report());
        check_log(&wal, 1, n, |l| len_for(l, 3000));
    }
}

#[test]
fn reopening_continues_the_lsn_sequence() {
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..4u64 {
            let wal = Wal::open(options(dir.path(), path)).unwrap();
            assert_eq!(wal.last_lsn(), round * 25);
            assert_eq!(wal.next_lsn(), round * 25 + 1);
            for i in 1..=25 {
                let lsn = round * 25 + i;
                assert_eq!(wal.append(RecordType::Update, &payload(lsn, len_for(lsn, 3000))).unwrap(), lsn);
            }
            check_log(&wal, 1, (round + 1) * 25, |l| len_for(l, 3000));
        }
    }
}

#[test]
fn sixteen_threads_get_a_gapless_log_with_every_acknowledged_record_once() {
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(options(dir.path(), path)).unwrap());
        let threads: Vec<_> = (0..16u64)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(t + 1);
                    let mut acked = Vec::new();
                    let mut batch = Batch::new();
                    for i in 0..200u64 {
                        let tag = (t << 32) | i;
                        let len = 8 + rng.below(600) as usize;
                        let mut body = tag.to_le_bytes().to_vec();
                        body.resize(len, (tag % 251) as u8);
                        match i % 3 {
                            0 => acked.push((wal.append(RecordType::Put, &body).unwrap(), body)),
                            1 => {
                                let ticket = wal.submit(RecordType::Put, &body).unwrap();
                                acked.push((ticket.wait().unwrap(), body));
                            }
                            _ => {
                                batch.push(RecordType::Put, &body).unwrap();
                                let mut second = body.clone();
                                second[0] ^= 0x80;
                                batch.push(RecordType::Update, &second).unwrap();
                                let range = wal.append_batch(&mut batch).unwrap().unwrap();
                                assert!(batch.is_empty());
                                assert_eq!(range.end() - range.start(), 1);
                                acked.push((*range.start(), body));
                                acked.push((*range.end(), second));
                            }
                        }
                    }
                    acked
                })
            })
            .collect();
        let mut acked: Vec<(u64, Vec<u8>)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        acked.sort_by_key(|(lsn, _)| *lsn);
        let total = acked.len() as u64;
        assert_eq!(acked.iter().map(|(l, _)| *l).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
        let read: Vec<_> = wal.read_from(1).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(read.len() as u64, total, "{path:?}");
        for (rec, (lsn, body)) in read.iter().zip(&acked) {
            assert_eq!((rec.lsn, &rec.payload), (*lsn, body));
        }
        let stats = wal.stats();
        assert!(stats.flushes < stats.appends, "{path:?}: group commit shares flushes: {stats:?}");
        drop(wal);
        let wal = Wal::open(options(dir.path(), path)).unwrap();
        assert_eq!(wal.last_lsn(), total);
    }
}

#[test]
fn every_durability_mode_round_trips_and_syncs_on_request() {
    let modes = [
        Durability::GroupSync,
        Durability::Dsync,
        Durability::Periodic { interval: Duration::from_millis(20) },
        Durability::None,
    ];
    for path in PATHS {
        for mode in modes {
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(options(dir.path(), path).durability(mode)).unwrap();
            for lsn in 1..=300 {
                assert_eq!(wal.append(RecordType::Put, &payload(lsn, len_for(lsn, 900))).unwrap(), lsn);
            }
            assert_eq!(wal.last_lsn(), 300);
            match mode {
                Durability::GroupSync | Durability::Dsync => assert_eq!(wal.durable_lsn(), 300),
                Durability::Periodic { .. } => {
                    assert!(wal.wait_durable(300, Some(Duration::from_secs(5))).unwrap(), "periodic sync ran");
                }
                _ => {}
            }
            assert_eq!(wal.sync().unwrap(), 300, "{path:?} {mode:?}");
            assert_eq!(wal.durable_lsn(), 300);
            drop(wal);
            let wal = Wal::open(options(dir.path(), path).durability(mode)).unwrap();
            check_log(&wal, 1, 300, |l| len_for(l, 900));
        }
    }
}

#[test]
fn tickets_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    let tickets: Vec<_> = (1..=100).map(|lsn| wal.submit(RecordType::Noop, &payload(lsn, 10)).unwrap()).collect();
    for (i, t) in tickets.iter().enumerate() {
        assert_eq!(t.lsn(), i as u64 + 1);
    }
    let mut last = tickets.into_iter().last().unwrap();
    assert_eq!(last.wait_timeout(Duration::from_secs(10)).unwrap(), Some(100));
    assert!(wal.last_lsn() >= 100);
    let mut batch = Batch::new();
    assert_eq!(wal.append_batch(&mut batch).unwrap(), None, "an empty batch is not an append");
    for lsn in 101..=150 {
        batch.push(RecordType::Application(7), &payload(lsn, 33)).unwrap();
    }
    assert_eq!(batch.len(), 50);
    assert_eq!(wal.append_batch(&mut batch).unwrap(), Some(101..=150));
    assert!(Batch::new().push(RecordType::Application(u16::MAX), b"").is_err());
    let kinds: Vec<_> = wal.read_from(99).unwrap().map(|r| r.unwrap().kind).collect();
    assert_eq!(kinds[..2], [RecordType::Noop, RecordType::Noop]);
    assert!(kinds[2..].iter().all(|k| *k == RecordType::Application(7)));
    let mut seen = 0;
    let n: u64 = wal
        .replay_from(120, |r| {
            assert_eq!(r.payload, &payload(r.lsn, 33)[..]);
            seen += 1;
            Ok::<_, Error>(())
        })
        .unwrap();
    assert_eq!((n, seen), (31, 31));
    // A dropped ticket neither blocks nor loses its record.
    drop(wal.submit(RecordType::Put, b"dropped ticket").unwrap());
    assert_eq!(wal.append(RecordType::Put, b"after").unwrap(), 152);
    assert_eq!(wal.read_from(151).unwrap().next().unwrap().unwrap().payload, b"dropped ticket");
}

#[test]
fn truncate_before_removes_whole_old_segments_durably_and_recycles_them() {
    for path in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let opts = || options(dir.path(), path).spare_segments_max(2);
        let wal = Wal::open(opts()).unwrap();
        for lsn in 1..=400 {
            wal.append(RecordType::Put, &payload(lsn, len_for(lsn, 2000))).unwrap();
        }
        let segments_before = wal.stats().segments;
        assert!(segments_before >= 4);
        let removed = wal.truncate_before(300).unwrap();
        assert!(removed >= 2, "{path:?}: removed {removed}");
        let first = wal.first_lsn();
        assert!(first > 1 && first <= 300);
        assert!(
            matches!(wal.read_from(1), Err(Error::Truncated { requested: 1, first_available }) if first_available == first)
        );
        check_log(&wal, first, 400, |l| len_for(l, 2000));
        // Write on into the recycled files; none of their old records may reappear.
        for lsn in 401..=900 {
            wal.append(RecordType::Put, &payload(lsn, len_for(lsn, 2000))).unwrap();
        }
        check_log(&wal, first, 900, |l| len_for(l, 2000));
        drop(wal);
        let wal = Wal::open(opts()).unwrap();
        assert_eq!(wal.first_lsn(), first);
        assert_eq!(wal.last_lsn(), 900);
        assert!(wal.recovery_report().torn_tail.is_none());
        check_log(&wal, first, 900, |l| len_for(l, 2000));
        // Truncating everything but the active segment.
        wal.truncate_before(u64::MAX).unwrap();
        assert_eq!(wal.stats().segments, 1);
        let after = wal.first_lsn();
        drop(wal);
        let wal = Wal::open(opts()).unwrap();
        assert_eq!((wal.first_lsn(), wal.last_lsn()), (after, 900));
    }
}

#[test]
fn reopening_with_a_larger_record_limit_moves_larger_records_to_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let small = || options(dir.path(), IoPath::UringDirect).record_bytes_max(1024);
    let large = || options(dir.path(), IoPath::UringDirect).record_bytes_max(8192);
    let wal = Wal::open(small()).unwrap();
    for lsn in 1..=10 {
        wal.append(RecordType::Put, &payload(lsn, 1000)).unwrap();
    }
    assert!(wal.append(RecordType::Put, &payload(11, 1025)).is_err());
    drop(wal);
    let wal = Wal::open(large()).unwrap();
    let segments = wal.stats().segments;
    for lsn in 11..=30 {
        wal.append(RecordType::Put, &payload(lsn, if lsn % 2 == 0 { 8000 } else { 500 })).unwrap();
    }
    assert!(wal.stats().segments > segments, "the first large record opened a new segment");
    drop(wal);
    // And reopening with the small limit again still reads everything.
    for opts in [large(), small()] {
        let wal = Wal::open(opts).unwrap();
        assert_eq!(wal.last_lsn(), 30);
        assert!(wal.recovery_report().torn_tail.is_none());
        check_log(&wal, 1, 30, |l| {
            if l <= 10 {
                1000
            } else if l % 2 == 0 {
                8000
            } else {
                500
            }
        });
    }
}

#[test]
fn stats_count_and_time_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    wal.append(RecordType::Put, &payload(t * 100 + i, 500)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = wal.stats();
    assert_eq!((s.appends, s.requests, s.last_lsn, s.durable_lsn), (400, 400, 400, 400));
    // Printed for a person: short, every part named.
    let text = s.to_string();
    assert!(text.lines().count() <= 12, "{text}");
    for part in ["LSN: last 400, durable 400", "appended: 400 records", "flushed:", "segments:", "append, end to end:"]
    {
        assert!(text.contains(part), "{part} missing from:\n{text}");
    }
    assert_eq!(s.append_bytes, 400 * 500);
    assert!(s.flushes >= 1 && s.flushes <= 400 && s.records_per_flush >= 1.0, "{s:?}");
    assert!(s.flush_bytes >= s.append_bytes && s.padding_bytes > 0);
    // Flushes written while a sync ran share the next one; segment headers
    // are synced too.
    assert!(s.syncs >= 1 && s.syncs <= s.flushes + s.segments_activated, "{s:?}");
    assert_eq!((s.queue_requests, s.queue_bytes), (0, 0));
    assert_eq!(s.backend, Some(uring_wal::BackendKind::IoUring));
    assert!(s.direct_io);
    assert_eq!(s.end_to_end.count, 400);
    assert_eq!(s.queue_wait.count, 400);
    assert_eq!(s.flush.count, s.flushes);
    // Each stage is part of the whole.
    assert!(s.flush.p50_us > 0.0 && s.flush.p50_us <= s.end_to_end.max_us, "{s:?}");
    assert!(s.end_to_end.p50_us <= s.end_to_end.p99_us && s.end_to_end.p99_us <= s.end_to_end.max_us);
    assert!(s.segments_created >= 1);
}

#[test]
fn a_second_opener_in_the_process_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(Options::durable(dir.path())).unwrap();
    match Wal::open(Options::durable(dir.path())) {
        Err(Error::AlreadyOpen { dir: d, left_behind: false }) => assert_eq!(d, dir.path()),
        other => panic!("expected AlreadyOpen, got {other:?}"),
    }
    drop(wal);
    // Released on close: reopening works at once.
    Wal::open(Options::durable(dir.path())).unwrap();
}

/// A child forked by another thread holds a copy of every descriptor until
/// it calls exec, the lock's among them: a log closed meanwhile must still
/// reopen at once in its own process, not fail with `Locked`.
#[test]
fn a_log_reopens_while_a_forked_child_still_holds_a_copy_of_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(Options::durable(dir.path())).unwrap();
    wal.append(RecordType::Put, b"before the fork").unwrap();
    // SAFETY: the child calls only async-signal-safe functions (nanosleep,
    // _exit) before it ends; the parent only waits for it.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // Holds the descriptors for 100 ms, as one slow to exec would.
        let nap = libc::timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        // SAFETY: as above.
        unsafe {
            libc::nanosleep(&nap, std::ptr::null_mut());
            libc::_exit(0);
        }
    }
    assert!(child > 0, "fork failed");
    wal.close().unwrap();
    let reopened = Wal::open(Options::durable(dir.path()));
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` outlives the call.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    let wal = reopened.unwrap_or_else(|e| panic!("reopening while a child held a copy of the lock: {e}"));
    assert_eq!(wal.last_lsn(), 1);
}

#[test]
fn foreign_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README"), b"mine").unwrap();
    std::fs::write(dir.path().join("00000000000000000001.wal.bak"), b"also mine").unwrap();
    let wal = Wal::open(options(dir.path(), IoPath::UringDirect)).unwrap();
    for lsn in 1..=200 {
        wal.append(RecordType::Put, &payload(lsn, 3000)).unwrap();
    }
    wal.truncate_before(150).unwrap();
    assert_eq!(wal.recovery_report().ignored_entries, 2);
    drop(wal);
    assert_eq!(std::fs::read(dir.path().join("README")).unwrap(), b"mine");
    assert_eq!(std::fs::read(dir.path().join("00000000000000000001.wal.bak")).unwrap(), b"also mine");
    let unique: HashSet<_> = common::segment_files(dir.path()).into_iter().collect();
    assert!(!unique.is_empty());
}

/// Pages of `path` in the page cache (`mincore` over a mapping of it).
fn resident_pages(path: &std::path::Path) -> usize {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    if len == 0 {
        return 0;
    }
    let page = 4096;
    // SAFETY: a fresh shared read-only mapping of an open file; nothing
    // reads through it, and it is unmapped below.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    assert_ne!(addr, libc::MAP_FAILED, "mmap {}", path.display());
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr` maps `len` bytes and `vec` holds one byte per page of them.
    let ret = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    // SAFETY: the mapping made above, of this length, unused from here on.
    unsafe { libc::munmap(addr, len) };
    assert_eq!(ret, 0, "mincore {}", path.display());
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

/// A log of `n` records of 3000 bytes over several segments, every one of
/// its files then read through the page cache, as another tool would.
/// Returns the log and its files, oldest first.
fn log_with_cached_files(dir: &std::path::Path, path: IoPath, n: u64) -> (Wal, Vec<std::path::PathBuf>) {
    let wal = Wal::open(options(dir, path)).unwrap();
    for lsn in 1..=n {
        wal.append(RecordType::Put, &payload(lsn, 3000)).unwrap();
    }
    let files = common::segment_files(dir);
    assert!(files.len() > 2, "{path:?}: the log spans several segments");
    for f in &files {
        std::fs::read(f).unwrap();
    }
    assert!(files.iter().map(|f| resident_pages(f)).sum::<usize>() > 0, "the reads cached pages");
    (wal, files)
}

#[test]
fn recovery_leaves_nothing_of_the_log_in_the_page_cache() {
    for path in [IoPath::UringDirect, IoPath::ThreadedDirect] {
        let dir = tempfile::tempdir().unwrap();
        let n = 200u64;
        // Recovery reads through the page cache; pages cached before it
        // are dropped too.
        let (wal, _) = log_with_cached_files(dir.path(), path, n);
        drop(wal);
        let wal = Wal::open(options(dir.path(), path)).unwrap();
        assert_eq!(wal.last_lsn(), n);
        assert_eq!(wal.recovery_report().records, n);
        for f in common::segment_files(dir.path()) {
            assert_eq!(resident_pages(&f), 0, "{path:?}: {} is still cached after recovery", f.display());
        }
        check_log(&wal, 1, n, |_| 3000);
    }
}

#[test]
fn a_replay_reads_sealed_segments_through_the_page_cache_and_leaves_nothing_cached() {
    for path in [IoPath::UringDirect, IoPath::ThreadedDirect] {
        let dir = tempfile::tempdir().unwrap();
        let n = 200u64;
        let (wal, files) = log_with_cached_files(dir.path(), path, n);
        // A replay to the end scans the sealed segments (dropping their
        // cache first and after); O_DIRECT reads would leave it in place.
        check_log(&wal, 1, n, |_| 3000);
        let sealed = &files[..files.len() - 2];
        for f in sealed {
            assert_eq!(resident_pages(f), 0, "{path:?}: {} is still cached after a replay", f.display());
        }
    }
}

#[test]
fn a_log_on_tmpfs_says_nothing_survives_a_reboot() {
    let disk = tempfile::tempdir().unwrap();
    let wal = Wal::open(Options::durable(disk.path())).unwrap();
    assert!(!wal.backend().volatile, "{:?}", wal.backend().device.fs_type);
    drop(wal);
    let shm = std::path::Path::new("/dev/shm");
    let Ok(dir) = tempfile::tempdir_in(shm) else {
        eprintln!("SKIPPED: no /dev/shm to open a log on tmpfs");
        return;
    };
    let wal = Wal::open(Options::durable(dir.path()).segment_bytes(1 << 20)).unwrap();
    let fs = wal.backend().device.fs_type.clone();
    if fs != "tmpfs" {
        eprintln!("SKIPPED: /dev/shm is {fs} here, not tmpfs");
        return;
    }
    assert!(wal.backend().volatile, "a log on tmpfs must say it is volatile");
    wal.append(RecordType::Put, b"in memory only").unwrap();
}
