//! Write channels: named, bounded queues from many producers to the one writer.
//!
//! A write whose channel has nothing queued is applied at once on the producer's thread (see
//! [`role`](crate::role)); the queue holds the writes that must wait: the delta is full and
//! waits for a freeze, the channel is paused, or earlier writes are still queued.
//!
//! Invariants:
//! - all channels and the writer's other inputs (flush requests, shutdown, the count of batches
//!   in flight) live under one lock, and the writer waits on one condition variable, so no
//!   wake-up is lost between its check and its wait;
//! - a channel never holds more than its capacity; a producer that finds it full gets its
//!   write back ([`WriteChannel::try_write`]), waits ([`WriteChannel::write`]) or gets it back
//!   after a timeout ([`WriteChannel::write_timeout`]);
//! - the writer takes writes from the channels round robin, one at a time, so a busy channel
//!   cannot starve another; a paused channel keeps its queued writes until it is resumed (or
//!   the pipeline shuts down, which applies them all);
//! - a write is refused, and handed back, once the pipeline has stopped taking writes;
//! - a flush covers every write queued (in a channel that is not paused) when it was
//!   requested: the writer applies them before it freezes for the flush.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::epoch::Epoch;
use crate::error::{Error, Result};
use crate::handle::{TicketSender, WriteHandle, applied, ticket};
use crate::status::DeltaStatus;
use crate::sync::{Condvar, Instant, Mutex};
use crate::watermark::Watermarks;

/// One queued write with the writer's end of its ticket.
pub(crate) struct Message<W, R> {
    pub(crate) write: W,
    pub(crate) ticket: TicketSender<R>,
}

struct Queue<W, R> {
    name: String,
    capacity: usize,
    paused: bool,
    queue: VecDeque<Message<W, R>>,
    /// Writes ever taken by the writer, to tell when a flush request's writes are applied.
    popped: u64,
}

/// A request for an explicit flush; the writer answers with the epoch it covers.
pub(crate) struct FlushRequest<E> {
    pub(crate) durable: bool,
    /// Per channel, how many writes the writer must have taken before the flush: every write
    /// queued when it was requested.
    pub(crate) targets: Vec<u64>,
    pub(crate) reply: FlushReply<E>,
}

/// Where the writer puts its answer to a flush request (the last epoch the flush covers), and
/// the condition variable the requester waits on for it.
pub(crate) type FlushReply<E> = Arc<(Mutex<Option<Result<u64, E>>>, Condvar)>;

pub(crate) struct InboxState<W, R, E> {
    queues: Vec<Queue<W, R>>,
    cursor: usize,
    pub(crate) flush_requests: Vec<FlushRequest<E>>,
    /// No more writes are accepted (shutdown or failure).
    pub(crate) stopped: bool,
    /// The writer should apply what is queued, freeze, and exit.
    pub(crate) shutdown: bool,
    /// Frozen batches handed to the flush thread and not yet stored.
    pub(crate) in_flight: usize,
    /// The current delta, as the writer thread needs to know it.
    pub(crate) delta: DeltaStatus,
}

impl<W, R, E> InboxState<W, R, E> {
    /// True if a write is waiting in a channel the writer may take from.
    pub(crate) fn has_writes(&self, include_paused: bool) -> bool {
        self.queues
            .iter()
            .any(|q| (include_paused || !q.paused) && !q.queue.is_empty())
    }

    pub(crate) fn is_paused(&self, channel: usize) -> bool {
        self.queues[channel].paused
    }

    /// The targets of a flush requested now: every write queued in each channel.
    pub(crate) fn flush_targets(&self) -> Vec<u64> {
        self.queues
            .iter()
            .map(|q| q.popped + q.queue.len() as u64)
            .collect()
    }

    /// True once every write a flush request covers has been taken (paused channels excepted).
    pub(crate) fn targets_reached(&self, targets: &[u64]) -> bool {
        self.queues
            .iter()
            .zip(targets)
            .all(|(q, &t)| q.paused || q.popped >= t)
    }

    /// The next write, round robin over the channels.
    pub(crate) fn pop(&mut self, include_paused: bool) -> Option<Message<W, R>> {
        let n = self.queues.len();
        for i in 0..n {
            let idx = (self.cursor + i) % n;
            let q = &mut self.queues[idx];
            if q.paused && !include_paused {
                continue;
            }
            if let Some(m) = q.queue.pop_front() {
                q.popped += 1;
                self.cursor = (idx + 1) % n;
                return Some(m);
            }
        }
        None
    }

    /// Every queued write, in channel order (to reject them).
    pub(crate) fn drain_all(&mut self) -> Vec<Message<W, R>> {
        self.queues
            .iter_mut()
            .flat_map(|q| q.queue.drain(..))
            .collect()
    }
}

/// The shared inputs of the writer thread.
pub(crate) struct Inbox<W, R, E> {
    pub(crate) state: Mutex<InboxState<W, R, E>>,
    /// Wakes the writer thread.
    pub(crate) writer: Condvar,
    /// Wakes producers waiting for room or for a resume.
    pub(crate) space: Condvar,
}

impl<W, R, E> Inbox<W, R, E> {
    /// The inbox of a pipeline whose first delta is `delta_size` bytes.
    pub(crate) fn new(delta_size: usize) -> Inbox<W, R, E> {
        Inbox {
            state: Mutex::new(InboxState {
                queues: Vec::new(),
                cursor: 0,
                flush_requests: Vec::new(),
                stopped: false,
                shutdown: false,
                in_flight: 0,
                delta: DeltaStatus::new(delta_size),
            }),
            writer: Condvar::new(),
            space: Condvar::new(),
        }
    }

    /// Wakes the writer (taking the lock, so that a writer between its check and its wait
    /// cannot miss it).
    pub(crate) fn poke(&self) {
        let _s = self.state.lock();
        self.writer.notify_one();
    }
}

/// Why a write was handed back (`E` is the pipeline's flusher error).
#[derive(Debug)]
#[non_exhaustive]
pub enum RejectReason<E> {
    /// The channel was full ([`WriteChannel::try_write`]).
    Full,
    /// The channel stayed full until the timeout ([`WriteChannel::write_timeout`]).
    TimedOut,
    /// The pipeline takes no more writes: it was shut down or it failed.
    Stopped(Error<E>),
}

/// A write the pipeline did not take, handed back with the reason.
pub struct Rejected<W, E> {
    /// The write, untouched.
    pub write: W,
    /// Why it was not taken.
    pub reason: RejectReason<E>,
}

impl<W, E> Rejected<W, E> {
    /// The write, to send again or elsewhere.
    pub fn into_inner(self) -> W {
        self.write
    }
}

impl<W, E: fmt::Debug> fmt::Debug for Rejected<W, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<W, E: fmt::Display> fmt::Display for Rejected<W, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            RejectReason::Full => f.write_str("write channel is full"),
            RejectReason::TimedOut => f.write_str("write channel stayed full until the timeout"),
            RejectReason::Stopped(e) => write!(f, "write refused: {e}"),
        }
    }
}

impl<W, E: std::error::Error + 'static> std::error::Error for Rejected<W, E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            RejectReason::Stopped(e) => Some(e),
            _ => None,
        }
    }
}

/// Applies a write on the producer's thread, if its channel may skip the queue.
pub(crate) trait ApplyNow<W, R>: Send + Sync {
    /// The write's epoch and result, or the write back if it must be queued.
    fn apply_now(&self, channel: usize, write: W) -> std::result::Result<(Epoch, R), W>;
}

/// A named, bounded channel into a pipeline. Clone it for more producers: clones share the
/// queue.
///
/// A write is applied on the calling thread when nothing is queued before it, so the handle
/// usually comes back already applied; otherwise it is queued for the writer thread.
pub struct WriteChannel<W, R, E> {
    inbox: Arc<Inbox<W, R, E>>,
    /// The pipeline's writer role; gone once the pipeline is dropped.
    writer: Weak<dyn ApplyNow<W, R>>,
    marks: Arc<Watermarks<E>>,
    pipeline: Arc<str>,
    index: usize,
}

impl<W, R, E> Clone for WriteChannel<W, R, E> {
    fn clone(&self) -> Self {
        WriteChannel {
            inbox: self.inbox.clone(),
            writer: self.writer.clone(),
            marks: self.marks.clone(),
            pipeline: self.pipeline.clone(),
            index: self.index,
        }
    }
}

impl<W, R, E> WriteChannel<W, R, E> {
    pub(crate) fn open(
        inbox: Arc<Inbox<W, R, E>>,
        writer: Weak<dyn ApplyNow<W, R>>,
        marks: Arc<Watermarks<E>>,
        pipeline: Arc<str>,
        name: String,
        capacity: usize,
    ) -> WriteChannel<W, R, E> {
        let index = {
            let mut s = inbox.state.lock();
            s.queues.push(Queue {
                name,
                capacity: capacity.max(1),
                paused: false,
                queue: VecDeque::new(),
                popped: 0,
            });
            s.queues.len() - 1
        };
        WriteChannel {
            inbox,
            writer,
            marks,
            pipeline,
            index,
        }
    }

    fn stopped(&self) -> RejectReason<E> {
        RejectReason::Stopped(self.marks.ended().unwrap_or_else(|| Error::Closed {
            pipeline: self.pipeline.to_string(),
        }))
    }

    /// Sends `write`, waiting while the channel is full (or paused and full). Hands it back
    /// only if the pipeline stops taking writes.
    pub fn write(&self, write: W) -> std::result::Result<WriteHandle<R, E>, Rejected<W, E>> {
        self.send(write, Wait::Forever)
    }

    /// Sends `write` if there is room now; otherwise hands it back.
    pub fn try_write(&self, write: W) -> std::result::Result<WriteHandle<R, E>, Rejected<W, E>> {
        self.send(write, Wait::No)
    }

    /// Sends `write`, waiting at most `timeout` for room; otherwise hands it back.
    pub fn write_timeout(
        &self,
        write: W,
        timeout: Duration,
    ) -> std::result::Result<WriteHandle<R, E>, Rejected<W, E>> {
        self.send(write, Wait::Until(Instant::now() + timeout))
    }

    fn send(&self, write: W, wait: Wait) -> std::result::Result<WriteHandle<R, E>, Rejected<W, E>> {
        let write = match self.writer.upgrade() {
            Some(writer) => match writer.apply_now(self.index, write) {
                Ok((epoch, result)) => return Ok(applied(self.marks.clone(), epoch, result)),
                Err(write) => write,
            },
            None => write,
        };
        let mut s = self.inbox.state.lock();
        loop {
            if s.stopped {
                drop(s);
                return Err(Rejected {
                    write,
                    reason: self.stopped(),
                });
            }
            let q = &s.queues[self.index];
            if q.queue.len() < q.capacity {
                break;
            }
            match wait {
                Wait::No => {
                    return Err(Rejected {
                        write,
                        reason: RejectReason::Full,
                    });
                }
                Wait::Forever => self.inbox.space.wait(&mut s),
                Wait::Until(d) => {
                    if self.inbox.space.wait_until(&mut s, d).timed_out() {
                        return Err(Rejected {
                            write,
                            reason: RejectReason::TimedOut,
                        });
                    }
                }
            }
        }
        let (handle, ticket) = ticket(self.marks.clone());
        let q = &mut s.queues[self.index];
        q.queue.push_back(Message { write, ticket });
        let wake = !q.paused;
        drop(s);
        if wake {
            self.inbox.writer.notify_one();
        }
        Ok(handle)
    }

    /// Stops the writer from taking this channel's writes; producers can still queue up to the
    /// capacity, then they wait (or get their write back).
    pub fn pause(&self) {
        self.inbox.state.lock().queues[self.index].paused = true;
    }

    /// Lets the writer take this channel's writes again.
    pub fn resume(&self) {
        let mut s = self.inbox.state.lock();
        s.queues[self.index].paused = false;
        self.inbox.writer.notify_one();
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        self.inbox.state.lock().queues[self.index].paused
    }

    /// Writes queued and not yet applied.
    pub fn queued(&self) -> usize {
        self.inbox.state.lock().queues[self.index].queue.len()
    }

    /// The channel's name.
    pub fn name(&self) -> String {
        self.inbox.state.lock().queues[self.index].name.clone()
    }
}

impl<W, R, E> fmt::Debug for WriteChannel<W, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteChannel")
            .field("pipeline", &self.pipeline)
            .field("name", &self.name())
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Wait {
    No,
    Forever,
    Until(Instant),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that never applies in place, so that every write is queued.
    struct QueueOnly;
    impl ApplyNow<u32, ()> for QueueOnly {
        fn apply_now(&self, _channel: usize, write: u32) -> std::result::Result<(Epoch, ()), u32> {
            Err(write)
        }
    }

    type Io = std::io::Error;
    type TestInbox = Inbox<u32, (), Io>;

    fn setup() -> (Arc<TestInbox>, Arc<Watermarks<Io>>) {
        (
            Arc::new(Inbox::new(0)),
            Arc::new(Watermarks::new("t".into(), Box::new(|_| {}))),
        )
    }

    fn open(
        inbox: &Arc<TestInbox>,
        marks: &Arc<Watermarks<Io>>,
        cap: usize,
    ) -> WriteChannel<u32, (), Io> {
        WriteChannel::open(
            inbox.clone(),
            Weak::<QueueOnly>::new(),
            marks.clone(),
            Arc::from("t"),
            "c".into(),
            cap,
        )
    }

    #[test]
    fn the_writer_takes_from_channels_round_robin_and_skips_paused_ones() {
        let (inbox, marks) = setup();
        let a = open(&inbox, &marks, 8);
        let b = open(&inbox, &marks, 8);
        let c = open(&inbox, &marks, 8);
        for w in [1, 2, 3] {
            a.try_write(w).unwrap();
        }
        b.try_write(10).unwrap();
        c.try_write(20).unwrap();
        c.pause();
        let mut s = inbox.state.lock();
        let order: Vec<u32> = std::iter::from_fn(|| s.pop(false).map(|m| m.write)).collect();
        assert_eq!(order, vec![1, 10, 2, 3]);
        assert!(!s.has_writes(false));
        assert!(s.has_writes(true));
        assert_eq!(s.pop(true).map(|m| m.write), Some(20));
    }

    #[test]
    fn flush_targets_are_reached_once_every_queued_write_is_taken() {
        let (inbox, marks) = setup();
        let a = open(&inbox, &marks, 8);
        let b = open(&inbox, &marks, 8);
        a.try_write(1).unwrap();
        a.try_write(2).unwrap();
        b.try_write(3).unwrap();
        let targets = inbox.state.lock().flush_targets();
        assert_eq!(targets, vec![2, 1]);
        // Written after the request: not needed for it.
        a.try_write(4).unwrap();
        let mut s = inbox.state.lock();
        assert!(!s.targets_reached(&targets));
        s.pop(false);
        s.pop(false);
        assert!(!s.targets_reached(&targets));
        s.pop(false);
        assert!(s.targets_reached(&targets));
        drop(s);
        // A paused channel does not hold a flush up.
        b.try_write(5).unwrap();
        let targets = inbox.state.lock().flush_targets();
        b.pause();
        let mut s = inbox.state.lock();
        s.pop(false);
        assert!(s.targets_reached(&targets));
    }

    #[test]
    fn full_and_stopped_channels_hand_the_write_back() {
        let (inbox, marks) = setup();
        let a = open(&inbox, &marks, 1);
        a.try_write(1).unwrap();
        let full = a.try_write(2).unwrap_err();
        assert!(matches!(full.reason, RejectReason::Full));
        assert_eq!(full.to_string(), "write channel is full");
        assert_eq!(full.into_inner(), 2);
        inbox.state.lock().stopped = true;
        inbox.space.notify_all();
        let stopped = a.write(3).unwrap_err();
        assert!(matches!(
            stopped.reason,
            RejectReason::Stopped(Error::Closed { .. })
        ));
        assert_eq!(a.queued(), 1);
        assert_eq!(a.name(), "c");
    }

    #[test]
    fn a_dropped_write_rejects_its_handle() {
        let (inbox, marks) = setup();
        let a = open(&inbox, &marks, 4);
        let h = a.try_write(1).unwrap();
        let msgs = inbox.state.lock().drain_all();
        marks.close();
        drop(msgs);
        assert!(matches!(
            h.wait(crate::durability::Durability::Applied),
            Err(Error::Closed { .. })
        ));
        assert_eq!(h.epoch(), None);
    }
}
