//! Single-thread durable appends through the whole pipeline (channel, I/O
//! thread, write + sync, wake-up), per durability mode. Runs in a temporary
//! directory; set TMPDIR to measure another file system.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use uring_wal::{Durability, Options, RecordType, Wal};

fn durable_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append, 1 thread");
    group.sample_size(30);
    for (name, durability) in [("group-sync", Durability::GroupSync), ("dsync", Durability::Dsync)] {
        for size in [256usize, 4096] {
            let dir = tempfile::tempdir().expect("temporary directory");
            let wal = Wal::open(Options::durable(dir.path()).durability(durability)).expect("open");
            let payload = vec![0x5Au8; size];
            group.throughput(Throughput::Elements(1));
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| wal.append(RecordType::Put, &payload).expect("append"));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, durable_append);
criterion_main!(benches);
