//! Opening any backend by its spec: uring-wal (`target`) or a peer
//! (`peers`). Above both, so neither imports the other.

use std::path::Path;

use anyhow::Result;

use crate::target::{OpenOptions, Target, TargetSpec, WalTarget};

/// Opens `spec` in `dir` (which it owns: created if missing).
pub fn open(spec: &TargetSpec, dir: &Path, opts: &OpenOptions) -> Result<Box<dyn Target>> {
    match spec {
        TargetSpec::UringWal { durability, path, spin, rewrites } => {
            Ok(Box::new(WalTarget::open(dir, *durability, *path, *spin, *rewrites, opts)?))
        }
        TargetSpec::Raw(_) => anyhow::bail!("{spec} is the device alone, not a log: the load commands measure it"),
        #[cfg(feature = "peers")]
        other => crate::peers::open(other, dir, opts),
        #[cfg(not(feature = "peers"))]
        other => anyhow::bail!("backend {other} needs the harness built with --features peers"),
    }
}
