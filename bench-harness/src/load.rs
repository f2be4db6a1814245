//! Load generators: closed loop (each writer waits for its append) and open
//! loop (a fixed rate, latency measured from each operation's intended start,
//! so a stall is charged to every operation it delayed).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use uring_wal::Ticket;

use crate::model::{
    IntervalPoint, LATENCY_NS_MAX, LatencySummary, LoadResult, SegmentActivity, TestKind, latency_histogram,
};
use crate::random::{self, Pool};
use crate::sys::{self, Progress, SizeRange};
use crate::target::{FlushStats, Target};
use crate::timeline::{self, OPS_RUN_MAX, Sampler, Slot};

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
    /// Cut the measured window into intervals this long, printing a line
    /// for each (see [`timeline`]).
    pub interval: Option<Duration>,
    /// The directory measured, when a run measures several.
    pub dir: Option<String>,
}

fn nanos(d: Duration) -> u64 {
    (d.as_nanos().min(u128::from(LATENCY_NS_MAX)) as u64).max(1)
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(nanos(d));
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

/// What the writers share: the clock of the load, its phase and counters.
struct Shared {
    /// When the load started; the open loop's schedule counts from here.
    started: Instant,
    /// Operations that start (or are due) before this are warmup.
    measure_from: Instant,
    /// Open loop: time between two operations' intended starts.
    spacing: Option<Duration>,
    /// Open loop: the next slot of the schedule.
    next_op: AtomicU64,
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Records measured so far (also shown by the progress line).
    ops: Arc<AtomicU64>,
    error: Mutex<Option<String>>,
}

impl Shared {
    fn new(spec: &LoadSpec) -> Shared {
        let started = Instant::now();
        Shared {
            started,
            measure_from: started + spec.warmup,
            spacing: spec.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next_op: AtomicU64::new(0),
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            ops: Arc::new(AtomicU64::new(0)),
            error: Mutex::new(None),
        }
    }

    fn fail(&self, e: anyhow::Error) {
        let mut slot = self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert_with(|| format!("{e:#}"));
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether an operation that started (or was due) at `from` is measured.
    fn counts(&self, from: Instant) -> bool {
        self.measuring.load(Ordering::Relaxed) && !self.stopped() && from >= self.measure_from
    }
}

/// Latencies of appends: from each operation's intended start (its actual
/// start in a closed loop), and in an open loop also from its actual start.
struct Latencies {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
}

impl Latencies {
    fn new() -> Latencies {
        Latencies { corrected: latency_histogram(), uncorrected: latency_histogram() }
    }

    fn merge(all: impl Iterator<Item = Latencies>) -> Latencies {
        let mut merged = Latencies::new();
        for l in all {
            merged.corrected.add(&l.corrected).expect("same bounds");
            merged.uncorrected.add(&l.uncorrected).expect("same bounds");
        }
        merged
    }
}

/// One writer thread of a load.
struct Writer<'a> {
    target: &'a dyn Target,
    spec: &'a LoadSpec,
    shared: &'a Shared,
    pool: &'a Pool,
    rng: fastrand::Rng,
    latencies: Latencies,
    /// With `--interval`: this writer's latencies of the current interval.
    slot: Option<&'a Slot>,
}

impl<'a> Writer<'a> {
    /// Appends until the load stops; returns what it measured.
    fn run(mut self) -> Latencies {
        if self.spec.pipeline > 1 && self.shared.spacing.is_none() {
            self.pipelined();
        } else {
            self.one_at_a_time();
        }
        self.latencies
    }

    /// Many appends (or batches) in flight from one thread: submit, and
    /// await the oldest once the window is full.
    fn pipelined(&mut self) {
        let pool: &'a Pool = self.pool;
        let mut in_flight: VecDeque<(Ticket, Instant)> = VecDeque::with_capacity(self.spec.pipeline);
        let mut slices: Vec<&[u8]> = Vec::with_capacity(self.spec.batch);
        while !self.shared.stopped() {
            slices.clear();
            for _ in 0..self.spec.batch {
                slices.push(pool.pick(&mut self.rng, self.spec.size));
            }
            let t0 = Instant::now();
            let submitted =
                if self.spec.batch == 1 { self.target.submit(slices[0]) } else { self.target.submit_batch(&slices) };
            match submitted {
                Ok(Some(ticket)) => in_flight.push_back((ticket, t0)),
                Ok(None) => {
                    self.shared.fail(anyhow::anyhow!("--pipeline needs a target with tickets (uring-wal)"));
                    break;
                }
                Err(e) => {
                    self.shared.fail(e);
                    break;
                }
            }
            if in_flight.len() >= self.spec.pipeline {
                let (ticket, t0) = in_flight.pop_front().expect("full window");
                if !self.finish(ticket, t0) {
                    break;
                }
            }
        }
        while let Some((ticket, t0)) = in_flight.pop_front() {
            if !self.finish(ticket, t0) {
                break;
            }
        }
    }

    /// Waits for a ticket (one record, or one batch) submitted at `t0` and
    /// records it; false if it failed.
    fn finish(&mut self, ticket: Ticket, t0: Instant) -> bool {
        match ticket.wait() {
            Ok(_) => {
                if self.shared.counts(t0) {
                    self.measured(t0.elapsed());
                    self.shared.ops.fetch_add(self.spec.batch as u64, Ordering::Relaxed);
                }
                true
            }
            Err(e) => {
                self.shared.fail(e.into());
                false
            }
        }
    }

    /// One append (or batch) at a time: as fast as they return (closed
    /// loop), or each at its slot of the schedule (open loop).
    fn one_at_a_time(&mut self) {
        let pool: &'a Pool = self.pool;
        let mut slices: Vec<&[u8]> = Vec::with_capacity(self.spec.batch);
        while !self.shared.stopped() {
            let intended = match self.shared.spacing {
                Some(spacing) => match self.wait_for_slot(spacing) {
                    Some(at) => Some(at),
                    None => break,
                },
                None => None,
            };
            slices.clear();
            for _ in 0..self.spec.batch {
                slices.push(pool.pick(&mut self.rng, self.spec.size));
            }
            let t0 = Instant::now();
            let result =
                if self.spec.batch == 1 { self.target.append(slices[0]) } else { self.target.append_batch(&slices) };
            let t1 = Instant::now();
            if let Err(e) = result {
                self.shared.fail(e);
                break;
            }
            self.count(intended, t0, t1);
        }
    }

    /// Open loop: takes the next slot of the schedule and waits for its
    /// time; `None` if the load stopped meanwhile.
    fn wait_for_slot(&self, spacing: Duration) -> Option<Instant> {
        let k = self.shared.next_op.fetch_add(1, Ordering::Relaxed);
        let at = self.shared.started + spacing.mul_f64(k as f64);
        loop {
            if self.shared.stopped() {
                return None;
            }
            let now = Instant::now();
            if now >= at {
                return Some(at);
            }
            let left = at - now;
            if left > Duration::from_micros(200) {
                std::thread::sleep(left - Duration::from_micros(100));
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Records an append that ran from `t0` to `t1` (due at `intended` in an
    /// open loop), if it falls in the measured window.
    fn count(&mut self, intended: Option<Instant>, t0: Instant, t1: Instant) {
        let from = intended.unwrap_or(t0);
        if self.shared.counts(from) {
            self.measured(t1 - from);
            if intended.is_some() {
                record(&mut self.latencies.uncorrected, t1 - t0);
            }
            self.shared.ops.fetch_add(self.spec.batch as u64, Ordering::Relaxed);
        }
    }
}

impl Writer<'_> {
    /// Records a measured latency, also in the current interval's.
    fn measured(&mut self, d: Duration) {
        record(&mut self.latencies.corrected, d);
        if let Some(slot) = self.slot {
            slot.record(nanos(d));
        }
    }
}

/// The measured window: its length, the process's CPU time in it, the
/// target's flush counters at its start and end, and its intervals.
struct Window {
    seconds: f64,
    cpu: Duration,
    flushes: Option<(FlushStats, FlushStats)>,
    intervals: Vec<IntervalPoint>,
}

/// Waits out the warmup, measures until the duration has passed, the
/// records are written, a writer fails or the run is interrupted, then stops
/// the writers. With an interval, samples at each interval's end (and at
/// the window's end) and prints a line for each.
fn measure(target: &dyn Target, spec: &LoadSpec, shared: &Shared, slots: &[Slot], progress: &Progress) -> Window {
    while shared.started.elapsed() < spec.warmup && !sys::interrupted() && !shared.stopped() {
        std::thread::sleep(Duration::from_millis(10).min(spec.warmup.saturating_sub(shared.started.elapsed())));
    }
    let flush0 = target.flush_stats();
    sys::reset_peak_rss();
    let cpu0 = sys::cpu_time();
    let t0 = Instant::now();
    shared.ops.store(0, Ordering::SeqCst);
    shared.measuring.store(true, Ordering::SeqCst);
    let mut sampler = spec.interval.map(|_| {
        progress.println(&timeline::header());
        Sampler::new(spec.size.mean(), flush0)
    });
    let mut next_sample = spec.interval.map(|i| t0 + i);
    let limit = spec.duration.unwrap_or(OPS_RUN_MAX);
    while t0.elapsed() < limit && !shared.stopped() && !sys::interrupted() {
        if spec.ops.is_some_and(|n| shared.ops.load(Ordering::Relaxed) >= n) {
            break;
        }
        if let (Some(sampler), Some(at), Some(interval)) = (&mut sampler, &mut next_sample, spec.interval)
            && Instant::now() >= *at
        {
            let ops = shared.ops.load(Ordering::Relaxed);
            let point = sampler.sample(*at - t0, ops, target.flush_stats(), slots);
            progress.println(&timeline::line(&point));
            *at += interval;
        }
        std::thread::sleep(Duration::from_millis(1).min(limit.saturating_sub(t0.elapsed())));
    }
    shared.stop.store(true, Ordering::SeqCst);
    let elapsed = t0.elapsed();
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let cpu = sys::cpu_time().saturating_sub(cpu0);
    let flushes = target.flush_stats();
    let intervals = match sampler {
        Some(mut sampler) => {
            // The last, partial interval, unless nothing of it passed.
            let last = sampler.points.last().map_or(0.0, |p| p.end_s);
            if seconds - last > 1e-3 {
                let point = sampler.sample(elapsed, shared.ops.load(Ordering::SeqCst), flushes, slots);
                progress.println(&timeline::line(&point));
            }
            sampler.points
        }
        None => Vec::new(),
    };
    Window { seconds, cpu, flushes: flush0.zip(flushes), intervals }
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
    let shared = Shared::new(spec);
    let slots: Vec<Slot> = (0..if spec.interval.is_some() { spec.writers } else { 0 }).map(|_| Slot::new()).collect();
    let at = spec.dir.as_ref().map(|d| format!(" on {d}")).unwrap_or_default();
    let label = format!("{} {backend}{at}, {} writers, {} B", spec.test, spec.writers, spec.size);
    let progress = Progress::start(label.clone(), spec.duration.map(|d| d + spec.warmup), shared.ops.clone(), quiet);
    if spec.interval.is_some() {
        progress.println(&format!("\n{label}"));
    }
    let (latencies, window) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..spec.writers)
            .map(|w| {
                let rng = random::rng(w as u64);
                let latencies = Latencies::new();
                let slot = slots.get(w);
                let writer = Writer { target, spec, shared: &shared, pool: &pool, rng, latencies, slot };
                s.spawn(move || writer.run())
            })
            .collect();
        let window = measure(target, spec, &shared, &slots, &progress);
        let latencies = writers.into_iter().map(|w| w.join().expect("load worker panicked"));
        (Latencies::merge(latencies), window)
    });
    drop(progress);
    result(backend, spec, shared, window, latencies)
}

/// The figures of a finished load.
fn result(backend: &str, spec: &LoadSpec, shared: Shared, window: Window, latencies: Latencies) -> LoadResult {
    let seconds = window.seconds;
    let ops = shared.ops.load(Ordering::SeqCst);
    let flush = window.flushes.map(|(a, b)| (b.appends - a.appends, b.flushes - a.flushes, b.syncs - a.syncs));
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
        latency: LatencySummary::of(&latencies.corrected),
        latency_uncorrected: spec.rate.map(|_| LatencySummary::of(&latencies.uncorrected)),
        records_per_flush: flush.and_then(|(a, f, _)| (f > 0).then(|| a as f64 / f as f64)),
        syncs_per_sec: flush.map(|(_, _, s)| s as f64 / seconds),
        raft_groups: None,
        segments: window.flushes.map(|(a, b)| SegmentActivity {
            activated: b.segments_activated - a.segments_activated,
            created: b.segments_created - a.segments_created,
            recycled: b.segments_recycled - a.segments_recycled,
            stalls: b.segment_stalls - a.segment_stalls,
            fills_cut: b.segment_fills_cut - a.segment_fills_cut,
        }),
        cpu_us_per_op: window.cpu.as_secs_f64() * 1e6 / ops.max(1) as f64,
        peak_rss_bytes: sys::peak_rss_bytes(),
        error: shared.error.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
        dir: spec.dir.clone(),
        intervals: window.intervals,
        histogram: latencies.corrected,
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
            interval: None,
            dir: None,
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
