//! The flush role and the flush thread: storing frozen batches oldest first through the
//! [`Flusher`], retrying per the [`RetryPolicy`](crate::RetryPolicy), syncing when a waiter
//! needs `Durable`, and moving the `Written` and `Durable` marks.
//!
//! The flusher lives in the [`FlushRole`]; whoever holds its lock stores and syncs: the flush
//! thread, for batches frozen by size or timer and for async waiters, or a blocking waiter that
//! leads (see [`lead`](crate::lead)). One holder at a time, and each takes batches from the
//! front of the queue, so batches are stored in epoch order whoever stores them.
//!
//! A batch stays in the job queue (at its front) until it is stored, so that on a failure it is
//! still there for [`Coordinator::shutdown`](crate::Coordinator::shutdown) to hand back; its
//! view stays in the published views, so readers keep seeing its writes. A panic in the
//! flusher is caught where it is called and fails the pipeline like an error that is not
//! retried; the flusher is dropped, since its state is unknown.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::delta::Freeze;
use crate::durability::Durability;
use crate::error::Failure;
use crate::flusher::Flusher;
use crate::shared::{Job, JobState, Shared};
use crate::sync::Mutex;

/// The flusher, and with its lock the right to store and sync.
pub(crate) struct FlushRole<F> {
    /// `None` once it panicked, or once shutdown took it back.
    pub(crate) flusher: Mutex<Option<F>>,
}

enum Work {
    Store,
    Sync,
    Exit,
}

/// Fails the pipeline if the flush thread dies by a panic (outside the flusher, which is
/// caught), so nobody waits for it.
struct PanicGuard<'a, D: Freeze, S, E: fmt::Display>(&'a Shared<D, S, E>);

impl<D: Freeze, S, E: fmt::Display> Drop for PanicGuard<'_, D, S, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let first = self.0.marks.get(Durability::Written).next();
            self.0.fail(
                first,
                Failure::Panicked {
                    thread: format!("the flush thread of pipeline {}", self.0.name),
                    consequence: "the batches not stored are handed back by shutdown",
                },
            );
        }
    }
}

pub(crate) fn run<D, F>(shared: &Shared<D, F::Snapshot, F::Error>, role: &FlushRole<F>)
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    let _guard = PanicGuard(shared);
    loop {
        // Wait, without the role, until there is something to do. Exiting is decided only
        // under the role too: a leading waiter may hold a batch it took from the queue, not yet
        // written, which the sync at shutdown must still cover.
        {
            let mut j = shared.jobs.lock();
            while next_work(shared, &j).is_none() {
                shared.jobs_changed.wait(&mut j);
            }
        }
        let mut flusher = role.flusher.lock();
        // A leading waiter may have done it meanwhile: decide again, holding the role.
        let work = next_work(shared, &shared.jobs.lock());
        let go_on = match work {
            Some(Work::Store) => {
                let job = shared.jobs.lock().queue.pop_front();
                job.is_none_or(|job| store(shared, &mut flusher, job))
            }
            Some(Work::Sync) => sync(shared, &mut flusher),
            Some(Work::Exit) => false,
            None => true,
        };
        drop(flusher);
        // Whoever found the role taken while we held it sleeps until this.
        shared.marks.role_released();
        if !go_on {
            return;
        }
    }
}

/// What the flush thread should do now; `None`: nothing.
fn next_work<D: Freeze, S, E>(shared: &Shared<D, S, E>, j: &JobState<D::Batch>) -> Option<Work> {
    let marks = &shared.marks;
    if marks.ended().is_some() {
        return Some(Work::Exit);
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
        Some(Work::Sync)
    } else if !j.queue.is_empty() {
        Some(Work::Store)
    } else if j.closing {
        Some(Work::Exit)
    } else {
        None
    }
}

/// A batch being stored: put back at the front of the queue if the store does not complete
/// (failure or panic), so that shutdown hands it back.
struct Held<'a, D: Freeze, S, E> {
    shared: &'a Shared<D, S, E>,
    job: Option<Job<D::Batch>>,
}

impl<D: Freeze, S, E> Drop for Held<'_, D, S, E> {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            self.shared.jobs.lock().queue.push_front(job);
        }
    }
}

/// Runs `step` on the flusher, turning a panic into a failure (and dropping the flusher);
/// the failure comes with true if it may be retried.
fn guarded<F: Flusher, T>(
    name: &str,
    slot: &mut Option<F>,
    step: impl FnOnce(&mut F) -> Result<T, F::Error>,
) -> Result<T, (Failure<F::Error>, bool)> {
    let panicked = || Failure::Panicked {
        thread: format!("the flusher of pipeline {name}"),
        consequence: "the batches not stored are handed back by shutdown",
    };
    // The flusher is gone only after it panicked: that panic failed the pipeline already.
    let Some(flusher) = slot.as_mut() else {
        return Err((panicked(), false));
    };
    match catch_unwind(AssertUnwindSafe(|| step(flusher))) {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err((Failure::Flusher(Arc::new(e)), true)),
        Err(_) => {
            *slot = None;
            Err((panicked(), false))
        }
    }
}

/// Stores one batch, with retries; false if the pipeline failed. The caller holds the role.
pub(crate) fn store<D, F>(
    shared: &Shared<D, F::Snapshot, F::Error>,
    slot: &mut Option<F>,
    job: Job<D::Batch>,
) -> bool
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
        let (e, retryable) = match guarded(&shared.name, slot, |f| f.write(&job.batch, epochs)) {
            Ok(s) => break s,
            Err(failure) => failure,
        };
        retry += 1;
        match shared
            .config
            .retry
            .backoff_before(retry)
            .filter(|_| retryable)
        {
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
    };
    held.job = None;
    shared
        .views
        .publish(|v| v.after_store(epochs, Arc::new(snapshot)));
    shared.marks.advance(Durability::Written, epochs.last());
    let wake_writer = {
        let mut s = shared.inbox.state.lock();
        let was_full = s.in_flight >= shared.config.max_frozen;
        s.in_flight -= 1;
        // The writer thread waits on a stored batch only for room, or (for a demand) for no
        // batch in flight.
        was_full
            || !s.flush_requests.is_empty()
            || s.has_writes(true)
            || (s.in_flight == 0
                && !s.delta.is_empty()
                && shared.marks.demand(Durability::Written) >= s.delta.first)
    };
    if wake_writer {
        shared.inbox.writer.notify_all();
    }
    true
}

/// Makes what is written durable; false if the pipeline failed. The caller holds the role.
pub(crate) fn sync<D, F>(shared: &Shared<D, F::Snapshot, F::Error>, slot: &mut Option<F>) -> bool
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    let written = shared.marks.get(Durability::Written);
    let e = match guarded(&shared.name, slot, F::sync) {
        Ok(()) => {
            shared.marks.advance(Durability::Durable, written);
            return true;
        }
        Err((e, _)) => e,
    };
    // Not retried: after a failed sync the state of the storage is unknown.
    let first = shared.marks.get(Durability::Durable).next();
    shared.fail(first, e);
    false
}

/// Waits until `deadline` on the pipeline's clock (a manual clock wakes us when it moves).
fn backoff<D: Freeze, S, E>(shared: &Shared<D, S, E>, deadline: std::time::Duration) {
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
