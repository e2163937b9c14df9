//! Watermarks: how far the writes have travelled, per [`Durability`] level, and the waits on
//! them (blocking, and async through [`EpochWait`]).
//!
//! Invariants:
//! - `durable <= written <= applied`, and none of them ever decreases;
//! - `written` and `durable` mean "every epoch up to here": batches are stored in epoch order,
//!   so the stored epochs are always a prefix `1..=written`;
//! - once the pipeline has failed or closed, no mark moves again, and every wait that its mark
//!   has not passed ends with the error: nobody waits for a mark that will never come;
//! - a wait for `Written` or `Durable` registers a *demand*, which makes the pipeline freeze
//!   and store (or sync) the epoch even when no size or timer trigger would;
//! - a blocking wait first tries to *lead*: to take the flush role and do the freeze, store
//!   and sync itself (see [`lead`](crate::lead)). If another thread holds the role, the
//!   waiter sleeps until that thread releases it (each release counts itself under the mark
//!   lock and wakes the `Written` and `Durable` waiters and the role's sleepers), then looks
//!   again; so a blocking waiter never depends on a hand-off to the background threads when it
//!   could do the work itself. Async waits only register demand (they must not block their
//!   executor), and the background threads serve them: a leader's round that leaves a sync
//!   wanted (it was for `Written`) wakes the flush thread for it;
//! - no wake-up is lost: a thread decides to sleep and reads its word under the mark lock, and
//!   everybody that moves a mark (or releases the role, or ends the pipeline) bumps the words
//!   concerned under the same lock before waking their sleepers; a thread that sleeps on a
//!   word that was bumped meanwhile returns at once. `tests/write_shuttle.rs` model-checks
//!   this on the real code (built with `--cfg spillway_shuttle`, see [`sync`](crate::sync)):
//!   blocking, async and timed waiters, leaders, the background threads, failures and
//!   shutdown.
//!
//! How blocked threads sleep: a wait with no timeout sleeps on a *word*, a counter that every
//! wake-up bumps, so that a moving mark wakes all its sleepers with one call into the kernel
//! (a futex on Linux) instead of one per thread. On a small machine with many waiters that
//! call is the group commit's critical path, since the next round begins when the role is
//! released. Each level has its word, and the flush role has one: a waiter that found the
//! role taken and whose write is not frozen yet (the holder's round may not carry it: a
//! leader freezes again, the flush thread does not) sleeps on the role's word, which the
//! release wakes (and the end of the pipeline), not the marks the holder moves; those then
//! wake only waiters they may satisfy. A wait with a timeout parks its own thread, with a
//! waker, as an async wait registers one.
//!
//! The words need a futex or its kind from the OS (see [`Word`]); where
//! there is none, every blocked wait parks its own thread with a waker.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::durability::Durability;
use crate::epoch::Epoch;
use crate::error::{Error, Failure, Result};
use crate::sync::{Instant, Mutex, MutexGuard, Word, thread};

/// Told when a waiter needs a level that only a freeze, a flush or a sync will bring.
pub(crate) type DemandHook = Box<dyn Fn(Durability) + Send + Sync>;

/// Tries to bring an epoch to a level on the calling thread (see [`lead`](crate::lead)).
pub(crate) type LeadHook = Box<dyn Fn(Durability, Epoch) -> Lead + Send + Sync>;

/// Wakes a thread blocked in [`Watermarks::wait`].
struct Unpark(thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The index of the word of the waiters that wait for the flush role's release.
const ROLE: usize = 3;

/// The index of `level`'s waiters.
fn slot(level: Durability) -> usize {
    match level {
        Durability::Applied => 0,
        Durability::Written => 1,
        Durability::Durable => 2,
    }
}

/// What a try to lead came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lead {
    /// This thread held the flush role and did what it could: look at the marks again.
    Led,
    /// Another thread holds the role: wait until it releases it.
    Busy,
    /// The calling thread cannot do it (the pipeline is shutting down, or the epoch is not
    /// applied yet): the background threads must.
    Unable,
}

/// The three marks and everybody waiting on them, in a pipeline whose flusher fails with `E`.
pub(crate) struct Watermarks<E> {
    pipeline: String,
    state: Mutex<MarkState<E>>,
    /// Per level (see [`slot`]), and for the flush role ([`ROLE`]): bumped, under the state
    /// lock, at each wake-up of the level (of the role: at each release); all of them when the
    /// pipeline ends. Untimed blocked waiters sleep on one of them.
    words: [Word; 4],
    on_demand: DemandHook,
    lead: Option<LeadHook>,
}

struct MarkState<E> {
    applied: Epoch,
    written: Epoch,
    durable: Epoch,
    demand_written: Epoch,
    demand_durable: Epoch,
    end: Option<End<E>>,
    /// Threads asleep on each word.
    sleepers: [u32; 4],
    /// The last epoch frozen: a batch holding it is on its way to storage.
    frozen: Epoch,
    /// The other waiters, per level (see [`slot`]): async waits, and blocked threads with a
    /// timeout (whose waker unparks them). Woken, like the sleepers on the level's word, when
    /// that mark moves, when the flush role is released (`Written` and `Durable`), and when the
    /// pipeline ends (all). Each woken waiter runs on its own, in parallel, rather than one
    /// after the other through a condition variable's lock, which on a small machine costs a
    /// scheduler round trip per waiter.
    wakers: [BTreeMap<u64, Waker>; 3],
    next_waker: u64,
    /// Times the flush role was released.
    released: u64,
}

enum End<E> {
    Failed { first: Epoch, cause: Failure<E> },
    Closed,
}

impl<E> MarkState<E> {
    fn mark(&self, level: Durability) -> Epoch {
        match level {
            Durability::Applied => self.applied,
            Durability::Written => self.written,
            Durability::Durable => self.durable,
        }
    }

    /// `Some` once the wait for `epoch` at `level` is over.
    fn outcome(&self, pipeline: &str, level: Durability, epoch: Epoch) -> Option<Result<(), E>> {
        if self.mark(level) >= epoch {
            return Some(Ok(()));
        }
        match &self.end {
            None => None,
            Some(End::Failed { first, cause }) => Some(Err(Error::WriteFailed {
                pipeline: pipeline.to_owned(),
                first: first.get(),
                cause: cause.clone(),
            })),
            Some(End::Closed) => Some(Err(Error::Closed {
                pipeline: pipeline.to_owned(),
            })),
        }
    }

    /// Raises the demand for `level` to `epoch`; true if it rose.
    fn demand(&mut self, level: Durability, epoch: Epoch) -> bool {
        let slot = match level {
            Durability::Applied => return false,
            Durability::Written => &mut self.demand_written,
            Durability::Durable => &mut self.demand_durable,
        };
        let rose = *slot < epoch;
        *slot = (*slot).max(epoch);
        rose
    }
}

impl<E> Watermarks<E> {
    #[cfg(test)]
    pub(crate) fn new(pipeline: String, on_demand: DemandHook) -> Watermarks<E> {
        Watermarks::with_lead(pipeline, on_demand, None)
    }

    /// Marks whose blocking waiters try `lead` before they sleep.
    pub(crate) fn with_lead(
        pipeline: String,
        on_demand: DemandHook,
        lead: Option<LeadHook>,
    ) -> Watermarks<E> {
        Watermarks {
            pipeline,
            state: Mutex::new(MarkState {
                applied: Epoch::ZERO,
                written: Epoch::ZERO,
                durable: Epoch::ZERO,
                demand_written: Epoch::ZERO,
                demand_durable: Epoch::ZERO,
                end: None,
                sleepers: [0; 4],
                frozen: Epoch::ZERO,
                wakers: [BTreeMap::new(), BTreeMap::new(), BTreeMap::new()],
                next_waker: 0,
                released: 0,
            }),
            words: Default::default(),
            on_demand,
            lead,
        }
    }

    pub(crate) fn get(&self, level: Durability) -> Epoch {
        self.state.lock().mark(level)
    }

    /// The highest epoch some waiter needs at `level` (`Written` or `Durable`).
    pub(crate) fn demand(&self, level: Durability) -> Epoch {
        let s = self.state.lock();
        match level {
            Durability::Applied => s.applied,
            Durability::Written => s.demand_written.max(s.demand_durable),
            Durability::Durable => s.demand_durable,
        }
    }

    /// True if the flush thread has a sync to do: every epoch some waiter needs `Durable` is
    /// written, and not all of them are synced.
    pub(crate) fn sync_wanted(&self) -> bool {
        let s = self.state.lock();
        s.end.is_none() && s.demand_durable > s.durable && s.written >= s.demand_durable
    }

    /// Asks for `epoch` to reach `level` without waiting for it (what an explicit flush does).
    pub(crate) fn request(&self, level: Durability, epoch: Epoch) {
        let rose = self.state.lock().demand(level, epoch);
        if rose {
            (self.on_demand)(level);
        }
    }

    /// Moves the mark of `level` up to `epoch` (never down) and wakes the waiters.
    pub(crate) fn advance(&self, level: Durability, epoch: Epoch) {
        let mut s = self.state.lock();
        let slot = match level {
            Durability::Applied => &mut s.applied,
            Durability::Written => &mut s.written,
            Durability::Durable => &mut s.durable,
        };
        if epoch <= *slot {
            return;
        }
        *slot = epoch;
        debug_assert!(s.durable <= s.written && s.written <= s.applied);
        self.wake(s, Some(level));
    }

    /// Ends the pipeline with a failure: every wait not yet satisfied gets the error. Blocked
    /// waiters are woken at once; the async wakers are returned, to be woken by the caller
    /// once it has released its own locks (a waker may poll on the spot).
    #[must_use = "the returned wakers must be woken"]
    pub(crate) fn fail(&self, first: Epoch, cause: Failure<E>) -> Vec<Waker> {
        let mut s = self.state.lock();
        if s.end.is_none() {
            s.end = Some(End::Failed { first, cause });
        }
        let (words, wakers) = self.take_all(&mut s);
        drop(s);
        self.wake_words(words);
        wakers
    }

    /// Ends the pipeline normally: waits not yet satisfied now never will be.
    pub(crate) fn close(&self) {
        let mut s = self.state.lock();
        if s.end.is_none() {
            s.end = Some(End::Closed);
        }
        self.wake(s, None);
    }

    /// The error every new call gets once the pipeline has ended.
    pub(crate) fn ended(&self) -> Option<Error<E>> {
        let s = self.state.lock();
        s.outcome(&self.pipeline, Durability::Applied, Epoch::new(u64::MAX))
            .and_then(Result::err)
    }

    /// The failure, if the pipeline failed.
    pub(crate) fn failure(&self) -> Option<Error<E>> {
        match self.ended() {
            Some(e @ Error::WriteFailed { .. }) => Some(e),
            _ => None,
        }
    }

    /// Bumps the words of `slots`; returns those that have sleepers, to wake once the lock is
    /// released.
    fn bump(&self, s: &MarkState<E>, slots: &[usize]) -> [bool; 4] {
        let mut asleep = [false; 4];
        for &i in slots {
            self.words[i].bump();
            asleep[i] = s.sleepers[i] > 0;
        }
        asleep
    }

    fn wake_words(&self, asleep: [bool; 4]) {
        for (word, asleep) in self.words.iter().zip(asleep) {
            if asleep {
                word.wake_all();
            }
        }
    }

    /// Bumps every word and takes every waker: the pipeline ended.
    fn take_all(&self, s: &mut MarkState<E>) -> ([bool; 4], Vec<Waker>) {
        let words = self.bump(s, &[0, 1, 2, ROLE]);
        let wakers = std::mem::take(&mut s.wakers)
            .into_iter()
            .flat_map(BTreeMap::into_values)
            .collect();
        (words, wakers)
    }

    /// Wakes the waiters, blocked and async, of `level` (of every level: `None`).
    fn wake(&self, mut s: MutexGuard<'_, MarkState<E>>, level: Option<Durability>) {
        let (words, wakers): (_, Vec<Waker>) = match level {
            Some(level) => (
                self.bump(&s, &[slot(level)]),
                std::mem::take(&mut s.wakers[slot(level)])
                    .into_values()
                    .collect(),
            ),
            None => self.take_all(&mut s),
        };
        drop(s);
        // Each waiter registers again if it still has to wait.
        self.wake_words(words);
        for w in wakers {
            w.wake();
        }
    }

    /// Writes up to `last` were frozen: their batch is on its way to storage.
    pub(crate) fn frozen(&self, last: Epoch) {
        let mut s = self.state.lock();
        s.frozen = s.frozen.max(last);
    }

    /// The flush role was released: waiters that found it busy look again.
    pub(crate) fn role_released(&self) {
        let mut s = self.state.lock();
        s.released += 1;
        let words = self.bump(
            &s,
            &[slot(Durability::Written), slot(Durability::Durable), ROLE],
        );
        let mut wakers = std::mem::take(&mut s.wakers[slot(Durability::Written)]);
        wakers.append(&mut s.wakers[slot(Durability::Durable)]);
        drop(s);
        self.wake_words(words);
        wakers.into_values().for_each(Waker::wake);
    }

    /// Blocks until `epoch` reaches `level`, or until `timeout` (then `Ok(false)`; a flush this
    /// thread leads is finished first).
    pub(crate) fn wait(
        &self,
        level: Durability,
        epoch: Epoch,
        timeout: Option<Duration>,
    ) -> Result<bool, E> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.state.lock();
        let mut poked = false;
        let mut parked: Option<(u64, Waker)> = None;
        loop {
            if let Some(done) = s.outcome(&self.pipeline, level, epoch) {
                if let Some((id, _)) = &parked {
                    s.wakers[slot(level)].remove(id);
                }
                return done.map(|()| true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if let Some((id, _)) = &parked {
                    s.wakers[slot(level)].remove(id);
                }
                return Ok(false);
            }
            let mut lead = Lead::Unable;
            if level != Durability::Applied
                && epoch <= s.applied
                && let Some(hook) = &self.lead
            {
                let seen = s.released;
                drop(s);
                lead = hook(level, epoch);
                s = self.state.lock();
                if lead == Lead::Led || (lead == Lead::Busy && s.released != seen) {
                    continue;
                }
            }
            // The role holder will release it and wake us; otherwise the background threads
            // must hear of the demand.
            let rose = s.demand(level, epoch);
            if lead == Lead::Unable && (rose || !poked) {
                poked = true;
                drop(s);
                (self.on_demand)(level);
                s = self.state.lock();
                continue;
            }
            if deadline.is_none() && Word::SUPPORTED {
                // Sleep on a word until it is bumped (if it was bumped since we read it under
                // the lock, the wait returns at once): the role's if the role holder may not
                // carry our epoch (it is not frozen yet), so that the marks the holder moves
                // do not wake us for nothing; its release will. Else the level's.
                let i = if lead == Lead::Busy && epoch > s.frozen {
                    ROLE
                } else {
                    slot(level)
                };
                let seen = self.words[i].load();
                s.sleepers[i] += 1;
                drop(s);
                self.words[i].wait(seen);
                s = self.state.lock();
                s.sleepers[i] -= 1;
                continue;
            }
            // Sleep until woken (a wake between here and the park is not lost: it leaves the
            // thread's unpark token).
            let (id, waker) = parked.get_or_insert_with(|| {
                s.next_waker += 1;
                let thread = Arc::new(Unpark(thread::current()));
                (s.next_waker, Waker::from(thread))
            });
            s.wakers[slot(level)].insert(*id, waker.clone());
            drop(s);
            match deadline {
                None => thread::park(),
                Some(d) => thread::park_timeout(d.saturating_duration_since(Instant::now())),
            }
            s = self.state.lock();
        }
    }

    fn poll_wait(
        &self,
        level: Durability,
        epoch: Epoch,
        slot: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), E>> {
        let mut s = self.state.lock();
        if let Some(done) = s.outcome(&self.pipeline, level, epoch) {
            if let Some(id) = slot.take() {
                s.wakers[self::slot(level)].remove(&id);
            }
            return Poll::Ready(done);
        }
        let id = *slot.get_or_insert_with(|| {
            s.next_waker += 1;
            s.next_waker
        });
        s.wakers[self::slot(level)].insert(id, cx.waker().clone());
        let rose = s.demand(level, epoch);
        drop(s);
        if rose {
            (self.on_demand)(level);
        }
        Poll::Pending
    }

    fn forget(&self, id: u64) {
        for wakers in &mut self.state.lock().wakers {
            wakers.remove(&id);
        }
    }
}

impl<E> fmt::Debug for Watermarks<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Watermarks")
            .field("applied", &s.applied)
            .field("written", &s.written)
            .field("durable", &s.durable)
            .finish_non_exhaustive()
    }
}

/// A future that resolves when an epoch reaches a durability level (or the pipeline ends).
#[must_use = "a future does nothing unless polled"]
pub struct EpochWait<E> {
    marks: Arc<Watermarks<E>>,
    level: Durability,
    epoch: Epoch,
    waker_id: Option<u64>,
}

impl<E> EpochWait<E> {
    pub(crate) fn new(marks: Arc<Watermarks<E>>, level: Durability, epoch: Epoch) -> EpochWait<E> {
        EpochWait {
            marks,
            level,
            epoch,
            waker_id: None,
        }
    }
}

impl<E> Future for EpochWait<E> {
    type Output = Result<Epoch, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Epoch, E>> {
        let this = self.get_mut();
        let epoch = this.epoch;
        this.marks
            .poll_wait(this.level, epoch, &mut this.waker_id, cx)
            .map(|r| r.map(|()| epoch))
    }
}

impl<E> Drop for EpochWait<E> {
    fn drop(&mut self) {
        if let Some(id) = self.waker_id.take() {
            self.marks.forget(id);
        }
    }
}

impl<E> fmt::Debug for EpochWait<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochWait")
            .field("level", &self.level)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    fn marks() -> (Arc<Watermarks<std::io::Error>>, Arc<AtomicUsize>) {
        let demands = Arc::new(AtomicUsize::new(0));
        let d = demands.clone();
        let hook: DemandHook = Box::new(move |_| {
            d.fetch_add(1, Ordering::SeqCst);
        });
        (Arc::new(Watermarks::new("t".into(), hook)), demands)
    }

    struct Flag(AtomicUsize);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn marks_only_move_up_and_satisfy_waits_at_or_below_them() {
        let (m, demands) = marks();
        m.advance(Durability::Applied, Epoch::new(5));
        m.advance(Durability::Written, Epoch::new(3));
        m.advance(Durability::Written, Epoch::new(2));
        assert_eq!(m.get(Durability::Written), Epoch::new(3));
        assert!(m.wait(Durability::Written, Epoch::new(3), None).unwrap());
        assert_eq!(demands.load(Ordering::SeqCst), 0);
        let waited = m.wait(
            Durability::Durable,
            Epoch::new(1),
            Some(Duration::from_millis(1)),
        );
        assert!(!waited.unwrap());
        assert_eq!(demands.load(Ordering::SeqCst), 1);
        assert_eq!(m.demand(Durability::Durable), Epoch::new(1));
    }

    #[test]
    fn failure_ends_every_unsatisfied_wait_blocking_and_async() {
        let (m, _) = marks();
        m.advance(Durability::Applied, Epoch::new(4));
        m.advance(Durability::Written, Epoch::new(2));
        let flag = Arc::new(Flag(AtomicUsize::new(0)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = EpochWait::new(m.clone(), Durability::Written, Epoch::new(4));
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        let m2 = m.clone();
        let blocked = std::thread::spawn(move || m2.wait(Durability::Written, Epoch::new(3), None));
        m.fail(
            Epoch::new(3),
            Failure::Flusher(Arc::new(std::io::Error::other("disk gone"))),
        )
        .into_iter()
        .for_each(Waker::wake);
        assert!(matches!(
            blocked.join().unwrap(),
            Err(Error::WriteFailed { first: 3, .. })
        ));
        assert_eq!(flag.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            Pin::new(&mut fut).poll(&mut cx),
            Poll::Ready(Err(Error::WriteFailed { .. }))
        ));
        // Epochs already written stay satisfied.
        assert!(m.wait(Durability::Written, Epoch::new(2), None).unwrap());
        assert!(m.failure().is_some());
    }

    /// Every blocked waiter, untimed (asleep on the level's word) or timed (parked with a
    /// waker), is woken by the advance that satisfies it, and the sleepers are counted out.
    #[test]
    fn one_advance_wakes_every_sleeper_of_its_level() {
        let (m, _) = marks();
        m.advance(Durability::Applied, Epoch::new(10));
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..16u64 {
            let (m, tx) = (m.clone(), tx.clone());
            std::thread::spawn(move || {
                let timeout = (i % 2 == 0).then(|| Duration::from_secs(60));
                let reached = m.wait(Durability::Durable, Epoch::new(1 + i % 3), timeout);
                tx.send(reached.unwrap()).unwrap();
            });
        }
        drop(tx);
        // Wait until all are asleep, or parked.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = m.state.lock();
            if s.sleepers[2] + s.wakers[2].len() as u32 == 16 {
                break;
            }
            drop(s);
            assert!(Instant::now() < deadline, "the waiters never went to sleep");
            std::thread::sleep(Duration::from_millis(1));
        }
        m.advance(Durability::Written, Epoch::new(3));
        m.advance(Durability::Durable, Epoch::new(3));
        for _ in 0..16 {
            let reached = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a waiter was not woken");
            assert!(reached);
        }
        let s = m.state.lock();
        assert_eq!(s.sleepers, [0; 4]);
        assert!(s.wakers.iter().all(BTreeMap::is_empty));
    }

    /// Waiters going to sleep race the one advance that satisfies them (the next advance
    /// waits for every waiter of this one), round after round: a lost wake-up leaves a waiter
    /// asleep for good, and the round never ends.
    #[test]
    fn no_wake_up_is_lost_to_a_waiter_going_to_sleep() {
        const ROUNDS: u64 = 2000;
        const WAITERS: u64 = 4;
        let (m, _) = marks();
        m.advance(Durability::Applied, Epoch::new(ROUNDS));
        let (tx, rx) = std::sync::mpsc::channel();
        for t in 0..WAITERS {
            let (m, tx) = (m.clone(), tx.clone());
            std::thread::spawn(move || {
                let level = if t % 2 == 0 {
                    Durability::Written
                } else {
                    Durability::Durable
                };
                for e in 1..=ROUNDS {
                    m.wait(level, Epoch::new(e), None).unwrap();
                    if tx.send(e).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for e in 1..=ROUNDS {
            m.advance(Durability::Written, Epoch::new(e));
            m.advance(Durability::Durable, Epoch::new(e));
            for _ in 0..WAITERS {
                let got = rx
                    .recv_timeout(Duration::from_secs(20))
                    .unwrap_or_else(|_| panic!("a waiter slept through epoch {e}"));
                assert_eq!(got, e);
            }
        }
    }

    #[test]
    fn close_ends_waits_with_closed() {
        let (m, _) = marks();
        m.close();
        assert!(matches!(
            m.wait(Durability::Applied, Epoch::new(1), None),
            Err(Error::Closed { .. })
        ));
        assert!(m.failure().is_none());
        assert!(m.ended().is_some());
    }
}
