//! The flush thread: stores frozen batches oldest first through the [`Flusher`], retries per
//! the [`RetryPolicy`](super::RetryPolicy), syncs when a waiter needs `Durable`, and moves the
//! `Written` and `Durable` marks.
//!
//! A batch stays in the job queue (at its front) until it is stored, so that on a failure it is
//! still there for [`Coordinator::shutdown`](super::Coordinator::shutdown) to hand back; its
//! view stays in the published views, so readers keep seeing its writes.

use std::sync::Arc;

use super::coordinator::{Job, Shared};
use super::delta::Freeze;
use super::flusher::Flusher;
use crate::error::Error;
use crate::store::Durability;

enum Work<B> {
    Store(Job<B>),
    Sync,
    Exit,
}

/// Fails the pipeline if the flush thread dies by a panic, so nobody waits for it.
struct PanicGuard<'a, D: Freeze, S>(&'a Shared<D, S>);

impl<D: Freeze, S> Drop for PanicGuard<'_, D, S> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let first = self.0.marks.get(Durability::Written).next();
            self.0.fail(
                first,
                Error::ThreadPanicked {
                    thread: format!("flush thread of pipeline {}", self.0.name),
                    consequence: "the batches not stored are handed back by shutdown",
                },
            );
        }
    }
}

pub(crate) fn run<D, F>(shared: &Shared<D, F::Snapshot>, mut flusher: F) -> F
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    let _guard = PanicGuard(shared);
    loop {
        match next_work(shared) {
            Work::Store(job) => {
                if !store(shared, &mut flusher, job) {
                    return flusher;
                }
            }
            Work::Sync => {
                if !sync(shared, &mut flusher) {
                    return flusher;
                }
            }
            Work::Exit => return flusher,
        }
    }
}

fn next_work<D: Freeze, S>(shared: &Shared<D, S>) -> Work<D::Batch> {
    let marks = &shared.marks;
    let mut j = shared.jobs.lock();
    loop {
        if marks.ended().is_some() {
            return Work::Exit;
        }
        let written = marks.get(Durability::Written);
        let durable = marks.get(Durability::Durable);
        let wanted = marks.demand(Durability::Durable);
        // One sync once everything demanded is written: syncing a part earlier would serve
        // nobody (waiters need the highest demanded epoch or less, and that is on its way).
        let sync_wanted = (wanted > durable && written >= wanted)
            || (j.closing
                && j.queue.is_empty()
                && written > durable
                && (shared.config.sync_on_shutdown || wanted > durable));
        if sync_wanted {
            return Work::Sync;
        }
        if let Some(job) = j.queue.pop_front() {
            return Work::Store(job);
        }
        if j.closing {
            return Work::Exit;
        }
        shared.jobs_changed.wait(&mut j);
    }
}

/// A batch being stored: put back at the front of the queue if the store does not complete
/// (failure or panic), so that shutdown hands it back.
struct Held<'a, D: Freeze, S> {
    shared: &'a Shared<D, S>,
    job: Option<Job<D::Batch>>,
}

impl<D: Freeze, S> Drop for Held<'_, D, S> {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            self.shared.jobs.lock().queue.push_front(job);
        }
    }
}

/// Stores one batch, with retries; false if the pipeline failed.
fn store<D, F>(shared: &Shared<D, F::Snapshot>, flusher: &mut F, job: Job<D::Batch>) -> bool
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    let epochs = job.epochs;
    let mut held = Held {
        shared,
        job: Some(job),
    };
    let mut retry = 0;
    let snapshot = loop {
        let Some(job) = held.job.as_ref() else {
            unreachable!("the held job is only taken once stored");
        };
        let started = shared.clock.now();
        match flusher.write(&job.batch, epochs) {
            Ok(s) => break s,
            Err(e) => {
                retry += 1;
                match shared.config.retry.backoff_before(retry) {
                    Some(wait) => {
                        tracing::warn!(pipeline = %shared.name, epochs = %epochs, retry, error = %e, "flush failed; retrying");
                        backoff(shared, started.saturating_add(wait));
                    }
                    None => {
                        drop(held);
                        shared.fail(epochs.first(), e);
                        return false;
                    }
                }
            }
        }
    };
    held.job = None;
    shared
        .views
        .publish(|v| v.after_store(epochs, Arc::new(snapshot)));
    shared.marks.advance(Durability::Written, epochs.last());
    shared.inbox.state.lock().in_flight -= 1;
    shared.inbox.writer.notify_all();
    true
}

/// Makes what is written durable; false if the pipeline failed.
fn sync<D, F>(shared: &Shared<D, F::Snapshot>, flusher: &mut F) -> bool
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    let written = shared.marks.get(Durability::Written);
    match flusher.sync() {
        Ok(()) => {
            shared.marks.advance(Durability::Durable, written);
            true
        }
        Err(e) => {
            // Not retried: after a failed sync the state of the storage is unknown.
            let first = shared.marks.get(Durability::Durable).next();
            shared.fail(first, e);
            false
        }
    }
}

/// Waits until `deadline` on the pipeline's clock (a manual clock wakes us when it moves).
fn backoff<D: Freeze, S>(shared: &Shared<D, S>, deadline: std::time::Duration) {
    let mut j = shared.jobs.lock();
    while shared.clock.now() < deadline {
        match shared.clock.real_wait(deadline) {
            Some(t) => {
                shared.jobs_changed.wait_for(&mut j, t);
            }
            None => shared.jobs_changed.wait(&mut j),
        }
    }
}
