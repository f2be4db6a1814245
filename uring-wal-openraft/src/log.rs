//! The log under one or more stores: one uring-wal log, the state of each
//! Raft group in it, and a purge thread, so that no runtime worker ever
//! waits on the disk. Groups are created and removed at run time; old
//! segments that only a few groups still need are freed by rewriting those
//! groups forward (`crate::rewrite`). An append's callback is fired by the log's I/O thread
//! once its entries are durable (`Ticket::on_durable`), in log order; the
//! purge thread drops segments no group needs any more
//! (`Wal::truncate_before`, which renames or deletes files and syncs the
//! directory).
//!
//! The last reference to the log closes it on a thread of its own, so that
//! dropping a store on a runtime worker never waits for the disk either.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};

use openraft::async_runtime::Mutex as _;
use openraft::storage::IOFlushed;
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::MutexOf;
use uring_wal::storage::Storage;
use uring_wal::{Durability, Lsn, Options, Ticket, Wal};

use crate::records::{StoreFormat, decode, encode, invalid, kinds, split_group};
use crate::state::GroupState;
use crate::{Config, StoreConfig};

pub(crate) fn io_err(e: uring_wal::Error) -> io::Error {
    io::Error::other(e)
}

/// A `Wal` whose last owner closes it on a thread of its own.
#[derive(Debug)]
pub(crate) struct WalHandle(Option<Wal>);

impl std::ops::Deref for WalHandle {
    type Target = Wal;

    fn deref(&self) -> &Wal {
        #[expect(clippy::expect_used, reason = "taken only by drop")]
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for WalHandle {
    fn drop(&mut self) {
        let Some(wal) = self.0.take() else { return };
        // Closing waits for the I/O thread (up to io_timeout on a stalled
        // device): never on whatever thread dropped the last store.
        let closer = std::thread::Builder::new().name("uring-wal-raft-close".into());
        if let Err(e) = closer.spawn(move || drop(wal)) {
            eprintln!("uring-wal-openraft: closing the log inline (no thread: {e})");
        }
    }
}

/// One Raft group of the log.
pub(crate) struct Group<C: Config> {
    pub id: u64,
    state: Mutex<GroupState<C>>,
    /// Held by whatever writes the group's records, from reading its state
    /// to queueing them (and, for a vote, a committed id or a truncation,
    /// until the state says so): its store, a rewrite, a removal. So
    /// records of the group enter the log in the order its state changes.
    pub writer: MutexOf<C, ()>,
    /// A store of the group is open (one at a time), or it is being
    /// removed.
    pub taken: AtomicBool,
}

impl<C: Config> Group<C> {
    fn new(id: u64, state: GroupState<C>) -> Group<C> {
        Group { id, state: Mutex::new(state), writer: C::mutex(()), taken: AtomicBool::new(false) }
    }

    pub fn lock(&self) -> MutexGuard<'_, GroupState<C>> {
        // Held only for in-memory updates; a panic mid-update of the index
        // is a bug either way, and readers seeing its state is no worse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The log and its groups.
pub(crate) struct Log<C: Config> {
    // Dropped first: the purge thread finishes what is queued and ends.
    purges: mpsc::Sender<Lsn>,
    pub wal: Arc<WalHandle>,
    groups: Mutex<BTreeMap<u64, Arc<Group<C>>>>,
    /// Bytes appended since the log's size was last looked at.
    pub appended_bytes: AtomicU64,
    /// A rewrite task is running.
    pub rewriting: AtomicBool,
    /// How many groups `groups` holds, read on every append (the cache
    /// budget) without taking the map's lock.
    group_count: AtomicUsize,
    /// The number of groups when caches were last trimmed.
    caches_trimmed_at: AtomicUsize,
    /// What rewrites did since opening.
    pub rewrites: crate::rewrite::Counters,
    /// LSN of the newest format record.
    format_lsn: AtomicU64,
    /// The last error of a purge (segments it could not drop).
    purge_error: Arc<Mutex<Option<String>>>,
    pub config: StoreConfig,
    /// The log's `record_bytes_max`: the largest record an entry part is.
    pub record_bytes_max: usize,
}

impl<C: Config> Log<C> {
    /// Opens the log and replays it into its groups; writes the format
    /// record into a new one.
    pub fn open(options: Options, storage: Arc<dyn Storage>, config: StoreConfig) -> io::Result<Arc<Log<C>>> {
        if options.durability_mode() == Durability::None {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Durability::None never makes an append durable while open; a Raft log needs it durable",
            ));
        }
        let wal = Wal::open_with_storage(options, storage).map_err(io_err)?;
        let mut groups: BTreeMap<u64, GroupState<C>> = BTreeMap::new();
        let mut format_lsn = 0;
        let mut format_version = 0;
        // The format record is the log's first record, and after a purge
        // that dropped it, it follows the live records that purge kept: it
        // is looked for in the whole log. A record that does not decode
        // before it was seen is judged once it is (another format says why).
        let mut undecoded: Option<io::Error> = None;
        let mut reader = wal.read_from(0).map_err(io_err)?;
        while let Some(rec) = reader.next_record().map_err(io_err)? {
            let (group, body) = split_group(rec.payload, rec.lsn)?;
            if rec.kind == kinds::FORMAT {
                let format = decode::<StoreFormat>(body, rec.lsn, "format record")?;
                format.check(rec.lsn)?;
                format_lsn = rec.lsn;
                format_version = format.version;
                continue;
            }
            if undecoded.is_some() {
                continue;
            }
            if rec.kind == kinds::REMOVE {
                groups.remove(&group);
                continue;
            }
            let budget = config.cache_bytes / (groups.len() + 1);
            let state = groups.entry(group).or_insert_with(GroupState::new);
            match state.replay(rec.lsn, rec.kind, body, budget, config.entry_bytes_max) {
                Ok(()) => {}
                Err(e) if format_lsn == 0 => undecoded = Some(e),
                Err(e) => return Err(e),
            }
        }
        drop(reader);
        if wal.next_lsn() > 1 && format_lsn == 0 {
            let why = undecoded.map(|e| format!(" ({e})")).unwrap_or_default();
            return Err(invalid(format!(
                "{}: no format record: not a log of this store, or one written by a uring-wal-openraft older \
                 than format records (store format {}){why}",
                wal.dir().display(),
                crate::records::STORE_FORMAT_VERSION
            )));
        }
        if let Some(e) = undecoded {
            return Err(e);
        }
        let budget = config.cache_bytes / groups.len().max(1);
        for state in groups.values_mut() {
            state.finish_replay()?;
            state.entries.evict(budget, Lsn::MAX);
        }
        // A new log, or one of an older format this build reads: this
        // build's format goes first, before anything it writes.
        if wal.next_lsn() == 1 || format_version < crate::records::STORE_FORMAT_VERSION {
            let payload = encode(crate::records::SINGLE_GROUP, &StoreFormat::current())?;
            format_lsn = wal.append(kinds::FORMAT, &payload).map_err(io_err)?;
            wal.wait_durable(format_lsn, None).map_err(io_err)?;
        }
        let record_bytes_max = wal.record_bytes_max() as usize;
        let wal = Arc::new(WalHandle(Some(wal)));
        let (purges, purge_rx) = mpsc::channel::<Lsn>();
        let purge_error = Arc::new(Mutex::new(None));
        spawn_purger(wal.clone(), purge_rx, purge_error.clone())?;
        let group_count = groups.len();
        let groups = groups.into_iter().map(|(id, state)| (id, Arc::new(Group::new(id, state))));
        Ok(Arc::new(Log {
            purges,
            wal,
            groups: Mutex::new(groups.collect()),
            appended_bytes: AtomicU64::new(0),
            rewriting: AtomicBool::new(false),
            group_count: AtomicUsize::new(group_count),
            caches_trimmed_at: AtomicUsize::new(0),
            rewrites: crate::rewrite::Counters::default(),
            format_lsn: AtomicU64::new(format_lsn),
            purge_error,
            config,
            record_bytes_max,
        }))
    }

    fn groups(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Group<C>>>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Group `id` for a store of it, created empty if the log holds nothing
    /// of it; fails while another store of it is open or it is being
    /// removed. [`Log::release`] gives it back.
    pub fn take_group(&self, id: u64) -> io::Result<Arc<Group<C>>> {
        let mut groups = self.groups();
        let group = groups.entry(id).or_insert_with(|| Arc::new(Group::new(id, GroupState::new()))).clone();
        self.group_count.store(groups.len(), Ordering::Relaxed);
        if group.taken.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("group {id} of {} has a store open already, or is being removed", self.wal.dir().display()),
            ));
        }
        Ok(group)
    }

    /// A store of `group` was dropped.
    pub fn release(&self, group: &Group<C>) {
        group.taken.store(false, Ordering::Release);
    }

    /// Every group, by id.
    pub fn all_groups(&self) -> Vec<Arc<Group<C>>> {
        self.groups().values().cloned().collect()
    }

    /// Whether `group` is still the log's group of its id (not removed).
    pub fn holds(&self, group: &Arc<Group<C>>) -> bool {
        self.groups().get(&group.id).is_some_and(|g| Arc::ptr_eq(g, group))
    }

    /// Removes group `id` durably: its records are void from then on, and
    /// the segments only it needed go. Fails while a store of it is open.
    /// Returns whether the log held the group.
    pub async fn remove_group(&self, id: u64) -> io::Result<bool> {
        let Some(group) = self.groups().get(&id).cloned() else { return Ok(false) };
        if group.taken.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("group {id} has a store open (drop it, after shutting its Raft down, before removing it)"),
            ));
        }
        let removed = async {
            let _writer = group.writer.lock().await;
            let mut batch = self.wal.batch();
            batch.push(kinds::REMOVE, &encode(id, &())?).map_err(io_err)?;
            // The format record too, if only it would hold the segments
            // the group needed.
            let rewrite_format = self.format_lsn() < self.groups_need_from(Some(id));
            if rewrite_format {
                let format = encode(crate::records::SINGLE_GROUP, &StoreFormat::current())?;
                batch.push(kinds::FORMAT, &format).map_err(io_err)?;
            }
            #[expect(clippy::expect_used, reason = "the batch holds the removal")]
            let ticket = self.wal.submit_batch_async(&mut batch).await.map_err(io_err)?.expect("not empty");
            let last = self.durable(ticket).await?;
            if rewrite_format {
                self.set_format_lsn(last);
            }
            let mut groups = self.groups();
            groups.remove(&id);
            self.group_count.store(groups.len(), Ordering::Relaxed);
            Ok::<_, io::Error>(())
        }
        .await;
        if let Err(e) = removed {
            group.taken.store(false, Ordering::Release);
            return Err(e);
        }
        // The removal is durable: a purge failing earlier is for a purge to
        // report, not this.
        self.schedule_purge(self.needed_from());
        Ok(true)
    }

    /// How many groups the log holds.
    pub fn group_count(&self) -> usize {
        self.group_count.load(Ordering::Relaxed)
    }

    /// Once the number of groups doubled since the last time, trims every
    /// group's cache to its share of the budget: an idle group keeps the
    /// share it had when it last wrote, and this bounds the sum to twice
    /// the budget at a cost amortized over the groups created.
    pub fn trim_caches(&self) {
        let at = self.caches_trimmed_at.load(Ordering::Relaxed);
        if self.group_count() < at.saturating_mul(2).max(2) {
            return;
        }
        let groups = self.all_groups();
        self.caches_trimmed_at.store(groups.len(), Ordering::Relaxed);
        let budget = self.config.cache_bytes / groups.len();
        let acked = self.wal.last_lsn();
        for group in groups {
            group.lock().entries.evict(budget, acked);
        }
    }

    /// Fires `callback` once `ticket`'s records are durable, on the log's
    /// I/O thread, after the callbacks of earlier appends; an empty append
    /// (`None`) after everything queued so far.
    /// Once durable, the entries may leave `group`'s cache if it is over
    /// budget (readers can read them back from now on).
    pub fn when_durable(&self, ticket: Option<Ticket>, callback: IOFlushed<C>, group: Arc<Group<C>>) {
        let budget = self.cache_budget();
        let fire = move |r: uring_wal::Result<Lsn>| {
            let lsn = r.as_ref().ok().copied();
            callback.io_completed(r.map(|_| ()).map_err(io_err));
            // On the I/O thread: never wait for the lock (a reader may be
            // cloning entries under it); the next append evicts instead.
            if let (Some(lsn), Ok(mut st)) = (lsn, group.state.try_lock()) {
                st.entries.evict(budget, lsn);
            }
        };
        match ticket {
            Some(t) => t.on_durable(fire),
            None => self.wal.on_durable(self.wal.next_lsn() - 1, fire),
        }
    }

    /// LSN of the newest format record.
    pub fn format_lsn(&self) -> Lsn {
        self.format_lsn.load(Ordering::Acquire)
    }

    pub fn set_format_lsn(&self, lsn: Lsn) {
        self.format_lsn.store(lsn, Ordering::Release);
    }

    /// The oldest LSN any group (or the format record) still needs.
    pub fn needed_from(&self) -> Lsn {
        self.groups_need_from(None).min(self.format_lsn())
    }

    /// The oldest LSN any group but `except` still needs.
    pub fn groups_need_from(&self, except: Option<u64>) -> Lsn {
        let groups = self.all_groups();
        groups.iter().filter(|g| Some(g.id) != except).map(|g| g.lock().needed_from()).min().unwrap_or(Lsn::MAX)
    }

    /// Bytes the records replay needs take in the log, about.
    pub fn live_bytes(&self) -> u64 {
        self.all_groups().iter().map(|g| g.lock().log_bytes()).sum()
    }

    /// The cache budget of each group: `cache_bytes` shared by all.
    pub fn cache_budget(&self) -> usize {
        self.config.cache_bytes / self.group_count().max(1)
    }

    /// Counts `bytes` appended; past a quarter segment since the last look,
    /// starts a task that checks whether old segments should be freed by
    /// rewriting the groups that hold them (one at a time).
    pub fn appended(self: &Arc<Self>, bytes: u64) {
        let quarter = self.wal.segment_bytes() / 4;
        if self.appended_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes < quarter {
            return;
        }
        self.appended_bytes.store(0, Ordering::Relaxed);
        if self.config.rewrite_segments_min == 0 || self.rewriting.swap(true, Ordering::AcqRel) {
            return;
        }
        let log = self.clone();
        drop(C::spawn(async move {
            let done = crate::rewrite::run(&log).await;
            log.rewriting.store(false, Ordering::Release);
            if let Err(e) = done {
                *log.purge_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!("rewriting: {e}"));
            }
        }));
    }

    /// Asks the purge thread to drop the segments below `lsn`; reports the
    /// failure of an earlier purge, if any.
    pub fn purge_before(&self, lsn: Lsn) -> io::Result<()> {
        if let Some(e) = self.purge_error.lock().unwrap_or_else(PoisonError::into_inner).take() {
            return Err(io::Error::other(e));
        }
        self.purges.send(lsn).map_err(|_| io::Error::other("the purge thread is gone"))
    }

    /// Asks the purge thread to drop the segments below `lsn`, leaving the
    /// failure of an earlier purge to the next [`Log::purge_before`]. The
    /// thread is gone only once the log is being dropped: nothing to do.
    pub fn schedule_purge(&self, lsn: Lsn) {
        let _ = self.purges.send(lsn);
    }

    /// Waits until `ticket`'s records are durable; returns the last LSN.
    pub async fn durable(&self, ticket: Ticket) -> io::Result<Lsn> {
        let lsn = ticket.await.map_err(io_err)?;
        // Acknowledged is durable under GroupSync and Dsync; under Periodic
        // this waits for the next sync.
        self.wal.durable(lsn).await.map_err(io_err)
    }
}

/// The purge thread: drops the segments below the newest LSN asked for.
fn spawn_purger(wal: Arc<WalHandle>, rx: mpsc::Receiver<Lsn>, error: Arc<Mutex<Option<String>>>) -> io::Result<()> {
    std::thread::Builder::new().name("uring-wal-raft-purge".into()).spawn(move || {
        while let Ok(mut lsn) = rx.recv() {
            // Only the newest point matters: it covers the older ones.
            while let Ok(newer) = rx.try_recv() {
                lsn = lsn.max(newer);
            }
            if let Err(e) = wal.truncate_before(lsn) {
                *error.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!("purging the log: {e}"));
            }
        }
    })?;
    Ok(())
}
