//! A child process appends entries with callbacks, truncates and purges,
//! printing what became durable; it is killed with SIGKILL at random
//! moments. After every kill the store is reopened: every entry whose
//! callback fired is there, with its value; no entry that a truncation
//! removed comes back; the vote and purge point are at least what the child
//! was told was durable; the entries have no hole.
//!
//! It runs with one group (`LogStore`), and with 12 groups sharing one log
//! (`MultiLog`, rewrites from 4 segments on): there most writes go to a few
//! groups, the others idle (so rewrites move them), and groups are removed
//! and made again; every group is checked on its own, with no entry of
//! another group in it.
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
use uring_wal_openraft::{LogStore, MultiLog, StoreConfig};

const CHILD_DIR: &str = "URING_WAL_RAFT_KILL_DIR";
const CHILD_ROUND: &str = "URING_WAL_RAFT_KILL_ROUND";
const CHILD_GROUPS: &str = "URING_WAL_RAFT_KILL_GROUPS";

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

/// An entry's value: its group, its unique sequence number, then padding
/// so that the log spans several segments and purges drop some.
fn value(group: u64, seq: u64, rng: &mut Rng) -> String {
    format!("{group}:{seq}:{}", "p".repeat(rng.below(1500) as usize))
}

/// The group and the sequence number a value names.
fn parse_value(value: &str) -> (u64, u64) {
    let mut f = value.split(':').map(|s| s.parse().expect("a value written by the child"));
    (f.next().unwrap(), f.next().unwrap())
}

/// The stores of `groups` groups in `dir`: a `LogStore` for one, the
/// groups of a `MultiLog` for more.
fn open_stores(dir: &Path, groups: u64) -> (Option<MultiLog<Kv>>, Vec<Option<LogStore<Kv>>>) {
    if groups == 1 {
        return (None, vec![Some(support::reopen_after_kill(dir))]);
    }
    let config = StoreConfig::default().rewrite_segments_min(4);
    let multi = MultiLog::open_with(support::options(dir), config).expect("open the shared log");
    let stores = (0..groups).map(|g| Some(multi.group(g).expect("a group"))).collect();
    (Some(multi), stores)
}

/// The child: appends batches of 1 to 4 entries with callbacks until killed,
/// now and then truncating the last few or purging old ones, and with
/// several groups, removing one and making it again. It prints, for group
/// `G`, `vote G T` once the vote is durable, `ok G INDEX SEQ` for each entry
/// whose callback fired, `truncating G SINCE` before a truncation,
/// `truncated G SINCE` / `purged G UPTO` once those returned, and
/// `removing G` / `removed G` around a removal; and `rewrites N` when the
/// shared log made its `N`th rewrite.
#[test]
#[ignore = "entry point of the child process of the SIGKILL test"]
fn kill_child_appender() {
    let (Ok(dir), Ok(round), Ok(groups)) =
        (std::env::var(CHILD_DIR), std::env::var(CHILD_ROUND), std::env::var(CHILD_GROUPS))
    else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(child(Path::new(&dir), round.parse().unwrap(), groups.parse().unwrap()));
}

async fn child(dir: &Path, round: u64, groups: u64) {
    let (multi, mut stores) = open_stores(dir, groups);
    let term = round + 1;
    // Per group: the purge point and the next index.
    let mut at = Vec::new();
    for (g, store) in stores.iter_mut().enumerate() {
        let store = store.as_mut().unwrap();
        store.save_vote(&vote(term)).await.unwrap();
        println!("vote {g} {term}");
        let state = store.get_log_state().await.unwrap();
        at.push((state.last_purged_log_id.map_or(0, |l| l.index), state.last_log_id.map_or(1, |l| l.index + 1)));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let mut seq = round << 32;
    let mut pending = VecDeque::new();
    let mut rewrites = 0;
    loop {
        if let Some(multi) = &multi
            && multi.space().rewrites > rewrites
        {
            rewrites += 1;
            println!("rewrites {rewrites}");
        }
        // Most writes go to the first few groups; the rest are nearly idle.
        let group = if groups == 1 || rng.below(10) < 9 { rng.below(groups.min(3)) } else { rng.below(groups) };
        let g = group as usize;
        let (purged, next) = at[g];
        let store = stores[g].as_mut().unwrap();
        let roll = rng.below(1000);
        if roll < 5
            && let Some(multi) = &multi
        {
            for task in pending.drain(..) {
                let _ = task.await;
            }
            stores[g] = None;
            println!("removing {group}");
            assert!(multi.remove_group(group).await.unwrap());
            println!("removed {group}");
            let mut store = multi.group(group).unwrap();
            store.save_vote(&vote(term)).await.unwrap();
            println!("vote {group} {term}");
            stores[g] = Some(store);
            at[g] = (0, 1);
        } else if roll < 30 && next > purged + 6 {
            // Drain first, so every `ok` of what is truncated is printed before.
            for task in pending.drain(..) {
                let _ = task.await;
            }
            let since = next - 1 - rng.below(5);
            println!("truncating {group} {since}");
            store.truncate_after(Some(log_id(term, since - 1))).await.unwrap();
            println!("truncated {group} {since}");
            at[g].1 = since;
        } else if roll < 50 && next > purged + 40 {
            for task in pending.drain(..) {
                let _ = task.await;
            }
            let upto = next - 30;
            store.purge(log_id(term, upto)).await.unwrap();
            println!("purged {group} {upto}");
            at[g].0 = upto;
        } else {
            let n = 1 + rng.below(4);
            let mut batch = Vec::new();
            let mut ids = Vec::new();
            for index in next..next + n {
                seq += 1;
                batch.push(entry(term, index, &value(group, seq, &mut rng)));
                ids.push((index, seq));
            }
            let (tx, rx) = Kv::oneshot();
            store.append(batch, IOFlushed::signal(tx)).await.unwrap();
            pending.push_back(tokio::spawn(async move {
                if let Ok(Ok(())) = rx.await {
                    for (index, seq) in ids {
                        println!("ok {group} {index} {seq}");
                    }
                }
            }));
            at[g].1 += n;
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

/// What the child was told was durable in one group, and what it removed.
#[derive(Default)]
struct Model {
    /// index -> sequence number of the entry there.
    entries: BTreeMap<u64, u64>,
    /// (index, seq) of entries a truncation or removal removed: never to be
    /// seen again.
    truncated: HashSet<(u64, u64)>,
    /// A truncation begun and not known to be done: the kill may have come
    /// before or after its marker became durable.
    truncating: Option<u64>,
    /// A removal begun and not known to be done.
    removing: bool,
    purged: u64,
    /// The term of the last vote the child was told was durable.
    vote: Option<u64>,
}

/// Every group's model, and counts of what the children did.
#[derive(Default)]
struct Models {
    groups: BTreeMap<u64, Model>,
    oks: usize,
    truncations: usize,
    purges: usize,
    removals: usize,
    /// Rewrites the children's shared logs made (the most any child made).
    rewrites: u64,
}

impl Models {
    fn apply(&mut self, line: &str) {
        let f: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| f[i].parse::<u64>().unwrap();
        if f[0] == "rewrites" {
            self.rewrites = self.rewrites.max(num(1));
            return;
        }
        let m = self.groups.entry(num(1)).or_default();
        match f[0] {
            "vote" => m.vote = Some(num(2)),
            "ok" => {
                m.entries.insert(num(2), num(3));
                self.oks += 1;
            }
            "truncating" => m.truncating = Some(num(2)),
            "truncated" => {
                m.truncate(num(2));
                self.truncations += 1;
            }
            "purged" => {
                m.entries = m.entries.split_off(&(num(2) + 1));
                m.purged = num(2);
                self.purges += 1;
            }
            "removing" => m.removing = true,
            "removed" => {
                m.remove();
                self.removals += 1;
            }
            other => panic!("unexpected line from the child: {other}"),
        }
    }
}

impl Model {
    fn truncate(&mut self, since: u64) {
        for (index, seq) in self.entries.split_off(&since) {
            self.truncated.insert((index, seq));
        }
        self.truncating = None;
    }

    fn remove(&mut self) {
        self.truncate(0);
        (self.purged, self.vote, self.removing) = (0, None, false);
    }
}

/// Checks one reopened group against what its model says.
async fn check_group(store: &mut LogStore<Kv>, group: u64, m: &mut Model, round: u64) {
    let got = contents(store).await;
    let state = store.get_log_state().await.unwrap();
    let v = read_vote(store).await;
    // A removal the kill interrupted: done if the group came back empty.
    if m.removing {
        if got.is_empty() && state.last_purged_log_id.is_none() && v.is_none() {
            m.remove();
        }
        m.removing = false;
    }
    let purged = state.last_purged_log_id.map_or(0, |l| l.index);
    assert!(purged >= m.purged, "round {round}, group {group}: purge point {purged} went back before {}", m.purged);
    for (k, (_, index, _)) in got.iter().enumerate() {
        assert_eq!(*index, purged + 1 + k as u64, "round {round}, group {group}: a hole in the entries");
    }
    let mut by_index = BTreeMap::new();
    for (_, index, value) in &got {
        let (of, seq) = parse_value(value);
        assert_eq!(of, group, "round {round}: entry {index} of group {of} in group {group}");
        by_index.insert(*index, seq);
    }
    // A truncation the kill interrupted: done if its first entry is gone.
    if let Some(since) = m.truncating {
        match m.entries.get(&since) {
            Some(seq) if by_index.get(&since) != Some(seq) => m.truncate(since),
            _ => m.truncating = None,
        }
    }
    for (index, seq) in &m.entries {
        if *index > purged {
            assert_eq!(
                by_index.get(index),
                Some(seq),
                "round {round}, group {group}: durable entry {index} (seq {seq})"
            );
        }
    }
    for (index, seq) in &by_index {
        assert!(
            !m.truncated.contains(&(*index, *seq)),
            "round {round}, group {group}: truncated or removed entry {index} came back"
        );
    }
    assert!(v >= m.vote.map(vote), "round {round}, group {group}: vote {v:?} is older than term {:?}", m.vote);
}

/// Kills a child appending to `groups` groups, `URING_WAL_RAFT_KILLS` times,
/// checking every group after each kill.
async fn kill_and_reopen(groups: u64) -> Models {
    let kills: u64 = std::env::var("URING_WAL_RAFT_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xC0FF_EE00 ^ kills ^ groups);
    let mut models = Models::default();
    for round in 0..kills {
        let mut child = KillOnDrop(
            Command::new(&exe)
                .args(["--exact", "kill_child_appender", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_DIR, dir.path())
                .env(CHILD_ROUND, round.to_string())
                .env(CHILD_GROUPS, groups.to_string())
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
        // Once the child has opened the store and its votes are durable, let
        // it write for a random while.
        let mut lines = Vec::new();
        let mut votes = 0;
        while votes < groups {
            let line = rx.recv_timeout(Duration::from_secs(30)).expect("the child started");
            votes += u64::from(line.contains("vote "));
            lines.push(line);
        }
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        // The test harness's own `test kill_child_appender ... ` has no line
        // end: the child's first line follows it.
        let words = ["vote ", "ok ", "truncating ", "truncated ", "purged ", "removing ", "removed ", "rewrites "];
        for line in &lines {
            if let Some(at) = words.iter().filter_map(|w| line.find(w)).min() {
                models.apply(&line[at..]);
            }
        }

        let (multi, mut stores) = open_stores(dir.path(), groups);
        if let Some(multi) = &multi {
            let present: Vec<u64> = multi.groups();
            assert!(present.iter().all(|g| *g < groups), "round {round}: groups {present:?}");
        }
        for (g, store) in stores.iter_mut().enumerate() {
            let m = models.groups.entry(g as u64).or_default();
            check_group(store.as_mut().unwrap(), g as u64, m, round).await;
        }
        let first = stores[0].take().unwrap();
        drop((stores, multi));
        first.close().unwrap();
    }
    eprintln!(
        "{kills} kills, {groups} groups: {} durable entries reported, {} truncations, {} purges, {} removals, {} \
         rewrites",
        models.oks, models.truncations, models.purges, models.removals, models.rewrites
    );
    assert!(models.oks > 0 && models.truncations > 0 && models.purges > 0, "the child did each kind of write");
    models
}

#[tokio::test]
async fn sigkill_loses_no_durable_entry_and_revives_no_truncated_one() {
    kill_and_reopen(1).await;
}

#[tokio::test]
async fn with_many_groups_sigkill_loses_no_groups_durable_entry_nor_mixes_groups() {
    let models = kill_and_reopen(12).await;
    assert!(models.removals > 0 && models.rewrites > 0, "the children removed no group, or rewrote none");
}
