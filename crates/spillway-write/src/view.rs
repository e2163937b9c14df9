//! Consistent reads: a [`View`] is the current delta, the frozen deltas not yet stored (newest
//! first) and the last storage snapshot, published as one value.
//!
//! Invariants:
//! - views are swapped whole under one lock, by the writer role (after a freeze) and by the
//!   flush role (after a store); a reader takes a view and never sees half of a swap;
//! - within a view, epochs are contiguous: the snapshot holds `1..=snapshot_epoch`, the frozen
//!   layers hold the next epochs in ranges that follow each other (newest first), and the
//!   current delta holds the epochs from [`View::current_first`] on;
//! - the current delta is shared with the writer through a lock: a [`ViewGuard`] holds the
//!   read side, so it sees the delta between two whole writes, and the writes made since the
//!   view was taken. When the writer freezes that delta, it leaves the frozen read view in its
//!   place, so a view taken before the freeze still sees every write it saw, exactly once;
//! - subscribers get every view published after they subscribed, in order, until their queue
//!   overflows; then they are told they lagged (and how many views they missed) and stop
//!   receiving: they subscribe again for the current view.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::delta::Freeze;
use crate::epoch::{Epoch, EpochRange};
use crate::sync::{Condvar, Instant, Mutex, RwLock, RwLockReadGuard};

/// What the shared slot of the current delta holds.
pub(crate) enum CellState<D: Freeze> {
    /// The delta the writer is filling.
    Live(D),
    /// The delta was frozen; here is its read view.
    Frozen(Arc<D::FrozenView>),
    /// Only while the writer freezes it (under the write lock), or after a panic in `freeze`.
    Moving,
}

pub(crate) type DeltaCell<D> = Arc<RwLock<CellState<D>>>;

/// A frozen delta in a [`View`]: the epochs it holds. Its writes are read through
/// [`ViewGuard::layers`].
pub struct FrozenLayer<V> {
    epochs: EpochRange,
    view: Arc<V>,
}

impl<V> FrozenLayer<V> {
    pub(crate) fn new(epochs: EpochRange, view: Arc<V>) -> FrozenLayer<V> {
        FrozenLayer { epochs, view }
    }

    /// The epochs of the writes in this layer.
    pub fn epochs(&self) -> EpochRange {
        self.epochs
    }
}

impl<V> Clone for FrozenLayer<V> {
    fn clone(&self) -> Self {
        FrozenLayer {
            epochs: self.epochs,
            view: self.view.clone(),
        }
    }
}

impl<V> fmt::Debug for FrozenLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrozenLayer({})", self.epochs)
    }
}

/// One consistent picture of the pipeline's data. Cheap to clone.
pub struct View<D: Freeze, S> {
    inner: Arc<ViewInner<D, S>>,
}

struct ViewInner<D: Freeze, S> {
    seq: u64,
    current: DeltaCell<D>,
    current_first: Epoch,
    frozen: Vec<FrozenLayer<D::FrozenView>>,
    snapshot: Arc<S>,
    snapshot_epoch: Epoch,
}

impl<D: Freeze, S> Clone for View<D, S> {
    fn clone(&self) -> Self {
        View {
            inner: self.inner.clone(),
        }
    }
}

impl<D: Freeze, S> View<D, S> {
    pub(crate) fn first(current: DeltaCell<D>, snapshot: Arc<S>) -> View<D, S> {
        View {
            inner: Arc::new(ViewInner {
                seq: 0,
                current,
                current_first: Epoch::FIRST,
                frozen: Vec::new(),
                snapshot,
                snapshot_epoch: Epoch::ZERO,
            }),
        }
    }

    /// The view after a freeze: `layer` (the old current delta) on top of the frozen layers,
    /// and `current` as the new current delta.
    pub(crate) fn after_freeze(
        &self,
        layer: FrozenLayer<D::FrozenView>,
        current: DeltaCell<D>,
    ) -> View<D, S> {
        let i = &self.inner;
        debug_assert_eq!(layer.epochs.first(), i.current_first);
        let current_first = layer.epochs.last().next();
        let mut frozen = Vec::with_capacity(i.frozen.len() + 1);
        frozen.push(layer);
        frozen.extend(i.frozen.iter().cloned());
        View {
            inner: Arc::new(ViewInner {
                seq: i.seq + 1,
                current,
                current_first,
                frozen,
                snapshot: i.snapshot.clone(),
                snapshot_epoch: i.snapshot_epoch,
            }),
        }
    }

    /// The view after the oldest frozen layer, holding `epochs`, was stored into `snapshot`.
    pub(crate) fn after_store(&self, epochs: EpochRange, snapshot: Arc<S>) -> View<D, S> {
        let i = &self.inner;
        let mut frozen = i.frozen.clone();
        let oldest = frozen.pop();
        debug_assert_eq!(oldest.map(|l| l.epochs), Some(epochs));
        View {
            inner: Arc::new(ViewInner {
                seq: i.seq + 1,
                current: i.current.clone(),
                current_first: i.current_first,
                frozen,
                snapshot,
                snapshot_epoch: epochs.last(),
            }),
        }
    }

    /// The view's number: 0 for the first, one more for each published after it.
    pub fn seq(&self) -> u64 {
        self.inner.seq
    }

    /// The first epoch the current delta holds (or will hold).
    pub fn current_first(&self) -> Epoch {
        self.inner.current_first
    }

    /// The frozen layers not yet stored, newest first.
    pub fn frozen(&self) -> &[FrozenLayer<D::FrozenView>] {
        &self.inner.frozen
    }

    /// The storage snapshot.
    pub fn snapshot(&self) -> &Arc<S> {
        &self.inner.snapshot
    }

    /// The last epoch the snapshot holds (`Epoch::ZERO` before the first store).
    pub fn snapshot_epoch(&self) -> Epoch {
        self.inner.snapshot_epoch
    }

    /// Locks the current delta for reading (the writer waits while the guard lives: keep it
    /// short, and do not take a second guard on the same thread while holding one).
    pub fn read(&self) -> ViewGuard<'_, D, S> {
        ViewGuard {
            view: self,
            current: self.inner.current.read(),
        }
    }
}

impl<D: Freeze, S> fmt::Debug for View<D, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("seq", &self.inner.seq)
            .field("current_first", &self.inner.current_first)
            .field("frozen", &self.inner.frozen)
            .field("snapshot_epoch", &self.inner.snapshot_epoch)
            .finish_non_exhaustive()
    }
}

/// A layer of a view, as [`ViewGuard::layers`] yields them.
pub enum Layer<'a, D: Freeze> {
    /// The delta being filled.
    Live(&'a D),
    /// A frozen delta.
    Frozen(&'a D::FrozenView),
}

impl<D: Freeze> fmt::Debug for Layer<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Live(_) => "Layer::Live",
            Layer::Frozen(_) => "Layer::Frozen",
        })
    }
}

/// A view with its current delta locked for reading: one fixed state to read from.
pub struct ViewGuard<'a, D: Freeze, S> {
    view: &'a View<D, S>,
    current: RwLockReadGuard<'a, CellState<D>>,
}

impl<'a, D: Freeze, S> ViewGuard<'a, D, S> {
    /// The delta layers, newest first: the current delta (live, or its frozen view if it was
    /// frozen since the view was taken), then the frozen layers. Look a key up in each in turn,
    /// then in [`snapshot`](Self::snapshot).
    pub fn layers(&self) -> impl Iterator<Item = Layer<'_, D>> + '_ {
        let top = match &*self.current {
            CellState::Live(d) => Some(Layer::Live(d)),
            CellState::Frozen(v) => Some(Layer::Frozen(&**v)),
            CellState::Moving => None,
        };
        top.into_iter().chain(
            self.view
                .inner
                .frozen
                .iter()
                .map(|l| Layer::Frozen(&*l.view)),
        )
    }

    /// The storage snapshot.
    pub fn snapshot(&self) -> &S {
        &self.view.inner.snapshot
    }
}

impl<D: Freeze, S> fmt::Debug for ViewGuard<'_, D, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewGuard")
            .field("view", self.view)
            .finish_non_exhaustive()
    }
}

/// Why [`Subscription::recv`] returned no view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The subscriber fell behind and views were dropped; it receives nothing more. Subscribe
    /// again (and read the current view) to catch up.
    #[error("subscriber lagged and missed {missed} views; subscribe again")]
    Lagged {
        /// Views not delivered.
        missed: u64,
    },
    /// The pipeline shut down: no view will come.
    #[error("the pipeline is shut down")]
    Closed,
}

struct SubState<D: Freeze, S> {
    queue: VecDeque<View<D, S>>,
    missed: u64,
    closed: bool,
}

struct SubSlot<D: Freeze, S> {
    state: Mutex<SubState<D, S>>,
    ready: Condvar,
    capacity: usize,
}

/// A feed of the views a pipeline publishes.
pub struct Subscription<D: Freeze, S> {
    slot: Arc<SubSlot<D, S>>,
}

impl<D: Freeze, S> Subscription<D, S> {
    /// The next view, blocking until one is published.
    pub fn recv(&self) -> Result<View<D, S>, SubscriptionError> {
        self.recv_until(None)
            .and_then(|v| v.ok_or(SubscriptionError::Closed))
    }

    /// The next view, or `Ok(None)` if none is published within `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<View<D, S>>, SubscriptionError> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    /// The next view if one is waiting.
    pub fn try_recv(&self) -> Result<Option<View<D, S>>, SubscriptionError> {
        self.recv_until(Some(Instant::now()))
    }

    fn recv_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<View<D, S>>, SubscriptionError> {
        let mut s = self.slot.state.lock();
        loop {
            if s.missed > 0 {
                return Err(SubscriptionError::Lagged { missed: s.missed });
            }
            if let Some(v) = s.queue.pop_front() {
                return Ok(Some(v));
            }
            if s.closed {
                return Err(SubscriptionError::Closed);
            }
            match deadline {
                None => self.slot.ready.wait(&mut s),
                Some(d) => {
                    if self.slot.ready.wait_until(&mut s, d).timed_out() {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

impl<D: Freeze, S> fmt::Debug for Subscription<D, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.slot.state.lock();
        f.debug_struct("Subscription")
            .field("queued", &s.queue.len())
            .field("missed", &s.missed)
            .finish_non_exhaustive()
    }
}

/// The current view and the subscribers.
pub(crate) struct Views<D: Freeze, S> {
    current: Mutex<View<D, S>>,
    subscribers: Mutex<Vec<Arc<SubSlot<D, S>>>>,
}

impl<D: Freeze, S> Views<D, S> {
    pub(crate) fn new(first: View<D, S>) -> Views<D, S> {
        Views {
            current: Mutex::new(first),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn load(&self) -> View<D, S> {
        self.current.lock().clone()
    }

    /// Replaces the current view with `next(current)` and tells the subscribers, all under
    /// the lock so that every subscriber sees the views in publication order.
    pub(crate) fn publish(&self, next: impl FnOnce(&View<D, S>) -> View<D, S>) {
        let mut cur = self.current.lock();
        let new = next(&cur);
        *cur = new.clone();
        self.subscribers.lock().retain(|slot| {
            let mut s = slot.state.lock();
            if s.queue.len() >= slot.capacity {
                s.missed = s.queue.len() as u64 + 1;
                s.queue.clear();
                drop(s);
                slot.ready.notify_all();
                return false;
            }
            s.queue.push_back(new.clone());
            drop(s);
            slot.ready.notify_all();
            // A subscriber that nobody holds any more is dropped here.
            Arc::strong_count(slot) > 1
        });
    }

    pub(crate) fn subscribe(&self, capacity: usize) -> Subscription<D, S> {
        let slot = Arc::new(SubSlot {
            state: Mutex::new(SubState {
                queue: VecDeque::new(),
                missed: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        });
        // Under the view lock, so no view is published between subscribing and a `load`.
        let _cur = self.current.lock();
        self.subscribers.lock().push(slot.clone());
        Subscription { slot }
    }

    pub(crate) fn close(&self) {
        for slot in self.subscribers.lock().drain(..) {
            slot.state.lock().closed = true;
            slot.ready.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::{Delta, Frozen};

    #[derive(Default)]
    struct Log(Vec<u64>);

    impl Delta for Log {
        type Write = u64;
        type Applied = ();
        fn apply(&mut self, _epoch: Epoch, w: u64) {
            self.0.push(w);
        }
        fn size_bytes(&self) -> usize {
            self.0.len()
        }
    }

    impl Freeze for Log {
        type Batch = ();
        type FrozenView = Vec<u64>;
        fn freeze(self) -> Frozen<Self> {
            Frozen {
                batch: (),
                view: self.0,
                next: Log::default(),
            }
        }
    }

    fn cell(items: &[u64]) -> DeltaCell<Log> {
        Arc::new(RwLock::new(CellState::Live(Log(items.to_vec()))))
    }

    fn contents(v: &View<Log, Vec<u64>>) -> Vec<u64> {
        let read = v.read();
        let mut layers: Vec<Vec<u64>> = read
            .layers()
            .map(|l| match l {
                Layer::Live(d) => d.0.clone(),
                Layer::Frozen(f) => f.clone(),
            })
            .collect();
        layers.reverse();
        let mut out = read.snapshot().clone();
        out.extend(layers.into_iter().flatten());
        out
    }

    fn range(a: u64, b: u64) -> EpochRange {
        EpochRange::new(Epoch::new(a), Epoch::new(b)).unwrap()
    }

    #[test]
    fn freeze_and_store_keep_the_layers_adjacent_and_each_write_once() {
        let first_cell = cell(&[1, 2]);
        let v0 = View::first(first_cell.clone(), Arc::new(Vec::new()));
        assert_eq!(contents(&v0), vec![1, 2]);

        // Freeze epochs 1..=2 the way the writer does.
        let frozen = Arc::new(vec![1, 2]);
        *first_cell.write() = CellState::Frozen(frozen.clone());
        let v1 = v0.after_freeze(FrozenLayer::new(range(1, 2), frozen), cell(&[3]));
        assert_eq!(v1.seq(), 1);
        assert_eq!(v1.current_first(), Epoch::new(3));
        assert_eq!(contents(&v1), vec![1, 2, 3]);
        // The old view reads the frozen delta where its live one was.
        assert_eq!(contents(&v0), vec![1, 2]);

        let v2 = v1.after_store(range(1, 2), Arc::new(vec![1, 2]));
        assert_eq!(v2.snapshot_epoch(), Epoch::new(2));
        assert!(v2.frozen().is_empty());
        assert_eq!(contents(&v2), vec![1, 2, 3]);
        assert_eq!(contents(&v1), vec![1, 2, 3]);
    }

    #[test]
    fn a_subscriber_that_overflows_is_told_how_much_it_missed_then_stops() {
        let views = Views::new(View::first(cell(&[]), Arc::new(Vec::<u64>::new())));
        let sub = views.subscribe(2);
        let next = |v: &View<Log, Vec<u64>>| v.after_store_for_test();
        views.publish(next);
        views.publish(next);
        views.publish(next);
        assert_eq!(
            sub.recv().err(),
            Some(SubscriptionError::Lagged { missed: 3 })
        );
        views.publish(next);
        assert_eq!(
            sub.try_recv().err(),
            Some(SubscriptionError::Lagged { missed: 3 })
        );
        let fresh = views.subscribe(2);
        views.publish(next);
        assert_eq!(fresh.recv().map(|v| v.seq()), Ok(5));
        views.close();
        assert_eq!(fresh.recv().err(), Some(SubscriptionError::Closed));
    }

    impl View<Log, Vec<u64>> {
        /// The same view with the next number (what any publish does to subscribers).
        fn after_store_for_test(&self) -> View<Log, Vec<u64>> {
            let i = &self.inner;
            View {
                inner: Arc::new(ViewInner {
                    seq: i.seq + 1,
                    current: i.current.clone(),
                    current_first: i.current_first,
                    frozen: i.frozen.clone(),
                    snapshot: i.snapshot.clone(),
                    snapshot_epoch: i.snapshot_epoch,
                }),
            }
        }
    }
}
