//! Freeing old segments that idle groups still need, by rewriting those
//! groups forward.
//!
//! A segment can go only once no group needs a record in it. A group that
//! stops writing (or writes but never purges) keeps its entries, vote,
//! committed id and purge point where they were, and with them every later
//! segment, however little of them is still live. When the log holds more
//! than `StoreConfig::rewrite_segments_min` segments and more than twice its
//! live records' size plus two segments, the oldest half of its segments
//! is freed: every group that needs a record there is re-stated after the
//! tail, then the segments go.
//!
//! - A group whose entries start there is rewritten whole: a `REWRITE`
//!   record (its vote, committed id, purge point, entry count) and a `COPY`
//!   of each live entry, in chunks of about [`CHUNK_BYTES`], with the group's
//!   writer lock held from reading its state to queueing the last chunk (so
//!   no record of the group comes between). Replay applies a rewrite only
//!   once its last entry is read; one cut short by a crash is ignored, and
//!   the records it re-stated are still in the log (nothing is freed before
//!   the rewrite is durable).
//! - A group whose entries are all newer only re-states its vote, committed
//!   id and purge point, as the records they were.
//!
//! Once durable, the group's index points at the copies (unless the group
//! changed them meanwhile), and the purge thread drops the segments.
//!
//! # The bound
//!
//! With `n` segments of `S` bytes and `L` bytes of live records (every
//! group's live entries, votes, committed ids and purge points), a rewrite
//! starts when `n >= rewrite_segments_min` and `n * S > 2L + 2S`. It copies
//! at most `L` bytes and frees `n / 2` segments, more than `L + S / 2` bytes:
//! the log ends smaller than it was, and what rewrites write is never more
//! than what they free. The log holds at most `max(rewrite_segments_min, 2L/S +
//! 2)` segments plus what is appended while a rewrite runs.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::async_runtime::Mutex as _;
use openraft::entry::RaftEntry;
use openraft::type_config::alias::LogIdOf;
use uring_wal::{Lsn, Ticket};

use crate::Config;
use crate::log::{Group, Log, io_err};
use crate::records::{RewriteHead, StoreFormat, encode, invalid, kinds, push_entry};
use crate::store::LogReader;

/// About how many bytes of entries one request of a rewrite carries.
pub const CHUNK_BYTES: u64 = 1 << 20;

/// What rewrites did since the log was opened.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub runs: AtomicU64,
    pub groups_rewritten: AtomicU64,
    pub groups_restated: AtomicU64,
    pub entries_copied: AtomicU64,
    pub bytes_copied: AtomicU64,
}

/// Whether to rewrite, and up to which LSN: the first LSN of the newest
/// segment to keep. `firsts` holds the first LSN of each live segment,
/// oldest first.
pub(crate) fn target(firsts: &[Lsn], segment_bytes: u64, live_bytes: u64, segments_min: usize) -> Option<Lsn> {
    let n = firsts.len();
    if segments_min == 0 || n < segments_min.max(2) {
        return None;
    }
    let held = (n as u64).saturating_mul(segment_bytes);
    if held <= live_bytes.saturating_mul(2).saturating_add(segment_bytes.saturating_mul(2)) {
        return None;
    }
    Some(firsts[n / 2])
}

/// Frees the oldest half of the segments if the log is over its bound.
pub(crate) async fn run<C: Config>(log: &Arc<Log<C>>) -> io::Result<()> {
    let firsts = log.wal.segment_first_lsns();
    let Some(target) = target(&firsts, log.wal.segment_bytes(), log.live_bytes(), log.config.rewrite_segments_min)
    else {
        return Ok(());
    };
    log.rewrites.runs.fetch_add(1, Ordering::Relaxed);
    for group in log.all_groups() {
        if group.lock().needed_from() < target {
            rewrite_group(log, &group, target).await?;
        }
    }
    if log.format_lsn() < target {
        let payload = encode(crate::records::SINGLE_GROUP, &StoreFormat::current())?;
        let ticket = log.wal.submit_async(kinds::FORMAT, &payload).await.map_err(io_err)?;
        log.set_format_lsn(log.durable(ticket).await?);
    }
    log.schedule_purge(log.needed_from());
    Ok(())
}

/// Where a group's vote, committed id and purge point were when its
/// rewrite read them.
struct Anchors {
    vote: Lsn,
    committed: Lsn,
    purged: Lsn,
}

/// Re-states what `group` needs below `target` after the log's tail.
async fn rewrite_group<C: Config>(log: &Arc<Log<C>>, group: &Arc<Group<C>>, target: Lsn) -> io::Result<()> {
    let writer = group.writer.lock().await;
    if !log.holds(group) {
        return Ok(()); // removed meanwhile
    }
    let (whole, head, old, first, end) = {
        let st = group.lock();
        if st.needed_from() >= target {
            return Ok(());
        }
        let whole = st.entries.slots.front().is_some_and(|s| s.first_lsn() < target);
        let head = RewriteHead {
            vote: st.vote.clone(),
            committed: st.committed.clone(),
            purged: st.purged.clone(),
            entries: st.entries.slots.len() as u64,
        };
        let old = Anchors { vote: st.vote_lsn, committed: st.committed_lsn, purged: st.purged_lsn };
        (whole, head, old, st.entries.first, st.entries.end().unwrap_or(st.entries.first))
    };
    if !whole {
        return restate(log, group, writer, head, old, target).await;
    }
    let mut batch = log.wal.batch();
    batch.push(kinds::REWRITE, &encode(group.id, &head)?).map_err(io_err)?;
    let reader = LogReader::new(log.clone(), group.clone());
    // Each entry copied: its log id, where it was, where it is now, and in
    // how many records.
    let mut moved: Vec<(LogIdOf<C>, Lsn, Lsn, u32)> = Vec::with_capacity((end - first) as usize);
    let mut head_lsn = None;
    let mut index = first;
    // The last request's ticket: durable, it makes the whole rewrite so.
    let last: Ticket = loop {
        // The next chunk: entries up to about CHUNK_BYTES, and where each is.
        let was: Vec<(LogIdOf<C>, Lsn)> = {
            let st = group.lock();
            let e = &st.entries;
            let mut bytes = 0;
            let from = (index - e.first) as usize;
            e.slots
                .range(from..)
                .take_while(|s| {
                    bytes += s.log_bytes();
                    bytes <= CHUNK_BYTES || bytes == s.log_bytes()
                })
                .map(|s| (s.log_id.clone(), s.lsn))
                .collect()
        };
        let to = index + was.len() as u64;
        let entries = if was.is_empty() { Vec::new() } else { reader.read_entries(index, to).await? };
        if entries.len() != was.len() {
            return Err(invalid(format!(
                "group {}: rewriting entries {index}..{to} read {} of them back",
                group.id,
                entries.len()
            )));
        }
        let mut placed = Vec::with_capacity(entries.len());
        for (entry, (log_id, lsn)) in entries.iter().zip(&was) {
            if entry.log_id() != *log_id {
                return Err(invalid(format!("group {}: entry {} changed while it was rewritten", group.id, log_id)));
            }
            let encoded = postcard::to_stdvec(entry).map_err(|e| invalid(format!("encode an entry: {e}")))?;
            let parts = push_entry(&mut batch, group.id, &encoded, log.record_bytes_max, kinds::COPY)?;
            log.rewrites.bytes_copied.fetch_add(encoded.len() as u64, Ordering::Relaxed);
            placed.push((log_id.clone(), *lsn, parts));
        }
        #[expect(clippy::expect_used, reason = "the first batch holds the head, later ones an entry each at least")]
        let ticket = log.wal.submit_batch_async(&mut batch).await.map_err(io_err)?.expect("not empty");
        let mut lsn = *ticket.lsns().start() - 1;
        if head_lsn.is_none() {
            lsn += 1;
            head_lsn = Some(lsn);
        }
        for (log_id, old_lsn, parts) in placed {
            lsn += Lsn::from(parts);
            moved.push((log_id, old_lsn, lsn, parts));
        }
        index = to;
        if index >= end {
            break ticket;
        }
    };
    // Every record of the rewrite is queued: the group's store may go on.
    drop(writer);
    let Some(head_lsn) = head_lsn else { return Ok(()) };
    log.durable(last).await?;
    log.rewrites.groups_rewritten.fetch_add(1, Ordering::Relaxed);
    log.rewrites.entries_copied.fetch_add(moved.len() as u64, Ordering::Relaxed);
    let mut st = group.lock();
    // What the group changed since is newer than the copies: left as is.
    for (log_id, old_lsn, new_lsn, parts) in moved {
        if let Some(slot) = st.entries.slot_mut(log_id.index())
            && slot.log_id == log_id
            && slot.lsn == old_lsn
        {
            slot.lsn = new_lsn;
            slot.parts = parts;
        }
    }
    let anchor = |present: bool| if present { head_lsn } else { 0 };
    if st.vote_lsn == old.vote {
        st.vote_lsn = anchor(head.vote.is_some());
    }
    if st.committed_lsn == old.committed {
        st.committed_lsn = anchor(head.committed.is_some());
    }
    if st.purged_lsn == old.purged {
        st.purged_lsn = anchor(head.purged.is_some());
    }
    Ok(())
}

/// Writes again the vote, committed id and purge point of `group` that lie
/// below `target`, as the records they were.
async fn restate<C: Config, G>(
    log: &Arc<Log<C>>,
    group: &Arc<Group<C>>,
    writer: G,
    head: RewriteHead<openraft::type_config::alias::VoteOf<C>, LogIdOf<C>>,
    old: Anchors,
    target: Lsn,
) -> io::Result<()> {
    let below = |lsn: Lsn| lsn != 0 && lsn < target;
    let mut batch = log.wal.batch();
    let mut which = Vec::new();
    if below(old.vote)
        && let Some(vote) = &head.vote
    {
        batch.push(kinds::VOTE, &encode(group.id, vote)?).map_err(io_err)?;
        which.push(0);
    }
    if below(old.committed) {
        batch.push(kinds::COMMITTED, &encode(group.id, &head.committed)?).map_err(io_err)?;
        which.push(1);
    }
    if below(old.purged)
        && let Some(purged) = &head.purged
    {
        batch.push(kinds::PURGE, &encode(group.id, purged)?).map_err(io_err)?;
        which.push(2);
    }
    let Some(ticket) = log.wal.submit_batch_async(&mut batch).await.map_err(io_err)? else { return Ok(()) };
    drop(writer);
    let first = *ticket.lsns().start();
    log.durable(ticket).await?;
    log.rewrites.groups_restated.fetch_add(1, Ordering::Relaxed);
    let mut st = group.lock();
    for (i, what) in which.into_iter().enumerate() {
        let lsn = first + i as Lsn;
        match what {
            0 if st.vote_lsn == old.vote => st.vote_lsn = lsn,
            1 if st.committed_lsn == old.committed => st.committed_lsn = lsn,
            2 if st.purged_lsn == old.purged => st.purged_lsn = lsn,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1 << 20;

    #[test]
    fn nothing_is_rewritten_below_the_minimum_or_when_most_of_the_log_is_live() {
        let firsts: Vec<Lsn> = (0..8).map(|i| 1 + i * 100).collect();
        assert_eq!(target(&firsts[..3], S, 0, 4), None, "below the minimum");
        assert_eq!(target(&firsts, S, 0, 0), None, "disabled");
        // 8 segments: rewrite only while 8 S > 2 L + 2 S, i.e. L < 3 S.
        assert_eq!(target(&firsts, S, 3 * S, 4), None);
        assert_eq!(target(&firsts, S, 3 * S - 1, 4), Some(firsts[4]));
        assert_eq!(target(&firsts[..4], S, 0, 4), Some(firsts[2]), "the oldest half goes");
    }

    #[test]
    fn a_rewrite_frees_more_than_it_copies() {
        // Whenever a rewrite starts, the half it frees is larger than the
        // live bytes it may copy, plus a segment.
        for n in 2..64usize {
            let firsts: Vec<Lsn> = (0..n as u64).collect();
            for live in (0..(n as u64 * S)).step_by((S / 4) as usize) {
                if target(&firsts, S, live, 2).is_some() {
                    let freed = (n / 2) as u64 * S;
                    assert!(freed > live + S / 2, "n {n}, live {live}: frees {freed}");
                }
            }
        }
    }
}
