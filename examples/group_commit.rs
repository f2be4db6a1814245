//! Many threads appending at once share flushes (group commit): one write
//! and one sync carry many records.
//!
//! `cargo run --release --example group_commit`

use std::sync::Arc;
use std::time::Instant;

use uring_wal::{Options, RecordType, Wal};

fn main() -> Result<(), uring_wal::Error> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Arc::new(Wal::open(Options::durable(dir.path()))?);
    let (threads, per_thread) = (32u64, 300u64);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let record = format!("thread {t} record {i}");
                    wal.append(RecordType::Put, record.as_bytes()).expect("append");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("writer thread");
    }
    let secs = started.elapsed().as_secs_f64();
    let s = wal.stats();
    println!(
        "{} durable appends from {threads} threads in {secs:.2} s: {:.0} records/s",
        s.appends,
        s.appends as f64 / secs
    );
    println!(
        "{} flushes, {:.1} records per flush, {} syncs; append latency p50 {:.0} us, p99 {:.0} us",
        s.flushes, s.records_per_flush, s.syncs, s.end_to_end.p50_us, s.end_to_end.p99_us
    );
    assert_eq!(wal.last_lsn(), threads * per_thread);
    Ok(())
}
