//! Views: writes made while a flush runs are visible; subscribers see each view in order and
//! are told when they lag; readers never see a torn view while writers, freezes and flushes
//! run.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod write_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use spillway_write::{Config, Durability, Epoch, ManualClock, SubscriptionError};
use write_support::*;

#[test]
fn writes_made_during_a_flush_are_visible_in_the_view() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 8);
    disk.set(|d| d.gate_closed = true);
    ch.write((1, 10)).unwrap();
    let covered = db.request_flush(false).unwrap();
    assert_eq!(covered, Epoch::new(1));
    disk.wait_until("the flush to start", |d| d.at_gate == 1);

    // The flush of epoch 1 is held; the next delta fills meanwhile.
    ch.write((2, 20))
        .unwrap()
        .wait(Durability::Applied)
        .unwrap();
    ch.write((1, 11))
        .unwrap()
        .wait(Durability::Applied)
        .unwrap();
    let view = db.view();
    check_view_epochs(&view);
    assert_eq!(view.frozen().len(), 1);
    assert_eq!(lookup(&view, 1), Some(11), "the newest layer wins");
    assert_eq!(lookup(&view, 2), Some(20));
    assert_eq!(view.snapshot_epoch(), Epoch::ZERO);
    assert_eq!(db.watermark(Durability::Written), Epoch::ZERO);

    disk.set(|d| d.gate_closed = false);
    db.wait_for(Epoch::new(1), Durability::Written).unwrap();
    let after = db.view();
    check_view_epochs(&after);
    assert_eq!(after.snapshot_epoch(), Epoch::new(1));
    assert!(after.frozen().is_empty());
    assert_eq!(lookup(&after, 1), Some(11));
    // The old view still reads as it did: its frozen layer is kept alive by it.
    assert_eq!(lookup(&view, 1), Some(11));
    assert_eq!(view.frozen().len(), 1);
    db.shutdown().result.unwrap();
}

#[test]
fn a_view_taken_before_a_freeze_still_sees_each_write_once() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 8);
    disk.set(|d| d.gate_closed = true);
    for i in 0..3 {
        ch.write((i, i)).unwrap();
    }
    db.wait_for(Epoch::new(3), Durability::Applied).unwrap();
    let before = db.view();
    assert_eq!(view_writes(&before, &disk.disk.lock()).len(), 3);
    db.request_flush(false).unwrap();
    ch.write((9, 9)).unwrap().wait(Durability::Applied).unwrap();
    // The old view's current delta is now frozen: it reads through the frozen view, and does
    // not see the write made in the new delta.
    assert_eq!(view_writes(&before, &disk.disk.lock()).len(), 3);
    assert_eq!(view_writes(&db.view(), &disk.disk.lock()).len(), 4);
    disk.set(|d| d.gate_closed = false);
    db.shutdown().result.unwrap();
}

#[test]
fn subscribers_get_each_view_in_order_and_a_lagging_one_is_told() {
    let clock = ManualClock::new();
    let config = Config {
        subscriber_capacity: 3,
        ..quiet_config(&clock)
    };
    let (db, _disk) = start(config);
    let ch = db.channel("a", 8);
    let keen = db.subscribe();
    let slow = db.subscribe();
    let mut seen = Vec::new();
    for i in 0..4u64 {
        ch.write((i, i)).unwrap();
        db.flush(false).unwrap();
        // A freeze and a store: two views per flush.
        for _ in 0..2 {
            let v = keen.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            check_view_epochs(&v);
            seen.push(v.seq());
        }
    }
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());
    assert_eq!(keen.try_recv().unwrap().map(|v| v.seq()), None);
    assert_eq!(
        slow.recv().err(),
        Some(SubscriptionError::Lagged { missed: 4 })
    );
    // Lagged for good; subscribe again to catch up.
    assert!(matches!(
        slow.try_recv(),
        Err(SubscriptionError::Lagged { .. })
    ));
    let again = db.subscribe();
    ch.write((9, 9)).unwrap();
    db.flush(false).unwrap();
    assert_eq!(again.recv().unwrap().seq(), 9);
    db.shutdown().result.unwrap();
    assert_eq!(again.recv().map(|v| v.seq()), Ok(10));
    assert_eq!(
        again.recv().map(|v| v.seq()),
        Err(SubscriptionError::Closed)
    );
}

/// Writers each cycle through four keys of their own, writing 1, 2, 3, ... in turn, so a view
/// that is a whole prefix of the epoch order shows, per writer, the last four values it wrote:
/// `n-3..=n`. A view that lost a layer, kept a stale one, or mixed a stale snapshot with a newer
/// frozen list shows an older value on some key, or progress going backwards. Eight accounts
/// written once at the start must keep their values through every freeze and store.
fn writers_progress_is_seen_whole(
    writers: usize,
    per_writer: usize,
    freeze_bytes: usize,
    max_frozen: usize,
) {
    const ACCOUNTS: u64 = 8;
    const START: u64 = 1_000;
    let config = Config {
        name: "progress".into(),
        freeze_bytes,
        freeze_interval: Some(Duration::from_micros(200)),
        max_frozen,
        ..Config::default()
    };
    let (db, disk) = start(config);
    let setup = db.channel("setup", ACCOUNTS as usize);
    for a in 0..ACCOUNTS {
        setup.write((a, START)).unwrap();
    }
    db.flush(false).unwrap();

    let db = Arc::new(db);
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..writers {
        let ch = db.channel(format!("w{w}"), 4);
        threads.push(std::thread::spawn(move || {
            for i in 1..=per_writer as u64 {
                // Key per (writer, i mod 4); value = i: a writer's counters only rise.
                let key = 100 + (w as u64) * 4 + i % 4;
                ch.write((key, i)).unwrap();
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2 {
        let db = db.clone();
        let stop = stop.clone();
        let disk = disk.clone();
        readers.push(std::thread::spawn(move || {
            let mut checks = 0u64;
            let mut last_seen = vec![0u64; writers];
            while !stop.load(Ordering::Relaxed) || checks == 0 {
                let view = db.view();
                check_view_epochs(&view);
                let read = view.read();
                let total: u64 = (0..ACCOUNTS)
                    .map(|a| lookup_in(&read, a).unwrap_or(0))
                    .sum();
                assert_eq!(total, ACCOUNTS * START, "reader {r}: lost an account");
                for (w, last) in last_seen.iter_mut().enumerate() {
                    let vals: Vec<u64> = (0..4)
                        .map(|k| lookup_in(&read, 100 + (w as u64) * 4 + k).unwrap_or(0))
                        .collect();
                    let hi = vals.iter().copied().max().unwrap_or(0);
                    let lo = vals.iter().copied().min().unwrap_or(0);
                    assert!(hi >= *last, "writer {w} went back {last} -> {hi}");
                    if hi >= 4 {
                        assert_eq!(hi - lo, 3, "writer {w} torn: {vals:?} in {view:?}");
                    }
                    *last = hi;
                }
                drop(read);
                // Every write of the view, from storage to the current delta, once each.
                let all = view_writes(&view, &disk.disk.lock());
                assert!(all.len() as u64 >= ACCOUNTS);
                checks += 1;
            }
            checks
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let db = Arc::into_inner(db).unwrap();
    // The writers' last writes may still be queued: a flush covers them.
    db.flush(false).unwrap();
    let final_view = db.view();
    for w in 0..writers as u64 {
        let hi = (0..4)
            .map(|k| lookup(&final_view, 100 + w * 4 + k).unwrap())
            .max();
        assert_eq!(hi, Some(per_writer as u64));
    }
    drop(final_view);
    db.shutdown().result.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn readers_never_see_a_torn_view(
        writers in 1usize..4,
        per_writer in 50usize..400,
        freeze_bytes in 16usize..2_000,
        max_frozen in 1usize..4,
    ) {
        writers_progress_is_seen_whole(writers, per_writer, freeze_bytes, max_frozen);
    }
}
