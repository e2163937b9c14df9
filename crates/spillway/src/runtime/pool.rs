//! The [`Pool`]: the byte budget, the eviction policy, the registry of objects by key, page-in
//! and page-out, named roots and garbage collection.
//!
//! Invariants:
//! - `resident` is the sum of the sizes of entries in the `Resident` or `Loading` state (see
//!   [`entry`](super::entry)); `peak` is its high-water mark.
//! - Every resident entry is either tracked by the policy, held by an eviction in progress
//!   (which puts it back if it cannot be evicted), or about to be admitted by the page-in that
//!   just made it resident.
//! - The registry maps each key to one live entry (the one [`load`](Pool::load) and page-in
//!   hand out, so two handles to one key share one value in memory) and counts *every* live
//!   entry stored under that key: a second copy inserted with equal content is counted too, so
//!   the key stays live for collection until the last of them is dropped.
//! - An entry is counted in the registry (and marked stored) under `gc_state`, in the same
//!   critical section that writes or dedups its record: a collection either sees the write in
//!   its protected set or sees the entry among the live keys.
//! - No `Arc` of an entry is dropped while the residents lock or a registry shard lock is held
//!   (dropping the last one takes those locks).
//! - While a garbage collection is running, every key the pool stores, skips as already stored,
//!   or hands out a handle for is added to the collection's protected set under `gc_state`, and
//!   the sweep deletes only under that same lock: nothing in use is ever swept.
//! - A reservation passes the hard limit only when nothing can be paged out (no evictable entry
//!   is left, after waiting out other threads' evictions, whose victims they hold), or when the
//!   store failed to take a page-out: the value is then kept rather than lost.
//!
//! Lock order: `gc_lock` → `gc_state` → registry shard; an entry's wait lock → its slot lock;
//! the residents lock → an entry's slot lock (through the policy's questions); the residents
//! lock → the access log. Values are dropped outside every lock.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use super::entry::{Encoded, Entry, EntryId, ErasedEntry, LoadWait, Slot};
use super::handle::Paged;
use super::stats::{Counters, PoolStats};
use super::value::Pageable;
use crate::error::{Error, Result};
use crate::format::record::{MAX_CHILDREN, MAX_PAYLOAD_LEN};
use crate::key::{BuildKeyHasher, ContentKey, KeyMap};
use crate::memory::{Budget, BudgetError, EvictionPolicy, PolicyKind, Reservation, Residents};
use crate::store::{BlobStore, Durability, LogStore, LogStoreOptions, Put};

const SHARDS: usize = 16;
/// Accesses logged before they are handed to a recency-ordered policy.
const ACCESS_LOG_LEN: usize = 4096;
/// Page-out writes are grouped into batches of about this many payload bytes. A batch lives
/// twice while it is handed over (the encoded values here, the store's records until they are
/// written), outside the budget, so it is kept small: 1 MiB pages out as fast as 4 MiB did and
/// takes about 16 MiB off the peak RSS of a pool inserting far more than its budget.
const BATCH_BYTES: usize = 1 << 20;
/// Background page-out frees this share of the budget beyond the soft limit, so that it does
/// not wake for every small allocation.
const HYSTERESIS: f64 = 0.05;

type IoJob = Box<dyn FnOnce() + Send>;

/// An encoded object waiting to be written: the entry, its key, child keys and payload.
type Pending = (Arc<dyn ErasedEntry>, ContentKey, Vec<ContentKey>, Vec<u8>);

/// The registry's record for one key: every live entry stored under it, usually one (more if
/// equal values were inserted separately). `load` and page-in hand out the first one of the
/// right type. The record goes when the last of them is dropped.
type Registered = Vec<(EntryId, Weak<dyn ErasedEntry>)>;

struct ResidentSet {
    policy: Box<dyn EvictionPolicy>,
    entries: HashMap<EntryId, Weak<dyn ErasedEntry>>,
}

/// What the policy may ask about entries while the residents lock is held.
struct Lookup<'a> {
    entries: &'a HashMap<EntryId, Weak<dyn ErasedEntry>>,
    /// Entries upgraded during the call, dropped only after the lock is released.
    keep: &'a mut Vec<Arc<dyn ErasedEntry>>,
}

impl Residents for Lookup<'_> {
    fn take_hits(&mut self, id: EntryId) -> u8 {
        match self.entries.get(&id).and_then(Weak::upgrade) {
            Some(e) => {
                let h = e.take_hits();
                self.keep.push(e);
                h
            }
            None => 0,
        }
    }

    fn can_evict(&mut self, id: EntryId) -> bool {
        match self.entries.get(&id).and_then(Weak::upgrade) {
            Some(e) => {
                let ok = !e.is_pinned();
                self.keep.push(e);
                ok
            }
            None => false,
        }
    }
}

#[derive(Default)]
struct GcState {
    active: bool,
    protect: HashSet<ContentKey, BuildKeyHasher>,
}

/// The part of a pool shared by its handles.
pub(crate) struct PoolShared {
    pub(crate) store: Arc<dyn BlobStore>,
    pub(crate) stats: Counters,
    budget: Arc<Budget>,
    peak: AtomicU64,
    residents: Mutex<ResidentSet>,
    registry: Vec<Mutex<KeyMap<Registered>>>,
    /// Accesses not yet handed to a policy that orders by recency (`None` for one that does
    /// not, such as S3-FIFO, which reads the per-entry hit counters instead).
    access_log: Option<Mutex<Vec<EntryId>>>,
    next_id: AtomicU64,
    /// Evictions in progress that hold victims taken out of the policy.
    evicting: AtomicU64,
    signal: Arc<(Mutex<bool>, Condvar)>,
    io: Mutex<Option<mpsc::Sender<IoJob>>>,
    last_error: RwLock<Option<String>>,
    /// A background error not yet reported to a caller.
    unreported: Mutex<Option<String>>,
    gc_active: AtomicBool,
    gc_state: Mutex<GcState>,
    gc_lock: Mutex<()>,
    /// Stored objects whose last handle was dropped since the last collection.
    garbage_hint: AtomicU64,
    gc_after: u64,
    /// Kept so that a default pool's temporary directory outlives its store.
    _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for PoolShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolShared")
            .field("store", &self.store.describe())
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Pool`]. Every setting has a default a newcomer can use.
#[derive(Debug, Default)]
pub struct PoolBuilder {
    budget: Option<u64>,
    store: Option<Arc<dyn BlobStore>>,
    dir: Option<PathBuf>,
    policy: PolicyKind,
    io_threads: Option<usize>,
    gc_after: Option<u64>,
}

impl PoolBuilder {
    /// The byte budget for resident values (default: an eighth of the machine's memory).
    pub fn budget(mut self, bytes: u64) -> Self {
        self.budget = Some(bytes);
        self
    }

    /// Store paged-out values in this store (default: a [`LogStore`] in [`dir`](Self::dir), or
    /// in a temporary directory removed when the pool is dropped).
    pub fn store(mut self, store: Arc<dyn BlobStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Open a [`LogStore`] in this directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The eviction policy (default S3-FIFO).
    pub fn policy(mut self, policy: PolicyKind) -> Self {
        self.policy = policy;
        self
    }

    /// Threads that run async page-ins (default 2).
    pub fn io_threads(mut self, n: usize) -> Self {
        self.io_threads = Some(n.max(1));
        self
    }

    /// Run a garbage collection in the background once this many stored objects lost their last
    /// handle (default 100,000; 0 turns background collection off).
    pub fn gc_after(mut self, dropped_objects: u64) -> Self {
        self.gc_after = Some(dropped_objects);
        self
    }

    /// Builds the pool.
    pub fn build(self) -> Result<Pool> {
        let limit = self.budget.unwrap_or_else(default_budget);
        let budget = Budget::with_limit(limit)
            .map_err(|e| Error::InvalidArgument(format!("pool budget of {limit} bytes: {e}")))?;
        let mut tmp = None;
        let store: Arc<dyn BlobStore> = match (self.store, self.dir) {
            (Some(s), _) => s,
            (None, Some(dir)) => Arc::new(LogStore::open_with(dir, pool_store_options())?),
            (None, None) => {
                let t = tempfile::Builder::new()
                    .prefix("spillway-pool-")
                    .tempdir()
                    .map_err(|e| {
                        Error::io("create temporary directory", std::env::temp_dir(), e)
                    })?;
                let store = LogStore::open_with(t.path(), pool_store_options())?;
                tmp = Some(t);
                Arc::new(store)
            }
        };
        let (tx, rx) = mpsc::channel::<IoJob>();
        let rx = Arc::new(Mutex::new(rx));
        let signal = Arc::new((Mutex::new(false), Condvar::new()));
        let policy = self.policy.build();
        let access_log = policy.wants_access_log().then(|| Mutex::new(Vec::new()));
        let shared = Arc::new(PoolShared {
            store,
            stats: Counters::default(),
            budget: Arc::new(budget),
            peak: AtomicU64::new(0),
            access_log,
            residents: Mutex::new(ResidentSet {
                policy,
                entries: HashMap::new(),
            }),
            registry: (0..SHARDS).map(|_| Mutex::new(KeyMap::default())).collect(),
            next_id: AtomicU64::new(1),
            evicting: AtomicU64::new(0),
            signal: Arc::clone(&signal),
            io: Mutex::new(Some(tx)),
            last_error: RwLock::new(None),
            unreported: Mutex::new(None),
            gc_active: AtomicBool::new(false),
            gc_state: Mutex::new(GcState::default()),
            gc_lock: Mutex::new(()),
            garbage_hint: AtomicU64::new(0),
            gc_after: self.gc_after.unwrap_or(100_000),
            _tmp: tmp,
        });
        let mut threads = Vec::new();
        for i in 0..self.io_threads.unwrap_or(2) {
            let rx = Arc::clone(&rx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("spillway-io-{i}"))
                    .spawn(move || {
                        loop {
                            let job = rx.lock().recv();
                            match job {
                                // A job ends its load even if it panics (see
                                // `page_in_guarded`); this keeps the thread for the next one.
                                Ok(job) => {
                                    let _ =
                                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                                }
                                Err(_) => break,
                            }
                        }
                    })
                    .map_err(|e| Error::io("spawn thread", "spillway-io", e))?,
            );
        }
        let weak = Arc::downgrade(&shared);
        threads.push(
            std::thread::Builder::new()
                .name("spillway-pageout".into())
                .spawn(move || background(weak, signal))
                .map_err(|e| Error::io("spawn thread", "spillway-pageout", e))?,
        );
        Ok(Pool { shared, threads })
    }
}

/// A pool reads its log store with `pread`, so that the page cache does not count in the
/// process's resident set, which users compare with the budget.
fn pool_store_options() -> LogStoreOptions {
    LogStoreOptions::default().map_sealed(false)
}

fn default_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| kib * 1024)
        .unwrap_or(8 << 30);
    (total / 8).max(64 << 20)
}

/// The background thread: pages out above the high-water mark, collects garbage when enough
/// accumulated. Holds the pool only weakly, so it ends when the pool is gone.
fn background(pool: Weak<PoolShared>, signal: Arc<(Mutex<bool>, Condvar)>) {
    loop {
        {
            let (lock, cv) = &*signal;
            let mut woken = lock.lock();
            if !*woken {
                cv.wait_for(&mut woken, Duration::from_millis(50));
            }
            *woken = false;
        }
        let Some(p) = pool.upgrade() else { return };
        if p.io.lock().is_none() {
            return;
        }
        let over = p.budget.over_soft_limit();
        if over > 0 {
            let extra = (p.budget.hard_limit() as f64 * HYSTERESIS) as u64;
            if let Err(e) = p.evict(over + extra) {
                p.record_error(&e);
            }
        }
        if p.gc_after > 0
            && p.garbage_hint.load(Ordering::Relaxed) >= p.gc_after
            && let Err(e) = p.gc(GcOptions::default())
        {
            p.record_error(&e);
        }
    }
}

impl PoolShared {
    pub(crate) fn record_error(&self, e: &Error) {
        tracing::warn!(error = %e, "spillway pool: background error");
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.write() = Some(e.to_string());
        *self.unreported.lock() = Some(e.to_string());
    }

    pub(crate) fn spawn_io(&self, job: IoJob) {
        let sent = match &*self.io.lock() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        };
        // No I/O threads (the pool was dropped while handles live on): a thread of its own, so
        // that an async caller's executor still never blocks on I/O.
        if let Err(job) = sent {
            let slot = Arc::new(Mutex::new(Some(job)));
            let theirs = Arc::clone(&slot);
            let spawned = std::thread::Builder::new()
                .name("spillway-io-late".into())
                .spawn(move || {
                    if let Some(job) = theirs.lock().take() {
                        job();
                    }
                });
            // Without a thread, run it here rather than strand its waiters.
            if spawned.is_err()
                && let Some(job) = slot.lock().take()
            {
                job();
            }
        }
    }

    #[inline]
    pub(crate) fn logs_accesses(&self) -> bool {
        self.access_log.is_some()
    }

    /// Logs an access; hands the log to the policy when it fills up.
    pub(crate) fn log_access(&self, id: EntryId) {
        let Some(log) = &self.access_log else { return };
        let full = {
            let mut l = log.lock();
            l.push(id);
            (l.len() >= ACCESS_LOG_LEN).then(|| std::mem::take(&mut *l))
        };
        if let Some(ids) = full {
            self.residents.lock().policy.record_accesses(&ids);
        }
    }

    /// Hands the logged accesses to the policy (before it chooses victims).
    fn drain_access_log(&self, rs: &mut ResidentSet) {
        if let Some(log) = &self.access_log {
            let ids = std::mem::take(&mut *log.lock());
            rs.policy.record_accesses(&ids);
        }
    }

    pub(crate) fn hard_limit(&self) -> u64 {
        self.budget.hard_limit()
    }

    pub(crate) fn budget_release(&self, bytes: u64) {
        self.budget.sub(bytes);
    }

    /// Reserves `bytes` of the budget, paging out in the calling thread while the reservation
    /// would pass the hard limit. A value larger than the whole budget is an error. If nothing
    /// more can be paged out (every resident value is pinned), the reservation is granted past
    /// the limit rather than failing a read: the overshoot shows in the peak.
    ///
    /// An eviction that finds nothing to evict while another thread's eviction holds victims
    /// waits for that one rather than passing the limit: its victims are about to be freed.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<Reservation> {
        // Bounded only as a safety net against a pathological schedule.
        for _ in 0..100_000 {
            match self.budget.try_reserve(bytes) {
                Ok(r) => return Ok(self.note_peak(r)),
                Err(BudgetError::TooLarge { bytes, limit }) => {
                    return Err(Error::TooLarge {
                        what: "value (by its deep size; the limit is the pool's whole budget)",
                        len: bytes,
                        limit,
                    });
                }
                Err(BudgetError::OverLimit { must_free, .. }) => {
                    // Free a little more than needed so that the next caller does not evict
                    // again at once.
                    let slack = self.budget.hard_limit() / 64;
                    match self.evict(must_free + slack) {
                        Ok(0) => {
                            if self.evicting.load(Ordering::Acquire) == 0 {
                                break;
                            }
                            std::thread::yield_now();
                        }
                        Ok(_) => {}
                        // The store failed: the values that were to be paged out stay
                        // resident, and so does this one, past the limit, rather than being
                        // lost. The error reaches the caller through the stats and the next
                        // call that does not take a value (flush, gc, roots, shrink).
                        Err(e) => {
                            self.record_error(&e);
                            break;
                        }
                    }
                }
                Err(e) => return Err(Error::InvalidArgument(e.to_string())),
            }
        }
        Ok(self.note_peak(self.budget.reserve(bytes)))
    }

    fn note_peak(&self, r: Reservation) -> Reservation {
        self.peak
            .fetch_max(self.budget.resident(), Ordering::Relaxed);
        r
    }

    /// Hands a newly resident entry, already charged to the budget, to the policy.
    pub(crate) fn admit(&self, entry: Arc<dyn ErasedEntry>, size: u64) {
        let ghost = entry.key().map(|k| k.prefix_u64());
        {
            let mut rs = self.residents.lock();
            rs.entries.insert(entry.id(), Arc::downgrade(&entry));
            rs.policy.insert(entry.id(), size, ghost);
        }
        drop(entry);
        if self.budget.over_soft_limit() > 0 {
            let (lock, cv) = &*self.signal;
            *lock.lock() = true;
            cv.notify_one();
        }
    }

    /// Puts an entry that could not be evicted back under the policy's care.
    fn requeue(&self, entry: &Arc<dyn ErasedEntry>) {
        let size = entry.resident_size();
        if size == 0 {
            return;
        }
        let mut rs = self.residents.lock();
        rs.entries.insert(entry.id(), Arc::downgrade(entry));
        rs.policy
            .insert(entry.id(), size, entry.key().map(|k| k.prefix_u64()));
    }

    /// An entry is gone (its last handle dropped); `key` is its key if it was counted in the
    /// registry.
    pub(crate) fn forget(&self, id: EntryId, key: Option<ContentKey>) {
        {
            let mut rs = self.residents.lock();
            if rs.entries.remove(&id).is_some() {
                rs.policy.remove(id);
            }
        }
        if let Some(k) = key {
            let mut shard = self.registry[shard_of(&k)].lock();
            if let Some(r) = shard.get_mut(&k) {
                r.retain(|(i, _)| *i != id);
                if r.is_empty() {
                    shard.remove(&k);
                    self.garbage_hint.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Pages out at least `bytes` of resident values (fewer if not enough are evictable).
    pub(crate) fn evict(&self, bytes: u64) -> Result<u64> {
        let level = self.budget.pressure();
        let mut keep = Vec::new();
        let (victims, _in_flight): (Vec<Arc<dyn ErasedEntry>>, _) = {
            let mut rs = self.residents.lock();
            // Lock order: residents, then the access log (`log_access` never holds both).
            self.drain_access_log(&mut rs);
            let ResidentSet { policy, entries } = &mut *rs;
            let chosen = policy.evict(
                bytes,
                &mut Lookup {
                    entries,
                    keep: &mut keep,
                },
            );
            let victims: Vec<_> = chosen
                .into_iter()
                .filter_map(|(id, _)| entries.remove(&id).and_then(|w| w.upgrade()))
                .collect();
            // Counted under the residents lock, so that a thread whose eviction found nothing
            // because these victims were taken sees this one in flight.
            let in_flight = (!victims.is_empty()).then(|| InFlight::new(&self.evicting));
            (victims, in_flight)
        };
        drop(keep);
        if victims.is_empty() {
            return Ok(0);
        }
        let stored = self.store_graphs(&victims);
        let mut freed = 0;
        let mut count = 0;
        for v in &victims {
            match v.try_evict() {
                Some(n) => {
                    freed += n;
                    count += 1;
                }
                None => self.requeue(v),
            }
        }
        self.stats.page_outs.fetch_add(count, Ordering::Relaxed);
        self.budget.record_evictions_at(level, count, freed);
        drop(victims);
        stored.map(|()| freed)
    }

    /// Stores the graphs under `roots` bottom-up, without recursion: an entry whose children
    /// have no keys yet is encoded again after them.
    pub(crate) fn store_graphs(&self, roots: &[Arc<dyn ErasedEntry>]) -> Result<()> {
        let mut stack: Vec<Arc<dyn ErasedEntry>> = roots.to_vec();
        let mut batch: Vec<Pending> = Vec::new();
        let mut batch_bytes = 0;
        let _batch = BatchScope::enter();
        // Values that cannot be stored (their encoding fails or passes the store's limits), and
        // the parents above them: they stay resident, and the rest of the graphs are stored.
        let mut failed: HashMap<EntryId, ()> = HashMap::new();
        let mut first_error: Option<Error> = None;
        while let Some(e) = stack.last().cloned() {
            if e.is_stored() || in_current_batch(e.id()) || failed.contains_key(&e.id()) {
                stack.pop();
                continue;
            }
            let encoded = e.encode().and_then(|enc| match enc {
                Encoded::Done {
                    ref children,
                    ref payload,
                    ..
                } if payload.len() > MAX_PAYLOAD_LEN as usize
                    || children.len() > MAX_CHILDREN as usize =>
                {
                    Err(Error::TooLarge {
                        what: "encoded value (payload or child list) for the store",
                        len: (payload.len() + 16 * children.len()) as u64,
                        limit: u64::from(MAX_PAYLOAD_LEN),
                    })
                }
                other => Ok(other),
            });
            match encoded {
                Err(err) => {
                    stack.pop();
                    failed.insert(e.id(), ());
                    self.record_error(&err);
                    first_error.get_or_insert(err);
                }
                Ok(Encoded::Done {
                    key,
                    children,
                    payload,
                }) => {
                    stack.pop();
                    e.set_key(key);
                    IN_BATCH.with(|b| b.borrow_mut().insert(e.id()));
                    batch_bytes += payload.len();
                    batch.push((e, key, children, payload));
                    if batch_bytes >= BATCH_BYTES {
                        self.write_batch(&mut batch)?;
                        batch_bytes = 0;
                    }
                }
                Ok(Encoded::Missing(children)) => {
                    if children.iter().any(|c| failed.contains_key(&c.id())) {
                        stack.pop();
                        failed.insert(e.id(), ());
                    } else {
                        stack.extend(children);
                    }
                }
                Ok(Encoded::Stored) => {
                    stack.pop();
                }
            }
        }
        self.write_batch(&mut batch)?;
        match first_error {
            Some(err) if roots.iter().any(|r| failed.contains_key(&r.id())) => Err(err),
            _ => Ok(()),
        }
    }

    fn write_batch(&self, batch: &mut Vec<Pending>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut gc = self.gc_state.lock();
        let mut puts = Vec::with_capacity(batch.len());
        let mut written = 0;
        for (_, key, children, payload) in batch.iter() {
            if gc.active {
                gc.protect.insert(*key);
            }
            if self.store.contains(key)? {
                self.stats.dedup_hits.fetch_add(1, Ordering::Relaxed);
            } else {
                written += payload.len() as u64;
                puts.push(Put {
                    key: *key,
                    children,
                    payload,
                });
            }
        }
        self.store.put_batch(&puts)?;
        self.stats
            .objects_written
            .fetch_add(puts.len() as u64, Ordering::Relaxed);
        self.stats
            .bytes_written
            .fetch_add(written, Ordering::Relaxed);
        drop(puts);
        // Still under `gc_state`: a collection that starts after the write sees the entries
        // among the live keys.
        for (e, key, _, _) in batch.iter() {
            e.mark_stored(*key);
            self.register(e, *key);
        }
        drop(gc);
        batch.clear();
        Ok(())
    }

    /// Counts `entry` as a live entry of `key`, once; it becomes the entry handed out for the
    /// key unless a live one is there already.
    fn register(&self, entry: &Arc<dyn ErasedEntry>, key: ContentKey) {
        if !entry.mark_registered() {
            return;
        }
        let mut shard = self.registry[shard_of(&key)].lock();
        shard
            .entry(key)
            .or_default()
            .push((entry.id(), Arc::downgrade(entry)));
    }

    fn protect(&self, key: ContentKey) {
        if self.gc_active.load(Ordering::SeqCst) {
            let mut gc = self.gc_state.lock();
            if gc.active {
                gc.protect.insert(key);
            }
        }
    }

    /// The handle for a stored key: the live one if the object is in use, else a new one that
    /// loads on first access.
    pub(crate) fn handle_for_key<T: ?Sized + Pageable>(
        self: &Arc<Self>,
        key: ContentKey,
    ) -> Paged<T> {
        // Declared before the lock guard so that it is dropped after the guard.
        let mut existing: Vec<Arc<dyn ErasedEntry>> = Vec::new();
        let mut shard = self.registry[shard_of(&key)].lock();
        let r = shard.entry(key).or_default();
        for (_, w) in r.iter() {
            let Some(e) = w.upgrade() else { continue };
            // On a type mismatch the `Err` drops a clone: `existing` keeps the entry alive.
            existing.push(Arc::clone(&e));
            if let Ok(typed) = e.as_any().downcast::<Entry<T>>() {
                return Paged { entry: typed };
            }
        }
        // No live entry of this type: a new one, counted like any other.
        let entry = Arc::new(self.new_entry::<T>(Slot::Evicted, Some(key), None));
        entry.registered.store(true, Ordering::Release);
        r.push((entry.id, Arc::downgrade(&entry) as Weak<dyn ErasedEntry>));
        drop(shard);
        // Registered first, then protected: a collection that starts after this check sees the
        // handle among the live keys; one already running gets the key in its protected set
        // (or, if it has already swept it, `Pool::load`'s check of the store then fails).
        self.protect(key);
        Paged { entry }
    }

    fn new_entry<T: ?Sized + Pageable>(
        self: &Arc<Self>,
        slot: Slot<T>,
        key: Option<ContentKey>,
        fixed_size: Option<u64>,
    ) -> Entry<T> {
        let k = std::sync::OnceLock::new();
        if let Some(key) = key {
            let _ = k.set(key);
        }
        Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            pool: Arc::clone(self),
            key: k,
            stored: AtomicBool::new(key.is_some()),
            slot: RwLock::new(slot),
            hits: Default::default(),
            size: AtomicU64::new(0),
            fixed_size,
            load_lock: Mutex::new(LoadWait::default()),
            load_cv: Condvar::new(),
            registered: AtomicBool::new(false),
        }
    }

    fn insert_arc<T: ?Sized + Pageable>(
        self: &Arc<Self>,
        value: Arc<T>,
        fixed: Option<u64>,
    ) -> Result<Paged<T>> {
        let size = fixed.unwrap_or_else(|| value.deep_size() as u64).max(1);
        let reservation = self.reserve(size)?;
        let entry = Arc::new(self.new_entry(Slot::Resident(value), None, fixed));
        entry.size.store(reservation.commit(), Ordering::Relaxed);
        self.admit(Arc::clone(&entry) as Arc<dyn ErasedEntry>, size);
        Ok(Paged { entry })
    }

    /// Mark and sweep: everything reachable from a named root or a live handle survives.
    pub(crate) fn gc(&self, opts: GcOptions) -> Result<GcReport> {
        let _one = self.gc_lock.lock();
        {
            let mut gc = self.gc_state.lock();
            gc.active = true;
            gc.protect.clear();
        }
        self.gc_active.store(true, Ordering::SeqCst);
        let result = self.gc_inner(opts);
        self.gc_active.store(false, Ordering::Release);
        {
            let mut gc = self.gc_state.lock();
            gc.active = false;
            gc.protect.clear();
        }
        result
    }

    fn gc_inner(&self, opts: GcOptions) -> Result<GcReport> {
        self.garbage_hint.store(0, Ordering::Relaxed);
        let candidates = self.store.keys()?;
        let mut marking = Marking::default();
        let roots = self.store.roots()?;
        self.mark(&roots, self.live_keys(), &mut marking)?;
        // Sweep under the lock that page-outs and new handles take while a collection runs.
        // What became live during the marking (new handles, new roots, writes) is marked now,
        // with everything under it.
        let gc = self.gc_state.lock();
        let mut late: Vec<ContentKey> = self.live_keys();
        late.extend(gc.protect.iter().copied());
        self.mark(&self.store.roots()?, late, &mut marking)?;
        if !marking.missing.is_empty() && !opts.force {
            // A graph with holes: the store is damaged. What the holes held cannot be known,
            // so nothing is deleted.
            return Err(Error::IncompleteGraph {
                store: self.store.describe(),
                roots: marking.damaged_roots(),
                missing_count: marking.missing.len() as u64,
                missing: marking.missing_keys(10),
            });
        }
        let garbage: Vec<ContentKey> = candidates
            .into_iter()
            .filter(|k| !marking.marked.contains(k))
            .collect();
        self.store.delete(&garbage)?;
        drop(gc);
        self.stats.gc_runs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .gc_deleted
            .fetch_add(garbage.len() as u64, Ordering::Relaxed);
        Ok(GcReport {
            marked: marking.found,
            deleted: garbage.len() as u64,
            missing: marking.missing.len() as u64,
            damaged_roots: marking.damaged_roots(),
            missing_keys: marking.missing_keys(MAX_MISSING_LISTED),
        })
    }

    /// Marks everything reachable from the named roots and from `live` (keys of live handles),
    /// walking child keys in the store. A root's object, or any child of a stored object, that
    /// is not stored is recorded as missing, with the root it was reached from. A live handle's
    /// own key need not be stored (its value may not have been paged out yet).
    fn mark(
        &self,
        roots: &[(String, ContentKey)],
        live: Vec<ContentKey>,
        m: &mut Marking,
    ) -> Result<()> {
        let starts = roots
            .iter()
            .map(|(name, k)| (Some(name.as_str()), *k))
            .chain(live.into_iter().map(|k| (None, k)));
        for (root, start) in starts {
            if m.marked.contains(&start) {
                continue;
            }
            let mut stack = vec![(start, root.is_some())];
            while let Some((k, must_exist)) = stack.pop() {
                if !m.marked.insert(k) {
                    continue;
                }
                match self.store.get(&k)? {
                    Some(blob) => {
                        m.found += 1;
                        stack.extend(
                            blob.children
                                .iter()
                                .filter(|c| !m.marked.contains(*c))
                                .map(|c| (*c, true)),
                        );
                    }
                    None if must_exist => {
                        let from = root.map_or_else(|| "a live handle".to_string(), str::to_string);
                        m.missing.insert(k, from);
                    }
                    // Not paged out yet: nothing stored to walk.
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Keys of the objects that have live handles.
    fn live_keys(&self) -> Vec<ContentKey> {
        let mut out = Vec::new();
        for shard in &self.registry {
            let shard = shard.lock();
            // Records go when their last live entry does: every key here is live.
            out.extend(shard.keys().copied());
        }
        out
    }
}

thread_local! {
    /// Entries encoded into the batch that this thread is storing, keys known but not written
    /// yet. A parent encoded in the same batch may refer to them by key, since the batch writes
    /// children before parents; a parent encoded by another thread may not, since that thread's
    /// batch might fail and never write them.
    static IN_BATCH: std::cell::RefCell<HashSet<EntryId>> = std::cell::RefCell::default();
}

/// True if the entry is in this thread's batch (see `IN_BATCH`).
pub(crate) fn in_current_batch(id: EntryId) -> bool {
    IN_BATCH.with(|b| b.borrow().contains(&id))
}

/// Clears this thread's batch set when a `store_graphs` call ends, however it ends.
struct BatchScope;

impl BatchScope {
    fn enter() -> BatchScope {
        IN_BATCH.with(|b| b.borrow_mut().clear());
        BatchScope
    }
}

impl Drop for BatchScope {
    fn drop(&mut self) {
        IN_BATCH.with(|b| b.borrow_mut().clear());
    }
}

/// Counts an eviction in progress for as long as it lives.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn new(counter: &'a AtomicU64) -> InFlight<'a> {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn shard_of(key: &ContentKey) -> usize {
    (key.prefix_u64() % SHARDS as u64) as usize
}

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Objects found stored and reachable (kept).
    pub marked: u64,
    /// Objects deleted.
    pub deleted: u64,
    /// Objects reachable from a root or a live handle that are not stored (only with
    /// [`GcOptions::force`]: otherwise a collection that finds any stops with
    /// [`Error::IncompleteGraph`]).
    pub missing: u64,
    /// Roots whose graphs miss objects, by name (a live handle's graph as "a live handle").
    pub damaged_roots: Vec<String>,
    /// The missing objects, sorted (at most [`MAX_MISSING_LISTED`]).
    pub missing_keys: Vec<ContentKey>,
}

/// The most missing keys a [`GcReport`] lists; its count is always whole.
pub const MAX_MISSING_LISTED: usize = 100;

/// How a garbage collection treats a damaged store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcOptions {
    /// Collect even when objects that roots or live handles reach are missing (default
    /// `false`: such a collection stops and deletes nothing). Only objects that the surviving
    /// parts of the graphs do not reach are deleted; what the missing objects referred to
    /// cannot be known, so objects that only they reached are deleted too.
    pub force: bool,
}

impl GcOptions {
    /// See [`GcOptions::force`].
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

/// The state of one marking: what is marked, how many of those are stored, and what is
/// missing (with the root it was reached from).
#[derive(Default)]
struct Marking {
    marked: HashSet<ContentKey, BuildKeyHasher>,
    found: u64,
    missing: std::collections::BTreeMap<ContentKey, String>,
}

impl Marking {
    fn damaged_roots(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<&String> = self.missing.values().collect();
        set.into_iter().cloned().collect()
    }

    fn missing_keys(&self, most: usize) -> Vec<ContentKey> {
        self.missing.keys().take(most).copied().collect()
    }
}

/// A memory pool of paged values over a store, within a byte budget.
///
/// ```
/// use spillway::Pool;
///
/// let pool = Pool::builder().budget(64 << 20).build()?;
/// let leaf = pool.insert(vec![1u32, 2, 3])?;
/// let list = pool.insert(vec![leaf.clone(), leaf])?; // a value holding handles
/// assert_eq!(list.get()?[1].get()?[2], 3);
/// # Ok::<(), spillway::Error>(())
/// ```
pub struct Pool {
    shared: Arc<PoolShared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.shared.fmt(f)
    }
}

const PERSIST_PREFIX: &str = "spillway.persist.";

impl Pool {
    /// A pool with every default: a log store in a temporary directory and an eighth of the
    /// machine's memory as its budget.
    pub fn new() -> Result<Pool> {
        Pool::builder().build()
    }

    /// A builder for a pool with settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// Puts a value under the pool's management. Its size is the value's deep size.
    pub fn insert<T: Pageable>(&self, value: T) -> Result<Paged<T>> {
        self.shared.insert_arc(Arc::new(value), None)
    }

    /// Like [`insert`](Self::insert), with the size to charge given by the caller.
    pub fn insert_with_size<T: Pageable>(&self, value: T, bytes: u64) -> Result<Paged<T>> {
        self.shared.insert_arc(Arc::new(value), Some(bytes))
    }

    /// Puts a boxed value (a trait object, say) under the pool's management.
    pub fn insert_boxed<T: ?Sized + Pageable>(&self, value: Box<T>) -> Result<Paged<T>> {
        self.shared.insert_arc(Arc::from(value), None)
    }

    /// A new handle whose value is `f` applied to this one's: values are immutable, so an
    /// update builds a new value; handles inside it that did not change are shared, and their
    /// stored data is not written again.
    pub fn update<T: Pageable + Clone>(
        &self,
        handle: &Paged<T>,
        f: impl FnOnce(&mut T),
    ) -> Result<Paged<T>> {
        let mut value = T::clone(&*handle.get()?);
        f(&mut value);
        self.insert(value)
    }

    /// A handle for an object already stored under `key` (written by this pool before, by
    /// another process, or on another machine). Nothing is loaded until the handle is read.
    pub fn load<T: ?Sized + Pageable>(&self, key: ContentKey) -> Result<Paged<T>> {
        // The handle first (which protects the key from a running collection), then the check.
        let handle = self.shared.handle_for_key(key);
        if !self.shared.store.contains(&key)? {
            return Err(Error::NotFound {
                key,
                store: self.shared.store.describe(),
            });
        }
        Ok(handle)
    }

    /// Stores the graph under `handle` and keeps it stored across restarts, even with no handle
    /// left, until [`unpersist`](Self::unpersist). Returns its key, for [`load`](Self::load).
    pub fn persist<T: ?Sized + Pageable>(&self, handle: &Paged<T>) -> Result<ContentKey> {
        self.take_error()?;
        let key = handle.key()?;
        self.shared
            .store
            .set_root(&format!("{PERSIST_PREFIX}{key}"), Some(key))?;
        Ok(key)
    }

    /// Lets a persisted graph become garbage again once no handle or root reaches it.
    pub fn unpersist(&self, key: ContentKey) -> Result<()> {
        self.shared
            .store
            .set_root(&format!("{PERSIST_PREFIX}{key}"), None)
    }

    /// Names the graph under `handle`: stored durably, it survives restarts and garbage
    /// collection, and [`root`](Self::root) finds it again.
    pub fn set_root<T: ?Sized + Pageable>(
        &self,
        name: &str,
        handle: &Paged<T>,
    ) -> Result<ContentKey> {
        self.take_error()?;
        if name.starts_with(PERSIST_PREFIX) {
            return Err(Error::InvalidArgument(format!(
                "root names starting with {PERSIST_PREFIX:?} are reserved"
            )));
        }
        let key = handle.key()?;
        self.shared.store.set_root(name, Some(key))?;
        Ok(key)
    }

    /// Removes a named root.
    pub fn remove_root(&self, name: &str) -> Result<()> {
        self.shared.store.set_root(name, None)
    }

    /// The graph named `name`, hydrated lazily; `None` if there is no such root.
    pub fn root<T: ?Sized + Pageable>(&self, name: &str) -> Result<Option<Paged<T>>> {
        Ok(self
            .shared
            .store
            .roots()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| self.shared.handle_for_key(k)))
    }

    /// Names and keys of the named roots.
    pub fn roots(&self) -> Result<Vec<(String, ContentKey)>> {
        Ok(self
            .shared
            .store
            .roots()?
            .into_iter()
            .filter(|(n, _)| !n.starts_with(PERSIST_PREFIX))
            .collect())
    }

    /// Deletes stored objects that no live handle, named root or persisted graph reaches.
    /// Safe while other threads use the pool.
    ///
    /// Safe on a damaged store too: if a root's object, or a child of a reachable stored object,
    /// is missing, the collection stops with [`Error::IncompleteGraph`], naming the roots and
    /// the keys, and deletes nothing. [`gc_with`](Self::gc_with) and [`GcOptions::force`] go
    /// past that.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_with(GcOptions::default())
    }

    /// [`gc`](Self::gc) with options.
    pub fn gc_with(&self, opts: GcOptions) -> Result<GcReport> {
        self.take_error()?;
        self.shared.gc(opts)
    }

    /// Pages out values until at most `bytes` are resident (pinned values stay); returns the
    /// bytes freed.
    pub fn shrink_to(&self, bytes: u64) -> Result<u64> {
        self.take_error()?;
        let mut freed = 0;
        loop {
            let resident = self.shared.budget.resident();
            if resident <= bytes {
                return Ok(freed);
            }
            // The policy does a bounded amount of work per call: call again until it frees
            // nothing more.
            match self.shared.evict(resident - bytes)? {
                0 => return Ok(freed),
                n => freed += n,
            }
        }
    }

    /// Makes everything stored so far reach `durability`.
    pub fn flush(&self, durability: Durability) -> Result<()> {
        self.take_error()?;
        self.shared.store.flush(durability)
    }

    /// The store under the pool.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.shared.store
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        let c = &s.stats;
        let store = s.store.stats();
        let resident = s.budget.resident();
        PoolStats {
            resident_bytes: resident,
            budget_bytes: s.budget.hard_limit(),
            peak_resident_bytes: s.peak.load(Ordering::Relaxed),
            pressure: s.budget.pressure_at(resident),
            stored_objects: store.objects,
            stored_bytes: store.live_bytes,
            hits: c.hits.get(),
            misses: c.misses.load(Ordering::Relaxed),
            page_ins: c.page_ins.load(Ordering::Relaxed),
            page_outs: c.page_outs.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            objects_written: c.objects_written.load(Ordering::Relaxed),
            dedup_hits: c.dedup_hits.load(Ordering::Relaxed),
            evictions_by_pressure: s.budget.stats().evictions,
            gc_runs: c.gc_runs.load(Ordering::Relaxed),
            gc_deleted: c.gc_deleted.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            last_error: s.last_error.read().clone(),
        }
    }

    /// Reports (once) a page-out error that happened since the last call: in the background, or
    /// while making room for an insert or a page-in (which then went ahead past the budget
    /// rather than lose the value). Calls that take a value never fail this way.
    fn take_error(&self) -> Result<()> {
        match self.shared.unreported.lock().take() {
            Some(cause) => Err(Error::PageOut { cause }),
            None => Ok(()),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Stop the threads: closing the I/O channel ends the I/O threads, and the background
        // thread sees it on its next wake-up.
        self.shared.io.lock().take();
        {
            let (lock, cv) = &*self.shared.signal;
            *lock.lock() = true;
            cv.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Err(e) = self.shared.store.flush(Durability::Written) {
            tracing::error!(error = %e, "spillway pool: final flush failed");
        }
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Pool>();
    is::<Paged<Vec<u8>>>();
}
