//! What waking a sleeping thread costs on this machine: two threads hand a
//! token back and forth with park/unpark, the mechanism a producer waiting
//! for its record and the I/O thread waking it use. Every append of a
//! thread-per-append load pays one such hand-off; on virtual machines whose
//! idle vCPUs halt, it can dominate the CPU per record (docs/BENCHMARKS.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};

fn ping_pong(c: &mut Criterion) {
    c.bench_function("park/unpark hand-off between two threads", |b| {
        b.iter_custom(|iters| {
            // Even: the main thread's turn; odd: the partner's.
            let turn = Arc::new(AtomicU64::new(0));
            let main = thread::current();
            let partner = {
                let turn = turn.clone();
                thread::spawn(move || {
                    for i in 0..iters {
                        while turn.load(Ordering::Acquire) != 2 * i + 1 {
                            thread::park();
                        }
                        turn.store(2 * i + 2, Ordering::Release);
                        main.unpark();
                    }
                })
            };
            let started = Instant::now();
            for i in 0..iters {
                turn.store(2 * i + 1, Ordering::Release);
                partner.thread().unpark();
                while turn.load(Ordering::Acquire) != 2 * i + 2 {
                    thread::park();
                }
            }
            let elapsed = started.elapsed();
            partner.join().expect("partner thread");
            // Two hand-offs per round trip.
            elapsed / 2
        });
    });
}

criterion_group!(benches, ping_pong);
criterion_main!(benches);
