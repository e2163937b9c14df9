//! The pool's own threads: the I/O threads that run async page-ins, and the signal that wakes
//! the background thread (which `build` starts).
//!
//! Async page-ins run here rather than on a shared runtime's blocking pool, so that a saturated
//! runtime cannot deadlock the pool. A job always ends: an I/O thread survives a job that
//! panics (a page-in turns its own panic into an error, so that its waiters are woken), and a
//! job spawned after the threads stopped gets a thread of its own.

use crate::sync::mpsc;
use crate::sync::thread::{self, JoinHandle};
use std::sync::Arc;
use std::time::Duration;

use crate::sync::{Condvar, Mutex};

use crate::error::{Error, Result};

/// Work for an I/O thread.
pub(crate) type IoJob = Box<dyn FnOnce() + Send>;

/// The I/O threads' queue.
pub(crate) struct IoPool {
    /// `None` once the pool is dropped: the threads end when the channel closes.
    tx: Mutex<Option<mpsc::Sender<IoJob>>>,
}

impl IoPool {
    /// Starts `threads` I/O threads; returns the queue and the threads to join.
    pub fn start(threads: usize) -> Result<(IoPool, Vec<JoinHandle<()>>)> {
        let (tx, rx) = mpsc::channel::<IoJob>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            handles.push(
                thread::Builder::new()
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
        let pool = IoPool {
            tx: Mutex::new(Some(tx)),
        };
        Ok((pool, handles))
    }

    /// Runs `job` on an I/O thread.
    pub fn spawn(&self, job: IoJob) {
        let sent = match &*self.tx.lock() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        };
        // No I/O threads (the pool was dropped while handles live on): a thread of its own, so
        // that an async caller's executor still never blocks on I/O.
        if let Err(job) = sent {
            let slot = Arc::new(Mutex::new(Some(job)));
            let theirs = Arc::clone(&slot);
            let spawned = thread::Builder::new()
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

    /// Closes the queue: the I/O threads end, and so does the background thread when it next
    /// wakes (it checks [`is_closed`](Self::is_closed)).
    pub fn close(&self) {
        self.tx.lock().take();
    }

    /// True once the pool is being dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.lock().is_none()
    }
}

/// Wakes the background thread: when resident bytes pass the page-out start mark, and when the
/// pool is dropped.
#[derive(Default)]
pub(crate) struct Signal {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    /// Wakes the waiter, or makes its next wait return at once.
    pub fn wake(&self) {
        *self.woken.lock() = true;
        self.cv.notify_all();
    }

    /// Waits until woken or until `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let mut woken = self.woken.lock();
        if !*woken {
            self.cv.wait_for(&mut woken, timeout);
        }
        *woken = false;
    }
}
