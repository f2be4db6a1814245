//! A child process appends entries with callbacks, truncates and purges,
//! printing what became durable; it is killed with SIGKILL at random
//! moments. After every kill the store is reopened: every entry whose
//! callback fired is there, with its value; no entry that a truncation
//! removed comes back; the vote and purge point are at least what the child
//! was told was durable; the entries have no hole.
//!
//! `URING_WAL_RAFT_KILLS` sets the number of kills (default 12).

mod support;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use support::kv::Kv;
use support::{contents, entry, log_id, read_vote, vote};

const CHILD_DIR: &str = "URING_WAL_RAFT_KILL_DIR";
const CHILD_ROUND: &str = "URING_WAL_RAFT_KILL_ROUND";

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// An entry's value: its unique sequence number, then padding so that the
/// log spans several segments and purges drop some.
fn value(seq: u64, rng: &mut Rng) -> String {
    format!("{seq}:{}", "p".repeat(rng.below(1500) as usize))
}

fn seq_of(value: &str) -> u64 {
    value.split(':').next().and_then(|s| s.parse().ok()).expect("a value written by the child")
}

/// The child: appends batches of 1 to 4 entries with callbacks until killed,
/// now and then truncating the last few or purging old ones. It prints
/// `vote T` once the vote is durable, `ok INDEX SEQ` for each entry whose
/// callback fired, `truncating SINCE` before a truncation and
/// `truncated SINCE` / `purged UPTO` once those returned.
#[test]
#[ignore = "entry point of the child process of the SIGKILL test"]
fn kill_child_appender() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ROUND)) else {
        return;
    };
    let round: u64 = round.parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(child(Path::new(&dir), round));
}

async fn child(dir: &Path, round: u64) {
    let mut store = support::open(dir);
    let term = round + 1;
    store.save_vote(&vote(term)).await.unwrap();
    println!("vote {term}");
    let state = store.get_log_state().await.unwrap();
    let mut purged = state.last_purged_log_id.map_or(0, |l| l.index);
    let mut next = state.last_log_id.map_or(1, |l| l.index + 1);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let mut seq = round << 32;
    let mut pending = VecDeque::new();
    loop {
        let roll = rng.below(100);
        if roll < 3 && next > purged + 6 {
            // Drain first, so every `ok` of what is truncated is printed before.
            for task in pending.drain(..) {
                let _ = task.await;
            }
            let since = next - 1 - rng.below(5);
            println!("truncating {since}");
            store.truncate_after(Some(log_id(term, since - 1))).await.unwrap();
            println!("truncated {since}");
            next = since;
        } else if roll < 5 && next > purged + 40 {
            for task in pending.drain(..) {
                let _ = task.await;
            }
            let upto = next - 30;
            store.purge(log_id(term, upto)).await.unwrap();
            println!("purged {upto}");
            purged = upto;
        } else {
            let n = 1 + rng.below(4);
            let mut batch = Vec::new();
            let mut ids = Vec::new();
            for index in next..next + n {
                seq += 1;
                batch.push(entry(term, index, &value(seq, &mut rng)));
                ids.push((index, seq));
            }
            let (tx, rx) = Kv::oneshot();
            store.append(batch, IOFlushed::signal(tx)).await.unwrap();
            pending.push_back(tokio::spawn(async move {
                if let Ok(Ok(())) = rx.await {
                    for (index, seq) in ids {
                        println!("ok {index} {seq}");
                    }
                }
            }));
            next += n;
            while pending.len() > 32 {
                let _ = pending.pop_front().unwrap().await;
            }
        }
    }
}

/// Kills the child if the test fails before it does: no child outlives it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the child was told was durable, and what it removed.
#[derive(Default)]
struct Model {
    /// index -> sequence number of the entry there.
    entries: BTreeMap<u64, u64>,
    /// (index, seq) of entries a truncation removed: never to be seen again.
    truncated: HashSet<(u64, u64)>,
    /// A truncation begun and not known to be done: the kill may have come
    /// before or after its marker became durable.
    truncating: Option<u64>,
    purged: u64,
    /// The term of the last vote the child was told was durable.
    vote: Option<u64>,
    oks: usize,
    truncations: usize,
    purges: usize,
}

impl Model {
    fn apply(&mut self, line: &str) {
        let f: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| f[i].parse::<u64>().unwrap();
        match f[0] {
            "vote" => self.vote = Some(num(1)),
            "ok" => {
                self.entries.insert(num(1), num(2));
                self.oks += 1;
            }
            "truncating" => self.truncating = Some(num(1)),
            "truncated" => self.truncate(num(1)),
            "purged" => {
                self.entries = self.entries.split_off(&(num(1) + 1));
                self.purged = num(1);
                self.purges += 1;
            }
            other => panic!("unexpected line from the child: {other}"),
        }
    }

    fn truncate(&mut self, since: u64) {
        for (index, seq) in self.entries.split_off(&since) {
            self.truncated.insert((index, seq));
        }
        self.truncating = None;
        self.truncations += 1;
    }
}

#[tokio::test]
async fn sigkill_loses_no_durable_entry_and_revives_no_truncated_one() {
    let kills: u64 = std::env::var("URING_WAL_RAFT_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xC0FF_EE00 ^ kills);
    let mut model = Model::default();
    for round in 0..kills {
        let mut child = KillOnDrop(
            Command::new(&exe)
                .args(["--exact", "kill_child_appender", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_DIR, dir.path())
                .env(CHILD_ROUND, round.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            // Only whole lines: the last one may be cut by the kill.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Once the child has opened the store and its vote is durable, let it
        // append for a random while.
        let mut lines = Vec::new();
        loop {
            let line = rx.recv_timeout(Duration::from_secs(30)).expect("the child started");
            let started = line.contains("vote ");
            lines.push(line);
            if started {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        // The test harness's own `test kill_child_appender ... ` has no line
        // end: the child's first line follows it.
        let words = ["vote ", "ok ", "truncating ", "truncated ", "purged "];
        for line in &lines {
            if let Some(at) = words.iter().filter_map(|w| line.find(w)).min() {
                model.apply(&line[at..]);
            }
        }

        let mut store = support::reopen_after_kill(dir.path());
        let got = contents(&mut store).await;
        let state = store.get_log_state().await.unwrap();
        let purged = state.last_purged_log_id.map_or(0, |l| l.index);
        assert!(purged >= model.purged, "round {round}: purge point {purged} went back before {}", model.purged);
        for (k, (_, index, _)) in got.iter().enumerate() {
            assert_eq!(*index, purged + 1 + k as u64, "round {round}: a hole in the entries");
        }
        let by_index: BTreeMap<u64, u64> = got.iter().map(|(_, i, v)| (*i, seq_of(v))).collect();
        // A truncation the kill interrupted: done if its first entry is gone.
        if let Some(since) = model.truncating {
            match model.entries.get(&since) {
                Some(seq) if by_index.get(&since) != Some(seq) => model.truncate(since),
                _ => model.truncating = None,
            }
        }
        for (index, seq) in &model.entries {
            if *index > purged {
                assert_eq!(by_index.get(index), Some(seq), "round {round}: durable entry {index} (seq {seq})");
            }
        }
        for (index, seq) in &by_index {
            assert!(!model.truncated.contains(&(*index, *seq)), "round {round}: truncated entry {index} came back");
        }
        let v = read_vote(&mut store).await;
        assert!(v >= model.vote.map(vote), "round {round}: vote {v:?} is older than term {:?}", model.vote);
        store.close().unwrap();
    }
    eprintln!(
        "{kills} kills: {} durable entries reported, {} truncations, {} purges",
        model.oks, model.truncations, model.purges
    );
    assert!(model.oks > 0 && model.truncations > 0 && model.purges > 0, "the child did each kind of write");
}
