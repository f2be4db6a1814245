//! File names in a log directory, parsed by a strict pattern.
//!
//! - `LOCK`: the lock file;
//! - `<20 digits>.wal`: a segment, the digits its id (1..=u64::MAX);
//! - `<20 digits>.wal.tmp`: a segment being prepared (removed by recovery).
//!
//! Every other name is left alone.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Name of the lock file.
pub(crate) const LOCK_FILE: &str = "LOCK";
const DIGITS: usize = 20;

/// A name this library owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    Segment(u64),
    Temp(u64),
    Lock,
}

/// Parses a directory entry's name; `None` for names that are not ours.
pub(crate) fn parse(name: &OsStr) -> Option<Name> {
    let name = name.to_str()?;
    if name == LOCK_FILE {
        return Some(Name::Lock);
    }
    if let Some(digits) = name.strip_suffix(".wal.tmp") {
        return parse_id(digits).map(Name::Temp);
    }
    name.strip_suffix(".wal").and_then(parse_id).map(Name::Segment)
}

fn parse_id(digits: &str) -> Option<u64> {
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().filter(|&id| id > 0 && id <= crate::format::LSN_MAX)
}

pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

pub(crate) fn temp_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_names() {
        let p = segment_path(Path::new("/d"), 42);
        assert_eq!(p, Path::new("/d/00000000000000000042.wal"));
        assert_eq!(parse(p.file_name().unwrap()), Some(Name::Segment(42)));
        let t = temp_path(Path::new("/d"), 7);
        assert_eq!(parse(t.file_name().unwrap()), Some(Name::Temp(7)));
        assert_eq!(parse(OsStr::new("LOCK")), Some(Name::Lock));
        assert_eq!(parse(OsStr::new("04611686018427387904.wal")), Some(Name::Segment(1 << 62)));
        for foreign in [
            "18446744073709551615.wal", // beyond the id limit
            "18446744073709551616.wal", // overflows u64
            "00000000000000000000.wal", // id 0
            "0000000000000000042.wal",  // 19 digits
            "000000000000000000042.wal",
            "+0000000000000000042.wal",
            "00000000000000000042.WAL",
            "00000000000000000042.wal.bak",
            "lock",
            "notes.txt",
        ] {
            assert_eq!(parse(OsStr::new(foreign)), None, "{foreign}");
        }
    }
}
