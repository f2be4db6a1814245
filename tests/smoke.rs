use uring_wal::{Options, RecordType, Wal};

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        Options::durable(dir.path())
            .segment_bytes(256 * 1024)
            .record_bytes_max(16 * 1024)
    };
    let wal = Wal::open(opts()).unwrap();
    eprintln!("{:?}", wal.backend());
    for i in 0..2000u64 {
        let lsn = wal
            .append(RecordType::Put, &i.to_le_bytes().repeat((i % 50) as usize))
            .unwrap();
        assert_eq!(lsn, i + 1);
    }
    eprintln!("{:?}", wal.stats());
    drop(wal);
    let wal = Wal::open(opts()).unwrap();
    eprintln!("{:?}", wal.recovery_report());
    assert_eq!(wal.last_lsn(), 2000);
    let mut n = 0;
    for rec in wal.read_from(1).unwrap() {
        let rec = rec.unwrap();
        n += 1;
        assert_eq!(
            rec.payload,
            (rec.lsn - 1)
                .to_le_bytes()
                .repeat(((rec.lsn - 1) % 50) as usize)
        );
    }
    assert_eq!(n, 2000);
    assert_eq!(wal.append(RecordType::Delete, b"x").unwrap(), 2001);
}
