//! [`WriteHandle`]: what a producer holds for one write: its epoch and apply result once the
//! writer has applied it, and waits for each durability level.
//!
//! Invariants: a write's ticket ends exactly once, applied (with its epoch and result) or
//! rejected (the pipeline ended before applying it); a ticket whose write is dropped unapplied
//! (say the writer thread panicked) is rejected by the drop, so no handle waits forever.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::durability::Durability;
use crate::epoch::Epoch;
use crate::error::{Error, Result};
use crate::sync::{Condvar, Instant, Mutex};
use crate::watermark::{EpochWait, Watermarks};

enum TicketState<R> {
    Queued { wakers: Vec<Waker> },
    Applied { epoch: Epoch, result: Option<R> },
    Rejected,
}

pub(crate) struct Ticket<R> {
    state: Mutex<TicketState<R>>,
    done: Condvar,
}

impl<R> Ticket<R> {
    fn finish(&self, end: TicketState<R>) {
        let mut s = self.state.lock();
        let old = std::mem::replace(&mut *s, end);
        drop(s);
        self.done.notify_all();
        if let TicketState::Queued { wakers } = old {
            wakers.into_iter().for_each(Waker::wake);
        }
    }
}

/// The writer's end of a ticket: completes it once; rejects it if dropped before that.
pub(crate) struct TicketSender<R> {
    ticket: Option<Arc<Ticket<R>>>,
}

impl<R> TicketSender<R> {
    pub(crate) fn applied(mut self, epoch: Epoch, result: R) {
        if let Some(t) = self.ticket.take() {
            t.finish(TicketState::Applied {
                epoch,
                result: Some(result),
            });
        }
    }
}

impl<R> Drop for TicketSender<R> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            t.finish(TicketState::Rejected);
        }
    }
}

/// A new ticket: the handle for the producer and the sender for the writer.
pub(crate) fn ticket<R, E>(marks: Arc<Watermarks<E>>) -> (WriteHandle<R, E>, TicketSender<R>) {
    let t = Arc::new(Ticket {
        state: Mutex::new(TicketState::Queued { wakers: Vec::new() }),
        done: Condvar::new(),
    });
    (
        WriteHandle {
            ticket: t.clone(),
            marks,
        },
        TicketSender { ticket: Some(t) },
    )
}

/// The handle of a write its producer applied in place.
pub(crate) fn applied<R, E>(
    marks: Arc<Watermarks<E>>,
    epoch: Epoch,
    result: R,
) -> WriteHandle<R, E> {
    WriteHandle {
        ticket: Arc::new(Ticket {
            state: Mutex::new(TicketState::Applied {
                epoch,
                result: Some(result),
            }),
            done: Condvar::new(),
        }),
        marks,
    }
}

/// One write sent to a pipeline.
///
/// The write is applied (usually on the sending thread) or queued when the handle is returned;
/// [`epoch`](Self::epoch) is known once it is applied. [`wait`](Self::wait) (or
/// [`wait_async`](Self::wait_async)) returns its epoch once it has reached the level asked
/// for, or the error that stopped it (`E` is the pipeline's flusher error).
pub struct WriteHandle<R, E> {
    ticket: Arc<Ticket<R>>,
    marks: Arc<Watermarks<E>>,
}

impl<R, E> WriteHandle<R, E> {
    /// The write's epoch, once it is applied.
    pub fn epoch(&self) -> Option<Epoch> {
        match &*self.ticket.state.lock() {
            TicketState::Applied { epoch, .. } => Some(*epoch),
            _ => None,
        }
    }

    /// What applying the write returned; `None` before it is applied, after it was taken, or
    /// if the write was rejected.
    pub fn take_result(&self) -> Option<R> {
        match &mut *self.ticket.state.lock() {
            TicketState::Applied { result, .. } => result.take(),
            _ => None,
        }
    }

    fn rejection(&self) -> Error<E> {
        self.marks.ended().unwrap_or_else(|| Error::Closed {
            pipeline: "(unknown)".into(),
        })
    }

    /// Blocks until the write is applied; its epoch, or `None` at the deadline.
    fn wait_applied(&self, deadline: Option<Instant>) -> Result<Option<Epoch>, E> {
        let mut s = self.ticket.state.lock();
        loop {
            match &*s {
                TicketState::Applied { epoch, .. } => return Ok(Some(*epoch)),
                TicketState::Rejected => return Err(self.rejection()),
                TicketState::Queued { .. } => match deadline {
                    None => self.ticket.done.wait(&mut s),
                    Some(d) => {
                        if self.ticket.done.wait_until(&mut s, d).timed_out() {
                            return Ok(None);
                        }
                    }
                },
            }
        }
    }

    /// Blocks until the write has reached `level`; returns its epoch. Waiting for `Written` or
    /// `Durable` may run the flush on this thread, for this write and every write applied
    /// before the flush starts (when no flush is running), instead of waking another thread
    /// for it.
    pub fn wait(&self, level: Durability) -> Result<Epoch, E> {
        // Without a deadline `wait_applied` only returns with an epoch or an error.
        let epoch = loop {
            if let Some(e) = self.wait_applied(None)? {
                break e;
            }
        };
        self.marks.wait(level, epoch, None)?;
        Ok(epoch)
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout` with `Ok(None)`. A flush this
    /// thread runs is finished first, so the call may return that much after the timeout.
    pub fn wait_timeout(&self, level: Durability, timeout: Duration) -> Result<Option<Epoch>, E> {
        let deadline = Instant::now() + timeout;
        let Some(epoch) = self.wait_applied(Some(deadline))? else {
            return Ok(None);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        Ok(self.marks.wait(level, epoch, Some(left))?.then_some(epoch))
    }

    /// A future that resolves to the write's epoch once it has reached `level`. It never blocks
    /// the thread that polls it.
    pub fn wait_async(&self, level: Durability) -> HandleWait<R, E> {
        HandleWait {
            ticket: self.ticket.clone(),
            marks: self.marks.clone(),
            level,
            inner: None,
        }
    }
}

impl<R, E> fmt::Debug for WriteHandle<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteHandle")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

/// The future of [`WriteHandle::wait_async`].
#[must_use = "a future does nothing unless polled"]
pub struct HandleWait<R, E> {
    ticket: Arc<Ticket<R>>,
    marks: Arc<Watermarks<E>>,
    level: Durability,
    inner: Option<EpochWait<E>>,
}

impl<R, E> Future for HandleWait<R, E> {
    type Output = Result<Epoch, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Epoch, E>> {
        let this = self.get_mut();
        if this.inner.is_none() {
            let mut s = this.ticket.state.lock();
            let epoch = match &mut *s {
                TicketState::Applied { epoch, .. } => *epoch,
                TicketState::Rejected => {
                    drop(s);
                    let err = this.marks.ended().unwrap_or_else(|| Error::Closed {
                        pipeline: "(unknown)".into(),
                    });
                    return Poll::Ready(Err(err));
                }
                TicketState::Queued { wakers } => {
                    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        wakers.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            };
            drop(s);
            this.inner = Some(EpochWait::new(this.marks.clone(), this.level, epoch));
        }
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<R, E> fmt::Debug for HandleWait<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleWait")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn marks() -> Arc<Watermarks<std::io::Error>> {
        Arc::new(Watermarks::new("t".into(), Box::new(|_| {})))
    }

    #[test]
    fn an_applied_ticket_gives_its_epoch_and_result_once() {
        let m = marks();
        let (h, tx) = ticket::<&str, _>(m.clone());
        assert_eq!(h.epoch(), None);
        assert_eq!(
            h.wait_timeout(Durability::Applied, Duration::ZERO).unwrap(),
            None
        );
        m.advance(Durability::Applied, Epoch::new(7));
        tx.applied(Epoch::new(7), "old value");
        assert_eq!(h.epoch(), Some(Epoch::new(7)));
        assert_eq!(h.wait(Durability::Applied).unwrap(), Epoch::new(7));
        assert_eq!(h.take_result(), Some("old value"));
        assert_eq!(h.take_result(), None);
    }

    #[test]
    fn the_async_wait_follows_the_ticket_then_the_watermark() {
        let m = marks();
        let (h, tx) = ticket::<(), _>(m.clone());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = h.wait_async(Durability::Written);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        m.advance(Durability::Applied, Epoch::new(1));
        tx.applied(Epoch::new(1), ());
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "applying wakes the waiter"
        );
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        m.advance(Durability::Written, Epoch::new(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "the watermark wakes it");
        assert!(matches!(
            Pin::new(&mut fut).poll(&mut cx),
            Poll::Ready(Ok(e)) if e == Epoch::new(1)
        ));
    }

    #[test]
    fn a_ticket_dropped_unapplied_ends_its_waits() {
        let m = marks();
        let (h, tx) = ticket::<(), _>(m.clone());
        let waiter = std::thread::spawn(move || h.wait(Durability::Durable));
        m.close();
        drop(tx);
        assert!(matches!(waiter.join().unwrap(), Err(Error::Closed { .. })));
    }
}
