//! A small key-value store: every change goes to the WAL first (durable),
//! then to the in-memory map. On start it loads its last snapshot and
//! replays the WAL after it; a checkpoint writes a snapshot and lets the WAL
//! drop what the snapshot covers (`truncate_before`).
//!
//! `cargo run --example kv_store`

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use uring_wal::{Lsn, Options, RecordType, Wal};

struct Store {
    wal: Wal,
    map: BTreeMap<String, String>,
    dir: PathBuf,
}

fn encode(key: &str, value: Option<&str>) -> Vec<u8> {
    let mut out = (key.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(key.as_bytes());
    if let Some(v) = value {
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn decode(payload: &[u8]) -> (String, String) {
    let n = u32::from_le_bytes(payload[..4].try_into().expect("length")) as usize;
    let key = String::from_utf8_lossy(&payload[4..4 + n]).into_owned();
    let value = String::from_utf8_lossy(&payload[4 + n..]).into_owned();
    (key, value)
}

impl Store {
    fn open(dir: &Path) -> Result<Store, uring_wal::Error> {
        // The snapshot: the LSN it covers, then key/value lines.
        let (mut map, covered) = load_snapshot(&dir.join("snapshot")).unwrap_or_default();
        let wal = Wal::open(Options::durable(dir.join("wal")).segment_bytes(1 << 20).record_bytes_max(4096))?;
        let from = (covered + 1).max(wal.first_lsn());
        let replayed = wal.replay_from(from, |rec| {
            match rec.kind {
                RecordType::Put => {
                    let (key, value) = decode(rec.payload);
                    map.insert(key, value);
                }
                RecordType::Delete => {
                    map.remove(&decode(rec.payload).0);
                }
                // Checkpoint markers carry the LSN a snapshot covers.
                _ => {}
            }
            Ok::<_, uring_wal::Error>(())
        })?;
        println!("opened: snapshot covers LSN {covered}, replayed {replayed} records, {} keys", map.len());
        Ok(Store { wal, map, dir: dir.to_path_buf() })
    }

    fn put(&mut self, key: &str, value: &str) -> Result<Lsn, uring_wal::Error> {
        let lsn = self.wal.append(RecordType::Put, &encode(key, Some(value)))?;
        self.map.insert(key.to_owned(), value.to_owned());
        Ok(lsn)
    }

    fn delete(&mut self, key: &str) -> Result<Lsn, uring_wal::Error> {
        let lsn = self.wal.append(RecordType::Delete, &encode(key, None))?;
        self.map.remove(key);
        Ok(lsn)
    }

    /// Snapshot what the map holds, durably, then drop the WAL's covered part.
    fn checkpoint(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let covered = self.wal.last_lsn();
        let tmp = self.dir.join("snapshot.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{covered}")?;
        for (k, v) in &self.map {
            writeln!(f, "{k}\t{v}")?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("snapshot"))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.wal.append(RecordType::Checkpoint, &covered.to_le_bytes())?;
        let removed = self.wal.truncate_before(covered + 1)?;
        println!("checkpoint at LSN {covered}: {removed} WAL segments removed");
        Ok(())
    }
}

fn load_snapshot(path: &Path) -> Option<(BTreeMap<String, String>, Lsn)> {
    let mut text = String::new();
    std::fs::File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let mut lines = text.lines();
    let covered = lines.next()?.parse().ok()?;
    let map = lines.filter_map(|l| l.split_once('\t')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    Some((map, covered))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let mut store = Store::open(dir.path())?;
        for i in 0..2000 {
            store.put(&format!("key{:04}", i % 500), &format!("value {i}"))?;
        }
        store.checkpoint()?;
        for i in 0..100 {
            store.delete(&format!("key{i:04}"))?;
        }
        store.put("latest", "written after the checkpoint")?;
        // Dropped without any shutdown step: the WAL has every change.
    }
    let store = Store::open(dir.path())?;
    assert_eq!(store.map.len(), 401);
    assert_eq!(store.map.get("key0499").map(String::as_str), Some("value 1999"));
    assert_eq!(store.map.get("latest").map(String::as_str), Some("written after the checkpoint"));
    assert!(!store.map.contains_key("key0000"));
    println!("recovered {} keys", store.map.len());
    Ok(())
}
