//! The writer role: applying writes to the current delta, numbering them, and freezing it.
//!
//! Whoever holds the role lock ([`Shared::role`]) is the single writer of the moment:
//! - a producer whose channel has nothing queued (and is not paused) applies its own write
//!   on its own thread ([`Shared::apply_now`]) and gets a handle that is already applied, so an
//!   uncontended write costs two lock acquisitions instead of two thread hand-offs;
//! - the writer thread applies what producers had to queue (the delta was full, or a channel
//!   was paused, or writes were already waiting), and freezes the delta when a trigger fires;
//! - a thread that waits for `Written` or `Durable` and leads the flush (see
//!   [`lead`](crate::lead)) freezes the delta it needs stored.
//!
//! Invariants:
//! - the lock order is role, then the delta's cell, then the inbox, then the job queue and the
//!   watermarks; the [`DeltaStatus`](crate::status::DeltaStatus) in the inbox changes only
//!   under both the role and the inbox lock, so the writer thread reads it consistently under
//!   the inbox lock alone;
//! - epochs are handed out under the role lock in the order the writes are applied;
//! - a write applied in place never overtakes a queued one: a producer applies in place only
//!   when no channel the writer thread may take from holds a write;
//! - a panic in `apply` or `freeze` marks the current delta lost and fails the pipeline: the
//!   lost delta is never frozen or stored, and its writes' waiters get the error.

use std::fmt;
use std::sync::Arc;

use crate::channel::{ApplyNow, Message};
use crate::delta::{Delta, Freeze, Frozen};
use crate::durability::Durability;
use crate::epoch::{Epoch, EpochRange};
use crate::error::Failure;
use crate::shared::{Job, Role, Shared};
use crate::sync::{Ordering, RwLock};
use crate::view::{CellState, FrozenLayer};

type Msg<D> = Message<<D as Delta>::Write, <D as Delta>::Applied>;

/// What a freeze did.
pub(crate) enum FreezeOutcome {
    /// Froze the delta; its last epoch.
    Frozen(Epoch),
    /// The delta was empty: everything up to this epoch is frozen already.
    Empty(Epoch),
    /// [`Config::max_frozen`](crate::Config::max_frozen) batches are in flight.
    NoRoom,
    /// The pipeline failed, or the current delta was lost to a panic.
    Stopped,
}

/// Fails the pipeline if `apply` or `freeze` panics while this is alive: the current delta is
/// lost (its state is whatever the panic left).
struct LossGuard<'a, D: Freeze, S, E: fmt::Display> {
    shared: &'a Shared<D, S, E>,
    by: &'static str,
}

impl<D: Freeze, S, E: fmt::Display> Drop for LossGuard<'_, D, S, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let sh = self.shared;
            sh.lost.store(true, Ordering::SeqCst);
            let first = sh.marks.get(Durability::Written).next();
            sh.fail(
                first,
                Failure::Panicked {
                    thread: format!("{} (pipeline {})", self.by, sh.name),
                    consequence: "writes not yet frozen are lost; frozen batches are handed back by shutdown",
                },
            );
        }
    }
}

impl<D: Freeze, S, E: fmt::Display> Shared<D, S, E> {
    /// Applies `write` on the caller's thread if its channel may skip the queue (open, not
    /// paused, nothing queued anywhere, the delta not full); hands the write back otherwise.
    pub(crate) fn apply_now(
        &self,
        channel: usize,
        write: D::Write,
    ) -> std::result::Result<(Epoch, D::Applied), D::Write> {
        let role = self.role.lock();
        let freeze_bytes = self.config.freeze_bytes;
        let epoch = {
            let mut s = self.inbox.state.lock();
            if s.stopped
                || self.lost.load(Ordering::SeqCst)
                || s.is_paused(channel)
                || s.has_writes(false)
                || !s.delta.has_room(freeze_bytes)
            {
                return Err(write);
            }
            s.delta.take_epoch(|| self.clock.now())
        };
        let guard = LossGuard {
            shared: self,
            by: "a write's apply, on its producer's thread",
        };
        let (result, size) = {
            let mut cell = role.cell.write();
            let CellState::Live(delta) = &mut *cell else {
                unreachable!("the current delta is live while the pipeline runs");
            };
            let result = delta.apply(epoch, write);
            (result, delta.size_bytes())
        };
        drop(guard);
        let wake = {
            let mut s = self.inbox.state.lock();
            s.delta.size = size;
            // The writer thread must hear of a delta that filled up, or whose timer started.
            size >= freeze_bytes
                || (epoch == s.delta.first && self.config.freeze_interval.is_some())
        };
        self.marks.advance(Durability::Applied, epoch);
        drop(role);
        // Someone waits (`wait_for`) for an epoch not applied until now.
        if wake || self.marks.demand(Durability::Written) >= epoch {
            self.inbox.poke();
        }
        Ok((epoch, result))
    }

    /// Applies up to a batch of queued writes, taking them from the channels one at a time so
    /// that a write stays in its channel (and counts against its capacity) until it is applied.
    pub(crate) fn apply_queued(&self, include_paused: bool) {
        let freeze_bytes = self.config.freeze_bytes;
        let mut done = Vec::with_capacity(self.config.writer_batch.min(1024));
        let role = self.role.lock();
        {
            let guard = LossGuard {
                shared: self,
                by: "a write's apply, on the writer thread",
            };
            let mut cell = role.cell.write();
            let CellState::Live(delta) = &mut *cell else {
                unreachable!("the current delta is live while the pipeline runs");
            };
            let mut size = None;
            loop {
                let (m, epoch) = {
                    let mut s = self.inbox.state.lock();
                    if let Some(size) = size.take() {
                        s.delta.size = size;
                    }
                    if !s.delta.has_room(freeze_bytes)
                        || done.len() >= self.config.writer_batch
                        || self.lost.load(Ordering::SeqCst)
                    {
                        break;
                    }
                    let Some(m) = s.pop(include_paused) else {
                        break;
                    };
                    (m, s.delta.take_epoch(|| self.clock.now()))
                };
                let Msg::<D> { write, ticket } = m;
                let result = delta.apply(epoch, write);
                size = Some(delta.size_bytes());
                done.push((ticket, epoch, result));
            }
            drop(guard);
        }
        self.inbox.space.notify_all();
        if let Some((_, last, _)) = done.last() {
            self.marks.advance(Durability::Applied, *last);
        }
        drop(role);
        for (ticket, epoch, result) in done {
            ticket.applied(epoch, result);
        }
    }

    /// Freezes the current delta, if it holds writes and a batch may go in flight, and queues
    /// its batch for storage; `wake_flusher`: and tells the flush thread (a leader that stores
    /// the batch itself does not, so that the flush thread does not race it for the role).
    pub(crate) fn freeze(&self, wake_flusher: bool) -> FreezeOutcome {
        let mut role = self.role.lock();
        let epochs = {
            let s = self.inbox.state.lock();
            if self.lost.load(Ordering::SeqCst) || self.marks.failure().is_some() {
                return FreezeOutcome::Stopped;
            }
            if s.delta.is_empty() {
                return FreezeOutcome::Empty(s.delta.last());
            }
            if s.in_flight >= self.config.max_frozen {
                return FreezeOutcome::NoRoom;
            }
            let Some(epochs) = EpochRange::new(s.delta.first, s.delta.last()) else {
                unreachable!("a delta holding writes has an epoch range");
            };
            epochs
        };
        self.freeze_locked(&mut role, epochs, wake_flusher)
    }

    /// After a failure, at shutdown: freezes the applied writes (unless their delta was lost)
    /// into a last batch for shutdown to hand back, whatever the bound on batches in flight.
    pub(crate) fn freeze_to_hand_back(&self) {
        let mut role = self.role.lock();
        let epochs = {
            let s = self.inbox.state.lock();
            if self.lost.load(Ordering::SeqCst) {
                return;
            }
            EpochRange::new(s.delta.first, s.delta.last())
        };
        if let Some(epochs) = epochs {
            self.freeze_locked(&mut role, epochs, true);
        }
    }

    /// Freezes the current delta, which holds `epochs`, under the role lock.
    fn freeze_locked(
        &self,
        role: &mut Role<D>,
        epochs: EpochRange,
        wake_flusher: bool,
    ) -> FreezeOutcome {
        let guard = LossGuard {
            shared: self,
            by: "a freeze of the current delta",
        };
        let (batch, view, next) = {
            let mut cell = role.cell.write();
            let CellState::Live(delta) = std::mem::replace(&mut *cell, CellState::Moving) else {
                unreachable!("the current delta is live while the pipeline runs");
            };
            let Frozen { batch, view, next } = delta.freeze();
            let view = Arc::new(view);
            *cell = CellState::Frozen(view.clone());
            (batch, view, next)
        };
        drop(guard);
        let size = next.size_bytes();
        let cell = Arc::new(RwLock::new(CellState::Live(next)));
        self.views
            .publish(|v| v.after_freeze(FrozenLayer::new(epochs, view), cell.clone()));
        role.cell = cell;
        {
            let mut s = self.inbox.state.lock();
            s.delta.first = s.delta.next;
            s.delta.size = size;
            s.delta.opened_at = None;
            s.in_flight += 1;
        }
        self.jobs.lock().queue.push_back(Job { epochs, batch });
        self.marks.frozen(epochs.last());
        if wake_flusher {
            self.jobs_changed.notify_all();
        }
        FreezeOutcome::Frozen(epochs.last())
    }
}

impl<D, S, E> ApplyNow<D::Write, D::Applied> for Shared<D, S, E>
where
    D: Freeze,
    S: Send + Sync + 'static,
    E: fmt::Display + Send + Sync + 'static,
{
    fn apply_now(
        &self,
        channel: usize,
        write: D::Write,
    ) -> std::result::Result<(Epoch, D::Applied), D::Write> {
        Shared::apply_now(self, channel, write)
    }
}
