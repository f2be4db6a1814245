//! bench-harness: measures uring-wal. (Stub: opens a log, appends, prints.)

use std::time::Instant;

use clap::Parser;
use uring_wal::{Options, RecordType, Wal};

#[derive(Parser, Debug)]
#[command(version, about = "Measures uring-wal append latency, throughput and recovery")]
struct Args {
    /// Data directory (created if missing).
    #[arg(long, default_value = "wal-bench-data")]
    dir: std::path::PathBuf,
    /// Records to append.
    #[arg(long, default_value_t = 10_000)]
    ops: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 256)]
    record_bytes: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let wal = Wal::open(Options::durable(&args.dir))?;
    let backend = wal.backend();
    println!(
        "backend {:?} direct_io {} block {} fs {}",
        backend.kind, backend.direct_io, backend.block_bytes, backend.device.fs_type
    );
    let payload = vec![0xA5u8; args.record_bytes];
    let start = Instant::now();
    for _ in 0..args.ops {
        wal.append(RecordType::Put, &payload)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} durable appends of {} B in {:.3} s: {:.0} ops/s, mean {:.1} us",
        args.ops,
        args.record_bytes,
        secs,
        args.ops as f64 / secs,
        secs * 1e6 / args.ops as f64
    );
    Ok(())
}
