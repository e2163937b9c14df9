//! Test pieces shared by the `write_*` tests: a delta that records every write with its epoch,
//! and a flusher that records what it stored, can be held at a gate, and fails on command.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use spillway_write::{
    Config, Coordinator, Delta, Epoch, EpochRange, Flusher, Freeze, Frozen, Layer, ManualClock,
    RetryPolicy, View, ViewGuard, WriteChannel, WriteHandle,
};

/// What the test flusher fails with.
pub type DiskError = std::io::Error;

/// The pipeline's error in these tests.
pub type Error = spillway_write::Error<DiskError>;

/// Writing this key makes the delta panic.
pub const PANIC_KEY: u64 = u64::MAX;

/// A write: set `key` to `value`.
pub type Put = (u64, u64);

/// The delta: every write in order, and the latest value per key.
#[derive(Debug, Default)]
pub struct Table {
    pub writes: Vec<(Epoch, u64, u64)>,
    pub map: BTreeMap<u64, u64>,
}

/// A frozen table: its writes and its map.
#[derive(Debug)]
pub struct FrozenTable {
    pub writes: Vec<(Epoch, u64, u64)>,
    pub map: BTreeMap<u64, u64>,
}

impl Delta for Table {
    type Write = Put;
    type Applied = Epoch;

    fn apply(&mut self, epoch: Epoch, (k, v): Put) -> Epoch {
        assert_ne!(k, PANIC_KEY, "injected panic in the delta");
        self.writes.push((epoch, k, v));
        self.map.insert(k, v);
        epoch
    }

    fn size_bytes(&self) -> usize {
        self.writes.len() * 16
    }
}

impl Freeze for Table {
    type Batch = Arc<FrozenTable>;
    type FrozenView = Arc<FrozenTable>;

    fn freeze(self) -> Frozen<Self> {
        let t = Arc::new(FrozenTable {
            writes: self.writes,
            map: self.map,
        });
        Frozen {
            batch: t.clone(),
            view: t,
            next: Table::default(),
        }
    }
}

/// Storage as readers see it after a flush.
#[derive(Debug, Default)]
pub struct Snap {
    pub map: BTreeMap<u64, u64>,
    pub epoch: Epoch,
}

/// What the flusher did, shared with the test.
#[derive(Debug, Default)]
pub struct Disk {
    /// The epoch ranges stored, in order.
    pub ranges: Vec<EpochRange>,
    /// Every write stored.
    pub writes: Vec<(Epoch, u64, u64)>,
    pub map: BTreeMap<u64, u64>,
    pub syncs: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Fail this many next write attempts.
    pub fail_next: u64,
    /// Fail every write attempt.
    pub fail_always: bool,
    /// At most this many `fail_next` failures per batch (so that a test can stay within the
    /// retry policy however its injections fall).
    pub fail_cap_per_batch: Option<u64>,
    /// The batch being attempted and how many times it failed.
    pub attempts: Option<(Epoch, u64)>,
    /// Fail every sync.
    pub fail_sync: bool,
    /// While true, `write` blocks (to hold a batch in flight).
    pub gate_closed: bool,
    /// Writes that are blocked at the gate right now.
    pub at_gate: u64,
    /// Panic in the next write.
    pub panic_next: bool,
    /// The name of the thread that stored each batch, and that ran each sync.
    pub stored_by: Vec<String>,
    pub synced_by: Vec<String>,
}

/// The calling thread's name.
pub fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned()
}

#[derive(Debug, Default)]
pub struct DiskCell {
    pub disk: Mutex<Disk>,
    pub changed: Condvar,
}

impl DiskCell {
    /// Blocks until `cond` holds on the disk (panics after 10 s, so that a bug fails instead of
    /// hanging).
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut(&Disk) -> bool) {
        let mut d = self.disk.lock();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cond(&d) {
            assert!(
                !self.changed.wait_until(&mut d, deadline).timed_out() || cond(&d),
                "timed out waiting for {what}: {d:?}"
            );
        }
    }

    pub fn set(&self, f: impl FnOnce(&mut Disk)) {
        f(&mut self.disk.lock());
        self.changed.notify_all();
    }
}

/// The flusher over a shared [`DiskCell`].
#[derive(Debug, Clone, Default)]
pub struct TestFlusher {
    pub cell: Arc<DiskCell>,
}

impl Flusher for TestFlusher {
    type Batch = Arc<FrozenTable>;
    type Snapshot = Snap;
    type Error = DiskError;

    fn write(&mut self, batch: &Arc<FrozenTable>, epochs: EpochRange) -> Result<Snap, DiskError> {
        let mut d = self.cell.disk.lock();
        d.at_gate += 1;
        self.cell.changed.notify_all();
        // A test that panics with the gate closed must not hang its coordinator's shutdown:
        // the gate opens by itself after a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while d.gate_closed {
            if self.cell.changed.wait_until(&mut d, deadline).timed_out() {
                d.gate_closed = false;
            }
        }
        d.at_gate -= 1;
        if std::mem::take(&mut d.panic_next) {
            drop(d);
            panic!("injected panic in the flusher");
        }
        let failed_before = match d.attempts {
            Some((first, n)) if first == epochs.first() => n,
            _ => 0,
        };
        let capped = d.fail_cap_per_batch.is_some_and(|cap| failed_before >= cap);
        if d.fail_always || (d.fail_next > 0 && !capped) {
            d.fail_next = d.fail_next.saturating_sub(1);
            d.failures += 1;
            d.attempts = Some((epochs.first(), failed_before + 1));
            self.cell.changed.notify_all();
            return Err(DiskError::other("injected failure"));
        }
        assert_eq!(batch.writes.first().map(|w| w.0), Some(epochs.first()));
        assert_eq!(batch.writes.last().map(|w| w.0), Some(epochs.last()));
        d.ranges.push(epochs);
        d.stored_by.push(thread_name());
        d.writes.extend(batch.writes.iter().copied());
        for (k, v) in &batch.map {
            d.map.insert(*k, *v);
        }
        let snap = Snap {
            map: d.map.clone(),
            epoch: epochs.last(),
        };
        self.cell.changed.notify_all();
        Ok(snap)
    }

    fn sync(&mut self) -> Result<(), DiskError> {
        let mut d = self.cell.disk.lock();
        if d.fail_sync {
            return Err(DiskError::other("injected sync failure"));
        }
        d.syncs += 1;
        d.synced_by.push(thread_name());
        self.cell.changed.notify_all();
        Ok(())
    }
}

pub type Db = Coordinator<Table, TestFlusher>;

/// A channel into a [`Db`].
pub type Channel = WriteChannel<Put, Epoch, DiskError>;

/// The handle of a write into a [`Db`].
pub type Handle = WriteHandle<Epoch, DiskError>;

/// A config with no size or timer trigger, no retry backoff and a manual clock.
pub fn quiet_config(clock: &ManualClock) -> Config {
    Config {
        name: "test".into(),
        freeze_bytes: usize::MAX,
        freeze_interval: None,
        retry: RetryPolicy {
            max_retries: 2,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        },
        clock: Arc::new(clock.clone()),
        ..Config::default()
    }
}

pub fn start(config: Config) -> (Db, Arc<DiskCell>) {
    let flusher = TestFlusher::default();
    let cell = flusher.cell.clone();
    let db = Coordinator::start(Table::default(), flusher, Snap::default(), config).unwrap();
    (db, cell)
}

/// A key's value as a view shows it: the newest layer that has it wins. The current delta
/// is live, so two calls may see different states: use [`lookup_in`] for several keys at once.
pub fn lookup(view: &View<Table, Snap>, key: u64) -> Option<u64> {
    lookup_in(&view.read(), key)
}

/// A key's value in one fixed state of a view.
pub fn lookup_in(read: &ViewGuard<'_, Table, Snap>, key: u64) -> Option<u64> {
    for layer in read.layers() {
        let found = match layer {
            Layer::Live(t) => t.map.get(&key).copied(),
            Layer::Frozen(t) => t.map.get(&key).copied(),
        };
        if found.is_some() {
            return found;
        }
    }
    read.snapshot().map.get(&key).copied()
}

/// Every write a view holds, oldest first, with the epochs checked for gaps and repeats.
pub fn view_writes(view: &View<Table, Snap>, stored: &Disk) -> Vec<(Epoch, u64, u64)> {
    let read = view.read();
    let mut out: Vec<_> = stored
        .writes
        .iter()
        .copied()
        .filter(|w| w.0 <= view.snapshot_epoch())
        .collect();
    let mut layers: Vec<Vec<(Epoch, u64, u64)>> = read
        .layers()
        .map(|l| match l {
            Layer::Live(t) => t.writes.clone(),
            Layer::Frozen(t) => t.writes.clone(),
        })
        .collect();
    layers.reverse();
    for l in layers {
        out.extend(l);
    }
    for (i, w) in out.iter().enumerate() {
        assert_eq!(
            w.0,
            Epoch::new(i as u64 + 1),
            "a view skips or repeats an epoch"
        );
    }
    out
}

/// Checks the epoch arithmetic of a view: snapshot, then frozen ranges oldest to newest, then
/// the current delta, adjacent and without overlap.
pub fn check_view_epochs(view: &View<Table, Snap>) {
    let mut next = view.snapshot_epoch().next();
    assert_eq!(view.snapshot().epoch, view.snapshot_epoch());
    for layer in view.frozen().iter().rev() {
        assert_eq!(
            layer.epochs().first(),
            next,
            "frozen layers not adjacent: {view:?}"
        );
        next = layer.epochs().last().next();
    }
    assert_eq!(
        view.current_first(),
        next,
        "current delta not adjacent: {view:?}"
    );
}
