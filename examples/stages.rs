//! Where one appender's time goes: the log's per-stage histograms after a
//! closed loop of single appends, for each durability mode, sleeping and
//! spinning (docs/BENCHMARKS.md, "What was tried": the hand-offs and
//! wake-ups that set one appender's latency).
//!
//! `cargo run --release --example stages -- [SECONDS] [DIR]` (DIR on the
//! file system to measure; default a temporary directory under /tmp)

use std::time::{Duration, Instant};

use uring_wal::{Durability, Options, RecordType, Stats, Wal};

fn main() -> Result<(), uring_wal::Error> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let base = args.next().map_or_else(std::env::temp_dir, Into::into);
    println!("stage (us)        mode         spin  p50      p99      p99.9    mean");
    for round in 0..2 {
        for durability in [Durability::GroupSync, Durability::Dsync] {
            for spin in [false, true] {
                let dir = tempfile::tempdir_in(&base).expect("temporary directory");
                let mut options = Options::durable(dir.path()).durability(durability);
                if spin {
                    options = options.spin();
                }
                let wal = Wal::open(options)?;
                let payload = [7u8; 256];
                let end = Instant::now() + Duration::from_secs_f64(secs);
                while Instant::now() < end {
                    wal.append(RecordType::Put, &payload)?;
                }
                let s = wal.stats();
                wal.close()?;
                print(round, durability, spin, &s);
            }
        }
    }
    Ok(())
}

fn print(round: u32, durability: Durability, spin: bool, s: &Stats) {
    let mode = format!("{durability:?} r{round}");
    // Preparation in the window: segments zero-filled, and how often the
    // I/O thread waited for one (each wait is a stall of every append).
    println!(
        "segments          {mode:<12} {:<5} created {}, recycled {}, I/O thread waited for one {} times",
        if spin { "yes" } else { "no" },
        s.segments_created,
        s.segments_recycled,
        s.segment_stalls
    );
    for (name, l) in [("queue wait", &s.queue_wait), ("flush (device)", &s.flush), ("end to end", &s.end_to_end)] {
        println!(
            "{name:<17} {mode:<12} {:<5} {:<8.1} {:<8.1} {:<8.1} {:.1}",
            if spin { "yes" } else { "no" },
            l.p50_us,
            l.p99_us,
            l.p999_us,
            l.mean_us
        );
    }
}
