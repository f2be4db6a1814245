//! Load generators: closed loop (each writer waits for its append) and open
//! loop (a fixed rate, latency measured from each operation's intended start,
//! so a stall is charged to every operation it delayed).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::model::{LATENCY_NS_MAX, LatencySummary, LoadResult, TestKind, latency_histogram};
use crate::random::{self, Pool};
use crate::sys::{self, Progress, SizeRange};
use crate::target::{FlushStats, Target};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// What the load measures.
    pub test: TestKind,
    pub writers: usize,
    pub size: SizeRange,
    /// Measured time (after warmup); or
    pub duration: Option<Duration>,
    /// measured records (after warmup).
    pub ops: Option<u64>,
    pub warmup: Duration,
    /// Open loop: total operations per second across writers.
    pub rate: Option<f64>,
    /// Records per append call.
    pub batch: usize,
    /// Appends each writer keeps in flight (submitted, not yet awaited);
    /// 1 appends synchronously.
    pub pipeline: usize,
    /// Debug: the `n`-th append stalls this long (to demonstrate coordinated
    /// omission correction).
    pub stall: Option<(u64, Duration)>,
}

/// Longest a load may run when bounded by operations only.
const OPS_RUN_MAX: Duration = Duration::from_secs(3600);

fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = d.as_nanos().min(u128::from(LATENCY_NS_MAX)) as u64;
    h.saturating_record(ns.max(1));
}

/// Wraps a target so that one append stalls.
struct Stalling<'a> {
    inner: &'a dyn Target,
    at: u64,
    stall: Duration,
    count: AtomicU64,
}

impl Target for Stalling<'_> {
    fn append(&self, payload: &[u8]) -> anyhow::Result<()> {
        if self.count.fetch_add(1, Ordering::Relaxed) == self.at {
            std::thread::sleep(self.stall);
        }
        self.inner.append(payload)
    }
    fn append_batch(&self, payloads: &[&[u8]]) -> anyhow::Result<()> {
        if self.count.fetch_add(1, Ordering::Relaxed) == self.at {
            std::thread::sleep(self.stall);
        }
        self.inner.append_batch(payloads)
    }
    fn flush_stats(&self) -> Option<FlushStats> {
        self.inner.flush_stats()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    ops: Arc<AtomicU64>,
    error: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, e: anyhow::Error) {
        let mut slot = self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert_with(|| format!("{e:#}"));
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Runs `spec` against `target` and measures it.
pub fn run(target: &dyn Target, backend: &str, spec: &LoadSpec, quiet: bool) -> LoadResult {
    let stalling;
    let target: &dyn Target = match spec.stall {
        Some((at, stall)) => {
            stalling = Stalling { inner: target, at, stall, count: AtomicU64::new(0) };
            &stalling
        }
        None => target,
    };
    let pool = Pool::new(spec.size.max);
    let shared = Shared {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        ops: Arc::new(AtomicU64::new(0)),
        error: Mutex::new(None),
    };
    let label = format!("{} {backend}, {} writers, {} B", spec.test, spec.writers, spec.size);
    let expected = spec.duration.map(|d| d + spec.warmup);
    let progress = Progress::start(label, expected, shared.ops.clone(), quiet);
    let started = Instant::now();
    let measure_from = started + spec.warmup;
    let interval = spec.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let next_op = AtomicU64::new(0);

    let mut window = (Instant::now(), Instant::now(), Duration::ZERO, Duration::ZERO, None, None);
    let histograms: Vec<(Histogram<u64>, Histogram<u64>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..spec.writers)
            .map(|w| {
                let (shared, pool, next_op) = (&shared, &pool, &next_op);
                s.spawn(move || {
                    let mut corrected = latency_histogram();
                    let mut uncorrected = latency_histogram();
                    let mut rng = random::rng(w as u64);
                    let mut slices: Vec<&[u8]> = Vec::with_capacity(spec.batch);
                    let mut in_flight: std::collections::VecDeque<(uring_wal::Ticket, Instant)> =
                        std::collections::VecDeque::with_capacity(spec.pipeline);
                    let finish = |t: uring_wal::Ticket, t0: Instant, h: &mut Histogram<u64>| -> bool {
                        match t.wait() {
                            Ok(_) => {
                                if shared.measuring.load(Ordering::Relaxed)
                                    && !shared.stop.load(Ordering::Relaxed)
                                    && t0 >= measure_from
                                {
                                    record(h, t0.elapsed());
                                    shared.ops.fetch_add(1, Ordering::Relaxed);
                                }
                                true
                            }
                            Err(e) => {
                                shared.fail(e.into());
                                false
                            }
                        }
                    };
                    while !shared.stop.load(Ordering::Relaxed) {
                        if spec.pipeline > 1 && interval.is_none() {
                            // Many appends in flight from one thread: submit,
                            // and await the oldest once the window is full.
                            let payload = pool.pick(&mut rng, spec.size);
                            let t0 = Instant::now();
                            match target.submit(payload) {
                                Ok(Some(ticket)) => in_flight.push_back((ticket, t0)),
                                Ok(None) => {
                                    shared.fail(anyhow::anyhow!("--pipeline needs a target with tickets (uring-wal)"));
                                    break;
                                }
                                Err(e) => {
                                    shared.fail(e);
                                    break;
                                }
                            }
                            if in_flight.len() >= spec.pipeline {
                                let (t, t0) = in_flight.pop_front().expect("full window");
                                if !finish(t, t0, &mut corrected) {
                                    break;
                                }
                            }
                            continue;
                        }
                        // Open loop: take the next slot of the schedule and
                        // wait for its time.
                        let intended = match interval {
                            Some(iv) => {
                                let k = next_op.fetch_add(1, Ordering::Relaxed);
                                let at = started + iv.mul_f64(k as f64);
                                loop {
                                    let now = Instant::now();
                                    if now >= at || shared.stop.load(Ordering::Relaxed) {
                                        break;
                                    }
                                    let left = at - now;
                                    if left > Duration::from_micros(200) {
                                        std::thread::sleep(left - Duration::from_micros(100));
                                    } else {
                                        std::hint::spin_loop();
                                    }
                                }
                                if shared.stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                Some(at)
                            }
                            None => None,
                        };
                        slices.clear();
                        for _ in 0..spec.batch {
                            slices.push(pool.pick(&mut rng, spec.size));
                        }
                        let t0 = Instant::now();
                        let result =
                            if spec.batch == 1 { target.append(slices[0]) } else { target.append_batch(&slices) };
                        let t1 = Instant::now();
                        if let Err(e) = result {
                            shared.fail(e);
                            break;
                        }
                        let counted_from = intended.unwrap_or(t0);
                        if shared.measuring.load(Ordering::Relaxed)
                            && !shared.stop.load(Ordering::Relaxed)
                            && counted_from >= measure_from
                        {
                            record(&mut corrected, t1 - counted_from);
                            if intended.is_some() {
                                record(&mut uncorrected, t1 - t0);
                            }
                            shared.ops.fetch_add(spec.batch as u64, Ordering::Relaxed);
                        } else if !shared.measuring.load(Ordering::Relaxed) {
                            // Warmup: count for progress only.
                        }
                    }
                    while let Some((t, t0)) = in_flight.pop_front() {
                        if !finish(t, t0, &mut corrected) {
                            break;
                        }
                    }
                    (corrected, uncorrected)
                })
            })
            .collect();

        // Warmup, then the measured window.
        std::thread::sleep(spec.warmup.saturating_sub(started.elapsed()));
        let flush0 = target.flush_stats();
        sys::reset_peak_rss();
        let cpu0 = sys::cpu_time();
        let t0 = Instant::now();
        shared.ops.store(0, Ordering::SeqCst);
        shared.measuring.store(true, Ordering::SeqCst);
        let limit = spec.duration.unwrap_or(OPS_RUN_MAX);
        while t0.elapsed() < limit && !shared.stop.load(Ordering::Relaxed) {
            if spec.ops.is_some_and(|n| shared.ops.load(Ordering::Relaxed) >= n) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1).min(limit.saturating_sub(t0.elapsed())));
        }
        shared.stop.store(true, Ordering::SeqCst);
        let t1 = Instant::now();
        let cpu1 = sys::cpu_time();
        let flush1 = target.flush_stats();
        window = (t0, t1, cpu0, cpu1, flush0, flush1);
        workers.into_iter().map(|w| w.join().expect("load worker panicked")).collect()
    });
    drop(progress);
    let (t0, t1, cpu0, cpu1, flush0, flush1) = window;
    let mut corrected = latency_histogram();
    let mut uncorrected = latency_histogram();
    for (c, u) in &histograms {
        corrected.add(c).expect("same bounds");
        uncorrected.add(u).expect("same bounds");
    }
    let seconds = (t1 - t0).as_secs_f64().max(1e-9);
    let ops = shared.ops.load(Ordering::SeqCst);
    let flush = match (flush0, flush1) {
        (Some(a), Some(b)) => Some((b.appends - a.appends, b.flushes - a.flushes, b.syncs - a.syncs)),
        _ => None,
    };
    let mean_bytes = spec.size.mean();
    LoadResult {
        test: spec.test,
        backend: backend.to_owned(),
        writers: spec.writers,
        record_bytes: mean_bytes,
        load: if spec.rate.is_some() { "open" } else { "closed" }.into(),
        rate_ops_per_sec: spec.rate,
        batch: spec.batch,
        pipeline: spec.pipeline,
        ops,
        seconds,
        ops_per_sec: ops as f64 / seconds,
        mb_per_sec: ops as f64 * mean_bytes / seconds / 1e6,
        latency: LatencySummary::of(&corrected),
        latency_uncorrected: spec.rate.map(|_| LatencySummary::of(&uncorrected)),
        records_per_flush: flush.and_then(|(a, f, _)| (f > 0).then(|| a as f64 / f as f64)),
        syncs_per_sec: flush.map(|(_, _, s)| s as f64 / seconds),
        cpu_us_per_op: cpu1.saturating_sub(cpu0).as_secs_f64() * 1e6 / ops.max(1) as f64,
        peak_rss_bytes: sys::peak_rss_bytes(),
        error: shared.error.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
        histogram: corrected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleeper(Duration);

    impl Target for Sleeper {
        fn append(&self, _payload: &[u8]) -> anyhow::Result<()> {
            std::thread::sleep(self.0);
            Ok(())
        }
        fn describe(&self) -> String {
            "sleeper".into()
        }
        fn close(self: Box<Self>) -> anyhow::Result<()> {
            Ok(())
        }
    }

    fn spec(rate: Option<f64>, stall: Option<(u64, Duration)>) -> LoadSpec {
        LoadSpec {
            test: TestKind::Latency,
            writers: 1,
            size: SizeRange { min: 16, max: 64 },
            duration: Some(Duration::from_millis(600)),
            ops: None,
            warmup: Duration::from_millis(50),
            rate,
            batch: 1,
            pipeline: 1,
            stall,
        }
    }

    #[test]
    fn closed_loop_counts_and_times() {
        let r = run(&Sleeper(Duration::from_micros(200)), "sleeper", &spec(None, None), true);
        assert!(r.ops > 100, "{r:?}");
        assert!(r.latency.p50_us >= 200.0 && r.latency.p50_us < 5000.0, "{:?}", r.latency);
        assert!(r.latency_uncorrected.is_none() && r.error.is_none());
    }

    #[test]
    fn an_open_loop_stall_is_charged_to_the_operations_it_delayed() {
        // 1000 ops/s, 1 writer, one 150 ms stall: ~150 operations start late.
        let r = run(
            &Sleeper(Duration::from_micros(50)),
            "sleeper",
            &spec(Some(1000.0), Some((200, Duration::from_millis(150)))),
            true,
        );
        let (c, u) = (r.latency, r.latency_uncorrected.unwrap());
        assert!(c.p99_us > 10.0 * u.p99_us, "corrected {c:?} vs uncorrected {u:?}");
        assert!(c.max_us >= 140_000.0, "{c:?}");
        assert!(u.max_us >= 140_000.0, "the stalled operation itself is slow either way: {u:?}");
    }
}
