//! Opening a log, in named steps. `Wal::open` runs them in this order:
//!
//! 1. [`plan_io`]: what the device offers, whether `O_DIRECT` is used, the
//!    padding block;
//! 2. [`recover_durably`]: recovery, its outcome applied (files removed) and
//!    made durable (the directory, and data a crashed process left in the
//!    page cache) before anything new is acknowledged;
//! 3. [`first_segment`]: where appends continue: the recovered last segment,
//!    or a new one activated now;
//! 4. [`engine_config`], [`backend_choice`] and [`start_io_thread`]: the I/O thread on the
//!    backend asked for.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::commit::policy::SyncPolicy;
use crate::commit::shared::Shared;
use crate::commit::{self, Active, EngineConfig, Parts};
use crate::error::{Error, Result};
use crate::format::{self, record};
use crate::io::backend;
pub(crate) use crate::io::backend::Started;
use crate::options::{BlockSize, DirectIo, Options};
use crate::recovery::{self, Continue, RecoverConfig, Recovered};
use crate::segment::prepare::{self, PrepareConfig, PrepareCounters};
use crate::segment::{self, Geometry};
use crate::storage::{DeviceFacts, OpenHow, Storage, write_all_at};

/// What step 1 decided.
#[derive(Debug)]
pub(crate) struct IoPlan {
    pub device: DeviceFacts,
    pub direct: bool,
    /// Why `O_DIRECT` is not used, when it is not.
    pub buffered_reason: Option<String>,
    pub block_bytes: u32,
}

/// Step 1: the device, `O_DIRECT` and the block size.
pub(crate) fn plan_io(options: &Options, storage: &dyn Storage, lock_path: &Path) -> Result<IoPlan> {
    let device = storage.device_facts(lock_path);
    let (direct, buffered_reason) = decide_direct(options, storage, lock_path, &device)?;
    let block_bytes = decide_block(options, &device, direct)?;
    options.check_fits(block_bytes)?;
    Ok(IoPlan { device, direct, buffered_reason, block_bytes })
}

/// Step 2: recovery, applied and made durable.
pub(crate) fn recover_durably(options: &Options, storage: &Arc<dyn Storage>, plan: &IoPlan) -> Result<Recovered> {
    let dir = &options.dir;
    let recovered = recovery::recover(&RecoverConfig {
        storage: storage.clone(),
        dir: dir.clone(),
        direct: plan.direct,
        confirm_direct: false,
        cache_counted: plan.device.has_own_page_cache(),
        mode: options.recovery,
        segment_bytes: options.segment_bytes,
    })?;
    for path in &recovered.remove {
        match storage.remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", path, e)),
        }
    }
    // Always, not only after removing files: a process killed between a
    // rename (a prepared or recycled segment) and its directory fsync
    // leaves an entry that is only in the page cache. Recovery took it
    // for a spare; records acknowledged into it would vanish with the
    // entry at a power loss. After this sync every entry recovery saw is
    // durable.
    storage.sync_dir(dir).map_err(|e| Error::io("fsync directory", dir, e))?;
    // Recovered data may still sit in the page cache of a process that
    // crashed before syncing it; acknowledging anything new on top of it
    // requires it to be durable first.
    for seg in &recovered.live {
        let file =
            storage.open_file(&seg.path, OpenHow::read(false)).map_err(|e| Error::io("open segment", &seg.path, e))?;
        file.sync_data().map_err(|e| Error::io("fdatasync", &seg.path, e))?;
    }
    Ok(recovered)
}

/// Step 3: the segment appends go to. A new one is activated here (its
/// header written and synced) and added to `recovered.live`.
pub(crate) fn first_segment(
    options: &Options,
    storage: &dyn Storage,
    prep_cfg: &PrepareConfig,
    plan: &IoPlan,
    recovered: &mut Recovered,
) -> Result<Active> {
    match recovered.continue_at.clone() {
        Continue::InSegment { meta, write_pos } => {
            let file = storage
                .open_file(&meta.path, OpenHow::write(plan.direct))
                .map_err(|e| Error::io("open segment", &meta.path, e))?;
            let path = Arc::from(meta.path.as_path());
            Ok(Active { meta, file, path, write_pos, activated: true })
        }
        Continue::NewSegment { id, prev_data_end } => {
            // No budget: full speed, whatever the hurry says.
            let unpaced = prepare::Pace { budget: Duration::ZERO, hurry: &prepare::Hurry::default(), runway: 0 };
            let prepared = prepare::prepare_segment(prep_cfg, &mut recovered.spares, id, unpaced)?;
            let (header, meta) = segment::activation(
                id,
                prepared.path.clone(),
                recovered.next_lsn,
                prev_data_end,
                geometry(options, plan),
            );
            write_all_at(prepared.file.as_ref(), &segment::header_block(&header), 0, false)
                .and_then(|()| prepared.file.sync_data())
                .map_err(|e| Error::io("activate segment", &prepared.path, e))?;
            recovered.live.push(meta.clone());
            Ok(Active::new(meta, prepared.file, true))
        }
    }
}

/// The segment preparer's settings.
pub(crate) fn prepare_config(options: &Options, plan: &IoPlan, storage: &Arc<dyn Storage>) -> PrepareConfig {
    PrepareConfig {
        storage: storage.clone(),
        dir: options.dir.clone(),
        segment_bytes: options.segment_bytes,
        direct: plan.direct,
        spare_segments_max: options.spare_segments_max,
        recycle: options.recycle_segments,
        prewrite: options.prewrite_segments,
        counters: Arc::new(PrepareCounters::default()),
        clock: Arc::default(),
    }
}

/// What the backend is chosen from ([`backend::start`] chooses).
pub(crate) fn backend_choice(
    options: &Options,
    storage: &dyn Storage,
    lock_fd: Option<std::os::fd::RawFd>,
    lock_path: &Path,
) -> Result<backend::Choice> {
    // Storages without descriptors (simulated ones) cannot use io_uring.
    let descriptors = storage
        .open_file(lock_path, OpenHow::read(false))
        .map_err(|e| Error::io("open", lock_path, e))?
        .raw_fd()
        .is_some();
    Ok(backend::Choice {
        backend: options.backend,
        lock_fd,
        descriptors,
        order: storage.completion_order(),
        give_up: options.io_timeout,
        #[cfg(feature = "fault-injection")]
        ring_faults: options.ring_faults.clone(),
    })
}

/// Step 4: the I/O thread's settings.
pub(crate) fn engine_config(options: &Options, plan: &IoPlan) -> EngineConfig {
    // Even a synchronous pwritev2(RWF_DSYNC) is not durable on some file
    // systems (FUSE with FOPEN_DIRECT_IO), so this holds on every backend.
    let policy = SyncPolicy::new(options.durability, plan.device.trusts_rwf_dsync());
    EngineConfig {
        policy,
        flush_bytes_max: options.flush_bytes_max,
        flushes_in_flight_max: policy.flushes_in_flight_max(plan.direct, options.flushes_in_flight_max),
        geometry: geometry(options, plan),
        io_spin: options.io_spin,
        io_timeout: options.io_timeout,
    }
}

/// What every segment this run creates shares.
fn geometry(options: &Options, plan: &IoPlan) -> Geometry {
    Geometry {
        segment_bytes: options.segment_bytes,
        block_bytes: plan.block_bytes,
        record_bytes_max: options.record_bytes_max,
        format_version: if options.rewrite_tail_blocks { format::FORMAT_VERSION } else { format::FORMAT_VERSION_MIN },
    }
}

/// Size of each flush buffer: the largest flush, plus the largest record that
/// may overflow it, plus padding.
pub(crate) fn buffer_bytes(options: &Options, block_bytes: u32) -> usize {
    let block = u64::from(block_bytes.max(format::BLOCK_BYTES_MAX));
    let bytes = options.flush_bytes_max as u64 + record::encoded_len(options.record_bytes_max) + 2 * block;
    (bytes as usize).next_multiple_of(4096)
}

fn decide_direct(
    options: &Options,
    storage: &dyn Storage,
    probe_file: &Path,
    device: &DeviceFacts,
) -> Result<(bool, Option<String>)> {
    if options.direct_io == DirectIo::Off {
        return Ok((false, Some("DirectIo::Off".into())));
    }
    let refused = match storage.open_file(probe_file, OpenHow::read(true)) {
        Ok(f) if f.is_direct() => {
            if device.dio_offset_align > 4096 || device.dio_mem_align > 4096 {
                Some(format!(
                    "O_DIRECT needs {}-byte offsets and {}-byte memory alignment; buffers are 4096-aligned",
                    device.dio_offset_align, device.dio_mem_align
                ))
            } else {
                None
            }
        }
        Ok(_) => Some(format!("{} storage has no O_DIRECT", device.fs_type)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            Some(format!("{} refuses O_DIRECT (EINVAL)", device.fs_type))
        }
        Err(e) => return Err(Error::io("probe O_DIRECT", probe_file, e)),
    };
    match (refused, options.direct_io) {
        (None, _) => Ok((true, None)),
        (Some(reason), DirectIo::Required) => Err(Error::Unsupported { what: "O_DIRECT", reason }),
        (Some(reason), _) => Ok((false, Some(reason))),
    }
}

fn decide_block(options: &Options, device: &DeviceFacts, direct: bool) -> Result<u32> {
    let block = match options.block {
        BlockSize::Auto => device.safe_block_bytes(),
        BlockSize::DirectIoAlignment => {
            if device.dio_offset_align == 0 {
                device.safe_block_bytes()
            } else {
                device.dio_offset_align.clamp(format::BLOCK_BYTES_MIN, format::BLOCK_BYTES_MAX)
            }
        }
        BlockSize::Bytes(b) => b,
    };
    if direct && device.dio_offset_align > block {
        return Err(Error::InvalidOptions(format!(
            "block size {block} is below the device's O_DIRECT alignment {}",
            device.dio_offset_align
        )));
    }
    Ok(block)
}

/// Logs what was opened and recovered (feature `log`).
#[cfg(feature = "log")]
pub(crate) fn log_opened(dir: &Path, started: &Started, plan: &IoPlan, report: &crate::recovery::RecoveryReport) {
    crate::events::event!(
        info,
        "opened {}: {:?}{}, O_DIRECT {}, block {} B; recovered {} records in {} segments (LSN {}..={}) in {:?}",
        dir.display(),
        started.kind,
        started.fallback_reason.as_deref().map(|r| format!(" (io_uring: {r})")).unwrap_or_default(),
        plan.direct,
        plan.block_bytes,
        report.records,
        report.segments,
        report.first_lsn,
        report.last_lsn,
        report.duration
    );
    if plan.device.is_volatile() {
        crate::events::event!(
            warn,
            "{} is on {}, which keeps files in memory only: nothing of this log survives a reboot",
            dir.display(),
            plan.device.fs_type
        );
    }
    if let Some(t) = &report.torn_tail {
        crate::events::event!(
            warn,
            "cut a torn tail in segment {} at offset {}: next LSN {}, {} records dropped, {} segments removed",
            t.segment,
            t.offset,
            t.next_lsn,
            t.records_dropped,
            t.segments_removed
        );
    }
}

/// Poisons the log if the I/O thread unwinds, so no waiter hangs and every
/// later append is refused with the cause.
struct PoisonOnPanic {
    shared: Arc<Shared>,
    dir: PathBuf,
}

impl Drop for PoisonOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.poison(Arc::new(crate::error::Failure {
                op: "I/O thread",
                path: self.dir.clone(),
                segment: 0,
                offset: 0,
                lsn: self.shared.acked_lsn() + 1,
                error: std::io::Error::other("the I/O thread panicked"),
            }));
        }
    }
}

/// Starts the I/O thread on the backend `choice` asks for ([`io::backend`]);
/// the backend is set up on that thread because only the thread that creates
/// a `SINGLE_ISSUER` ring may use it.
pub(crate) fn start_io_thread(parts: Parts, choice: backend::Choice, dir: &Path) -> Result<(JoinHandle<()>, Started)> {
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<Started>>(1);
    let guard = PoisonOnPanic { shared: parts.shared.clone(), dir: dir.to_path_buf() };
    let thread = std::thread::Builder::new()
        .name("uring-wal-io".into())
        .spawn(move || {
            let _guard = guard;
            match backend::start(choice, &parts.buffers) {
                Ok(running) => {
                    if let Some(bell) = running.doorbell {
                        parts.shared.set_doorbell(bell);
                    }
                    let _ = ready_tx.send(Ok(running.started));
                    commit::Engine::new(parts, running.queue).run();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| Error::io("spawn I/O thread", dir, e))?;
    match ready_rx.recv() {
        Ok(Ok(started)) => Ok((thread, started)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(Error::io("start I/O thread", dir, std::io::Error::other("I/O thread exited during setup")))
        }
    }
}
