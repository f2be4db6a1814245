//! The harness as users run it: every subcommand with tiny durations, the
//! output files, and bad input.

use std::path::Path;
use std::process::{Command, Output};

fn harness(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench-harness"))
        .arg("--dir")
        .arg(dir)
        .arg("--quiet")
        .args(args)
        .output()
        .expect("run bench-harness")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = harness(dir, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = harness(dir, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn probe_prints_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["probe"]);
    for needle in ["kernel", "io_uring", "O_DIRECT", "ext4"] {
        assert!(out.contains(needle), "probe output lacks {needle}:\n{out}");
    }
}

#[test]
fn latency_writes_json_hgrm_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let j = out_dir.path().join("lat.json");
    let h = out_dir.path().join("lat.hgrm");
    let s = out_dir.path().join("lat.svg");
    let stdout = ok(
        dir.path(),
        &[
            "latency",
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
            "--json",
            j.to_str().unwrap(),
            "--hgrm",
            h.to_str().unwrap(),
            "--svg",
            s.to_str().unwrap(),
        ],
    );
    assert!(stdout.contains("p99.9 us"), "{stdout}");
    let v = json(&j);
    for key in ["config", "environment", "loads", "bandwidth", "recovery", "summary"] {
        assert!(v.get(key).is_some(), "JSON lacks {key}");
    }
    let load = &v["loads"][0];
    for key in ["backend", "writers", "ops_per_sec", "mb_per_sec", "cpu_us_per_op", "peak_rss_bytes"] {
        assert!(load.get(key).is_some(), "load lacks {key}: {load}");
    }
    assert!(load["ops"].as_u64().unwrap() > 0);
    assert!(load["latency"]["p50_us"].as_f64().unwrap() > 0.0);
    let hgrm = std::fs::read_to_string(&h).unwrap();
    let rows: Vec<&str> = hgrm.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).skip(1).collect();
    assert!(rows.len() > 10, "{hgrm}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 4, "row {row:?}");
        assert!(cols.iter().all(|c| c.parse::<f64>().is_ok() || *c == "inf" || *c == "Infinity"), "row {row:?}");
    }
    assert!(hgrm.contains("#[Mean"));
    let svg = std::fs::read_to_string(&s).unwrap();
    assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.trim_end().ends_with("</svg>"));
    // The data directory holds nothing the harness wrote.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn report_prints_a_saved_report_again_and_redraws_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("saved.json");
    let measured = ok(
        dir.path(),
        &["throughput", "--writers", "1,2", "--duration", "200ms", "--warmup", "50ms", "--json", j.to_str().unwrap()],
    );
    let s = dir.path().join("again.svg");
    let again = ok(dir.path(), &["report", j.to_str().unwrap(), "--svg", s.to_str().unwrap()]);
    let row = |out: &str| out.lines().find(|l| l.starts_with("throughput") && l.contains(" 2 ")).map(str::to_owned);
    assert_eq!(row(&again), row(&measured), "{again}");
    assert!(row(&again).is_some(), "{again}");
    for chart in [s.clone(), dir.path().join("again-throughput.svg")] {
        let svg = std::fs::read_to_string(&chart).unwrap();
        assert!(svg.contains(r#"<polyline class="series""#), "{}: {svg}", chart.display());
    }
    assert!(fails(dir.path(), &["report", dir.path().join("none.json").to_str().unwrap()]).contains("none.json"));
}

#[test]
fn the_reports_in_docs_bench_read_back() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bench");
    let out_dir = tempfile::tempdir().unwrap();
    for name in ["suite", "many-writers", "durability-modes", "raft", "one-writer-60s"] {
        let svg = out_dir.path().join(format!("{name}.svg"));
        let report = docs.join(format!("{name}.json"));
        let out = ok(out_dir.path(), &["report", report.to_str().unwrap(), "--svg", svg.to_str().unwrap()]);
        assert!(out.contains("p50 us"), "{name}: {out}");
        assert!(std::fs::read_to_string(&svg).unwrap().contains(r#"class="panel""#), "{name}");
    }
}

#[test]
fn throughput_and_sweep_with_tiny_durations() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["throughput", "--writers", "1,4", "--duration", "300ms", "--warmup", "100ms"]);
    assert!(out.contains("uring-wal/group-sync"), "{out}");
    let j = dir.path().join("sweep.json");
    let out = ok(
        dir.path(),
        &[
            "sweep",
            "--backend",
            "uring-wal:group-sync,uring-wal:dsync",
            "--writers",
            "1,2",
            "--record-bytes",
            "100,1000..2000",
            "--duration",
            "200ms",
            "--warmup",
            "50ms",
            "--json",
            j.to_str().unwrap(),
        ],
    );
    assert!(out.contains("pwrite+fdatasync"), "sync method table:\n{out}");
    let loads = json(&j)["loads"].as_array().unwrap().len();
    assert!(loads >= 8 + 6, "2 backends x 2 writers x 2 sizes, and the sync methods: {loads}");
}

#[test]
fn a_checkpointing_stream_keeps_the_log_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // 128 MiB of records through 1 MiB segments, keeping about 2 MiB.
    let j = dir.path().join("checkpointed.json");
    let out = ok(
        dir.path(),
        &[
            "throughput",
            "--writers",
            "1",
            "--record-bytes",
            "64KiB",
            "--pipeline",
            "16",
            "--ops",
            "2000",
            "--warmup",
            "100ms",
            "--wal-segment-bytes",
            "1MiB",
            "--wal-retain",
            "2MiB",
            // One checkpoint retires several 1 MiB segments at this rate:
            // keep them all for reuse (with one, the rest are deleted and
            // fresh ones zero-filled).
            "--wal-spares",
            "16",
            "--keep",
            "--json",
            j.to_str().unwrap(),
        ],
    );
    assert!(out.contains("pipeline 16"), "{out}");
    assert!(out.contains("segs new/reused"), "{out}");
    // The segments the load moved into were mostly retired ones, reused
    // (without --wal-spares: 99 fresh and 35 reused, and the I/O thread
    // waited 134 times for a segment).
    let segs = &json(&j)["loads"][0]["segments"];
    let n = |k: &str| segs[k].as_u64().unwrap_or_else(|| panic!("no {k} in {segs}"));
    assert!(n("activated") >= 100, "{segs}");
    assert!(n("recycled") > n("created"), "a bounded log reuses its segments: {segs}");
    assert!(n("created") + n("recycled") + 2 >= n("activated"), "{segs}");
    let wal_dir = dir.path().join("uring-wal-group-sync");
    let segments = std::fs::read_dir(&wal_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".wal"))
        .count();
    // Retained (~2 MiB), the active one, the spares and whatever the last
    // checkpoint had not reached yet; far below the 128 written.
    assert!((2..=24).contains(&segments), "{segments} segments left in {}", wal_dir.display());
}

#[test]
fn raw_and_recovery_with_small_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["raw", "--duration", "200ms", "--file-bytes", "8MiB", "--all-methods"]);
    assert!(out.contains("io_uring write+fdatasync") && out.contains("MB/s"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("write+fdatasync")), "synced sequential writes:\n{out}");
    let out = ok(dir.path(), &["recovery", "--bytes", "8MiB"]);
    assert!(out.contains("close"), "{out}");
    let j = dir.path().join("rec.json");
    ok(dir.path(), &["recovery", "--bytes", "8MiB", "--kill", "--json", j.to_str().unwrap()]);
    let rec = &json(&j)["recovery"][0];
    assert_eq!(rec["stop"], "sigkill");
    assert!(rec["records"].as_u64().unwrap() >= rec["acknowledged_records"].as_u64().unwrap());
    assert!(rec["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn run_quick_ends_with_a_summary_of_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["run", "--quick"]);
    assert!(out.to_lowercase().contains("summary") || out.contains("ratio"), "{out}");
    assert!(out.contains("x"), "{out}");
    assert!(out.contains("1 producer, 1024 tickets in flight") && out.contains("1 producer, batches of 1024"), "{out}");
    assert!(out.contains("1 producer, batches of 1024, 4 in flight"), "{out}");
}

#[test]
fn open_loop_with_a_stall_shows_corrected_percentiles_above_uncorrected() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("open.json");
    ok(
        dir.path(),
        &[
            "latency",
            "--rate",
            "2000",
            "--writers",
            "1",
            "--duration",
            "1s",
            "--warmup",
            "100ms",
            "--backend",
            "uring-wal:none",
            "--debug-stall-after",
            "600",
            "--debug-stall-ms",
            "200",
            "--json",
            j.to_str().unwrap(),
        ],
    );
    let load = &json(&j)["loads"][0];
    let corrected = load["latency"]["p99_us"].as_f64().unwrap();
    let uncorrected = load["latency_uncorrected"]["p99_us"].as_f64().unwrap();
    assert!(corrected > 5.0 * uncorrected, "corrected p99 {corrected} us vs uncorrected {uncorrected} us");
}

/// `raft` on `stores` (all the build has if empty), one short run each:
/// the table's rows and the JSON results, checked, and nothing left behind.
fn raft_side_by_side(stores: &[&str], flag: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("raft.json");
    let mut args = vec!["raft", "--clients", "1", "--duration", "1s", "--warmup", "100ms", "--repeat", "1"];
    if let Some(f) = flag {
        args.extend(["--store", f]);
    }
    args.extend(["--json", j.to_str().unwrap()]);
    let out = ok(dir.path(), &args);
    for store in stores {
        let row = out.lines().find(|l| l.starts_with(store)).unwrap_or_else(|| panic!("no {store} row:\n{out}"));
        assert!(row.contains("1.00x") || *store != "memory", "the memory row is its own baseline: {row}");
    }
    assert!(out.contains("bound:"), "the device's bound is printed: {out}");
    let report = json(&j);
    let results = report["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), stores.len(), "{results:?}");
    for (r, store) in results.iter().zip(stores) {
        assert_eq!(r["store"], *store);
        assert_eq!((r["clients"].as_u64(), r["groups"].as_u64(), r["runs"].as_u64()), (Some(1), Some(1), Some(1)));
        for field in ["writes_per_s", "p50_us", "cpu_us_per_write"] {
            assert!(r[field].as_f64().unwrap() > 0.0, "{field}: {r}");
        }
        assert!(r["error"].is_null(), "{r}");
    }
    assert!(report["raft_bound"]["bound_p50_us"].as_f64().unwrap() > 0.0);
    // The nodes' logs are gone.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("raft.json")], "left in the data directory");
}

#[test]
fn raft_measures_the_stores_side_by_side() {
    raft_side_by_side(&["memory", "uring-wal/group-sync", "uring-wal/dsync"], Some("memory,group-sync,dsync"));
}

#[test]
fn raft_measures_many_groups_on_a_shared_log_and_on_a_log_each() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("groups.json");
    let args = ["raft", "--groups", "3", "--clients", "4", "--duration", "500ms", "--warmup", "100ms", "--repeat", "1"];
    let out =
        ok(dir.path(), &[&args[..], &["--store", "memory,shared,group-sync", "--json", j.to_str().unwrap()]].concat());
    assert!(out.contains("What each configuration costs"), "{out}");
    let results = json(&j)["results"].as_array().unwrap().clone();
    let stores: Vec<&str> = results.iter().map(|r| r["store"].as_str().unwrap()).collect();
    assert_eq!(stores, ["memory", "uring-wal/shared", "uring-wal/group-sync"]);
    for r in &results {
        assert_eq!((r["groups"].as_u64(), r["clients"].as_u64()), (Some(3), Some(4)), "{r}");
        assert!(r["writes_per_s"].as_f64().unwrap() > 0.0 && r["threads"].as_u64().unwrap() > 0, "{r}");
        assert!(r["error"].is_null(), "{r}");
        let on_disk = r["store"] != "memory";
        assert_eq!(r["syncs_per_write"].as_f64().is_some_and(|s| s > 0.0), on_disk, "{r}");
        assert_eq!(r["disk_bytes"].as_u64().unwrap() > 0, on_disk, "{r}");
    }
    // One log per node, against one per group on each node: fewer threads.
    assert!(results[1]["threads"].as_u64() < results[2]["threads"].as_u64(), "{results:?}");
}

#[cfg(feature = "peers")]
#[test]
fn raft_measures_raft_log_with_peers() {
    raft_side_by_side(&["raft-log", "raft-log-nowait"], Some("raft-log,raft-log-nowait"));
}

#[test]
fn bad_input_gets_a_clear_message_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(fails(d, &["latency", "--no-such-flag"]).contains("--no-such-flag"));
    assert!(fails(d, &["latency", "--record-bytes", "0"]).contains("positive"));
    assert!(fails(d, &["latency", "--record-bytes", "100MiB"]).contains("maximum record size"));
    assert!(fails(d, &["throughput", "--writers=-3"]).contains("writers"));
    assert!(fails(d, &["throughput", "--writers", "0"]).contains("writers"));
    assert!(fails(d, &["latency", "--duration=-1s"]).contains("duration"));
    assert!(fails(d, &["latency", "--backend", "sqlite"]).contains("unknown backend"));
    assert!(fails(d, &["latency", "--rate", "0"]).contains("rate"));
    assert!(fails(d, &["latency", "--rate", "1000", "--pipeline", "4"]).contains("cannot be combined"));
    if Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let err = fails(shm.path(), &["latency", "--duration", "100ms"]);
        assert!(err.contains("--allow-buffered"), "{err}");
    }
}

#[test]
fn a_pipelined_batch_load_submits_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("batches.json");
    ok(
        dir.path(),
        &[
            "throughput",
            "--writers",
            "1",
            "--batch",
            "64",
            "--pipeline",
            "4",
            "--ops",
            "12800",
            "--warmup",
            "0",
            "--json",
            j.to_str().unwrap(),
        ],
    );
    let load = &json(&j)["loads"][0];
    assert_eq!((load["batch"].as_u64(), load["pipeline"].as_u64()), (Some(64), Some(4)), "{load}");
    let ops = load["ops"].as_u64().unwrap();
    assert!(ops >= 12800 && ops.is_multiple_of(64), "records are counted in whole batches: {ops}");
    // Single records with four tickets in flight would make at most a few
    // records per flush; batches of 64 make at least one batch per flush
    // (one may be split where a segment ends).
    let per_flush = load["records_per_flush"].as_f64().unwrap();
    assert!(per_flush >= 32.0, "{per_flush} records per flush");
}

#[test]
fn intervals_print_lines_and_land_in_the_json_and_a_chart_over_time() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("t.json");
    let s = dir.path().join("t.svg");
    let (j_arg, s_arg) = (j.to_str().unwrap(), s.to_str().unwrap());
    let args = [
        "latency",
        "--interval",
        "200ms",
        "--duration",
        "1s",
        "--warmup",
        "100ms",
        "--json",
        j_arg,
        "--svg",
        s_arg,
        "--backend",
        "uring-wal,raw:dsync",
    ];
    let stdout = ok(dir.path(), &args);
    assert!(stdout.contains("records/s") && stdout.contains("p99.9 us"), "no interval header:\n{stdout}");
    let lines = stdout.lines().filter(|l| l.contains(" new, ")).count();
    assert!((5..=6).contains(&lines), "{lines} interval lines for 1 s at 200 ms:\n{stdout}");
    let report = json(&j);
    // The device alone over time too (no log counters: "-" in its lines).
    let raw = report["loads"].as_array().unwrap().iter().find(|l| l["test"] == "raw").expect("the raw load");
    let raw_intervals = raw["intervals"].as_array().expect("the device's intervals");
    assert!((5..=6).contains(&raw_intervals.len()), "{raw_intervals:?}");
    let raw_ops: u64 = raw_intervals.iter().map(|p| p["ops"].as_u64().unwrap()).sum();
    assert_eq!(raw_ops, raw["ops"].as_u64().unwrap(), "the device's intervals add up to its load");
    let load = &report["loads"][0];
    let intervals = load["intervals"].as_array().expect("intervals in the JSON");
    assert_eq!(intervals.len(), lines);
    let ops: u64 = intervals.iter().map(|p| p["ops"].as_u64().unwrap()).sum();
    assert_eq!(ops, load["ops"].as_u64().unwrap(), "the intervals add up to the load");
    assert!(intervals.iter().all(|p| p["p999_us"].as_f64().unwrap() > 0.0 && p["syncs"].as_u64().unwrap() > 0));
    let ends: Vec<f64> = intervals.iter().map(|p| p["end_s"].as_f64().unwrap()).collect();
    assert!(ends.windows(2).all(|w| w[0] < w[1]) && (ends[0] - 0.2).abs() < 0.05, "{ends:?}");
    let chart = std::fs::read_to_string(dir.path().join("t-over-time.svg")).expect("the chart over time");
    roxmltree::Document::parse(&chart).expect("well-formed SVG");
    assert!(chart.contains("Throughput over time") && chart.contains("Append latency over time"));
    assert!(fails(dir.path(), &["latency", "--interval", "1ms"]).contains("shorter than"));
    assert!(fails(dir.path(), &["latency", "--interval", "10ms", "--duration", "1h"]).contains("more than 100000"));
}

#[test]
fn several_directories_are_measured_side_by_side_each_with_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let j = dir.path().join("dirs.json");
    let dirs = format!("{},{}", a.display(), b.display());
    let out = Command::new(env!("CARGO_BIN_EXE_bench-harness"))
        .args(["--quiet", "--dir", &dirs, "latency", "--duration", "200ms", "--warmup", "50ms", "--json"])
        .arg(&j)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("file system:").count(), 2, "an environment block per directory:\n{stdout}");
    let report = json(&j);
    assert_eq!(report["environments"].as_array().unwrap().len(), 2);
    let loads = report["loads"].as_array().unwrap();
    let on: Vec<&str> = loads.iter().map(|l| l["dir"].as_str().unwrap()).collect();
    assert_eq!(on, [a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(loads.iter().all(|l| l["ops"].as_u64().unwrap() > 0));
    let raft = Command::new(env!("CARGO_BIN_EXE_bench-harness")).args(["--dir", &dirs, "raft"]).output().unwrap();
    assert!(!raft.status.success() && String::from_utf8_lossy(&raft.stderr).contains("several --dir"));
}

#[test]
fn ctrl_c_ends_a_long_run_early_and_still_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("long.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench-harness"))
        .arg("--dir")
        .arg(dir.path())
        .args(["--quiet", "latency", "--duration", "1h", "--interval", "500ms", "--warmup", "100ms", "--json"])
        .arg(&j)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // SAFETY: kill(2) on our own child's pid, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the run did not end within 30 s of Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "an interrupted run says so in its exit status");
    let load = &json(&j)["loads"][0];
    let seconds = load["seconds"].as_f64().unwrap();
    assert!(seconds > 1.0 && seconds < 30.0, "measured {seconds} s");
    assert!(load["ops"].as_u64().unwrap() > 0 && load["intervals"].as_array().unwrap().len() >= 3);
}
