//! `--interval`: a load's measured window cut into intervals. Each writer
//! records the latencies it measures into a histogram of its own for the
//! current interval as well as into its histogram of the whole load; at each
//! interval's end the sampler swaps the writers' interval histograms out,
//! and reads the records count and the log's counters.
//!
//! Memory is bounded whatever the run's length: two histograms per writer
//! and one [`IntervalPoint`] per interval, whose number a command bounds by
//! refusing an interval shorter than [`INTERVALS_MAX`] allows.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::model::{IntervalPoint, LatencySummary, SegmentActivity, latency_histogram};
use crate::report::thousands;
use crate::target::FlushStats;

/// Intervals one load keeps at most (a day at 1 s is 86,400).
pub const INTERVALS_MAX: u64 = 100_000;

/// The shortest interval: shorter ones measure the sampler more than the log.
pub const INTERVAL_MIN: Duration = Duration::from_millis(10);

/// Longest a load runs when bounded by records only (`--ops`).
pub const OPS_RUN_MAX: Duration = Duration::from_secs(3600);

/// Checks that `interval` is long enough and cuts a run of `duration` (or,
/// bounded by records only, of at most [`OPS_RUN_MAX`]) into at most
/// [`INTERVALS_MAX`] intervals.
pub fn check_interval(interval: Duration, duration: Option<Duration>) -> Result<(), String> {
    if interval < INTERVAL_MIN {
        return Err(format!("--interval {interval:?} is shorter than {INTERVAL_MIN:?}"));
    }
    let run = duration.unwrap_or(OPS_RUN_MAX);
    let count = run.as_secs_f64() / interval.as_secs_f64();
    if count > INTERVALS_MAX as f64 {
        let shortest = run.as_secs_f64() / INTERVALS_MAX as f64;
        return Err(format!(
            "--interval {interval:?} cuts a {:.0} s run into {count:.0} intervals, more than {INTERVALS_MAX}: use at least \
             {shortest:.3} s",
            run.as_secs_f64()
        ));
    }
    Ok(())
}

/// One writer's latencies of the current interval.
pub struct Slot(Mutex<Histogram<u64>>);

impl Slot {
    pub fn new() -> Slot {
        Slot(Mutex::new(latency_histogram()))
    }

    /// Records one latency in nanoseconds (already clamped to the
    /// histogram's range). The lock is the writer's own but at an interval's
    /// end, so it is uncontended nearly always.
    pub fn record(&self, ns: u64) {
        let mut h = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        h.saturating_record(ns);
    }
}

/// The counters at the start of the current interval.
struct Mark {
    at: Duration,
    ops: u64,
    flushes: Option<FlushStats>,
}

/// Cuts a load's measured window into intervals.
pub struct Sampler {
    record_bytes_mean: f64,
    merged: Histogram<u64>,
    last: Mark,
    pub points: Vec<IntervalPoint>,
}

impl Sampler {
    /// Starts the first interval at the measured window's start.
    pub fn new(record_bytes_mean: f64, flushes: Option<FlushStats>) -> Sampler {
        Sampler {
            record_bytes_mean,
            merged: latency_histogram(),
            last: Mark { at: Duration::ZERO, ops: 0, flushes },
            points: Vec::new(),
        }
    }

    /// Ends the current interval at `at` (since the window's start), with
    /// `ops` records measured so far and the log's counters `flushes`; keeps
    /// its point (up to [`INTERVALS_MAX`]) and returns it.
    pub fn sample(&mut self, at: Duration, ops: u64, flushes: Option<FlushStats>, slots: &[Slot]) -> IntervalPoint {
        self.merged.reset();
        for slot in slots {
            let mut h = slot.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.merged.add(&*h).expect("histograms of the same bounds");
            h.reset();
        }
        let seconds = at.saturating_sub(self.last.at).as_secs_f64().max(1e-9);
        let n = ops.saturating_sub(self.last.ops);
        let latency = LatencySummary::of(&self.merged);
        let delta = self.last.flushes.zip(flushes).map(|(a, b)| FlushStats {
            appends: b.appends - a.appends,
            flushes: b.flushes - a.flushes,
            syncs: b.syncs - a.syncs,
            segments_activated: b.segments_activated - a.segments_activated,
            segments_created: b.segments_created - a.segments_created,
            segments_recycled: b.segments_recycled - a.segments_recycled,
            segment_stalls: b.segment_stalls - a.segment_stalls,
            segment_fills_cut: b.segment_fills_cut - a.segment_fills_cut,
        });
        let point = IntervalPoint {
            end_s: at.as_secs_f64(),
            seconds,
            ops: n,
            ops_per_sec: n as f64 / seconds,
            mb_per_sec: n as f64 * self.record_bytes_mean / seconds / 1e6,
            p50_us: latency.p50_us,
            p99_us: latency.p99_us,
            p999_us: latency.p999_us,
            max_us: latency.max_us,
            flushes: delta.map(|d| d.flushes),
            syncs: delta.map(|d| d.syncs),
            segments: delta.map(|d| SegmentActivity {
                activated: d.segments_activated,
                created: d.segments_created,
                recycled: d.segments_recycled,
                stalls: d.segment_stalls,
                fills_cut: d.segment_fills_cut,
            }),
        };
        self.last = Mark { at, ops, flushes };
        if (self.points.len() as u64) < INTERVALS_MAX {
            self.points.push(point);
        }
        point
    }
}

/// The column heads of [`line()`].
pub fn header() -> String {
    format!(
        "{:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}  segments",
        "time s", "records/s", "MB/s", "p50 us", "p99 us", "p99.9 us", "max us", "flushes", "syncs"
    )
}

/// An interval as one line of the table [`header`] heads.
pub fn line(p: &IntervalPoint) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| thousands(v as f64));
    let segments = p.segments.map_or_else(
        || "-".to_string(),
        |s| {
            let mut out = format!("+{} new, {} reused", s.created, s.recycled);
            if s.stalls > 0 {
                out.push_str(&format!(", {} waited for", s.stalls));
            }
            out
        },
    );
    format!(
        "{:>8.1} {:>10} {:>8.1} {:>8.0} {:>8.0} {:>8.0} {:>9.0} {:>8} {:>8}  {segments}",
        p.end_s,
        thousands(p.ops_per_sec),
        p.mb_per_sec,
        p.p50_us,
        p.p99_us,
        p.p999_us,
        p.max_us,
        opt(p.flushes),
        opt(p.syncs),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_holds_only_what_completed_in_it() {
        let slots = [Slot::new(), Slot::new()];
        let mut s = Sampler::new(100.0, Some(FlushStats::default()));
        slots[0].record(1_000_000);
        slots[1].record(3_000_000);
        let stats = FlushStats { flushes: 2, syncs: 2, segments_created: 1, ..FlushStats::default() };
        let a = s.sample(Duration::from_secs(1), 2, Some(stats), &slots);
        assert_eq!((a.ops, a.ops_per_sec, a.mb_per_sec), (2, 2.0, 2.0 * 100.0 / 1e6));
        assert!((a.max_us - 3000.0).abs() < 5.0 && (a.p50_us - 1000.0).abs() < 5.0, "{a:?}");
        assert_eq!((a.flushes, a.syncs, a.segments.map(|s| s.created)), (Some(2), Some(2), Some(1)));
        slots[0].record(10_000);
        let b = s.sample(Duration::from_millis(1500), 3, Some(stats), &slots);
        assert_eq!((b.ops, b.seconds), (1, 0.5));
        assert!(b.max_us < 11.0, "the first interval's latencies stay in it: {b:?}");
        assert_eq!((b.flushes, b.syncs), (Some(0), Some(0)));
        let c = s.sample(Duration::from_secs(2), 3, None, &slots);
        assert_eq!((c.ops, c.max_us, c.flushes), (0, 0.0, None));
        assert_eq!(s.points.len(), 3);
        assert!(line(&a).contains("+1 new"), "{}", line(&a));
    }

    #[test]
    fn an_interval_count_past_the_limit_is_refused_with_the_shortest_allowed() {
        assert!(check_interval(Duration::from_secs(1), Some(Duration::from_secs(3600))).is_ok());
        assert!(check_interval(Duration::from_millis(5), Some(Duration::from_secs(1))).is_err());
        let e = check_interval(Duration::from_millis(10), None).unwrap_err();
        assert!(e.contains("0.036 s"), "{e}");
    }
}
