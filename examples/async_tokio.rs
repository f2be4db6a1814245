//! Awaiting appends from async tasks: a Ticket is a Future for any executor
//! (the library depends on no runtime; tokio is only this example's).
//!
//! `cargo run --example async_tokio`

use std::sync::Arc;

use uring_wal::{Options, RecordType, Wal};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), uring_wal::Error> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Arc::new(Wal::open(Options::durable(dir.path()))?);
    let mut tasks = Vec::new();
    for client in 0..16u32 {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move {
            for request in 0..20u32 {
                // Queue, awaiting room if the queue is full (never blocking
                // the runtime's thread, as `submit` would), then await
                // durability.
                let payload = format!("client {client} request {request}");
                let ticket = wal.submit_async(RecordType::Put, payload.as_bytes()).await?;
                ticket.await?;
            }
            Ok::<_, uring_wal::Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("task")?;
    }
    println!("{} records durable; end-to-end p50 {:.0} us", wal.last_lsn(), wal.stats().end_to_end.p50_us);
    // Waiting for a durable LSN (useful under Durability::Periodic).
    let lsn = wal.durable(wal.last_lsn()).await?;
    println!("durable up to LSN {lsn}");
    Ok(())
}
