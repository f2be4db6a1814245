//! wal-admin: look into a uring-wal directory, verify it, repair it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use uring_wal::inspect::{self, DumpItem, SegmentState};
use uring_wal::{Error, RecoveryMode, RecoveryReport};

const EXAMPLES: &str = "\
Examples:
  wal-admin stat wal-data              works while the writer runs (read-only)
  wal-admin dump wal-data --from 1000 --limit 20 --payload text
  wal-admin verify wal-data            exit status 1 on corruption, with its location
  wal-admin repair wal-data --backup wal-backup
dump, verify and repair take the directory's lock: stop the writer first.

Exit status:
  0  ok
  1  the log is damaged: corruption (or, with verify --strict, a torn tail)
  2  bad arguments
  3  a running writer holds the directory (stop it first)
  4  anything else (I/O error, not a log directory, ...)";

/// Exit statuses (see EXAMPLES).
const EXIT_DAMAGED: u8 = 1;
const EXIT_LOCKED: u8 = 3;
const EXIT_OTHER: u8 = 4;

/// Inspect, verify and repair a uring-wal directory.
#[derive(Parser, Debug)]
#[command(name = "wal-admin", version, about, after_help = EXAMPLES)]
struct Cli {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PayloadAs {
    Hex,
    Text,
    None,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Records with LSN, type, size and checksum state; damaged ranges.
    Dump {
        dir: PathBuf,
        /// First LSN to show.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Records to show at most.
        #[arg(long)]
        limit: Option<u64>,
        /// How to show payloads.
        #[arg(long, value_enum, default_value = "hex")]
        payload: PayloadAs,
        /// Payload bytes shown per record.
        #[arg(long, default_value_t = 32)]
        payload_bytes: usize,
    },
    /// Segments, LSN ranges, sizes. While a writer runs, a read-only look
    /// (its newest segment as it was at that moment).
    Stat { dir: PathBuf },
    /// A full check: what opening would find. Exit status 1 on corruption.
    Verify {
        dir: PathBuf,
        /// Also fail on a torn tail (what RecoveryMode::AbsoluteConsistency does).
        #[arg(long)]
        strict: bool,
    },
    /// Cut a torn tail, after copying what it cuts into --backup.
    Repair {
        dir: PathBuf,
        /// Directory for copies of every segment file repair cuts or removes.
        #[arg(long)]
        backup: PathBuf,
        /// Also cut mid-log corruption: everything from the first damage is
        /// dropped (acknowledged records are lost; they stay in the backup).
        #[arg(long)]
        force: bool,
    },
}

fn report_json(r: &RecoveryReport) -> Value {
    json!({
        "segments": r.segments,
        "records": r.records,
        "bytes_read": r.bytes_read,
        "first_lsn": r.first_lsn,
        "last_lsn": r.last_lsn,
        "torn_tail": r.torn_tail.as_ref().map(|t| json!({
            "segment": t.segment, "offset": t.offset, "next_lsn": t.next_lsn,
            "records_dropped": t.records_dropped, "segments_removed": t.segments_removed,
        })),
        "skipped": r.skipped.iter().map(|s| json!({"segment": s.segment, "from": s.from, "to": s.to})).collect::<Vec<_>>(),
        "skipped_count": r.skipped_count,
        "removed_files": r.removed_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "ignored_entries": r.ignored_entries,
        "seconds": r.duration.as_secs_f64(),
    })
}

fn error_json(e: &Error) -> Value {
    match e {
        Error::Corruption { segment, path, offset, lsn, detail } => json!({
            "error": "corruption", "segment": segment, "path": path.display().to_string(),
            "offset": offset, "lsn": lsn, "detail": detail, "message": e.to_string(),
        }),
        Error::TornTail { segment, path, offset, lsn } => json!({
            "error": "torn_tail", "segment": segment, "path": path.display().to_string(),
            "offset": offset, "lsn": lsn, "message": e.to_string(),
        }),
        Error::Locked { path, holder_pid, holder_exited, .. } => json!({
            "error": "locked", "path": path.display().to_string(), "holder_pid": holder_pid,
            "holder_exited": holder_exited, "message": e.to_string(),
        }),
        other => json!({ "error": "failed", "message": other.to_string() }),
    }
}

fn show_payload(p: &[u8], how: PayloadAs, max: usize) -> String {
    let shown = &p[..p.len().min(max)];
    let more = if p.len() > max { "..." } else { "" };
    match how {
        PayloadAs::Hex => format!("{}{more}", shown.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        PayloadAs::Text => format!("{:?}{more}", String::from_utf8_lossy(shown)),
        PayloadAs::None => String::new(),
    }
}

fn run(cli: &Cli) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Cmd::Dump { dir, from, limit, payload, payload_bytes } => {
            let mut shown = 0u64;
            let mut items = Vec::new();
            inspect::dump(dir, *from, |item| {
                let (line, value) = match item {
                    DumpItem::Record { segment, offset, lsn, kind, payload: p } => {
                        shown += 1;
                        let text = show_payload(p, *payload, *payload_bytes);
                        (
                            format!(
                                "{lsn:>12}  {kind:<16}  {:>8} B  crc ok  seg {segment} @{offset}  {text}",
                                p.len(),
                                kind = format!("{kind:?}")
                            ),
                            json!({"lsn": lsn, "type": format!("{kind:?}"), "bytes": p.len(), "checksum": "ok",
                                   "segment": segment, "offset": offset, "payload": text}),
                        )
                    }
                    DumpItem::Damaged { segment, from, to } => (
                        format!("     damaged  seg {segment} bytes {from}..{to} (no record lost)"),
                        json!({"damaged": {"segment": segment, "from": from, "to": to}}),
                    ),
                    DumpItem::Missing { segment, at, lsn, next_offset, next_lsn } => (
                        format!(
                            "     MISSING  LSN {lsn} at seg {segment} @{at}; next valid record LSN {next_lsn} @{next_offset}"
                        ),
                        json!({"missing": {"segment": segment, "at": at, "lsn": lsn, "next_offset": next_offset, "next_lsn": next_lsn}}),
                    ),
                    DumpItem::End { segment, at } => {
                        (format!("         end  seg {segment} @{at}"), json!({"end": {"segment": segment, "at": at}}))
                    }
                    _ => return true,
                };
                if cli.json {
                    items.push(value);
                } else {
                    let _ = writeln!(out, "{line}");
                }
                limit.is_none_or(|l| shown < l)
            })?;
            if cli.json {
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&items).expect("json"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Stat { dir } => {
            let segs = match inspect::segments(dir) {
                Err(Error::Locked { holder_pid, holder_exited: false, .. }) => {
                    let who = holder_pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                    eprintln!("note: a writer{who} is running: a read-only look; its newest segment may be mid-write");
                    inspect::segments_while_written(dir)?
                }
                other => other?,
            };
            if cli.json {
                let v: Vec<Value> = segs
                    .iter()
                    .map(|s| {
                        let state = match &s.state {
                            SegmentState::Live { first_lsn, block_bytes, record_bytes_max, prev_data_end } => json!({
                                "live": {"first_lsn": first_lsn, "block_bytes": block_bytes,
                                         "record_bytes_max": record_bytes_max, "prev_data_end": prev_data_end}}),
                            SegmentState::Spare => json!("spare"),
                            SegmentState::Damaged(why) => json!({"damaged": why}),
                            SegmentState::Leftover => json!("leftover"),
                            _ => json!("other"),
                        };
                        json!({"id": s.id, "path": s.path.display().to_string(), "size_bytes": s.size_bytes,
                               "state": state, "records": s.records, "last_lsn": s.last_lsn, "data_end": s.data_end})
                    })
                    .collect();
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                let _ = writeln!(
                    out,
                    "{:>6}  {:<9}  {:>12}  {:>12}  {:>10}  {:>12}  {:>12}",
                    "id", "state", "first LSN", "last LSN", "records", "data end B", "size B"
                );
                let (mut records, mut bytes) = (0u64, 0u64);
                for s in &segs {
                    let (state, first) = match &s.state {
                        SegmentState::Live { first_lsn, .. } => ("live", first_lsn.to_string()),
                        SegmentState::Spare => ("spare", "-".into()),
                        SegmentState::Damaged(_) => ("damaged", "-".into()),
                        _ => ("leftover", "-".into()),
                    };
                    records += s.records;
                    bytes += s.size_bytes;
                    let last = s.last_lsn.map_or("-".into(), |l| l.to_string());
                    let end = s.data_end.map_or("-".into(), |e| e.to_string());
                    let _ = writeln!(
                        out,
                        "{:>6}  {state:<9}  {first:>12}  {last:>12}  {:>10}  {end:>12}  {:>12}",
                        s.id, s.records, s.size_bytes
                    );
                }
                let _ = writeln!(out, "{} segment files, {records} records, {bytes} bytes", segs.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Verify { dir, strict } => {
            let mode = if *strict { RecoveryMode::AbsoluteConsistency } else { RecoveryMode::TolerateTornTail };
            match inspect::verify(dir, mode) {
                Ok(r) => {
                    if cli.json {
                        let _ = writeln!(
                            out,
                            "{}",
                            serde_json::to_string_pretty(&json!({"ok": true, "report": report_json(&r)}))
                                .expect("json")
                        );
                    } else {
                        let _ = writeln!(
                            out,
                            "ok: {} records, LSN {}..={}, {} segments",
                            r.records, r.first_lsn, r.last_lsn, r.segments
                        );
                        if let Some(t) = &r.torn_tail {
                            let _ = writeln!(
                                out,
                                "torn tail at segment {} offset {}: opening would cut {} records (next LSN {})",
                                t.segment, t.offset, t.records_dropped, t.next_lsn
                            );
                        }
                        if r.skipped_count > 0 {
                            let _ = writeln!(out, "{} damaged ranges held no record", r.skipped_count);
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ (Error::Corruption { .. } | Error::TornTail { .. })) => {
                    if cli.json {
                        let _ = writeln!(
                            out,
                            "{}",
                            serde_json::to_string_pretty(&json!({"ok": false, "error": error_json(&e)})).expect("json")
                        );
                    } else {
                        eprintln!("error: {e}");
                    }
                    Ok(ExitCode::from(EXIT_DAMAGED))
                }
                Err(e) => Err(e),
            }
        }
        Cmd::Repair { dir, backup, force } => {
            let r = inspect::repair(dir, backup, *force)?;
            if cli.json {
                let v = json!({"report": report_json(&r.report),
                               "backed_up": r.backed_up.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()});
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                match &r.report.torn_tail {
                    Some(t) => {
                        let _ = writeln!(
                            out,
                            "cut at segment {} offset {}: the log now ends at LSN {} ({} records dropped, {} segment files removed)",
                            t.segment, t.offset, r.report.last_lsn, t.records_dropped, t.segments_removed
                        );
                    }
                    None => {
                        let _ = writeln!(out, "nothing to repair: the log ends cleanly at LSN {}", r.report.last_lsn);
                    }
                }
                for p in &r.backed_up {
                    let _ = writeln!(out, "backed up {}", p.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"ok": false, "error": error_json(&e)})).expect("json")
                );
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(match e {
                Error::Corruption { .. } | Error::TornTail { .. } => EXIT_DAMAGED,
                Error::Locked { holder_exited: false, .. } => EXIT_LOCKED,
                _ => EXIT_OTHER,
            })
        }
    }
}
