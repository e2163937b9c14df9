//! Residency: which values are in memory. The byte budget (reservation before a value comes
//! in), admission to the eviction policy, the access log a recency-ordered policy reads, and
//! eviction, which pages victims out and drops them.
//!
//! What the policy is told, in the order a cache simulator would be told it: a reservation that
//! would pass the hard limit evicts first (in a deterministic pool exactly what it needs: the
//! policy frees whole values until that much is freed; else down to the stop watermark, the
//! background page-out's work not done yet); then the value comes in and is admitted (an insertion, with its key's
//! prefix as ghost id when it has a key); reads of resident values reach it as hit counters and,
//! for LRU, through the access log, handed over before every insert and eviction; a victim the
//! policy wants remembered is handed back with its key's prefix once it has left memory (a victim
//! that stays, pinned at the last moment or not stored, is inserted again, with no ghost).
//!
//! Held values leave the policy. An entry that an eviction finds pinned (a guard holds its value)
//! is *parked*: taken out of the policy's queues into a side list, so that the next eviction does
//! not ask about it again. Every eviction first looks at a bounded number of parked entries, the
//! longest parked first, and hands those no longer pinned back to the policy as insertions
//! (their hit counters kept, no ghost). An eviction's cost is therefore bounded by what it frees
//! plus that constant, however many values guards hold: no pass over the held ones per
//! reservation. A value whose last guard is dropped is evictable again after at most
//! `parked / PARK_RECHECK` evictions; until then its bytes count as held.
//!
//! Invariants:
//! - The budget's resident count is the sum of the sizes of entries in the `Resident` or
//!   `Loading` state (see `entry`), plus the metadata charged when the pool counts it (see
//!   `metadata`); `peak` is its high-water mark.
//! - Every resident entry is either tracked by the policy, parked, held by an eviction in
//!   progress (which puts it back if it cannot be evicted), or about to be admitted by the insert
//!   or page-in that just made it resident. An entry is never both tracked and parked.
//! - A reservation passes the hard limit only when nothing can be paged out (no evictable entry
//!   is left, after waiting out other threads' evictions, whose victims they hold), or when the
//!   store failed to take a page-out: the value is then kept rather than lost.
//! - No count of an entry is dropped while the residents lock is held (dropping the last one
//!   takes that lock, through [`forget`](Residency::forget)).
//! - The set holds its entries uncounted (see `counted`): an entry's `drop` takes it out of
//!   both the tracked and the parked entries, under the residents lock, before its cell is
//!   freed, and an entry of the set is only counted again or asked under that lock.
//!
//! Lock order: the residents lock → an entry's slot lock (through the policy's questions); the
//! residents lock → the access log.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::sync::{AtomicU64, Condvar, Mutex};

use super::counted::Uncounted;
use super::erased::{EntryId, ErasedEntry, ErasedRef};
use super::page_out::PageOut;
use super::threads::Signal;
use crate::error::{Error, Result};
use crate::memory::{
    Budget, BudgetError, EvictionPolicy, IdMap, Mapped, MappedVec, Released, Reservation,
    Residents, Victim, Watermarks, shrink_mapped_map,
};

/// Accesses logged before they are handed to a recency-ordered policy.
const ACCESS_LOG_LEN: usize = 4096;

/// Parked entries each eviction looks at before it asks the policy, so that a value let go
/// comes back under the policy's care even while the policy has victims enough.
const PARK_RECHECK: usize = 2;

/// Parked entries an eviction looks at when the policy has not found enough, before asking
/// it again.
const PARK_RECHECK_SHORT: usize = 16;

/// How long a reservation that found nothing to evict waits for other threads' evictions,
/// whose victims are about to be freed, before it looks again.
const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// How many evictions that found less than they asked for one reservation makes before it is
/// served past the limit: guards hold the rest, and every further eviction would free only
/// what other threads let go since the last one, chasing their guards.
const SHORT_ROUNDS: u32 = 1;

/// About how many victims one eviction round takes: a round asks the policy for at most this
/// many resident values' worth of bytes (at their mean size), so that the round's own
/// bookkeeping (its victim lists, the page-out batch) and the time it holds the residents lock
/// stay bounded however much is to go. Callers that need more run more rounds.
const ROUND_VICTIMS: u64 = 4096;

/// A resident entry in the resident set, not counted: valid while it is there, because an
/// entry leaves the set (its entries and its parked entries), under the residents lock, in its
/// `drop` (see `counted`). Only used under that lock.
struct Resident(Uncounted<dyn ErasedEntry>);

impl Resident {
    fn of(entry: &ErasedRef) -> Resident {
        Resident(Uncounted::of(entry))
    }

    /// A new count of the entry, unless it is being dropped. Called under the residents lock,
    /// with the entry in the set when the lock was taken.
    fn upgrade(&self) -> Option<ErasedRef> {
        // SAFETY: the entry is in the resident set, whose lock the caller holds (see
        // `Resident`).
        #[expect(unsafe_code, reason = "counting a resident entry")]
        unsafe {
            self.0.upgrade()
        }
    }
}

struct ResidentSet {
    policy: Box<dyn EvictionPolicy>,
    /// Resident entries the policy tracks.
    entries: IdMap<Resident>,
    /// Resident entries out of the policy because a guard held them (see the module docs).
    parked: Parked,
}

/// Entries taken out of the policy while pinned, and the order they are looked at again in.
#[derive(Default)]
struct Parked {
    entries: IdMap<Resident>,
    /// Ids in the order they were parked (or last found still pinned). May hold ids no longer
    /// parked (forgotten since): skipped, and swept when they outnumber the parked ones.
    order: VecDeque<EntryId>,
}

impl Parked {
    fn park(&mut self, id: EntryId, entry: Resident) {
        self.entries.insert(id, entry);
        self.order.push_back(id);
        if self.order.len() > 2 * self.entries.len() + 64 {
            let live = &self.entries;
            self.order.retain(|id| live.contains_key(id));
        }
    }

    fn forget(&mut self, id: EntryId) -> bool {
        let found = self.entries.remove(&id).is_some();
        if found {
            shrink_mapped_map(&mut self.entries);
        }
        found
    }

    fn memory_bytes(&self) -> usize {
        crate::memory::mapped_map_bytes(&self.entries) + crate::memory::queue_bytes(&self.order)
    }
}

/// What the policy may ask about entries while the residents lock is held.
struct Lookup<'a> {
    entries: &'a IdMap<Resident>,
    /// Entries upgraded during the call, dropped only after the lock is released.
    keep: &'a mut Vec<ErasedRef>,
    /// Entries the policy asked about that a guard held: parked after the call.
    pinned: &'a mut Vec<EntryId>,
}

impl Residents for Lookup<'_> {
    fn take_hits(&mut self, id: EntryId) -> u8 {
        match self.entries.get(&id).and_then(Resident::upgrade) {
            Some(e) => {
                let h = e.take_hits();
                self.keep.push(e);
                h
            }
            None => 0,
        }
    }

    fn can_evict(&mut self, id: EntryId) -> bool {
        match self.entries.get(&id).and_then(Resident::upgrade) {
            Some(e) => {
                let pinned = e.is_pinned();
                if pinned {
                    self.pinned.push(id);
                }
                self.keep.push(e);
                !pinned
            }
            None => false,
        }
    }
}

/// A pool's resident values: the budget, the policy and the evictions in progress.
pub(crate) struct Residency {
    budget: Arc<Budget>,
    peak: AtomicU64,
    residents: Mutex<ResidentSet>,
    /// Accesses not yet handed to a policy that orders by recency (`None` for one that does
    /// not, such as S3-FIFO, which reads the per-entry hit counters instead).
    access_log: Option<Mutex<Vec<EntryId>>>,
    /// Evictions in progress that hold victims taken out of the policy.
    evicting: AtomicU64,
    /// Signalled when an eviction in progress ends, for reservations waiting on its victims.
    evicted: Condvar,
    evicted_lock: Mutex<()>,
    /// Reservations waiting on `evicted`: an eviction that ends signals only if there are some.
    waiting: AtomicU64,
    /// Bytes of those victims: about to be released, so not counted again by another eviction.
    releasing: AtomicU64,
    /// Bytes paged out since the allocator last gave its free pages back.
    released: Released,
    /// Where background page-out starts and stops; `None` in a deterministic pool, which has
    /// no background page-out.
    watermarks: Option<Watermarks>,
    /// Wakes the background page-out.
    signal: Arc<Signal>,
    /// Other consumers of the budget that give bytes back when values alone cannot (sections
    /// that spill to disk); asked after eviction has found nothing more to evict.
    spillers: Mutex<Vec<Weak<dyn Spill>>>,
}

/// A consumer of a pool's budget, beside its values, that can give bytes back on request.
pub(crate) trait Spill: Send + Sync {
    /// Gives back about `bytes` if it can, and returns what it gave back: only what ranks below
    /// the pool's values if `below_values` (asked before any value is evicted), anything it
    /// may spill otherwise (asked once no value can go). Must not wait for a lock its own
    /// callers may hold while they reserve (it is called from inside `reserve`): it skips
    /// what it cannot take at once.
    fn spill(&self, bytes: u64, below_values: bool) -> u64;
}

impl Residency {
    pub fn new(
        budget: Budget,
        policy: Box<dyn EvictionPolicy>,
        watermarks: Option<Watermarks>,
        signal: Arc<Signal>,
    ) -> Residency {
        let access_log = policy.wants_access_log().then(|| Mutex::new(Vec::new()));
        Residency {
            budget: Arc::new(budget),
            peak: AtomicU64::new(0),
            residents: Mutex::new(ResidentSet {
                policy,
                entries: IdMap::default(),
                parked: Parked::default(),
            }),
            access_log,
            evicting: AtomicU64::new(0),
            evicted: Condvar::new(),
            evicted_lock: Mutex::new(()),
            waiting: AtomicU64::new(0),
            releasing: AtomicU64::new(0),
            released: Released::default(),
            watermarks,
            signal,
            spillers: Mutex::new(Vec::new()),
        }
    }

    /// Registers a consumer that [`reserve`](Self::reserve) asks to give bytes back when
    /// evicting values is not enough.
    pub fn add_spiller(&self, s: Weak<dyn Spill>) {
        let mut v = self.spillers.lock();
        v.retain(|w| w.strong_count() > 0);
        v.push(s);
    }

    /// Asks the registered consumers to give back `bytes` (only what ranks below values, if
    /// `below_values`); returns what they gave back.
    fn spill_others(&self, bytes: u64, below_values: bool) -> u64 {
        let spillers: Vec<Arc<dyn Spill>> = self
            .spillers
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut freed = 0;
        for s in spillers {
            if freed >= bytes {
                break;
            }
            freed += s.spill(bytes - freed, below_values);
        }
        freed
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The highest resident byte count seen.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Bytes of memory the resident set's tables and the policy's take (an estimate).
    pub fn memory_bytes(&self) -> usize {
        let log = self
            .access_log
            .as_ref()
            .map_or(0, |l| l.lock().capacity() * std::mem::size_of::<EntryId>());
        let r = self.residents.lock();
        r.policy.memory_bytes()
            + crate::memory::mapped_map_bytes(&r.entries)
            + r.parked.memory_bytes()
            + log
    }

    /// Bytes of resident values that a guard holds now (a pass over the resident entries, made
    /// outside the residents lock).
    pub fn held_bytes(&self) -> u64 {
        // Counted under the lock, dropped after it. The list is a mapping of the pool's own
        // once large, as its tables are: one of glibc's would raise its thresholds when freed
        // (see `memory::mapped`).
        let all = {
            let r = self.residents.lock();
            let mut all = MappedVec::<ErasedRef>::with_capacity_in(
                r.entries.len() + r.parked.entries.len(),
                Mapped,
            );
            all.extend(
                r.entries
                    .values()
                    .chain(r.parked.entries.values())
                    .filter_map(Resident::upgrade),
            );
            all
        };
        all.iter()
            .filter(|e| e.is_pinned())
            .map(|e| e.resident_size())
            .sum()
    }

    /// Waits (briefly, with a bound) until no other eviction holds victims, or one ends.
    fn wait_for_evictions(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut g = self.evicted_lock.lock();
        if self.evicting.load(Ordering::SeqCst) > 0 {
            self.evicted.wait_for(&mut g, IN_FLIGHT_WAIT);
        }
        drop(g);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn hard_limit(&self) -> u64 {
        self.budget.hard_limit()
    }

    pub fn release(&self, bytes: u64) {
        self.budget.sub(bytes);
    }

    /// The resident bytes the background page-out should bring the level down to now, if it
    /// should run: the stop mark, once past the start mark.
    pub fn page_out_target(&self) -> Option<u64> {
        let w = self.watermarks?;
        let limit = self.budget.hard_limit();
        w.passed(limit, self.budget.resident())
            .then(|| w.stop_bytes(limit))
    }

    /// Asks the allocator to give back the memory that page-outs freed, if enough was (see
    /// `memory::release`). Called off the readers' path: by the background page-out after a
    /// pass, and by an explicit shrink.
    pub fn release_if_due(&self) {
        self.released.release_if_due(self.budget.hard_limit());
    }

    /// Asks the allocator to give back the memory that page-outs freed, if at least the least
    /// worth a pass was: for an explicit shrink, whose caller asked for memory back.
    pub fn release_now(&self) {
        self.released.release_if_due(0);
    }

    /// True while another eviction holds victims it is about to release.
    pub fn evictions_in_flight(&self) -> bool {
        self.evicting.load(Ordering::Acquire) > 0
    }

    /// Wakes the background page-out.
    pub fn wake(&self) {
        self.signal.wake();
    }

    #[inline]
    pub fn logs_accesses(&self) -> bool {
        self.access_log.is_some()
    }

    /// Logs an access; hands the log to the policy when it fills up.
    pub fn log_access(&self, id: EntryId) {
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

    /// Hands the logged accesses to the policy (before it inserts or chooses victims). The log
    /// keeps its buffer: this runs on every miss.
    fn drain_access_log(&self, rs: &mut ResidentSet) {
        if let Some(log) = &self.access_log {
            let mut ids = log.lock();
            if !ids.is_empty() {
                rs.policy.record_accesses(&ids);
                ids.clear();
            }
        }
    }

    /// Reserves `bytes` of the budget, paging out through `out` in the calling thread while
    /// the reservation would pass the hard limit: without watermarks (a deterministic pool)
    /// exactly what the reservation needs (whole values, so at least that), never more; with
    /// them, down to the stop mark. A value larger than the whole budget is an error. If nothing more can be paged out (every resident value is pinned), the
    /// reservation is granted past the limit rather than failing a read: the overshoot shows in
    /// the peak.
    ///
    /// An eviction that finds nothing to evict while another thread's eviction holds victims
    /// waits for that one rather than passing the limit: its victims are about to be freed.
    pub fn reserve(&self, bytes: u64, out: &PageOut<'_>) -> Result<Reservation> {
        match self.reserve_or_not(bytes, out)? {
            Some(r) => Ok(r),
            None => Ok(self.note_peak(self.budget.reserve(bytes))),
        }
    }

    /// Reserves `bytes` only if they fit now, without evicting anything.
    pub fn try_reserve_now(&self, bytes: u64) -> Option<Reservation> {
        self.budget
            .try_reserve(bytes)
            .ok()
            .map(|r| self.note_peak(r))
    }

    /// [`reserve`](Self::reserve) without going past the limit: `Ok(None)` when the bytes
    /// cannot be had (everything that could be evicted or spilled is gone).
    pub fn reserve_within(&self, bytes: u64, out: &PageOut<'_>) -> Result<Option<Reservation>> {
        self.reserve_or_not(bytes, out)
    }

    fn reserve_or_not(&self, bytes: u64, out: &PageOut<'_>) -> Result<Option<Reservation>> {
        let mut short_rounds = 0;
        // Bounded only as a safety net against a pathological schedule.
        for _ in 0..100_000 {
            match self.budget.try_reserve(bytes) {
                Ok(r) => return Ok(Some(self.note_peak(r))),
                Err(BudgetError::TooLarge { bytes, limit }) => {
                    return Err(Error::TooLarge {
                        what: "value (by its deep size; the limit is the pool's whole budget)",
                        len: bytes,
                        limit,
                    });
                }
                Err(BudgetError::OverLimit { .. }) => {
                    // Consumers that rank below values give their bytes back first.
                    if self.spill_others(bytes, true) > 0 {
                        continue;
                    }
                    // Room for this reservation; with background page-out, a caller that finds
                    // the budget full does the page-out the background thread has not done
                    // yet, down to the stop mark.
                    let limit = self.budget.hard_limit();
                    let mut target = limit.saturating_sub(bytes);
                    if let Some(w) = self.watermarks {
                        target = target.min(w.stop_bytes(limit));
                    }
                    if short_rounds == SHORT_ROUNDS {
                        break;
                    }
                    match self.evict_down(target, out) {
                        // Less than asked for: nothing else can go now (guards hold the rest).
                        // A last try, then past the limit.
                        Ok(Evicted::Freed { bytes: 1.., short }) => {
                            if short {
                                short_rounds += 1;
                            }
                        }
                        // At the target already, counting what other evictions are about to
                        // release: wait for them, then look again.
                        // Others' victims, about to be freed, make room for this one: wait for
                        // them (woken as soon as one of those evictions ends).
                        Ok(Evicted::AtTarget { others: true }) => self.wait_for_evictions(),
                        Ok(Evicted::AtTarget { others: false }) => {}
                        // Nothing could go (or what was chosen stayed, pinned at the last
                        // moment): past the limit, unless another eviction is about to free.
                        Ok(Evicted::Nothing | Evicted::Freed { bytes: 0, .. }) => {
                            // Worth waiting for others' victims only if this reservation fits
                            // once they are gone (not when guards hold more than the budget).
                            let after = self
                                .budget
                                .resident()
                                .saturating_sub(self.releasing.load(Ordering::Acquire));
                            if self.evicting.load(Ordering::Acquire) == 0 || after + bytes > limit {
                                // No value can go: other consumers (sections) may spill.
                                if self.spill_others(bytes, false) > 0 {
                                    continue;
                                }
                                break;
                            }
                            self.wait_for_evictions();
                        }
                        // The store failed: the values that were to be paged out stay
                        // resident, and so does this one, past the limit, rather than being
                        // lost. The error reaches the caller through the stats and the next
                        // call that does not take a value (flush, gc, roots, shrink).
                        Err(e) => {
                            out.errors.record(e);
                            break;
                        }
                    }
                }
                Err(e) => return Err(Error::InvalidArgument(e.to_string())),
            }
        }
        Ok(None)
    }

    fn note_peak(&self, r: Reservation) -> Reservation {
        self.peak
            .fetch_max(self.budget.resident(), Ordering::Relaxed);
        r
    }

    /// Hands a newly resident entry (a miss: inserted, or paged in), already charged to the
    /// budget, to the policy. Its ghost id is its key's prefix if it has a key: what the policy
    /// remembered it under if it left memory before.
    pub fn admit(&self, entry: ErasedRef, size: u64) {
        let ghost = entry.key().map(|k| k.prefix_u64());
        {
            let mut rs = self.residents.lock();
            // Accesses logged before this insert come before it in the policy's order.
            self.drain_access_log(&mut rs);
            rs.entries.insert(entry.id(), Resident::of(&entry));
            rs.policy.insert(entry.id(), size, ghost);
        }
        drop(entry);
        self.wake_if_past_start();
    }

    /// Wakes the background page-out if resident bytes passed its start mark.
    pub fn wake_if_past_start(&self) {
        if let Some(w) = self.watermarks
            && w.passed(self.budget.hard_limit(), self.budget.resident())
        {
            self.signal.wake();
        }
    }

    /// Puts an entry that could not be evicted back under the policy's care. It never left
    /// memory, so it has no ghost to come back under.
    fn requeue(&self, entry: &ErasedRef) {
        let size = entry.resident_size();
        if size == 0 {
            return;
        }
        let mut rs = self.residents.lock();
        self.drain_access_log(&mut rs);
        rs.entries.insert(entry.id(), Resident::of(entry));
        rs.policy.insert(entry.id(), size, None);
    }

    /// Entry `id` is gone (its last handle dropped).
    pub fn forget(&self, id: EntryId) {
        let mut rs = self.residents.lock();
        // From both maps, though an entry is never in both: what either holds must not
        // outlive the entry, so the parked map is cleared whatever the tracked one held.
        if rs.entries.remove(&id).is_some() {
            rs.policy.remove(id);
            shrink_mapped_map(&mut rs.entries);
        }
        rs.parked.forget(id);
    }

    /// Hands every parked entry no longer pinned back to the policy: before an explicit
    /// shrink, which should page out everything it can, not only what the bounded looks find.
    pub fn unpark_all(&self) {
        let mut keep = Vec::new();
        {
            let mut rs = self.residents.lock();
            let n = rs.parked.order.len();
            Self::unpark(&mut rs, n, &mut keep);
        }
        drop(keep);
    }

    /// Moves the entries the policy found pinned out of it, into the parked list.
    fn park_pinned(
        policy: &mut dyn EvictionPolicy,
        entries: &mut IdMap<Resident>,
        parked: &mut Parked,
        pinned: &mut Vec<EntryId>,
    ) {
        for id in pinned.drain(..) {
            if let Some(resident) = entries.remove(&id) {
                policy.remove(id);
                parked.park(id, resident);
            }
        }
    }

    /// Looks at up to `n` parked entries, the longest parked first: those no longer pinned go
    /// back to the policy (as insertions, without a ghost: they never left memory), those still
    /// pinned to the back of the line. Upgraded entries go to `keep`, dropped after the lock.
    fn unpark(rs: &mut ResidentSet, n: usize, keep: &mut Vec<ErasedRef>) {
        let ResidentSet {
            policy,
            entries,
            parked,
        } = rs;
        for _ in 0..n.min(parked.order.len()) {
            let Some(id) = parked.order.pop_front() else {
                break;
            };
            let Some(resident) = parked.entries.get(&id) else {
                continue;
            };
            let Some(e) = resident.upgrade() else {
                // Dying: its drop forgets it.
                continue;
            };
            if e.is_pinned() {
                parked.order.push_back(id);
            } else if let Some(resident) = parked.entries.remove(&id) {
                let size = e.resident_size();
                if size > 0 {
                    entries.insert(id, resident);
                    policy.insert(id, size, None);
                }
            }
            keep.push(e);
        }
        shrink_mapped_map(&mut parked.entries);
    }

    /// Pages out, through `out`, resident values until at most `target` bytes are resident,
    /// not counting those that other evictions in progress are about to release (fewer if not
    /// enough are evictable; whole values, so possibly a little more), in one round of at most
    /// about [`ROUND_VICTIMS`] victims: a caller that must reach `target` calls again until it
    /// returns 0. Returns the bytes freed: 0 if there was nothing to do. A victim that leaves
    /// memory and that the policy asked to remember is handed back to it with its key's
    /// prefix, the ghost id it comes back under when paged in.
    pub fn evict_to(&self, target: u64, out: &PageOut<'_>) -> Result<u64> {
        self.evict_down(target, out).map(|e| match e {
            Evicted::Freed { bytes, .. } => bytes,
            Evicted::AtTarget { .. } | Evicted::Nothing => 0,
        })
    }

    /// [`evict_to`](Self::evict_to), saying why it freed nothing when it did.
    fn evict_down(&self, target: u64, out: &PageOut<'_>) -> Result<Evicted> {
        let level = self.budget.pressure();
        let mut keep = Vec::new();
        type Chosen = (ErasedRef, Victim);
        let (victims, asked, many_held, _in_flight): (Vec<Chosen>, u64, bool, _) = {
            let mut rs = self.residents.lock();
            // Decided under the residents lock, with the victims of the evictions in progress
            // counted as gone: two threads paging out to one mark free its excess once.
            let releasing = self.releasing.load(Ordering::Acquire);
            let staying = self.budget.resident().saturating_sub(releasing);
            let bytes = staying.saturating_sub(target);
            if bytes == 0 {
                return Ok(Evicted::AtTarget {
                    others: releasing > 0,
                });
            }
            // At most a round's worth (see `ROUND_VICTIMS`).
            let mean = self.budget.resident() / (rs.entries.len() as u64).max(1);
            let bytes = bytes.min(mean.max(1).saturating_mul(ROUND_VICTIMS));
            // Lock order: residents, then the access log (`log_access` never holds both).
            self.drain_access_log(&mut rs);
            Self::unpark(&mut rs, PARK_RECHECK, &mut keep);
            let ResidentSet {
                policy,
                entries,
                parked,
            } = &mut *rs;
            let mut pinned = Vec::new();
            let mut lookup = Lookup {
                entries,
                keep: &mut keep,
                pinned: &mut pinned,
            };
            let mut chosen = policy.evict(bytes, &mut lookup);
            Self::park_pinned(policy.as_mut(), entries, parked, &mut pinned);
            let found: u64 = chosen.iter().map(|v| v.bytes).sum();
            if found < bytes && !parked.order.is_empty() {
                // Short: values let go since they were parked may be evictable now.
                Self::unpark(&mut rs, PARK_RECHECK_SHORT, &mut keep);
                let ResidentSet {
                    policy,
                    entries,
                    parked,
                } = &mut *rs;
                chosen.extend(policy.evict(
                    bytes - found,
                    &mut Lookup {
                        entries,
                        keep: &mut keep,
                        pinned: &mut pinned,
                    },
                ));
                Self::park_pinned(policy.as_mut(), entries, parked, &mut pinned);
            }
            // More held values than one look covers: guards hold the budget, and a reservation
            // that comes up short is served past it rather than chasing them (see `reserve`).
            let many_held = rs.parked.entries.len() > PARK_RECHECK_SHORT;
            let entries = &mut rs.entries;
            let victims: Vec<_> = chosen
                .into_iter()
                .filter_map(|v| Some((entries.remove(&v.id)?.upgrade()?, v)))
                .collect();
            shrink_mapped_map(entries);
            // Counted under the residents lock, so that a thread whose eviction found nothing
            // because these victims were taken sees this one in flight, and one that decides
            // how much to free does not count them again.
            let chosen_bytes = victims.iter().map(|(_, v)| v.bytes).sum();
            let in_flight = (!victims.is_empty()).then(|| InFlight::new(self, chosen_bytes));
            (victims, bytes, many_held, in_flight)
        };
        drop(keep);
        if victims.is_empty() {
            return Ok(Evicted::Nothing);
        }
        let entries: Vec<ErasedRef> = victims.iter().map(|(e, _)| e.clone()).collect();
        let stored = out.store_graphs(&entries);
        drop(entries);
        let mut freed = 0;
        let mut count = 0;
        let mut ghosts = Vec::new();
        // Off the reads that take no lock, then one barrier for the batch, then the readers
        // still at work on a victim (see `hazard`).
        for (e, _) in &victims {
            e.withdraw();
        }
        let held = super::hazard::barrier();
        for (e, v) in &victims {
            match e.try_evict(&held) {
                Some(n) => {
                    freed += n;
                    count += 1;
                    // Evicted, so stored, so its key is known.
                    if let Some(k) = e.key().filter(|_| v.ghost) {
                        ghosts.push((k.prefix_u64(), v.bytes));
                    }
                }
                None => self.requeue(e),
            }
        }
        if !ghosts.is_empty() {
            let mut rs = self.residents.lock();
            for (ghost, bytes) in ghosts {
                rs.policy.remember(ghost, bytes);
            }
        }
        out.stats.page_outs.fetch_add(count, Ordering::Relaxed);
        self.budget.record_evictions_at(level, count, freed);
        self.released.freed(freed);
        drop(victims);
        stored.map(|()| Evicted::Freed {
            bytes: freed,
            short: freed < asked && many_held,
        })
    }
}

/// What an eviction did.
enum Evicted {
    /// Victims were paged out, and `bytes` freed; `short` if that is less than was asked for
    /// (the policy found no more, or some could not go after all).
    Freed { bytes: u64, short: bool },
    /// Nothing to do: at most the target is resident, not counting the victims of other
    /// evictions in progress (`others`: there were some).
    AtTarget { others: bool },
    /// Over the target, but the policy found nothing it could evict.
    Nothing,
}

/// Counts an eviction in progress, and the bytes of its victims, for as long as it lives.
struct InFlight<'a> {
    residency: &'a Residency,
    bytes: u64,
}

impl<'a> InFlight<'a> {
    fn new(residency: &'a Residency, bytes: u64) -> InFlight<'a> {
        residency.evicting.fetch_add(1, Ordering::AcqRel);
        residency.releasing.fetch_add(bytes, Ordering::AcqRel);
        InFlight { residency, bytes }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let r = self.residency;
        r.releasing.fetch_sub(self.bytes, Ordering::AcqRel);
        r.evicting.fetch_sub(1, Ordering::SeqCst);
        // A waiter counts itself before it checks `evicting` under the lock, and this signals
        // under that lock: a waiter either sees the count drop or is woken (and a lost wakeup
        // would cost only the wait's bound).
        if r.waiting.load(Ordering::SeqCst) > 0 {
            let _g = r.evicted_lock.lock();
            r.evicted.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::MemStore;
    use crate::{Paged, Pool};

    #[test]
    fn a_round_takes_a_bounded_number_of_victims_and_rounds_reach_the_target() {
        let pool = Pool::builder()
            .budget(1 << 30)
            .store(Arc::new(MemStore::new()))
            .deterministic(true)
            .build()
            .expect("a pool over a memory store");
        let handles: Vec<Paged<u64>> = (0..10_000u64)
            .map(|i| pool.insert(i).expect("insert"))
            .collect();
        let shared = pool.shared();
        let size = shared.residency.budget().resident() / 10_000;
        // One round: about ROUND_VICTIMS values, not all 10,000.
        let freed = shared.evict_to(0).expect("a round");
        let out = handles.iter().filter(|h| !h.is_resident()).count() as u64;
        assert_eq!(freed, out * size);
        assert!(
            (super::ROUND_VICTIMS..super::ROUND_VICTIMS + 64).contains(&out),
            "{out} victims"
        );
        // Rounds until nothing is left; every value reads back.
        while shared.evict_to(0).expect("a round") > 0 {}
        assert_eq!(shared.residency.budget().resident(), 0);
        assert_eq!(*handles[9_999].get().expect("a page-in"), 9_999);
    }
}
