//! Encoding a record into a flush buffer: copy, header, CRC32C; and the
//! split the log uses, where the producer computes the payload's CRC and the
//! I/O thread only copies and folds in the header. And checking a padding
//! record against computing a CRC over it.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use uring_wal::format::flush::FlushLayout;
use uring_wal::format::record::{
    EncodeHeader, RECORD_HEADER_BYTES, checksum, encode, encode_padding, encode_with_payload_crc, verify,
};

/// One benchmark per payload size of `encode_one(buf, header, payload,
/// payload_crc)`.
fn bench_sizes(
    c: &mut Criterion,
    name: &str,
    sizes: &[usize],
    encode_one: fn(&mut [u8], EncodeHeader, &[u8], u32) -> usize,
) {
    let mut group = c.benchmark_group(name);
    for &size in sizes {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let crc = crc32c::crc32c(&payload);
        let mut buf = vec![0u8; size + 64];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            let mut lsn = 1u64;
            b.iter(|| {
                lsn += 1;
                let h = EncodeHeader { lsn, segment_id: 7, kind: 1, sync_lag: 1 };
                black_box(encode_one(&mut buf, h, black_box(p), crc))
            });
        });
    }
    group.finish();
}

fn encode_records(c: &mut Criterion) {
    bench_sizes(c, "encode+crc32c", &[0, 256, 4096, 65536], |buf, h, p, _| encode(buf, h, p));
}

fn encode_with_crc_from_the_producer(c: &mut Criterion) {
    // The I/O thread's share of a record once the producer has its CRC.
    bench_sizes(c, "encode, payload CRC precomputed", &[256, 4096, 65536], encode_with_payload_crc);
}

fn lay_out_a_flush(c: &mut Criterion) {
    // 64 records of 256 bytes laid out and padded: one group commit's CPU work.
    let payload = vec![0xA5u8; 256];
    let mut buf = vec![0u8; 64 * 1024];
    c.bench_function("flush of 64 x 256 B", |b| {
        let mut lsn = 1u64;
        b.iter(|| {
            let mut f = FlushLayout::new(4096, 3, 4096, 1 << 26);
            for _ in 0..64 {
                f.push(&mut buf, EncodeHeader { lsn, segment_id: 3, kind: 1, sync_lag: 1 }, &payload);
                lsn += 1;
            }
            black_box(f.finish(&mut buf, lsn, 1))
        });
    });
}

fn check_padding(c: &mut Criterion) {
    // What recovery and readers spend on a flush's padding: `verify` checks
    // for zeros and looks up their CRC; a CRC32C over the same bytes is what
    // it cost before (and what any other record costs).
    let mut group = c.benchmark_group("check padding");
    for total in [512usize, 1024, 3840] {
        let mut buf = vec![0u8; total];
        encode_padding(&mut buf, total, 9, 3, 1);
        let (head, payload) = buf.split_at(RECORD_HEADER_BYTES);
        let head: &[u8; RECORD_HEADER_BYTES] = head.try_into().expect("32 bytes");
        group.throughput(Throughput::Bytes(total as u64));
        group.bench_with_input(BenchmarkId::new("verify", total), &payload, |b, p| {
            b.iter(|| black_box(verify(black_box(head), black_box(p))));
        });
        group.bench_with_input(BenchmarkId::new("crc32c", total), &payload, |b, p| {
            b.iter(|| black_box(checksum(black_box(head), black_box(p))));
        });
    }
    group.finish();
}

criterion_group!(benches, encode_records, encode_with_crc_from_the_producer, lay_out_a_flush, check_padding);
criterion_main!(benches);
