//! The writer thread: applies the writes producers had to queue, freezes the delta when a
//! trigger fires, and answers explicit flush requests.
//!
//! Freeze triggers, checked before each batch of queued writes: the delta reached
//! [`Config::freeze_bytes`](crate::Config::freeze_bytes); its first write is
//! [`Config::freeze_interval`](crate::Config::freeze_interval) old on the pipeline's clock; an
//! explicit flush; shutdown; a waiter demands `Written` or `Durable` for one of its epochs and no
//! batch is in flight (so waiters that come while a flush runs share the next one: group
//! commit). A trigger that fires while [`Config::max_frozen`](crate::Config::max_frozen) batches
//! are in flight makes the writer wait, applying nothing, until one is stored.
//!
//! The thread decides from the [`DeltaStatus`](crate::status::DeltaStatus) kept in the inbox, under
//! the inbox lock it waits on; whoever changes that status (a producer applying in place, a
//! leading waiter freezing) wakes it when a trigger may have fired, so no wake-up is lost.

use std::fmt;

use crate::channel::{FlushRequest, Message};
use crate::delta::{Delta, Freeze};
use crate::durability::Durability;
use crate::epoch::Epoch;
use crate::error::{Error, Failure, Result};
use crate::role::FreezeOutcome;
use crate::shared::Shared;
use crate::sync::Ordering;

type Msg<D> = Message<<D as Delta>::Write, <D as Delta>::Applied>;

enum Action<M, E> {
    Freeze(Vec<FlushRequest<E>>),
    Answer(Vec<FlushRequest<E>>),
    /// Apply writes; `true`: from paused channels too (shutdown).
    Apply(bool),
    Reject(Vec<M>, Vec<FlushRequest<E>>),
    /// Shutting down after a failure: freeze the applied writes to hand them back, then exit.
    HandBackAndExit,
    Exit,
}

/// Marks the pipeline closed for the flush thread when the writer exits, even by a panic.
struct ExitGuard<'a, D: Freeze, S, E: fmt::Display>(&'a Shared<D, S, E>);

impl<D: Freeze, S, E: fmt::Display> Drop for ExitGuard<'_, D, S, E> {
    fn drop(&mut self) {
        let sh = self.0;
        if std::thread::panicking() {
            // The current delta is lost with the thread: its writes never reach storage.
            sh.lost.store(true, Ordering::SeqCst);
            let first = sh.marks.get(Durability::Written).next();
            sh.fail(
                first,
                Failure::Panicked {
                    thread: format!("the writer thread of pipeline {}", sh.name),
                    consequence: "writes not yet frozen are lost; frozen batches are handed back by shutdown",
                },
            );
        }
        // Nobody will answer a flush request any more.
        let requests = std::mem::take(&mut sh.inbox.state.lock().flush_requests);
        for r in requests {
            reply(&r, Err(ended(sh)));
        }
        sh.jobs.lock().closing = true;
        sh.poke_flusher();
    }
}

/// The error for a call the stopped pipeline cannot serve.
fn ended<D: Freeze, S, E>(sh: &Shared<D, S, E>) -> Error<E> {
    sh.marks.ended().unwrap_or_else(|| Error::Closed {
        pipeline: sh.name.to_string(),
    })
}

pub(crate) fn run<D: Freeze, S, E: fmt::Display>(shared: &Shared<D, S, E>) {
    let _guard = ExitGuard(shared);
    loop {
        match next_action(shared) {
            Action::Freeze(requests) => match shared.freeze(true) {
                FreezeOutcome::Frozen(last) | FreezeOutcome::Empty(last) => {
                    answer(shared, requests, last);
                }
                FreezeOutcome::NoRoom => {
                    // A leading waiter took the room first: ask again once a batch is stored.
                    shared.inbox.state.lock().flush_requests.extend(requests);
                }
                FreezeOutcome::Stopped => {
                    for r in requests {
                        reply(&r, Err(ended(shared)));
                    }
                }
            },
            Action::Answer(requests) => {
                let last = shared.inbox.state.lock().delta.last();
                answer(shared, requests, last);
            }
            Action::Apply(include_paused) => shared.apply_queued(include_paused),
            Action::Reject(msgs, requests) => {
                // Dropping the tickets rejects them with the pipeline's error.
                drop(msgs);
                for r in requests {
                    reply(&r, Err(ended(shared)));
                }
            }
            Action::HandBackAndExit => {
                shared.freeze_to_hand_back();
                return;
            }
            Action::Exit => return,
        }
    }
}

fn reply<E>(r: &FlushRequest<E>, answer: Result<u64, E>) {
    *r.reply.0.lock() = Some(answer);
    r.reply.1.notify_all();
}

fn answer<D: Freeze, S, E>(
    shared: &Shared<D, S, E>,
    requests: Vec<FlushRequest<E>>,
    covered: Epoch,
) {
    for r in requests {
        if r.durable && covered > Epoch::ZERO {
            shared.marks.request(Durability::Durable, covered);
        }
        reply(&r, Ok(covered.get()));
    }
}

/// Waits until there is something to do, and says what.
fn next_action<D: Freeze, S, E>(sh: &Shared<D, S, E>) -> Action<Msg<D>, E> {
    let cfg = &sh.config;
    let mut s = sh.inbox.state.lock();
    loop {
        let ended = sh.marks.ended().is_some();
        if ended && !s.shutdown {
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
        if ended {
            // Shutting down after a failure: hand the applied writes back as a batch
            // (without waiting for room), refuse the rest.
            let msgs = s.drain_all();
            let requests = std::mem::take(&mut s.flush_requests);
            if !msgs.is_empty() || !requests.is_empty() {
                return Action::Reject(msgs, requests);
            }
            return Action::HandBackAndExit;
        }

        let delta = s.delta;
        let now = sh.clock.now();
        let deadline = match (delta.opened_at, cfg.freeze_interval) {
            (Some(t), Some(i)) if !delta.is_empty() => Some(t.saturating_add(i)),
            _ => None,
        };
        let room = s.in_flight < cfg.max_frozen;
        let demanded = sh.marks.demand(Durability::Written) >= delta.first;
        let requests_ready = !s.flush_requests.is_empty()
            && s.flush_requests
                .iter()
                .all(|r| s.targets_reached(&r.targets));
        let trigger = !delta.is_empty()
            && (delta.size >= cfg.freeze_bytes
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
            if s.shutdown && delta.is_empty() {
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
