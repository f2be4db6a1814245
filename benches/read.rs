//! Reading one record at a random LSN of a 1 GiB log (64 MiB segments,
//! 4 KiB records): the cost of `read_range(lsn..=lsn)` from opening the
//! reader to the payload. With the sparse index it should not depend on
//! where the record lies in its segment. Set URING_WAL_READ_BENCH_MIB to
//! change the log size; TMPDIR to measure another file system.

use criterion::{Criterion, criterion_group, criterion_main};

use uring_wal::{Batch, Options, RecordType, Wal};

const RECORD_BYTES: usize = 4000;

fn random_read(c: &mut Criterion) {
    let log_mib: u64 = std::env::var("URING_WAL_READ_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = || Options::new(dir.path()).segment_bytes(64 << 20).record_bytes_max(4096);
    let records = log_mib * (1 << 20) / 4096;
    {
        let wal = Wal::open(options()).expect("open");
        let payload = vec![0xA5u8; RECORD_BYTES];
        let mut batch = Batch::new();
        for i in 1..=records {
            batch.push(RecordType::Put, &payload).expect("push");
            if i % 256 == 0 || i == records {
                wal.append_batch(&mut batch).expect("append");
            }
        }
        wal.close().expect("close");
    }
    // Reopened, so the index is the one recovery rebuilt.
    let wal = Wal::open(options()).expect("reopen");
    assert_eq!(wal.last_lsn(), records);
    let mut group = c.benchmark_group(format!("read one record, {log_mib} MiB log"));
    group.sample_size(50);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    group.bench_function("random LSN", |b| {
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let lsn = 1 + x % records;
            let mut reader = wal.read_range(lsn..=lsn).expect("range");
            let record = reader.next().expect("one record").expect("valid");
            assert_eq!(record.payload.len(), RECORD_BYTES);
            reader.bytes_read()
        });
    });
    group.finish();
}

criterion_group!(benches, random_read);
criterion_main!(benches);
