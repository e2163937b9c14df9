//! Each freeze trigger on its own: size, interval (on a manual clock, without sleeping),
//! explicit flush, a waiter's demand, shutdown.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod write_support;

use std::time::Duration;

use spillway_write::{Durability, Epoch, ManualClock};
use write_support::*;

/// The writer has applied everything up to `epoch` and then had a chance to look at its
/// triggers again (an explicit no-op round trip through it would freeze; waiting on `Applied`
/// of a later write is the barrier).
fn applied(db: &Db, epoch: u64) {
    db.wait_for(Epoch::new(epoch), Durability::Applied).unwrap();
}

#[test]
fn size_trigger_freezes_when_the_delta_reaches_the_threshold() {
    let clock = ManualClock::new();
    let config = spillway_write::Config {
        freeze_bytes: 16 * 5,
        ..quiet_config(&clock)
    };
    let (db, disk) = start(config);
    let ch = db.channel("a", 16);
    for i in 0..4 {
        ch.write((i, i)).unwrap();
    }
    applied(&db, 4);
    assert!(
        disk.disk.lock().ranges.is_empty(),
        "froze below the threshold"
    );
    assert_eq!(db.view().frozen().len(), 0);
    ch.write((4, 4)).unwrap();
    disk.wait_until("the first batch", |d| d.ranges.len() == 1);
    assert_eq!(
        disk.disk.lock().ranges[0],
        spillway_write::EpochRange::new(Epoch::new(1), Epoch::new(5)).unwrap()
    );
    for i in 5..12 {
        ch.write((i, i)).unwrap();
    }
    disk.wait_until("the second batch", |d| d.ranges.len() == 2);
    assert_eq!(disk.disk.lock().ranges[1].len(), 5);
    applied(&db, 12);
    // Two writes left below the threshold stay in the current delta.
    assert_eq!(db.view().current_first(), Epoch::new(11));
    db.shutdown().result.unwrap();
}

#[test]
fn interval_trigger_fires_exactly_when_the_manual_clock_reaches_it() {
    let clock = ManualClock::new();
    let config = spillway_write::Config {
        freeze_interval: Some(Duration::from_secs(10)),
        ..quiet_config(&clock)
    };
    let (db, disk) = start(config);
    let ch = db.channel("a", 16);

    // No write: time passing freezes nothing.
    clock.advance(Duration::from_secs(60));
    ch.write((1, 1)).unwrap().wait(Durability::Applied).unwrap();
    // The timer starts at the delta's first write.
    clock.advance(Duration::from_secs(9));
    ch.write((2, 2)).unwrap().wait(Durability::Applied).unwrap();
    // The writer has looked at its timer after both moves (it applied a write since), and
    // the clock is 1 s short.
    assert!(disk.disk.lock().ranges.is_empty());
    assert_eq!(db.view().seq(), 0, "no view was published");

    clock.advance(Duration::from_secs(1));
    disk.wait_until("the timer's batch", |d| d.ranges.len() == 1);
    assert_eq!(disk.disk.lock().ranges[0].len(), 2);
    db.wait_for(Epoch::new(2), Durability::Written).unwrap();

    // The next delta's timer starts at its own first write.
    ch.write((3, 3)).unwrap().wait(Durability::Applied).unwrap();
    clock.advance(Duration::from_secs(5));
    ch.write((4, 4)).unwrap().wait(Durability::Applied).unwrap();
    assert_eq!(disk.disk.lock().ranges.len(), 1);
    clock.advance(Duration::from_secs(5));
    disk.wait_until("the second timer batch", |d| d.ranges.len() == 2);
    assert_eq!(disk.disk.lock().ranges[1].first(), Epoch::new(3));
    db.shutdown().result.unwrap();
}

#[test]
fn explicit_flush_covers_every_queued_write_and_returns_its_epoch() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 64);
    let handles: Vec<_> = (0..50).map(|i| ch.write((i, i)).unwrap()).collect();
    // The writes may not all be applied yet: the flush still covers them, being queued.
    let e = db.flush(false).unwrap();
    assert_eq!(e, Epoch::new(50));
    for h in &handles {
        assert!(h.wait(Durability::Written).unwrap() <= e);
    }
    assert_eq!(disk.disk.lock().writes.len(), 50);
    assert_eq!(disk.disk.lock().syncs, 0);
    // A flush with nothing new returns the same epoch, and a durable one syncs.
    assert_eq!(db.flush(true).unwrap(), e);
    assert_eq!(db.watermark(Durability::Durable), e);
    assert_eq!(disk.disk.lock().syncs, 1);
    assert_eq!(disk.disk.lock().ranges.len(), 1);
    db.shutdown().result.unwrap();
}

#[test]
fn flush_of_an_empty_pipeline_covers_epoch_zero() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    assert_eq!(db.flush(true).unwrap(), Epoch::ZERO);
    assert!(disk.disk.lock().ranges.is_empty());
    db.shutdown().result.unwrap();
}

#[test]
fn a_waiter_that_needs_storage_triggers_a_freeze_by_itself() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 8);
    ch.write((1, 1)).unwrap().wait(Durability::Applied).unwrap();
    assert!(disk.disk.lock().ranges.is_empty());
    let h = ch.write((2, 2)).unwrap();
    assert_eq!(h.wait(Durability::Written).unwrap(), Epoch::new(2));
    assert_eq!(disk.disk.lock().ranges.len(), 1);
    let h = ch.write((3, 3)).unwrap();
    assert_eq!(h.wait(Durability::Durable).unwrap(), Epoch::new(3));
    assert_eq!(disk.disk.lock().syncs, 1);
    db.shutdown().result.unwrap();
}

#[test]
fn async_wait_demands_and_resolves() {
    let clock = ManualClock::new();
    let (db, _disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 8);
    let h = ch.write((1, 1)).unwrap();
    let e = block_on(h.wait_async(Durability::Durable)).unwrap();
    assert_eq!(e, Epoch::new(1));
    block_on(db.wait_for_async(e, Durability::Written)).unwrap();
    db.shutdown().result.unwrap();
}

#[test]
fn shutdown_freezes_and_stores_the_current_delta_and_syncs() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 8);
    let h = ch.write((1, 1)).unwrap();
    h.wait(Durability::Applied).unwrap();
    let out = db.shutdown();
    out.result.unwrap();
    assert!(out.unflushed.is_empty());
    assert_eq!(h.wait(Durability::Durable).unwrap(), Epoch::new(1));
    let d = disk.disk.lock();
    assert_eq!(d.writes.len(), 1);
    assert_eq!(d.syncs, 1);
}

/// A minimal executor: polls on this thread, parks between wake-ups.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "future never resolved"
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}
