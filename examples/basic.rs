//! Append records, close, reopen, replay.
//!
//! `cargo run --example basic`

use uring_wal::{Options, RecordType, Wal};

fn main() -> Result<(), uring_wal::Error> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Wal::open(Options::durable(dir.path()))?;
    let b = wal.backend();
    println!("opened: {:?}, O_DIRECT {}, block {} B", b.kind, b.direct_io, b.block_bytes);
    for (kind, payload) in [
        (RecordType::Put, "user:1=alice"),
        (RecordType::Put, "user:2=bob"),
        (RecordType::Update, "user:1=alice2"),
        (RecordType::Delete, "user:2"),
    ] {
        // Returns once the record is durable.
        let lsn = wal.append(kind, payload.as_bytes())?;
        println!("appended LSN {lsn}: {kind:?} {payload}");
    }
    wal.close()?;

    // Reopening recovers the log; the next LSN continues where it ended.
    let wal = Wal::open(Options::durable(dir.path()))?;
    println!("reopened: records {}..={}", wal.first_lsn(), wal.last_lsn());
    let n = wal.replay_from(1, |rec| {
        println!("replay {} {:?} {}", rec.lsn, rec.kind, String::from_utf8_lossy(rec.payload));
        Ok::<_, uring_wal::Error>(())
    })?;
    assert_eq!(n, 4);
    assert_eq!(wal.append(RecordType::Noop, b"")?, 5);
    Ok(())
}
