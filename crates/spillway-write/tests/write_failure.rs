//! Flush failures: one that passes on retry loses nothing and surprises no waiter; one that
//! never passes fails the pipeline, ends every wait with the error, and hands back every
//! applied write at shutdown.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod write_support;

use std::time::Duration;

use spillway_write::{Config, Durability, Epoch, ManualClock, RejectReason, RetryPolicy};
use write_support::*;

#[test]
fn a_flush_that_fails_once_is_retried_and_waiters_see_success() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    disk.set(|d| d.fail_next = 1);
    let ch = db.channel("a", 16);
    let handles: Vec<_> = (0..10).map(|i| ch.write((i, i)).unwrap()).collect();
    for h in &handles {
        h.wait_timeout(Durability::Durable, Duration::from_secs(10))
            .unwrap()
            .unwrap();
    }
    assert!(db.error().is_none());
    let d = disk.disk.lock();
    assert_eq!(d.failures, 1);
    let epochs: Vec<_> = d.writes.iter().map(|w| w.0.get()).collect();
    assert_eq!(epochs, (1..=10).collect::<Vec<_>>());
    drop(d);
    let out = db.shutdown();
    out.result.unwrap();
    assert!(out.unflushed.is_empty());
}

#[test]
fn retries_wait_their_backoff_on_the_pipeline_clock() {
    let clock = ManualClock::new();
    let config = Config {
        retry: RetryPolicy {
            max_retries: 1,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
        },
        ..quiet_config(&clock)
    };
    let (db, disk) = start(config);
    disk.set(|d| d.fail_next = 1);
    let ch = db.channel("a", 4);
    ch.write((1, 1)).unwrap();
    db.request_flush(false).unwrap();
    disk.wait_until("the first attempt to fail", |d| d.failures == 1);
    clock.advance(Duration::from_secs(29));
    // The retry has not run: the written mark has not moved and nothing is stored.
    let early = db.view().frozen().first().map(|l| l.epochs().first());
    assert_eq!(early, Some(Epoch::new(1)));
    assert!(disk.disk.lock().ranges.is_empty());
    clock.advance(Duration::from_secs(1));
    db.wait_for(Epoch::new(1), Durability::Written).unwrap();
    assert_eq!(disk.disk.lock().ranges.len(), 1);
    db.shutdown().result.unwrap();
}

#[test]
fn a_flush_that_always_fails_ends_every_wait_and_hands_back_every_applied_write() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 16);
    let parked = db.channel("parked", 4);
    parked.pause();
    let parked_handle = parked.write((99, 99)).unwrap();

    // Epochs 1..=5 are stored; then the disk breaks.
    let ok: Vec<_> = (0..5).map(|i| ch.write((i, i)).unwrap()).collect();
    assert_eq!(db.flush(false).unwrap(), Epoch::new(5));
    disk.set(|d| d.fail_always = true);
    let doomed: Vec<_> = (5..12).map(|i| ch.write((i, i)).unwrap()).collect();
    let err = db.flush(false).unwrap_err();
    assert!(matches!(err, Error::WriteFailed { first: 6, .. }), "{err}");

    // Every waiter of an unstored epoch gets the error; stored ones still succeed.
    for h in &ok {
        h.wait(Durability::Written).unwrap();
    }
    for h in &doomed {
        assert!(h.wait(Durability::Applied).unwrap() > Epoch::new(5));
        assert!(matches!(
            h.wait(Durability::Written),
            Err(Error::WriteFailed { first: 6, .. })
        ));
        assert!(
            h.wait_timeout(Durability::Durable, Duration::from_secs(10))
                .is_err()
        );
    }
    // A write parked in a paused channel when the pipeline failed is refused, not lost
    // silently: its handle says so.
    assert!(matches!(
        parked_handle.wait(Durability::Applied),
        Err(Error::WriteFailed { .. })
    ));
    // Every later call reports the failure.
    let refused = ch.try_write((50, 50)).unwrap_err();
    assert!(matches!(
        refused.reason,
        RejectReason::Stopped(Error::WriteFailed { .. })
    ));
    assert_eq!(refused.into_inner(), (50, 50));
    assert!(matches!(
        db.request_flush(true),
        Err(Error::WriteFailed { .. })
    ));
    assert!(matches!(
        db.wait_for(Epoch::new(6), Durability::Written),
        Err(Error::WriteFailed { .. })
    ));
    assert!(db.error().is_some());
    // Readers still see the unstored writes.
    let view = db.view();
    check_view_epochs(&view);
    assert_eq!(lookup(&view, 11), Some(11));
    drop(view);

    let failures_before = disk.disk.lock().failures;
    assert_eq!(failures_before, 3, "one attempt and two retries");
    let out = db.shutdown();
    assert!(matches!(out.result, Err(Error::WriteFailed { .. })));
    let handed_back: Vec<u64> = out
        .unflushed
        .iter()
        .flat_map(|u| u.batch.writes.iter().map(|w| w.0.get()))
        .collect();
    assert_eq!(handed_back, (6..=12).collect::<Vec<_>>());
    assert_eq!(out.unflushed[0].epochs.first(), Epoch::new(6));
    assert!(out.flusher.is_some());
    let d = disk.disk.lock();
    let stored: Vec<_> = d.writes.iter().map(|w| w.0.get()).collect();
    assert_eq!(stored, (1..=5).collect::<Vec<_>>());
}

#[test]
fn writes_applied_after_the_failure_are_handed_back_too() {
    let clock = ManualClock::new();
    let config = Config {
        retry: RetryPolicy::never(),
        ..quiet_config(&clock)
    };
    let (db, disk) = start(config);
    disk.set(|d| d.gate_closed = true);
    disk.set(|d| d.fail_always = true);
    let ch = db.channel("a", 16);
    ch.write((1, 1)).unwrap();
    db.request_flush(false).unwrap();
    disk.wait_until("the flush to start", |d| d.at_gate == 1);
    // Applied while the doomed flush is in progress.
    let late = ch.write((2, 2)).unwrap();
    late.wait(Durability::Applied).unwrap();
    disk.set(|d| d.gate_closed = false);
    assert!(late.wait(Durability::Written).is_err());
    let out = db.shutdown();
    assert!(out.result.is_err());
    let epochs: Vec<_> = out.unflushed.iter().map(|u| u.epochs.to_string()).collect();
    assert_eq!(epochs, vec!["1..=1", "2..=2"]);
}

#[test]
fn a_failed_sync_fails_the_pipeline_and_is_not_retried() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    disk.set(|d| d.fail_sync = true);
    let ch = db.channel("a", 4);
    let h = ch.write((1, 1)).unwrap();
    assert!(matches!(
        h.wait(Durability::Durable),
        Err(Error::WriteFailed { first: 1, .. })
    ));
    // It was written before the sync failed.
    assert_eq!(h.wait(Durability::Written).unwrap(), Epoch::new(1));
    assert!(db.error().is_some());
    let out = db.shutdown();
    assert!(out.result.is_err());
    assert!(
        out.unflushed.is_empty(),
        "written batches are not handed back"
    );
}
