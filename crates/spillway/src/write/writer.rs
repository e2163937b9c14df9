//! The writer thread: applies writes to the current delta, numbers them, and freezes the delta
//! when a trigger fires.
//!
//! Freeze triggers, checked before each batch of writes: the delta reached
//! [`Config::freeze_bytes`](super::Config::freeze_bytes); its first write is
//! [`Config::freeze_interval`](super::Config::freeze_interval) old on the pipeline's clock; an
//! explicit flush; shutdown; a waiter demands `Written` or `Durable` for one of its epochs and no
//! batch is in flight (so waiters that come while a flush runs share the next one: group
//! commit). A trigger that fires while [`Config::max_frozen`](super::Config::max_frozen) batches
//! are in flight makes the writer wait, applying nothing, until one is stored.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use super::channel::{FlushRequest, Message};
use super::coordinator::{Job, Shared};
use super::delta::{Delta, Freeze, Frozen};
use super::epoch::{Epoch, EpochRange};
use super::view::{CellState, DeltaCell, FrozenLayer};
use crate::error::Error;
use crate::store::Durability;

type Msg<D> = Message<<D as Delta>::Write, <D as Delta>::Applied>;

struct Writer<'a, D: Freeze, S> {
    shared: &'a Shared<D, S>,
    cell: DeltaCell<D>,
    /// The first epoch of the current delta.
    first: Epoch,
    /// The epoch the next write gets.
    next: Epoch,
    /// Clock time of the current delta's first write.
    opened_at: Option<Duration>,
    size: usize,
}

enum Action<M> {
    Freeze(Vec<FlushRequest>),
    Answer(Vec<FlushRequest>),
    /// Apply writes; `true`: from paused channels too (shutdown).
    Apply(bool),
    Reject(Vec<M>, Vec<FlushRequest>),
    Exit,
}

/// Marks the pipeline closed for the flush thread when the writer exits, even by a panic.
struct ExitGuard<'a, D: Freeze, S>(&'a Shared<D, S>);

impl<D: Freeze, S> Drop for ExitGuard<'_, D, S> {
    fn drop(&mut self) {
        let sh = self.0;
        if std::thread::panicking() {
            // The current delta is lost with the thread: its writes never reach storage.
            let first = sh.marks.get(Durability::Written).next();
            sh.fail(
                first,
                Error::ThreadPanicked {
                    thread: format!("writer of pipeline {}", sh.name),
                    consequence: "writes not yet frozen are lost; frozen batches are handed back by shutdown",
                },
            );
        }
        // Nobody will answer a flush request any more.
        let requests = std::mem::take(&mut sh.inbox.state.lock().flush_requests);
        for r in requests {
            let e = sh.marks.ended().unwrap_or_else(|| Error::Closed {
                pipeline: sh.name.to_string(),
            });
            reply(&r, Err(e));
        }
        sh.jobs.lock().closing = true;
        sh.poke_flusher();
    }
}

pub(crate) fn run<D: Freeze, S>(shared: &Shared<D, S>, cell: DeltaCell<D>) {
    let _guard = ExitGuard(shared);
    let size = match &*cell.read() {
        CellState::Live(d) => d.size_bytes(),
        _ => 0,
    };
    let mut w = Writer {
        shared,
        size,
        cell,
        first: Epoch::FIRST,
        next: Epoch::FIRST,
        opened_at: None,
    };
    loop {
        match w.next_action() {
            Action::Freeze(requests) => {
                let last = w.freeze();
                w.answer(requests, last);
            }
            Action::Answer(requests) => {
                let last = Epoch::new(w.next.get() - 1);
                w.answer(requests, last);
            }
            Action::Apply(include_paused) => w.apply(include_paused),
            Action::Reject(msgs, requests) => {
                // Dropping the tickets rejects them with the pipeline's error.
                drop(msgs);
                let err = shared.marks.ended();
                for r in requests {
                    let e = err.as_ref().map_or_else(
                        || Error::Closed {
                            pipeline: shared.name.to_string(),
                        },
                        clone_error,
                    );
                    reply(&r, Err(e));
                }
            }
            Action::Exit => return,
        }
    }
}

/// Our errors are not `Clone` (they may hold an `io::Error`), but the ones a stopped pipeline
/// reports are.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::WriteFailed {
            pipeline,
            first,
            cause,
        } => Error::WriteFailed {
            pipeline: pipeline.clone(),
            first: *first,
            cause: cause.clone(),
        },
        Error::Closed { pipeline } => Error::Closed {
            pipeline: pipeline.clone(),
        },
        other => Error::InvalidArgument(other.to_string()),
    }
}

fn reply(r: &FlushRequest, answer: crate::Result<u64>) {
    *r.reply.0.lock() = Some(answer);
    r.reply.1.notify_all();
}

impl<D: Freeze, S> Writer<'_, D, S> {
    fn is_empty(&self) -> bool {
        self.next == self.first
    }

    /// Waits until there is something to do, and says what.
    fn next_action(&mut self) -> Action<Msg<D>> {
        let sh = self.shared;
        let cfg = &sh.config;
        let mut s = sh.inbox.state.lock();
        loop {
            if sh.marks.ended().is_some() && !s.shutdown {
                // Failed: refuse everything until shut down.
                let msgs = s.drain_all();
                let requests = std::mem::take(&mut s.flush_requests);
                if !msgs.is_empty() || !requests.is_empty() {
                    sh.inbox.space.notify_all();
                    return Action::Reject(msgs, requests);
                }
                sh.inbox.writer.wait(&mut s);
                continue;
            }
            let failed = sh.marks.ended().is_some();
            if failed {
                // Shutting down after a failure: hand the applied writes back as a batch
                // (without waiting for room), refuse the rest.
                let msgs = s.drain_all();
                let requests = std::mem::take(&mut s.flush_requests);
                if !msgs.is_empty() || !requests.is_empty() {
                    return Action::Reject(msgs, requests);
                }
                if !self.is_empty() {
                    return Action::Freeze(Vec::new());
                }
                return Action::Exit;
            }

            let now = sh.clock.now();
            let deadline = match (self.opened_at, cfg.freeze_interval) {
                (Some(t), Some(i)) if !self.is_empty() => Some(t.saturating_add(i)),
                _ => None,
            };
            let room = s.in_flight < cfg.max_frozen;
            let demanded = sh.marks.demand(Durability::Written) >= self.first;
            let requests_ready = !s.flush_requests.is_empty()
                && s.flush_requests
                    .iter()
                    .all(|r| s.targets_reached(&r.targets));
            let trigger = !self.is_empty()
                && (self.size >= cfg.freeze_bytes
                    || deadline.is_some_and(|d| now >= d)
                    || requests_ready
                    || (s.shutdown && !s.has_writes(true))
                    || (demanded && s.in_flight == 0));
            if trigger {
                if room {
                    let requests = if requests_ready {
                        std::mem::take(&mut s.flush_requests)
                    } else {
                        Vec::new()
                    };
                    return Action::Freeze(requests);
                }
            } else {
                if requests_ready {
                    return Action::Answer(std::mem::take(&mut s.flush_requests));
                }
                if s.has_writes(s.shutdown) {
                    return Action::Apply(s.shutdown);
                }
                if s.shutdown && self.is_empty() {
                    return Action::Exit;
                }
            }
            // Nothing to do now: wait for an input, a stored batch, or the timer.
            match deadline
                .filter(|_| room)
                .and_then(|d| sh.clock.real_wait(d))
            {
                Some(t) => {
                    sh.inbox.writer.wait_for(&mut s, t);
                }
                None => sh.inbox.writer.wait(&mut s),
            }
        }
    }

    /// Applies up to a batch of writes, taking them from the channels one at a time so that
    /// a write stays in its channel (and counts against its capacity) until it is applied.
    fn apply(&mut self, include_paused: bool) {
        let sh = self.shared;
        let freeze_bytes = sh.config.freeze_bytes;
        let mut done = Vec::with_capacity(sh.config.writer_batch.min(1024));
        {
            let mut cell = self.cell.write();
            let CellState::Live(delta) = &mut *cell else {
                unreachable!("the writer's current delta is always live");
            };
            // An empty delta takes at least one write, whatever its size says.
            while (self.size < freeze_bytes || self.next == self.first)
                && done.len() < sh.config.writer_batch
            {
                let Some(m) = sh.inbox.state.lock().pop(include_paused) else {
                    break;
                };
                let epoch = self.next;
                self.next = self.next.next();
                let result = delta.apply(epoch, m.write);
                self.size = delta.size_bytes();
                done.push((m.ticket, epoch, result));
            }
        }
        sh.inbox.space.notify_all();
        if let Some((_, last, _)) = done.last() {
            // The timer starts before anyone can see the write applied, so that a clock moved
            // after an `Applied` wait counts towards it.
            if self.opened_at.is_none() {
                self.opened_at = Some(sh.clock.now());
            }
            sh.marks.advance(Durability::Applied, *last);
        }
        for (ticket, epoch, result) in done {
            ticket.applied(epoch, result);
        }
    }

    /// Freezes the current delta (not empty) and hands its batch to the flush thread; returns
    /// its last epoch.
    fn freeze(&mut self) -> Epoch {
        let sh = self.shared;
        let last = Epoch::new(self.next.get() - 1);
        let Some(epochs) = EpochRange::new(self.first, last) else {
            unreachable!("an empty delta is never frozen");
        };
        let (batch, view, next) = {
            let mut cell = self.cell.write();
            let CellState::Live(delta) = std::mem::replace(&mut *cell, CellState::Moving) else {
                unreachable!("the writer's current delta is always live");
            };
            let Frozen { batch, view, next } = delta.freeze();
            let view = Arc::new(view);
            *cell = CellState::Frozen(view.clone());
            (batch, view, next)
        };
        self.size = next.size_bytes();
        let cell = Arc::new(RwLock::new(CellState::Live(next)));
        sh.views
            .publish(|v| v.after_freeze(FrozenLayer::new(epochs, view), cell.clone()));
        self.cell = cell;
        self.first = self.next;
        self.opened_at = None;
        sh.inbox.state.lock().in_flight += 1;
        sh.jobs.lock().queue.push_back(Job { epochs, batch });
        sh.jobs_changed.notify_all();
        last
    }

    fn answer(&self, requests: Vec<FlushRequest>, covered: Epoch) {
        for r in requests {
            if r.durable && covered > Epoch::ZERO {
                self.shared.marks.request(Durability::Durable, covered);
            }
            reply(&r, Ok(covered.get()));
        }
    }
}
