//! What the store writes into its log: the record kinds, the group each
//! record belongs to, the format record, and entries split across records.
//!
//! Every record's payload starts with its group id (LEB128, one byte below
//! 128); a single-group store writes group 0. The rest is postcard-encoded.
//! The first record of a log, and the first after any purge that dropped
//! it, is the *format record*: the store's format version and the openraft
//! version whose types the entries are encoded with. A log without one, or
//! with another, is refused at open.

use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uring_wal::{Lsn, RecordType};

/// The record types this store writes. A store owns its log directory: every
/// record in it is one of these.
pub mod kinds {
    use uring_wal::RecordType;

    /// A log entry, or the last part of one (payload: group, the entry's
    /// postcard encoding or its last part).
    pub const ENTRY: RecordType = RecordType::Application(1);
    /// Drops every entry of a group from an index on (payload: group, index).
    pub const TRUNCATE: RecordType = RecordType::Application(2);
    /// A group's vote (payload: group, the vote).
    pub const VOTE: RecordType = RecordType::Application(3);
    /// A group's committed log id (payload: group, `Option<LogId>`).
    pub const COMMITTED: RecordType = RecordType::Application(4);
    /// A group's purge point: its entries up to it are gone (payload:
    /// group, the log id).
    pub const PURGE: RecordType = RecordType::Application(5);
    /// The format record (payload: group 0, [`super::StoreFormat`]).
    pub const FORMAT: RecordType = RecordType::Application(6);
    /// A part of an entry too large for one record, not the last (payload:
    /// group, the bytes); the entry's `ENTRY` record follows, in the same
    /// request, so its parts have consecutive LSNs.
    pub const ENTRY_PART: RecordType = RecordType::Application(7);
    /// A group was removed: every earlier record of it is void (payload:
    /// group, nothing else). Records of the same id after it start a new
    /// group.
    pub const REMOVE: RecordType = RecordType::Application(8);
    /// The start of a group's rewrite: its whole state, re-stated further
    /// on in the log so that older files can go (payload: group, then its
    /// vote, committed log id and purge point, each an `Option`, and the
    /// number of entries that follow, a `u64`). The live entries follow as `COPY`
    /// records (each preceded by its `ENTRY_PART`s), with no other record
    /// of the group between them; a rewrite counts only once its last
    /// entry is in the log, and then replaces everything the group had.
    pub const REWRITE: RecordType = RecordType::Application(9);
    /// One live entry of a group's rewrite, or its last part (payload:
    /// group, the entry's encoding or its last part, as for `ENTRY`).
    pub const COPY: RecordType = RecordType::Application(10);
}

/// What a [`kinds::REWRITE`] record says: the group's vote, committed log
/// id and purge point at the rewrite, and how many `COPY` entries follow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RewriteHead<V, L> {
    pub vote: Option<V>,
    pub committed: Option<L>,
    pub purged: Option<L>,
    pub entries: u64,
}

/// This store's format: how records are laid out. Raised whenever a change
/// makes an older store unable to read the log.
pub const STORE_FORMAT_VERSION: u32 = 2;

/// The oldest format this build reads: format 1 lacks only the record
/// kinds of groups removed and rewritten (`REMOVE`, `REWRITE`, `COPY`). A
/// log of format 1 gets a format record of this build's format at open,
/// before anything of format 2 is written into it.
pub const STORE_FORMAT_READ_MIN: u32 = 1;

/// The openraft version the entries, votes and log ids are encoded for.
/// openraft 0.10 is in alpha: its types may change between alphas, so a
/// log is read only by a store built on the same one.
pub const OPENRAFT_VERSION: &str = "0.10.0-alpha.37";

/// Group id of a single-group store's records.
pub const SINGLE_GROUP: u64 = 0;

/// What the format record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFormat {
    /// [`STORE_FORMAT_VERSION`] of the store that wrote the log.
    pub version: u32,
    /// [`OPENRAFT_VERSION`] of that store.
    pub openraft: String,
}

impl StoreFormat {
    /// This build's format.
    pub fn current() -> StoreFormat {
        StoreFormat { version: STORE_FORMAT_VERSION, openraft: OPENRAFT_VERSION.to_owned() }
    }

    /// Whether this build reads a log of `self`'s format (formats
    /// [`STORE_FORMAT_READ_MIN`] to [`STORE_FORMAT_VERSION`], for the same
    /// openraft version); the error to give if not.
    pub fn check(&self, lsn: Lsn) -> io::Result<()> {
        let current = StoreFormat::current();
        if self.openraft == current.openraft && (STORE_FORMAT_READ_MIN..=current.version).contains(&self.version) {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the log was written by uring-wal-openraft store format {} for openraft {} (format record at \
                 LSN {lsn}); this build writes format {} for openraft {}, whose encodings may differ: open it \
                 with the version that wrote it",
                self.version, self.openraft, current.version, current.openraft
            ),
        ))
    }
}

pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// `group` as LEB128, then `body` postcard-encoded.
pub(crate) fn encode<T: Serialize>(group: u64, body: &T) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    put_group(&mut out, group);
    postcard::to_io(body, &mut out).map_err(|e| invalid(format!("encode: {e}")))?;
    Ok(out)
}

/// Appends `group` as LEB128.
pub(crate) fn put_group(out: &mut Vec<u8>, mut group: u64) {
    loop {
        let byte = (group & 0x7F) as u8;
        group >>= 7;
        if group == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The group a payload belongs to, and the rest of it.
pub(crate) fn split_group(payload: &[u8], lsn: Lsn) -> io::Result<(u64, &[u8])> {
    let mut group = 0u64;
    for (i, &byte) in payload.iter().enumerate().take(10) {
        group |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((group, &payload[i + 1..]));
        }
    }
    Err(invalid(format!("the record at LSN {lsn} does not start with a group id")))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], lsn: Lsn, what: &str) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| invalid(format!("decode the {what} at LSN {lsn}: {e}")))
}

/// An entry's encoding as records: `ENTRY_PART`s, then one record of
/// `last` (`ENTRY`, or `COPY` in a rewrite), each at most
/// `record_bytes_max` bytes with its group prefix. Returns how many records
/// it took.
pub(crate) fn push_entry(
    batch: &mut uring_wal::Batch,
    group: u64,
    encoded: &[u8],
    record_bytes_max: usize,
    last: RecordType,
) -> io::Result<u32> {
    let mut prefix = Vec::with_capacity(10);
    put_group(&mut prefix, group);
    let room = record_bytes_max.saturating_sub(prefix.len()).max(1);
    let parts = encoded.len().div_ceil(room).max(1);
    let mut record = Vec::with_capacity(prefix.len() + room.min(encoded.len()));
    for (i, chunk) in encoded.chunks(room).chain(encoded.is_empty().then_some(&[][..])).enumerate() {
        record.clear();
        record.extend_from_slice(&prefix);
        record.extend_from_slice(chunk);
        let kind: RecordType = if i + 1 == parts { last } else { kinds::ENTRY_PART };
        batch.push(kind, &record).map_err(|e| io::Error::other(e.to_string()))?;
    }
    u32::try_from(parts).map_err(|_| invalid(format!("an entry of {} bytes takes too many records", encoded.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_round_trip_and_small_ones_take_one_byte() {
        for group in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let payload = encode(group, &7u32).unwrap();
            let (g, rest) = split_group(&payload, 1).unwrap();
            assert_eq!(g, group);
            assert_eq!(decode::<u32>(rest, 1, "test").unwrap(), 7);
        }
        assert_eq!(encode(5, &()).unwrap().len(), 1);
        assert!(split_group(&[0x80; 11], 9).is_err(), "an unterminated prefix");
        assert!(split_group(&[], 9).is_err());
    }

    #[test]
    fn a_large_entry_is_split_into_parts_that_end_with_an_entry_record() {
        let encoded: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut batch = uring_wal::Batch::new();
        assert_eq!(push_entry(&mut batch, 3, &encoded, 4096, kinds::ENTRY).unwrap(), 3);
        assert_eq!(batch.len(), 3);
        let mut batch = uring_wal::Batch::new();
        assert_eq!(push_entry(&mut batch, 3, &encoded[..100], 4096, kinds::ENTRY).unwrap(), 1);
        let mut batch = uring_wal::Batch::new();
        assert_eq!(push_entry(&mut batch, 3, &[], 4096, kinds::ENTRY).unwrap(), 1, "an empty encoding is one record");
    }

    #[test]
    fn only_the_same_format_and_openraft_version_are_read() {
        StoreFormat::current().check(1).unwrap();
        let older = StoreFormat { version: 0, ..StoreFormat::current() };
        let err = older.check(1).unwrap_err().to_string();
        assert!(err.contains("store format 0") && err.contains(OPENRAFT_VERSION), "{err}");
        StoreFormat { version: STORE_FORMAT_READ_MIN, ..StoreFormat::current() }.check(1).unwrap();
        let newer = StoreFormat { version: STORE_FORMAT_VERSION + 1, ..StoreFormat::current() };
        assert!(newer.check(1).is_err(), "a newer format may hold records this build cannot read");
        let other = StoreFormat { openraft: "0.10.0-alpha.36".into(), ..StoreFormat::current() };
        assert!(other.check(1).is_err());
    }
}
