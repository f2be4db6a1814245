//! Following the log as it grows, as a replication layer would: each record
//! arrives once it is durable.
//!
//! `cargo run --example tail_follow`

use std::sync::Arc;
use std::time::Duration;

use uring_wal::{Options, RecordType, Wal};

fn main() -> Result<(), uring_wal::Error> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Arc::new(Wal::open(Options::durable(dir.path()))?);
    let mut follower = wal.follow(1)?;
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            for i in 1..=10u32 {
                wal.append(RecordType::Put, format!("event {i}").as_bytes()).expect("append");
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut seen = 0;
    while seen < 10 {
        match follower.next_timeout(Some(Duration::from_secs(5)))? {
            Some(rec) => {
                println!("followed LSN {}: {}", rec.lsn, String::from_utf8_lossy(rec.payload));
                seen += 1;
            }
            None => panic!("the writer stalled"),
        }
    }
    writer.join().expect("writer");
    Ok(())
}
