//! Steady-state appends through tickets and batches do not allocate: the
//! request buffers come from a pool, the queue is a bounded array, waiting
//! parks on a preallocated slot. Counted with a global allocator, on every
//! thread of the process (producer, I/O thread, preparer).
//!
//! This file holds one test on purpose: the counter is process-wide, and a
//! second test running in parallel would allocate into it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use uring_wal::{Batch, BlockSize, DirectIo, Options, RecordType, Wal};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to the system allocator unchanged; counting
// is a relaxed atomic increment and allocates nothing itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Records per measured phase.
const RECORDS: u64 = 20_000;

/// Tickets each producer keeps in flight.
const PIPELINE: usize = 64;

/// Records per batch.
const BATCH: usize = 64;

fn pipelined(wal: &Wal, payload: &[u8], records: u64) {
    let mut window = std::collections::VecDeque::with_capacity(PIPELINE);
    for _ in 0..records {
        if window.len() == PIPELINE {
            let t: uring_wal::Ticket = window.pop_front().unwrap();
            t.wait().unwrap();
        }
        window.push_back(wal.submit(RecordType::Put, payload).unwrap());
    }
    for t in window {
        t.wait().unwrap();
    }
}

fn batched(wal: &Wal, batch: &mut Batch, payload: &[u8], records: u64) {
    for _ in 0..records / BATCH as u64 {
        for _ in 0..BATCH {
            batch.push(RecordType::Put, payload).unwrap();
        }
        wal.append_batch(batch).unwrap();
    }
}

#[test]
fn steady_state_tickets_and_batches_do_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    // One segment large enough for the whole test (a segment roll allocates
    // its path and metadata, once per segment, not per append).
    let wal = Wal::open(
        Options::durable(dir.path())
            .segment_bytes(256 << 20)
            .block_size(BlockSize::Bytes(4096))
            .direct_io(DirectIo::Auto)
            // Spinning or not, waiting must not allocate; sleeping is the
            // path with more to get wrong.
            .wait_spin(std::time::Duration::ZERO),
    )
    .unwrap();
    let payload = vec![0x5Au8; 256];
    let mut batch = Batch::new();

    // Warm up: fill the pools, grow the buffers to their working size.
    pipelined(&wal, &payload, RECORDS);
    batched(&wal, &mut batch, &payload, RECORDS);

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    pipelined(&wal, &payload, RECORDS);
    let after_tickets = ALLOCATIONS.load(Ordering::Relaxed);
    batched(&wal, &mut batch, &payload, RECORDS);
    let after_batches = ALLOCATIONS.load(Ordering::Relaxed);

    let tickets = after_tickets - before;
    let batches = after_batches - after_tickets;
    // A handful may come from the runtime (a thread-local initialised
    // late, a pool refilled after a burst); one per append would be 20,000.
    let allowed = RECORDS / 1000;
    assert!(tickets <= allowed, "{tickets} allocations for {RECORDS} ticket appends");
    assert!(batches <= allowed, "{batches} allocations for {RECORDS} batched appends");
    let batched_records = RECORDS / BATCH as u64 * BATCH as u64;
    assert_eq!(wal.last_lsn(), 2 * RECORDS + 2 * batched_records);
    eprintln!("allocations: {tickets} for {RECORDS} ticket appends, {batches} for {batched_records} batched");
    wal.close().unwrap();
}
