//! [`Coordinator`]: owns the writer thread and the flush thread of one pipeline, and is where
//! users open channels, read views, flush, wait and shut down.
//!
//! It owns the pipeline's [`Shared`] state (whose invariants hold the pipeline together) and
//! the flush role, starts the two threads, and stops them.
//!
//! Invariants:
//! - every batch frozen is either stored or, after a failure, handed back by
//!   [`Coordinator::shutdown`] in [`Shutdown::unflushed`]: no applied write is dropped silently;
//! - after a failure the coordinator refuses writes and flushes with the failure, and every
//!   wait that had not been satisfied ends with it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Weak};

use crate::channel::{ApplyNow, FlushRequest, Inbox, WriteChannel};
use crate::config::Config;
use crate::delta::Freeze;
use crate::durability::Durability;
use crate::epoch::{Epoch, EpochRange};
use crate::error::{Error, Failure, Result};
use crate::flush::FlushRole;
use crate::flusher::Flusher;
use crate::shared::{JobState, Role, Shared};
use crate::sync::thread::{self, JoinHandle};
use crate::sync::{AtomicBool, Condvar, Mutex, RwLock};
use crate::view::{CellState, Subscription, View, Views};
use crate::watermark::{EpochWait, Lead, Watermarks};
use crate::{flush, lead, writer};

/// A frozen batch that was never stored because the pipeline failed, handed back by
/// [`Coordinator::shutdown`].
#[derive(Debug)]
pub struct Unflushed<B> {
    /// The epochs of its writes.
    pub epochs: EpochRange,
    /// The batch.
    pub batch: B,
}

/// What [`Coordinator::shutdown`] returns.
#[derive(Debug)]
pub struct Shutdown<F: Flusher> {
    /// `Ok` if every applied write was stored (and synced, if so configured); otherwise the
    /// failure.
    pub result: Result<(), F::Error>,
    /// The batches not stored, oldest first; empty when `result` is `Ok`.
    pub unflushed: Vec<Unflushed<F::Batch>>,
    /// The flusher, back to the caller (`None` if it panicked).
    pub flusher: Option<F>,
}

/// A write pipeline: writes come in through [`WriteChannel`]s, are applied to a delta (by the
/// producer itself when nothing is queued, else by the writer thread), frozen and stored (by a
/// waiter that needs them stored, else by the background threads), and read through
/// [`View`]s.
pub struct Coordinator<D: Freeze, F: Flusher<Batch = D::Batch>> {
    shared: Arc<Shared<D, F::Snapshot, F::Error>>,
    flush_role: Arc<FlushRole<F>>,
    writer: Option<JoinHandle<()>>,
    flusher: Option<JoinHandle<()>>,
}

impl<D, F> Coordinator<D, F>
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    /// Starts a pipeline whose first delta is `delta`, storing through `flusher`, with
    /// `snapshot` as what readers see of storage until the first flush.
    pub fn start(
        delta: D,
        flusher: F,
        snapshot: F::Snapshot,
        config: Config,
    ) -> Result<Self, F::Error> {
        config.check()?;
        let name: Arc<str> = Arc::from(config.name.as_str());
        let delta_size = delta.size_bytes();
        let cell = Arc::new(RwLock::new(CellState::Live(delta)));
        let views = Views::new(View::first(cell.clone(), Arc::new(snapshot)));
        let flush_role = Arc::new(FlushRole {
            flusher: Mutex::new(Some(flusher)),
        });
        let shared = Arc::new_cyclic(|weak: &Weak<Shared<D, F::Snapshot, F::Error>>| {
            let w = weak.clone();
            let on_demand = Box::new(move |level| {
                if let Some(sh) = w.upgrade() {
                    match level {
                        Durability::Durable => {
                            sh.poke_flusher();
                            sh.inbox.poke();
                        }
                        _ => sh.inbox.poke(),
                    }
                }
            });
            let w = weak.clone();
            let leader = flush_role.clone();
            let on_wait = Box::new(move |level, epoch| match w.upgrade() {
                Some(sh) => lead::lead(&sh, &leader, level, epoch),
                None => Lead::Unable,
            });
            let marks = Watermarks::with_lead(name.to_string(), on_demand, Some(on_wait));
            Shared {
                name: name.clone(),
                clock: config.clock.clone(),
                config,
                inbox: Arc::new(Inbox::new(delta_size)),
                marks: Arc::new(marks),
                views,
                jobs: Mutex::new(JobState {
                    queue: VecDeque::new(),
                    closing: false,
                }),
                jobs_changed: Condvar::new(),
                role: Mutex::new(Role { cell }),
                lost: AtomicBool::new(false),
            }
        });
        let weak = Arc::downgrade(&shared);
        shared.clock.watch(Arc::new(move || {
            if let Some(sh) = weak.upgrade() {
                sh.inbox.poke();
                sh.poke_flusher();
            }
        }));

        let flush_shared = shared.clone();
        let role = flush_role.clone();
        let flusher = thread::Builder::new()
            .name(format!("{name}-flush"))
            .spawn(move || flush::run(&flush_shared, &role))
            .map_err(|source| Error::Spawn {
                thread: format!("the flush thread of write pipeline {name}"),
                source,
            })?;
        let writer_shared = shared.clone();
        let writer = match thread::Builder::new()
            .name(format!("{name}-writer"))
            .spawn(move || writer::run(&writer_shared))
        {
            Ok(w) => w,
            Err(source) => {
                shared.jobs.lock().closing = true;
                shared.poke_flusher();
                let _ = flusher.join();
                return Err(Error::Spawn {
                    thread: format!("the writer thread of write pipeline {name}"),
                    source,
                });
            }
        };
        Ok(Coordinator {
            shared,
            flush_role,
            writer: Some(writer),
            flusher: Some(flusher),
        })
    }

    /// Opens a new named channel holding at most `capacity` queued writes (at least 1).
    pub fn channel(
        &self,
        name: impl Into<String>,
        capacity: usize,
    ) -> WriteChannel<D::Write, D::Applied, F::Error> {
        let shared: Arc<dyn ApplyNow<D::Write, D::Applied>> = self.shared.clone();
        WriteChannel::open(
            self.shared.inbox.clone(),
            Arc::downgrade(&shared),
            self.shared.marks.clone(),
            self.shared.name.clone(),
            name.into(),
            capacity,
        )
    }

    /// The current view.
    pub fn view(&self) -> View<D, F::Snapshot> {
        self.shared.views.load()
    }

    /// A feed of every view published from now on.
    pub fn subscribe(&self) -> Subscription<D, F::Snapshot> {
        self.shared
            .views
            .subscribe(self.shared.config.subscriber_capacity)
    }

    /// The last epoch that has reached `level` (every epoch up to it has).
    pub fn watermark(&self, level: Durability) -> Epoch {
        self.shared.marks.get(level)
    }

    /// Blocks until `epoch` has reached `level`. Waiting for `Written` or `Durable` makes the
    /// pipeline freeze and store (or sync) it even if no trigger fires; when no flush is running
    /// the calling thread runs it (see [`WriteHandle::wait`](crate::WriteHandle::wait)).
    pub fn wait_for(&self, epoch: Epoch, level: Durability) -> Result<(), F::Error> {
        self.shared.marks.wait(level, epoch, None).map(|_| ())
    }

    /// The async face of [`wait_for`](Self::wait_for).
    pub fn wait_for_async(&self, epoch: Epoch, level: Durability) -> EpochWait<F::Error> {
        EpochWait::new(self.shared.marks.clone(), level, epoch)
    }

    /// Asks the writer to freeze, and returns the last epoch that the flush covers once the
    /// writer has frozen it. The flush covers every write applied before, and every write
    /// queued at the call in a channel that is not paused (so a producer's earlier writes are
    /// covered). Does not wait for storage: wait for the epoch for that.
    pub fn request_flush(&self, durable: bool) -> Result<Epoch, F::Error> {
        let reply = Arc::new((Mutex::new(None), Condvar::new()));
        {
            let mut s = self.shared.inbox.state.lock();
            if s.stopped {
                drop(s);
                return Err(self.ended());
            }
            let targets = s.flush_targets();
            s.flush_requests.push(FlushRequest {
                durable,
                targets,
                reply: reply.clone(),
            });
            self.shared.inbox.writer.notify_one();
        }
        let mut r = reply.0.lock();
        loop {
            if let Some(answer) = r.take() {
                return answer.map(Epoch::new);
            }
            reply.1.wait(&mut r);
        }
    }

    /// Freezes what is applied and waits until it is stored (`durable`: and synced); returns
    /// the last epoch covered. Like [`request_flush`](Self::request_flush), it covers the
    /// writes queued at the call; when none are, it waits for the writes already taken from the
    /// channels directly (and usually stores them on this thread), without a round trip
    /// through the writer thread.
    pub fn flush(&self, durable: bool) -> Result<Epoch, F::Error> {
        let level = if durable {
            Durability::Durable
        } else {
            Durability::Written
        };
        // With nothing queued, the last epoch handed out: it covers a write the writer thread
        // has taken from its channel but not applied yet (the `Applied` mark moves only once
        // the writer's batch is applied, so it would miss that write).
        let taken = {
            let s = self.shared.inbox.state.lock();
            if s.stopped {
                drop(s);
                return Err(self.ended());
            }
            (!s.has_writes(false)).then(|| s.delta.last())
        };
        let epoch = match taken {
            Some(last) => last,
            None => self.request_flush(durable)?,
        };
        self.wait_for(epoch, level)?;
        Ok(epoch)
    }

    /// The failure that stopped the pipeline, if it failed.
    pub fn error(&self) -> Option<Error<F::Error>> {
        self.shared.marks.failure()
    }

    fn ended(&self) -> Error<F::Error> {
        self.shared.marks.ended().unwrap_or_else(|| Error::Closed {
            pipeline: self.shared.name.to_string(),
        })
    }

    /// Stops taking writes, applies the writes already queued (paused channels included),
    /// stores every frozen batch, syncs (if [`Config::sync_on_shutdown`]), and stops both
    /// threads. After a failure, hands back the batches it could not store.
    pub fn shutdown(mut self) -> Shutdown<F> {
        self.stop()
    }

    fn stop(&mut self) -> Shutdown<F> {
        {
            let mut s = self.shared.inbox.state.lock();
            s.stopped = true;
            s.shutdown = true;
        }
        self.shared.inbox.writer.notify_all();
        self.shared.inbox.space.notify_all();
        let mut panicked = None;
        if let Some(w) = self.writer.take()
            && w.join().is_err()
        {
            panicked = Some("writer");
        }
        if let Some(Err(_)) = self.flusher.take().map(JoinHandle::join) {
            panicked = Some("flush");
        }
        // Waits for a leading waiter to finish its round.
        let flusher = self.flush_role.flusher.lock().take();
        if let Some(thread) = panicked {
            self.shared.fail(
                self.shared.marks.get(Durability::Written).next(),
                Failure::Panicked {
                    thread: format!("the {thread} thread of pipeline {}", self.shared.name),
                    consequence: "the pipeline stopped",
                },
            );
        }
        self.shared.marks.close();
        self.shared.views.close();
        let unflushed = self
            .shared
            .jobs
            .lock()
            .queue
            .drain(..)
            .map(|j| Unflushed {
                epochs: j.epochs,
                batch: j.batch,
            })
            .collect();
        let result = match self.shared.marks.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        };
        Shutdown {
            result,
            unflushed,
            flusher,
        }
    }
}

impl<D, F> Drop for Coordinator<D, F>
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    fn drop(&mut self) {
        if self.writer.is_some() || self.flusher.is_some() {
            let out = self.stop();
            if let Err(e) = out.result {
                tracing::error!(pipeline = %self.shared.name, error = %e, unflushed = out.unflushed.len(), "write pipeline dropped after a failure");
            }
        }
    }
}

impl<D, F> fmt::Debug for Coordinator<D, F>
where
    D: Freeze,
    F: Flusher<Batch = D::Batch>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("name", &self.shared.name)
            .field("marks", &self.shared.marks)
            .finish_non_exhaustive()
    }
}
