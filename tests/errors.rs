//! Errors a new user meets say what happened and what to do: each case
//! here once printed something false or unhelpful.

mod common;

use uring_wal::{Error, Options, RecordType, Wal};

#[test]
fn reading_from_lsn_0_reads_from_the_start_and_only_truncation_is_called_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(Options::new(dir.path()).segment_bytes(128 * 1024)).unwrap();
    // A fresh log: nothing was truncated, nothing is read.
    assert_eq!(wal.read_from(0).unwrap().count(), 0);
    assert_eq!(wal.replay_from(0, |_| Ok::<_, Error>(())).unwrap(), 0);
    for i in 0..200u64 {
        wal.append(RecordType::Put, &[i as u8; 3000]).unwrap();
    }
    assert_eq!(wal.read_from(0).unwrap().next().unwrap().unwrap().lsn, 1);
    assert_eq!(wal.read_range(0..=3).unwrap().map(|r| r.unwrap().lsn).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(wal.truncate_before(150).unwrap() > 0);
    let first = wal.first_lsn();
    assert!(first > 1);
    // 0 still means "from the start", which has moved.
    assert_eq!(wal.read_from(0).unwrap().next().unwrap().unwrap().lsn, first);
    // An LSN that was removed is named so, with where the log starts now.
    match wal.read_from(1) {
        Err(e @ Error::Truncated { requested: 1, first_available }) => {
            assert_eq!(first_available, first);
            assert!(e.to_string().contains("truncate_before"), "{e}");
        }
        other => panic!("expected Truncated, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_batch_made_by_the_log_refuses_a_record_too_large_at_push() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(Options::new(dir.path())).unwrap();
    let mut batch = wal.batch();
    batch.push(RecordType::Put, &[1; 100]).unwrap();
    match batch.push(RecordType::Put, &vec![2; 2 << 20]) {
        Err(Error::RecordTooLarge { len, max }) => assert_eq!((len, max), (2 << 20, 1 << 20)),
        other => panic!("expected RecordTooLarge at push, got {other:?}"),
    }
    assert_eq!(batch.len(), 1, "the refused record was not added");
    assert_eq!(wal.append_batch(&mut batch).unwrap(), Some(1..=1));
    // A batch of its own is checked when submitted, and left as it was.
    let mut own = uring_wal::Batch::new();
    own.push(RecordType::Put, &vec![3; 2 << 20]).unwrap();
    assert!(matches!(wal.append_batch(&mut own), Err(Error::RecordTooLarge { .. })));
    assert_eq!(own.len(), 1);
}

#[test]
fn options_that_cannot_work_say_how_to_fix_them_before_opening() {
    // Set explicitly, a record limit that does not fit the segments.
    let o = Options::new("/nonexistent/never-created").segment_bytes(1 << 20).record_bytes_max(1 << 20);
    let err = o.validate().unwrap_err().to_string();
    assert!(err.contains("Raise segment_bytes to at least") && err.contains("lower record_bytes_max"), "{err}");
    // Small segments alone just work.
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(Options::new(dir.path()).segment_bytes(1 << 20)).unwrap();
    wal.append(RecordType::Put, &vec![7; 200 << 10]).unwrap();
}
