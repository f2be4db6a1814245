//! Process and terminal facts: CPU time, peak memory, progress, parsing.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// User + system CPU time of this process so far.
pub fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the zeroed struct; RUSAGE_SELF is always valid.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    // SAFETY: initialised by the successful call above.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resets the kernel's record of peak resident memory (`VmHWM`), so the
/// next reading covers only what follows (Linux 4.0+; ignored elsewhere).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since start or the last reset.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Set by the first Ctrl-C (SIGINT, SIGTERM): the running load ends at once,
/// no further load starts, and the report is written.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler: the first ends the run early with its
/// report; a second exits at once (status 130).
pub fn handle_interrupts() {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted twice: exiting without a report");
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: ending the run and writing what was measured (Ctrl-C again to exit at once)");
    });
    if let Err(e) = installed {
        eprintln!("note: Ctrl-C will end the process without a report ({e})");
    }
}

/// Whether the run was interrupted.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// A progress line on stderr (indicatif), only when stderr is a terminal and
/// not --quiet: `label: 3.2 s / 6 s, 41234 ops`, elapsed time against
/// `expected` and the counter `ops`. Cleared when dropped.
pub struct Progress(ProgressBar);

impl Progress {
    pub fn start(label: String, expected: Option<Duration>, ops: Arc<AtomicU64>, quiet: bool) -> Progress {
        if quiet {
            return Progress(ProgressBar::hidden());
        }
        let of = expected.map(|e| format!(" / {:.0} s", e.as_secs_f64())).unwrap_or_default();
        let style = ProgressStyle::with_template(&format!("{{msg}}: {{seconds}} s{of}, {{ops}} ops"))
            .expect("a valid template")
            .with_key("seconds", |s: &ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{:.1}", s.elapsed().as_secs_f64());
            })
            .with_key("ops", move |_: &ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{}", ops.load(Ordering::Relaxed));
            });
        let bar = ProgressBar::new_spinner().with_style(style).with_message(label);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(bar)
    }
}

impl Progress {
    /// Prints `line` on stdout without tearing the progress line.
    pub fn println(&self, line: &str) {
        self.0.suspend(|| println!("{line}"));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Parses `50us`, `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(s)?;
    if d.is_zero() {
        return Err(format!("duration {:?} must be positive", s.trim()));
    }
    Ok(d)
}

/// [`parse_duration`] that also accepts zero (`0`, `0us`): for knobs where
/// zero means "never".
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration like 500ms, 10s, 2m or 1h"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("duration {s:?} must not be negative"));
    }
    let secs = match unit {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use us, ms, s, m or h")),
    };
    if secs > 24.0 * 3600.0 {
        return Err(format!("duration {s:?} is longer than a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a byte size: `256`, `4KiB`, `4k`, `1MiB`, `1G`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&t[..i], t[i..].to_ascii_lowercase()),
        None => (t, String::new()),
    };
    let value: u64 = num.trim().parse().map_err(|_| format!("{s:?} is not a size like 256, 4KiB or 1MiB"))?;
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("unknown unit in {s:?}: use B, KiB, MiB or GiB")),
    };
    value.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

/// A record size: fixed, or uniformly random in a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SizeRange {
    pub min: usize,
    pub max: usize,
}

impl SizeRange {
    pub fn mean(&self) -> f64 {
        (self.min + self.max) as f64 / 2.0
    }
}

impl std::fmt::Display for SizeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max { write!(f, "{}", self.min) } else { write!(f, "{}..{}", self.min, self.max) }
    }
}

/// Parses `256` or `128..4096` (bytes, units allowed); positive, at most the
/// 64 MiB record limit.
pub fn parse_size_range(s: &str) -> Result<SizeRange, String> {
    let limit = u64::from(uring_wal::format::RECORD_PAYLOAD_BYTES_LIMIT);
    let one = |x: &str| -> Result<usize, String> {
        let v = parse_bytes(x)?;
        if v == 0 {
            return Err(format!("record size {x:?} must be positive"));
        }
        if v > limit {
            return Err(format!("record size {x:?} is above the maximum record size of {limit} bytes"));
        }
        Ok(v as usize)
    };
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (one(a)?, one(b.trim_start_matches('='))?),
        None => {
            let v = one(s)?;
            (v, v)
        }
    };
    if min > max {
        return Err(format!("empty size range {s:?}"));
    }
    Ok(SizeRange { min, max })
}

/// Current time as an RFC 3339 UTC string.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("50us").unwrap(), Duration::from_micros(50));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("0s").is_err() && parse_duration("-1s").is_err() && parse_duration("1d").is_err());
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("25h").is_err(), "longer than a day");
        assert_eq!(parse_duration_or_zero("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration_or_zero("0us").unwrap(), Duration::ZERO);
        assert!(parse_duration_or_zero("-1ms").is_err() && parse_duration_or_zero("x").is_err());
        assert_eq!(parse_bytes("4KiB").unwrap(), 4096);
        assert_eq!(parse_size_range("128..4k").unwrap(), SizeRange { min: 128, max: 4096 });
        assert!(parse_size_range("0").is_err());
        assert!(parse_size_range("65MiB").is_err());
        assert!(parse_size_range("-5").is_err());
        assert!(parse_size_range("9..3").is_err());
        let now = utc_now();
        assert!(now.len() == 20 && now.ends_with('Z') && now.starts_with("20"), "{now}");
    }
}
