//! Latency histograms cheap enough to keep always on: fixed atomic buckets,
//! one relaxed increment per sample.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Nanoseconds below 2^MIN_SHIFT share the first bucket.
const MIN_SHIFT: u32 = 7;
/// Above 2^MAX_SHIFT ns (~137 s) everything shares the last range.
const MAX_SHIFT: u32 = 37;
/// Linear steps within each power-of-two range (so ~12% resolution).
const SUB_BUCKETS: usize = 8;
const BUCKETS: usize = 1 + (MAX_SHIFT - MIN_SHIFT) as usize * SUB_BUCKETS;

/// Percentiles of a latency distribution, in microseconds (bucket upper
/// bounds: values are rounded up by at most 12.5%).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LatencyStats {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl std::fmt::Display for LatencyStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} samples, p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us (mean {:.0} us)",
            self.count, self.p50_us, self.p99_us, self.p999_us, self.max_us, self.mean_us
        )
    }
}

/// A histogram of durations with atomic buckets.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < 1 << MIN_SHIFT {
        return 0;
    }
    let exp = 63 - ns.leading_zeros();
    if exp >= MAX_SHIFT {
        return BUCKETS - 1;
    }
    let sub = ((ns >> (exp - 3)) & 7) as usize;
    1 + (exp - MIN_SHIFT) as usize * SUB_BUCKETS + sub
}

/// The largest value a bucket holds.
fn upper_of(bucket: usize) -> u64 {
    if bucket == 0 {
        return (1 << MIN_SHIFT) - 1;
    }
    let range = (bucket - 1) / SUB_BUCKETS;
    let sub = ((bucket - 1) % SUB_BUCKETS) as u64;
    let exp = MIN_SHIFT + range as u32;
    (1u64 << exp) + ((sub + 1) << (exp - 3)) - 1
}

impl AtomicHistogram {
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// A snapshot (buckets read one by one while others may record: each
    /// figure is consistent with itself, not with the others).
    pub fn stats(&self) -> LatencyStats {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return LatencyStats::default();
        }
        let at = |q: f64| -> f64 {
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return upper_of(i) as f64 / 1000.0;
                }
            }
            upper_of(BUCKETS - 1) as f64 / 1000.0
        };
        let max_us = self.max_ns.load(Ordering::Relaxed) as f64 / 1000.0;
        LatencyStats {
            count: total,
            mean_us: self.sum_ns.load(Ordering::Relaxed) as f64
                / self.count.load(Ordering::Relaxed).max(1) as f64
                / 1000.0,
            p50_us: at(0.5).min(max_us),
            p90_us: at(0.9).min(max_us),
            p99_us: at(0.99).min(max_us),
            p999_us: at(0.999).min(max_us),
            max_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_within_an_eighth() {
        let mut last = 0;
        for shift in 0..40u32 {
            for step in 0..16u64 {
                let ns = (1u64 << shift) + step * ((1u64 << shift) / 16);
                let b = bucket_of(ns);
                assert!(b >= last, "buckets are monotonic");
                last = b;
                if (1 << MIN_SHIFT..1 << MAX_SHIFT).contains(&ns) {
                    let upper = upper_of(b);
                    assert!(upper >= ns && upper as f64 <= ns as f64 * 1.125 + 1.0, "{ns} -> {upper}");
                }
            }
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let h = AtomicHistogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.stats();
        assert_eq!(s.count, 1000);
        assert!((s.mean_us - 500.5).abs() < 0.01);
        assert!(s.p50_us >= 500.0 && s.p50_us <= 563.0, "{s:?}");
        assert!(s.p99_us >= 990.0 && s.p99_us <= 1000.0, "{s:?}");
        assert_eq!(s.max_us, 1000.0);
    }
}
