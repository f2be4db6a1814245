//! Repeated runs (`--repeat`): the spread of each figure across runs, and
//! ratios between backends marked *not significant* when their spreads
//! overlap. Machines here are shared and noisy; a ratio of medians whose
//! ranges overlap says nothing.

use crate::model::LoadResult;

/// Min, median and max of one figure over repeated runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Spread { min: v[0], median, max: v[n - 1] })
    }

    fn overlaps(&self, other: &Spread) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

/// A ratio of medians, significant only when the two spreads are disjoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio {
    pub value: f64,
    pub significant: bool,
}

impl Ratio {
    pub fn of(a: &Spread, b: &Spread) -> Ratio {
        Ratio { value: a.median / b.median, significant: !a.overlaps(b) }
    }
}

/// A figure's column name and how to read it from a result.
pub type Figure = (&'static str, fn(&LoadResult) -> f64);

/// The figures compared across runs.
pub const FIGURES: [Figure; 5] = [
    ("ops/s", |r| r.ops_per_sec),
    ("p50 us", |r| r.latency.p50_us),
    ("p99 us", |r| r.latency.p99_us),
    ("p99.9 us", |r| r.latency.p999_us),
    ("CPU us/op", |r| r.cpu_us_per_op),
];

/// The runs of one load on one backend.
pub struct Group<'a> {
    pub backend: &'a str,
    pub writers: usize,
    pub record_bytes: f64,
    pub runs: Vec<&'a LoadResult>,
}

impl Group<'_> {
    pub fn spread(&self, figure: fn(&LoadResult) -> f64) -> Option<Spread> {
        Spread::of(self.runs.iter().map(|r| figure(r)))
    }

    /// Whether `baseline` measured the same load: same writers, batch and
    /// pipeline, and the same record size unless it is the device alone
    /// (whose writes are the padded record).
    fn matches(&self, baseline: &Group<'_>) -> bool {
        let (a, b) = (self.runs[0], baseline.runs[0]);
        a.writers == b.writers
            && a.batch == b.batch
            && a.pipeline == b.pipeline
            && (baseline.backend.starts_with("raw/") || a.record_bytes == b.record_bytes)
    }
}

/// Groups successful results by backend and load, in first-seen order.
pub fn groups(results: &[LoadResult]) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    for r in results.iter().filter(|r| r.error.is_none()) {
        let same = |g: &Group<'_>| {
            let f = g.runs[0];
            f.backend == r.backend
                && f.test == r.test
                && f.writers == r.writers
                && f.record_bytes == r.record_bytes
                && f.batch == r.batch
                && f.pipeline == r.pipeline
        };
        match out.iter_mut().find(|g| same(g)) {
            Some(g) => g.runs.push(r),
            None => {
                out.push(Group { backend: &r.backend, writers: r.writers, record_bytes: r.record_bytes, runs: vec![r] })
            }
        }
    }
    out
}

/// For each group not of `baseline`, the baseline group of the same load.
pub fn baseline_of<'g, 'a>(groups: &'g [Group<'a>], g: &Group<'_>, baseline: &str) -> Option<&'g Group<'a>> {
    if g.backend == baseline {
        return None;
    }
    groups.iter().find(|b| b.backend == baseline && g.matches(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn spread_and_significance() {
        let s = Spread::of([3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!(s, Spread { min: 1.0, median: 2.0, max: 3.0 });
        assert_eq!(Spread::of([4.0, 1.0]).unwrap().median, 2.5);
        assert!(Spread::of([]).is_none());
        let far = Spread { min: 10.0, median: 11.0, max: 12.0 };
        let r = Ratio::of(&far, &s);
        assert!(r.significant && (r.value - 5.5).abs() < 1e-9);
        let near = Spread { min: 2.5, median: 4.0, max: 5.0 };
        assert!(!Ratio::of(&near, &s).significant, "overlapping spreads");
    }

    #[test]
    fn groups_collect_repeated_runs_and_find_their_baseline() {
        let results = vec![
            fixtures::load("a", 1, 256.0, 100.0, 1),
            fixtures::load("b", 1, 256.0, 300.0, 2),
            fixtures::load("a", 1, 256.0, 120.0, 3),
            fixtures::load("b", 1, 256.0, 310.0, 4),
            fixtures::load("b", 4, 256.0, 900.0, 5),
        ];
        let gs = groups(&results);
        assert_eq!(gs.iter().map(|g| g.runs.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
        let b1 = &gs[1];
        let base = baseline_of(&gs, b1, "a").unwrap();
        assert_eq!(base.backend, "a");
        let r = Ratio::of(&b1.spread(FIGURES[0].1).unwrap(), &base.spread(FIGURES[0].1).unwrap());
        assert!(r.significant && (r.value - 305.0 / 110.0).abs() < 1e-9);
        assert!(baseline_of(&gs, &gs[2], "a").is_none(), "no baseline at 4 writers");
    }
}
