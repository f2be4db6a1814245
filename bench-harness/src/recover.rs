//! Recovery time: write a log, stop the writer (close or SIGKILL), time
//! open-to-ready.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use uring_wal::{Error, Wal};

use crate::cli::{ChildArgs, RecoveryArgs};
use crate::model::RecoveryResult;
use crate::random::{self, Pool};
use crate::target::{OpenOptions, TargetSpec, WalTarget};

/// Appends batches from `args.writers` threads until `args.bytes` payload
/// bytes are acknowledged, calling `on_progress(records, bytes)` after each
/// batch; with `forever`, keeps appending after that (until killed).
pub fn write_log(
    dir: &Path,
    args: &RecoveryArgs,
    opts: &OpenOptions,
    forever: bool,
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<WalTarget> {
    let TargetSpec::UringWal { durability, path, spin, rewrites } = args.backend.clone() else {
        bail!("recovery measures uring-wal; {} has no recovery to time here", args.backend);
    };
    let target = WalTarget::open(dir, durability, path, spin, rewrites, opts)?;
    let records = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let wal = target.wal();
    let pool = Pool::new(args.record_bytes.max);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..args.writers)
            .map(|w| {
                let (records, bytes, failed, pool) = (&records, &bytes, &failed, &pool);
                s.spawn(move || -> Result<()> {
                    let mut rng = random::rng(w as u64);
                    let mut batch = uring_wal::Batch::new();
                    while forever || bytes.load(Ordering::Relaxed) < args.bytes {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let mut n_bytes = 0u64;
                        for _ in 0..args.batch {
                            let payload = pool.pick(&mut rng, args.record_bytes);
                            batch.push(uring_wal::RecordType::Put, payload)?;
                            n_bytes += payload.len() as u64;
                        }
                        let n = batch.len() as u64;
                        if let Err(e) = wal.append_batch(&mut batch) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e.into());
                        }
                        let r = records.fetch_add(n, Ordering::Relaxed) + n;
                        let b = bytes.fetch_add(n_bytes, Ordering::Relaxed) + n_bytes;
                        on_progress(r, b);
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("writer panicked")?;
        }
        Ok(())
    })?;
    Ok(target)
}

/// Evicts segment files from the page cache so a buffered recovery reads the
/// device, like an O_DIRECT one (a no-op for data already only on disk).
fn evict(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if let Ok(f) = std::fs::File::open(e.path()) {
            // SAFETY: advisory call on an open descriptor.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

/// Reads every segment file of the log in `dir` through the page cache, as
/// [`crate::raw::cached_read`] does; MB/s over them all.
pub fn read_segment_files(dir: &Path) -> Result<f64> {
    let (mut bytes, mut seconds) = (0u64, 0f64);
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wal") {
            let (b, s) = crate::raw::cached_read(&path, 1 << 20)?;
            bytes += b;
            seconds += s;
        }
    }
    Ok(bytes as f64 / seconds.max(1e-9) / 1e6)
}

/// Opens the log in `dir` and measures it; retries while a killed writer's
/// lock is still held (its in-flight writes draining), untimed.
pub fn time_open(dir: &Path, args: &RecoveryArgs, stop: &str, acknowledged: u64) -> Result<RecoveryResult> {
    let TargetSpec::UringWal { durability, path, spin, rewrites } = args.backend.clone() else {
        unreachable!("checked by write_log")
    };
    evict(dir);
    // Opening is timed from the attempt that gets the lock: the wait for a
    // killed writer's last writes to drain is not recovery.
    let opts = OpenOptions {
        record_bytes_max: args.record_bytes.max,
        allow_buffered: true,
        lock_wait: Some(Duration::ZERO),
        ..OpenOptions::default()
    };
    let give_up = Instant::now() + Duration::from_secs(30);
    let (target, seconds) = loop {
        let t0 = Instant::now();
        match WalTarget::open(dir, durability, path, spin, rewrites, &opts) {
            Ok(t) => break (t, t0.elapsed().as_secs_f64()),
            Err(e) if matches!(e.downcast_ref::<Error>(), Some(Error::Locked { .. })) && Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.context("recovering")),
        }
    };
    let wal: &Wal = target.wal();
    let r = wal.recovery_report().clone();
    // Writers count what was acknowledged to them; those LSNs all lie at or
    // below the recovered end.
    if r.last_lsn < acknowledged {
        bail!("recovered up to LSN {} but {acknowledged} records were acknowledged", r.last_lsn);
    }
    let result = RecoveryResult {
        stop: stop.into(),
        segments: r.segments,
        records: r.records,
        bytes: r.bytes_read,
        seconds,
        mb_per_sec: r.bytes_read as f64 / seconds / 1e6,
        records_per_sec: r.records as f64 / seconds,
        acknowledged_records: acknowledged,
        torn_tail: r.torn_tail.as_ref().map(|t| format!("segment {} offset {}", t.segment, t.offset)),
        records_dropped: r.torn_tail.as_ref().map_or(0, |t| t.records_dropped),
        read_mb_per_sec: None,
    };
    crate::target::Target::close(Box::new(target))?;
    Ok(result)
}

/// `recovery`: write, stop, time the reopening.
pub fn run(args: &RecoveryArgs, dir: &Path, opts: &OpenOptions, quiet: bool) -> Result<RecoveryResult> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    if !args.kill {
        let progress = AtomicU64::new(0);
        let counter = std::sync::Arc::new(AtomicU64::new(0));
        let p = crate::sys::Progress::start("recovery: writing".into(), None, counter.clone(), quiet);
        let target = write_log(dir, args, opts, false, &|r, _| {
            progress.store(r, Ordering::Relaxed);
            counter.store(r, Ordering::Relaxed);
        })?;
        drop(p);
        crate::target::Target::close(Box::new(target))?;
        return time_open(dir, args, "close", progress.load(Ordering::Relaxed));
    }
    let exe = std::env::current_exe().context("locating the harness binary")?;
    let mut child = Command::new(exe)
        .arg("recovery-child")
        .arg("--log-dir")
        .arg(dir)
        .args(["--bytes", &args.bytes.to_string()])
        .args(["--record-bytes", &args.record_bytes.to_string()])
        .args(["--batch", &args.batch.to_string()])
        .args(["--writers", &args.writers.to_string()])
        .args(["--backend", &args.backend.to_string().replace('/', ":")])
        .arg("--dir")
        .arg(dir.parent().unwrap_or(dir))
        .args(if opts.allow_buffered { &["--allow-buffered"][..] } else { &[][..] })
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the writer process")?;
    let stdout = child.stdout.take().expect("piped");
    let mut acknowledged = 0u64;
    let mut reached = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut f = line.split_whitespace().skip(1).filter_map(|x| x.parse::<u64>().ok());
        if let (Some(records), Some(bytes)) = (f.next(), f.next()) {
            acknowledged = records;
            if bytes >= args.bytes {
                reached = true;
                break;
            }
        }
    }
    // SIGKILL while it keeps appending: writes are in flight.
    let _ = child.kill();
    let status = child.wait()?;
    if !reached {
        bail!("the writer process stopped before writing {} bytes ({status})", args.bytes);
    }
    time_open(dir, args, "sigkill", acknowledged)
}

/// The writer process of `recovery --kill`: appends until killed, printing
/// `acked <records> <bytes>` after each acknowledged batch.
pub fn child(args: &ChildArgs, allow_buffered: bool) -> Result<()> {
    let opts =
        OpenOptions { record_bytes_max: args.recovery.record_bytes.max, allow_buffered, ..OpenOptions::default() };
    let out = std::sync::Mutex::new(std::io::stdout());
    let _target = write_log(&args.log_dir, &args.recovery, &opts, true, &|r, b| {
        let mut o = out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(o, "acked {r} {b}");
        let _ = o.flush();
    })?;
    Ok(())
}
