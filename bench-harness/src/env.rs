//! What the machine and the storage under the data directory offer.

use std::path::Path;

use crate::model::Environment;
use uring_wal::storage::DeviceFacts;

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Whether files in `dir` can be opened with O_DIRECT (creates and removes a
/// probe file there).
pub fn o_direct(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join(".bench-harness-odirect-probe");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_DIRECT)
        .open(&probe);
    let _ = std::fs::remove_file(&probe);
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err("the file system refuses O_DIRECT (EINVAL)".into()),
        Err(e) => Err(format!("opening a probe file failed: {e}")),
    }
}

/// Device facts of `dir`, read from a probe file in it: statx reports the
/// direct-I/O alignment of regular files only.
pub fn device_facts(dir: &Path) -> DeviceFacts {
    let probe = dir.join(".bench-harness-statx-probe");
    let facts = match std::fs::write(&probe, b"") {
        Ok(()) => DeviceFacts::probe(&probe),
        Err(_) => DeviceFacts::probe(dir),
    };
    let _ = std::fs::remove_file(&probe);
    facts
}

/// Collects the environment of a run in `dir` (which must exist).
pub fn collect(dir: &Path) -> Environment {
    let facts = device_facts(dir);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let uring = uring_wal::io_uring_unavailable_reason();
    let direct = o_direct(dir);
    Environment {
        harness_version: env!("CARGO_PKG_VERSION").into(),
        library_version: uring_wal::VERSION.into(),
        timestamp_utc: crate::sys::utc_now(),
        kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_bytes,
        dir: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()).display().to_string(),
        fs_type: facts.fs_type.clone(),
        device: facts.device.clone(),
        device_name: facts.device_name.clone(),
        logical_block_bytes: facts.logical_block_bytes,
        physical_block_bytes: facts.physical_block_bytes,
        dio_mem_align: facts.dio_mem_align,
        dio_offset_align: facts.dio_offset_align,
        write_cache: facts.write_cache.clone(),
        fua: facts.fua,
        atomic_write_unit_max_bytes: facts.atomic_write_unit_max_bytes,
        rotational: facts.rotational,
        io_uring_available: uring.is_none(),
        io_uring_unavailable_reason: uring,
        o_direct_accepted: direct.is_ok(),
        o_direct_refused_reason: direct.err(),
    }
}
