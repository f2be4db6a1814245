//! What the device and file system under a file offer.
//!
//! Read from `statx` (direct-I/O alignment), `statfs` (file-system type) and
//! the block device's sysfs queue attributes. Anything unknown stays `None`:
//! virtual file systems (tmpfs, overlayfs) have no block device behind them.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Facts about the storage under a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceFacts {
    /// File-system name (`ext4`, `xfs`, `tmpfs`, ...) or its magic in hex.
    pub fs_type: String,
    /// Required memory alignment for O_DIRECT, from statx (0: unknown or
    /// unsupported).
    pub dio_mem_align: u32,
    /// Required file-offset alignment for O_DIRECT, from statx (0: unknown or
    /// unsupported).
    pub dio_offset_align: u32,
    /// Preferred I/O size reported by the file system.
    pub preferred_io_bytes: u32,
    /// Block device (`major:minor`), if there is one.
    pub device: Option<String>,
    /// Kernel name of the device (`vda`, `nvme0n1`).
    pub device_name: Option<String>,
    /// Logical block size.
    pub logical_block_bytes: Option<u32>,
    /// Physical block size.
    pub physical_block_bytes: Option<u32>,
    /// `write back` (volatile cache) or `write through`.
    pub write_cache: Option<String>,
    /// Whether the device supports FUA writes.
    pub fua: Option<bool>,
    /// Largest atomic write the device guarantees (0: none).
    pub atomic_write_unit_max_bytes: Option<u32>,
    /// Spinning disk.
    pub rotational: Option<bool>,
    /// The running kernel's version (major, minor), from `uname`.
    pub kernel: Option<(u32, u32)>,
}

impl DeviceFacts {
    /// Probes the device under `file` (an existing file or directory).
    #[must_use]
    pub fn probe(file: &Path) -> DeviceFacts {
        let mut facts = DeviceFacts { fs_type: fs_type(file), kernel: kernel_version(), ..DeviceFacts::default() };
        let Some(stx) = statx(file) else { return facts };
        if stx.stx_mask & libc::STATX_DIOALIGN != 0 {
            facts.dio_mem_align = stx.stx_dio_mem_align;
            facts.dio_offset_align = stx.stx_dio_offset_align;
        }
        facts.preferred_io_bytes = stx.stx_blksize;
        if stx.stx_dev_major == 0 {
            // Anonymous device: tmpfs, overlayfs, and similar.
            return facts;
        }
        let dev = format!("{}:{}", stx.stx_dev_major, stx.stx_dev_minor);
        let base = PathBuf::from("/sys/dev/block").join(&dev);
        facts.device = Some(dev);
        facts.device_name =
            std::fs::canonicalize(&base).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        // A partition has no queue directory of its own; its disk's is one up.
        let queue = if base.join("queue").is_dir() { base.join("queue") } else { base.join("../queue") };
        let read = |name: &str| std::fs::read_to_string(queue.join(name)).ok().map(|s| s.trim().to_owned());
        let read_u32 = |name: &str| read(name).and_then(|s| s.parse::<u32>().ok());
        facts.logical_block_bytes = read_u32("logical_block_size");
        facts.physical_block_bytes = read_u32("physical_block_size");
        facts.write_cache = read("write_cache");
        facts.fua = read_u32("fua").map(|v| v != 0);
        facts.atomic_write_unit_max_bytes = read_u32("atomic_write_unit_max_bytes");
        facts.rotational = read_u32("rotational").map(|v| v != 0);
        facts
    }

    /// The safe padding unit: the physical block, at least the direct-I/O
    /// alignment, 4 KiB where unknown; clamped to 512..=65536.
    #[must_use]
    pub fn safe_block_bytes(&self) -> u32 {
        let physical = self.physical_block_bytes.unwrap_or(4096);
        physical.max(self.dio_offset_align).clamp(512, 65536).next_power_of_two()
    }
}

fn statx(path: &Path) -> Option<libc::statx> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: c is a valid NUL-terminated path; buf is a writable statx
    // buffer that the kernel fills on success.
    let ret = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS | libc::STATX_DIOALIGN,
            buf.as_mut_ptr(),
        )
    };
    // SAFETY: on success the kernel initialised the buffer; it was zeroed
    // before, so fields the kernel did not fill are zero, not garbage.
    (ret == 0).then(|| unsafe { buf.assume_init() })
}

impl DeviceFacts {
    /// Whether a write with `RWF_DSYNC` is known to be durable when it
    /// completes on this file system, asynchronous (io_uring) or not.
    ///
    /// On ext4 and xfs a direct write goes through iomap, which for
    /// `IOCB_DSYNC` syncs (or uses FUA) before it completes the request,
    /// also when it completes asynchronously; their buffered writes call
    /// `generic_write_sync` before returning. tmpfs and ramfs have nothing
    /// to sync. btrfs lost exactly that sync for direct writes issued
    /// nowait (as io_uring issues them first) from Linux 5.16 (commit
    /// 51bd9563b678) until 6.2 (commit 8184620ae212, also in some later 6.0
    /// and 6.1 stable releases, which cannot be told apart by version): it
    /// is trusted only outside 5.16..6.2. f2fs is not trusted: no power-loss
    /// test here has shown its asynchronous `RWF_DSYNC` writes durable.
    /// FUSE (and virtiofs, which reports the same magic) does not sync: for
    /// an asynchronous direct write with `RWF_DSYNC` its client sends the
    /// server no fsync (observed on Linux 6.18: every acknowledged record
    /// lost at a power loss); and when the server answers an `O_DIRECT` open
    /// with `FOPEN_DIRECT_IO`, not even for a synchronous `pwritev2`. Every
    /// other file system (network ones, overlayfs, unknown magics) is not
    /// trusted either: a write followed by an `fdatasync` costs a little
    /// more and is durable everywhere.
    #[must_use]
    pub fn trusts_rwf_dsync(&self) -> bool {
        match self.fs_type.as_str() {
            "ext4" | "xfs" | "tmpfs" | "ramfs" | "simulated" => true,
            "btrfs" => self.kernel.is_some_and(|v| !((5, 16)..(6, 2)).contains(&v)),
            _ => false,
        }
    }

    /// Whether the file system keeps its files in memory only (tmpfs,
    /// ramfs): a log there is as durable as the machine's uptime. Every
    /// sync succeeds and nothing of it survives a reboot or power loss.
    #[must_use]
    pub fn is_volatile(&self) -> bool {
        matches!(self.fs_type.as_str(), "tmpfs" | "ramfs")
    }

    /// Whether its files are read through a page cache of their own, the
    /// one `cachestat(2)` counts for them, which `POSIX_FADV_DONTNEED` can
    /// empty. A stacked file system (overlayfs, as under Docker; FUSE
    /// passthrough) passes reads to another file whose cache the count does
    /// not see; a network file system may cache elsewhere too; tmpfs pages
    /// are the file and are never dropped. Recovery trusts a count of zero
    /// only here.
    #[must_use]
    pub fn has_own_page_cache(&self) -> bool {
        matches!(self.fs_type.as_str(), "ext4" | "xfs" | "btrfs" | "f2fs")
    }
}

/// The running kernel's (major, minor) version, from `uname`.
fn kernel_version() -> Option<(u32, u32)> {
    let mut uts = MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: uts is a writable utsname buffer that the kernel fills.
    if unsafe { libc::uname(uts.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: uname succeeded and initialised the buffer.
    let uts = unsafe { uts.assume_init() };
    let release: Vec<u8> = uts.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    parse_kernel_version(std::str::from_utf8(&release).ok()?)
}

/// `"6.18.44-fc-v1300"` -> `(6, 18)`.
fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn fs_type(path: &Path) -> String {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return String::from("unknown");
    };
    let mut buf = MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: c is a valid path; buf is writable and filled on success.
    if unsafe { libc::statfs(c.as_ptr(), buf.as_mut_ptr()) } != 0 {
        return String::from("unknown");
    }
    // SAFETY: statfs succeeded and initialised the buffer.
    let magic = unsafe { buf.assume_init() }.f_type as u64;
    match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x858_458F6 => "ramfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0xF2F5_2010 => "f2fs",
        0x2FC1_2FC1 => "zfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        _ => return format!("0x{magic:x}"),
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rwf_dsync_is_trusted_only_where_async_writes_honour_it() {
        let on_kernel = |fs: &str, kernel| DeviceFacts { fs_type: fs.into(), kernel, ..DeviceFacts::default() };
        let on = |fs: &str| on_kernel(fs, Some((6, 18))).trusts_rwf_dsync();
        assert!(on("ext4") && on("xfs") && on("tmpfs"));
        assert!(!on("fuse") && !on("nfs") && !on("overlayfs") && !on("0x1234") && !on("unknown"));
        assert!(!on("f2fs"), "no power-loss test has shown f2fs's asynchronous RWF_DSYNC durable");
        // btrfs lost the sync of nowait direct RWF_DSYNC writes in 5.16..6.2.
        let btrfs = |kernel| on_kernel("btrfs", kernel).trusts_rwf_dsync();
        assert!(btrfs(Some((5, 15))) && btrfs(Some((6, 2))) && btrfs(Some((6, 18))));
        assert!(!btrfs(Some((5, 16))) && !btrfs(Some((6, 1))) && !btrfs(None));
    }

    #[test]
    fn memory_file_systems_are_volatile_and_disks_are_not() {
        let on = |fs: &str| DeviceFacts { fs_type: fs.into(), ..DeviceFacts::default() }.is_volatile();
        assert!(on("tmpfs") && on("ramfs"));
        assert!(!on("ext4") && !on("xfs") && !on("btrfs") && !on("fuse") && !on("unknown"));
    }

    #[test]
    fn kernel_versions_parse_from_release_strings() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v1300"), Some((6, 18)));
        assert_eq!(parse_kernel_version("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_kernel_version("6.2"), Some((6, 2)));
        assert_eq!(parse_kernel_version("garbage"), None);
        assert!(kernel_version().is_some_and(|v| v >= (3, 0)), "{:?}", kernel_version());
    }

    #[test]
    fn a_cache_count_is_trusted_only_where_reads_use_the_counted_cache() {
        let on = |fs: &str| DeviceFacts { fs_type: fs.into(), ..DeviceFacts::default() }.has_own_page_cache();
        assert!(on("ext4") && on("xfs") && on("btrfs") && on("f2fs"));
        assert!(
            !["overlayfs", "fuse", "nfs", "9p", "tmpfs", "ramfs", "zfs", "simulated", "0x1234", "unknown"]
                .into_iter()
                .any(on)
        );
    }

    #[test]
    fn probe_of_tmp_names_a_file_system_and_a_sane_block() {
        let dir = tempfile::tempdir().unwrap();
        let facts = DeviceFacts::probe(dir.path());
        assert!(!facts.fs_type.is_empty());
        let b = facts.safe_block_bytes();
        assert!(b.is_power_of_two() && (512..=65536).contains(&b), "{facts:?}");
    }
}
