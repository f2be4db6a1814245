//! wal-admin as users run it: stat, dump, verify, repair, with --json.

use std::path::Path;
use std::process::{Command, Output};

use uring_wal::{BlockSize, Options, RecordType, Wal};

fn admin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wal-admin")).args(args).output().expect("run wal-admin")
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Format version 1, where every flush takes blocks of its own: the tests
/// below place damage by that layout (version 2's shared tail blocks have
/// tests of their own in the library).
fn options(dir: &Path) -> Options {
    Options::durable(dir)
        .segment_bytes(128 * 1024)
        .record_bytes_max(4096)
        .block_size(BlockSize::Bytes(4096))
        .rewrite_tail_blocks(false)
}

/// 100 records of 500 bytes, one per 4 KiB block: 31 per segment.
fn make_log(dir: &Path) {
    let wal = Wal::open(options(dir)).unwrap();
    for i in 1..=100u64 {
        wal.append(RecordType::Put, format!("record {i:>4} {}", "x".repeat(480)).as_bytes()).unwrap();
    }
    wal.close().unwrap();
}

fn segment(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join(format!("{id:020}.wal"))
}

fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

#[test]
fn stat_and_dump_describe_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir);
    let d = dir.to_str().unwrap();
    let out = admin(&["stat", d]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("100 records"), "{text}");
    let v = json_of(&admin(&["--json", "stat", d]));
    let live: Vec<_> = v.as_array().unwrap().iter().filter(|s| s["state"].get("live").is_some()).collect();
    assert_eq!(live.len(), 4);
    assert_eq!(live.iter().map(|s| s["records"].as_u64().unwrap()).sum::<u64>(), 100);
    assert_eq!(live.last().unwrap()["last_lsn"], 100);
    let v = json_of(&admin(&["--json", "dump", d, "--from", "40", "--limit", "3", "--payload", "text"]));
    let records: Vec<_> = v.as_array().unwrap().iter().filter(|i| i.get("lsn").is_some()).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["lsn"], 40);
    assert_eq!(records[0]["checksum"], "ok");
    assert!(records[0]["payload"].as_str().unwrap().contains("record   40"));
}

#[test]
fn verify_reports_corruption_with_its_location_and_a_failing_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir);
    let d = dir.to_str().unwrap();
    assert!(admin(&["verify", d]).status.success());
    // LSN 40 is the 9th record of segment 2 (31 per segment).
    let offset = 4096 + 8 * 4096;
    flip(&segment(&dir, 2), offset + 100);
    let out = admin(&["--json", "verify", d]);
    assert_eq!(out.status.code(), Some(1), "corruption");
    let v = json_of(&out);
    assert_eq!(v["error"]["error"], "corruption");
    assert_eq!(
        (v["error"]["segment"].as_u64(), v["error"]["offset"].as_u64(), v["error"]["lsn"].as_u64()),
        (Some(2), Some(offset as u64), Some(40))
    );
    // dump shows where.
    let v = json_of(&admin(&["--json", "dump", d, "--payload", "none"]));
    assert!(v.as_array().unwrap().iter().any(|i| i["missing"]["lsn"] == 40), "{v}");
    // repair refuses it without --force, and changes nothing.
    let backup = tmp.path().join("backup");
    let out = admin(&["repair", d, "--backup", backup.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!backup.exists());
    // With --force it keeps LSN 1..=39 and backs up what it cuts.
    let out = admin(&["--json", "repair", d, "--backup", backup.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["report"]["last_lsn"], 39);
    assert!(v["backed_up"].as_array().unwrap().len() >= 3);
    assert!(admin(&["verify", d]).status.success());
    let wal = Wal::open(options(&dir)).unwrap();
    assert_eq!(wal.last_lsn(), 39);
}

#[test]
fn repair_cuts_a_torn_tail_after_backing_it_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir);
    let d = dir.to_str().unwrap();
    // Damage the last record (LSN 100, the 7th record of segment 4), and
    // zero the sync marker the clean close wrote after it, as if the process
    // had crashed while that flush was in flight: a torn tail. (With the
    // marker, the damage is corruption of a synced record.)
    let seg = segment(&dir, 4);
    flip(&seg, 4096 + 6 * 4096 + 40);
    let mut b = std::fs::read(&seg).unwrap();
    b[4096 + 7 * 4096..4096 + 8 * 4096].fill(0);
    std::fs::write(&seg, b).unwrap();
    let out = admin(&["verify", d]);
    assert!(out.status.success(), "a torn tail is not corruption");
    assert!(String::from_utf8_lossy(&out.stdout).contains("torn tail"));
    assert_eq!(admin(&["verify", d, "--strict"]).status.code(), Some(1));
    let backup = tmp.path().join("backup");
    let out = admin(&["repair", d, "--backup", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(backup.join("00000000000000000004.wal").exists());
    let wal = Wal::open(options(&dir)).unwrap();
    assert_eq!(wal.last_lsn(), 99);
    assert!(wal.recovery_report().torn_tail.is_none(), "repaired: reopening cuts nothing more");
}

#[test]
fn a_live_log_is_locked_for_verify_and_readable_by_stat_and_a_missing_one_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir);
    let d = dir.to_str().unwrap();
    let wal = Wal::open(options(&dir)).unwrap();
    for i in 101..=120u64 {
        wal.append(RecordType::Put, format!("record {i:>4}").as_bytes()).unwrap();
    }
    // verify needs the writer stopped: its own exit status, not corruption's.
    for cmd in [&["verify", d][..], &["dump", d], &["--json", "verify", d]] {
        let out = admin(cmd);
        assert_eq!(out.status.code(), Some(3), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v = json_of(&admin(&["--json", "verify", d]));
    assert_eq!(v["error"]["error"], "locked");
    // stat looks anyway, read-only, and says so.
    let out = admin(&["--json", "stat", d]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
    let v = json_of(&out);
    let last = v.as_array().unwrap().iter().filter_map(|s| s["last_lsn"].as_u64()).max();
    assert_eq!(last, Some(120), "{v}");
    wal.append(RecordType::Put, b"after the look").unwrap();
    drop(wal);
    assert!(admin(&["verify", d]).status.success(), "the look changed nothing");
    let out = admin(&["stat", tmp.path().join("nope").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn verify_counts_a_spare_as_a_spare_not_a_file_to_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir);
    // Segment 1 holds LSNs 1..=31: retired, it is kept as a spare.
    let wal = Wal::open(options(&dir)).unwrap();
    assert_eq!(wal.truncate_before(32).unwrap(), 1);
    wal.close().unwrap();
    let v = json_of(&admin(&["--json", "verify", dir.to_str().unwrap()]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["report"]["removed_files"], serde_json::json!([]), "{v}");
    let spares = json_of(&admin(&["--json", "stat", dir.to_str().unwrap()]));
    assert!(spares.as_array().unwrap().iter().any(|s| s["state"] == "spare"), "the log has a spare: {spares}");
}
