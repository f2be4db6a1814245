//! Hostile and damaged directories on the simulated storage: each gets a
//! typed error or a documented repair, never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use uring_wal::storage::Storage;
use uring_wal::storage::sim::{SimConfig, SimStorage};
use uring_wal::{BlockSize, Error, Options, RecordType, Wal};

const DIR: &str = "/wal";

fn options() -> Options {
    Options::new(DIR).segment_bytes(64 * 1024).record_bytes_max(4096).block_size(BlockSize::Bytes(4096))
}

fn seg(id: u64) -> PathBuf {
    Path::new(DIR).join(format!("{id:020}.wal"))
}

/// A log of 100 records of 1000 bytes (one per 4 KiB block: 15 per segment,
/// so 7 segments), closed.
fn log_of_100() -> SimStorage {
    let sim = SimStorage::new(SimConfig::new(1));
    let wal = Wal::open_with_storage(options(), Arc::new(sim.clone())).unwrap();
    for i in 1..=100u64 {
        wal.append(RecordType::Put, &vec![i as u8; 1000]).unwrap();
    }
    wal.close().unwrap();
    sim.clean_copy()
}

fn open(sim: &SimStorage) -> Result<Wal, Error> {
    Wal::open_with_storage(options(), Arc::new(sim.clone()))
}

fn with_header(sim: &SimStorage, id: u64, edit: impl Fn(&mut [u8])) {
    let mut bytes = sim.read_file(&seg(id)).unwrap();
    edit(&mut bytes[..64]);
    sim.put_file(&seg(id), &bytes);
}

fn reseal(h: &mut [u8]) {
    let crc = crc32c::crc32c(&h[0..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn header_fields_at_their_limits_are_invalid_not_trusted() {
    for (field, at) in [("segment_bytes", 32), ("first_lsn", 24), ("prev_data_end", 40), ("segment_id", 16)] {
        let sim = log_of_100();
        with_header(&sim, 3, |h| {
            h[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            reseal(h);
        });
        // Segment 3 is mid-log and holds records: its header cannot be
        // trusted, and the records after it prove the loss.
        let err = open(&sim).err().unwrap_or_else(|| panic!("{field}: opened"));
        assert!(matches!(err, Error::Corruption { .. }), "{field}: {err}");
    }
}

#[test]
fn wrong_magic_and_other_version() {
    let sim = log_of_100();
    with_header(&sim, 2, |h| h[0] = b'X');
    assert!(matches!(open(&sim), Err(Error::Corruption { .. })));
    let sim = log_of_100();
    with_header(&sim, 2, |h| {
        h[8..12].copy_from_slice(&9u32.to_le_bytes());
        reseal(h);
    });
    assert!(matches!(open(&sim), Err(Error::UnsupportedVersion { found: 9, .. })));
}

#[test]
fn a_missing_middle_segment_is_corruption() {
    let sim = log_of_100();
    sim.remove_file(&seg(4)).unwrap();
    let err = open(&sim).expect_err("refused");
    assert!(matches!(err, Error::Corruption { segment: 3, .. }), "{err}");
}

#[test]
fn a_segment_copied_over_another_is_refused_and_nothing_is_removed() {
    let sim = log_of_100();
    let five = sim.read_file(&seg(5)).unwrap();
    sim.put_file(&seg(2), &five);
    let before = sim.paths();
    let err = open(&sim).expect_err("refused");
    assert!(
        matches!(&err, Error::UnexpectedFile { path, detail } if *path == seg(2) && detail.contains("names a later segment")),
        "{err}"
    );
    assert_eq!(sim.paths(), before, "a refused recovery changes nothing");
}

#[test]
fn a_short_segment_file_is_refused() {
    let sim = log_of_100();
    let bytes = sim.read_file(&seg(3)).unwrap();
    sim.put_file(&seg(3), &bytes[..40_000]);
    let err = open(&sim).expect_err("refused");
    assert!(matches!(err, Error::UnexpectedFile { .. }), "{err}");
}

#[test]
fn files_named_like_segments_that_the_log_did_not_write_are_refused_untouched() {
    // A zero-length file and garbage after the last segment hold no records
    // of the log, and are not what a torn activation leaves: refused.
    let sim = log_of_100();
    let last = (1..=20).rev().find(|&i| sim.read_file(&seg(i)).is_some_and(|b| b.starts_with(b"URINGWAL"))).unwrap();
    for (id, bytes) in [(last + 3, vec![]), (last + 4, vec![0xA5; 64 * 1024])] {
        sim.put_file(&seg(id), &bytes);
        let err = open(&sim).expect_err("refused");
        assert!(matches!(&err, Error::UnexpectedFile { path, .. } if *path == seg(id)), "{err}");
        assert_eq!(sim.read_file(&seg(id)), Some(bytes), "the user's file was changed");
        sim.remove_file(&seg(id)).unwrap();
    }
    // A torn activation (garbage over the header of the prepared file after
    // the newest segment) is the log's own leftover: removed.
    let next = sim.read_file(&seg(last + 1)).expect("a prepared segment after the log");
    let mut torn = next.clone();
    torn[..4096].fill(0xA5);
    sim.put_file(&seg(last + 1), &torn);
    let wal = open(&sim).unwrap();
    assert_eq!(wal.last_lsn(), 100);
    assert!(wal.recovery_report().removed_files.contains(&seg(last + 1)));
}

#[test]
fn a_directory_with_a_segment_name_is_refused() {
    let sim = log_of_100();
    sim.create_dir_all(&seg(50)).unwrap();
    let err = open(&sim).expect_err("refused");
    assert!(matches!(err, Error::UnexpectedFile { .. }), "{err}");
}

#[test]
fn any_single_bit_flip_in_a_segment_never_panics_and_never_loses_silently() {
    // Flip one bit at many places of a middle segment: recovery either
    // reports corruption or (for damage to padding) recovers everything.
    let clean = log_of_100();
    let bytes = clean.read_file(&seg(3)).unwrap();
    for offset in (0..bytes.len() as u64).step_by(97) {
        let sim = clean.clean_copy();
        sim.flip_bit(&seg(3), offset, (offset % 8) as u8);
        match open(&sim) {
            Ok(wal) => {
                assert_eq!(wal.last_lsn(), 100, "offset {offset}");
                let mut n = 0;
                for rec in wal.read_from(1).unwrap() {
                    rec.unwrap_or_else(|e| panic!("offset {offset}: {e}"));
                    n += 1;
                }
                assert_eq!(n, 100, "offset {offset}");
            }
            Err(Error::Corruption { .. }) => {}
            Err(e) => panic!("offset {offset}: {e}"),
        }
    }
}
