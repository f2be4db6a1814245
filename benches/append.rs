//! Single-thread durable appends through the whole pipeline (channel, I/O
//! thread, write + sync, wake-up), per durability mode; and one producer
//! that keeps many records in flight (tickets) or appends batches, the path
//! that does not need a thread per record. Runs in a temporary directory;
//! set TMPDIR to measure another file system.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::VecDeque;
use std::time::Instant;

use uring_wal::{Batch, Durability, Options, RecordType, Wal};

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

/// Tickets one producer keeps in flight.
const PIPELINE: usize = 256;

/// Records per batch.
const BATCH: usize = 256;

fn one_producer(c: &mut Criterion) {
    let mut group = c.benchmark_group("append, 1 producer, group-sync");
    group.sample_size(20);
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Wal::open(Options::durable(dir.path())).expect("open");
    let payload = vec![0x5Au8; 256];
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new(format!("{PIPELINE} tickets in flight"), 256), |b| {
        b.iter_custom(|records| {
            let started = Instant::now();
            let mut window = VecDeque::with_capacity(PIPELINE);
            for _ in 0..records {
                if window.len() == PIPELINE {
                    let t: uring_wal::Ticket = window.pop_front().expect("full window");
                    t.wait().expect("durable");
                }
                window.push_back(wal.submit(RecordType::Put, &payload).expect("submit"));
            }
            for t in window {
                t.wait().expect("durable");
            }
            started.elapsed()
        });
    });
    let mut batch = Batch::new();
    group.bench_function(BenchmarkId::new(format!("batches of {BATCH}"), 256), |b| {
        b.iter_custom(|records| {
            let started = Instant::now();
            let mut left = records;
            while left > 0 {
                let n = left.min(BATCH as u64);
                for _ in 0..n {
                    batch.push(RecordType::Put, &payload).expect("push");
                }
                wal.append_batch(&mut batch).expect("durable");
                left -= n;
            }
            started.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, durable_append, one_producer);
criterion_main!(benches);
