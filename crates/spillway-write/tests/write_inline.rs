//! Who does the work: a producer applies its own write when nothing is queued before it, a
//! blocked waiter stores and syncs its own write when no flush runs, and the background
//! threads serve what had to queue and the async waiters.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod write_support;

use std::sync::{Arc, Barrier};

use spillway_write::{Durability, Epoch, ManualClock};
use write_support::*;

#[test]
fn a_write_with_nothing_queued_before_it_comes_back_applied() {
    let clock = ManualClock::new();
    let (db, _disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 4);
    let h = ch.write((1, 10)).unwrap();
    assert_eq!(h.epoch(), Some(Epoch::new(1)));
    assert_eq!(h.take_result(), Some(Epoch::new(1)));
    assert_eq!(db.watermark(Durability::Applied), Epoch::new(1));
    assert_eq!(lookup(&db.view(), 1), Some(10));
    // Behind a queued write, a write queues too: order within and across channels holds.
    ch.pause();
    let parked = ch.write((2, 20)).unwrap();
    let other = db.channel("b", 4);
    let behind = other.write((3, 30)).unwrap();
    assert_eq!(parked.epoch(), None);
    assert_eq!(behind.epoch(), Some(Epoch::new(2)), "b has nothing queued");
    ch.resume();
    assert_eq!(parked.wait(Durability::Applied).unwrap(), Epoch::new(3));
    db.shutdown().result.unwrap();
}

#[test]
fn a_blocked_waiter_stores_and_syncs_its_own_write() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let db = Arc::new(db);
    let ch = db.channel("a", 4);
    let waiter = {
        let ch = ch.clone();
        std::thread::Builder::new()
            .name("waiter".into())
            .spawn(move || {
                let h = ch.write((1, 1)).unwrap();
                h.wait(Durability::Durable).unwrap()
            })
            .unwrap()
    };
    assert_eq!(waiter.join().unwrap(), Epoch::new(1));
    let d = disk.disk.lock();
    assert_eq!(d.stored_by, vec!["waiter".to_string()]);
    assert_eq!(d.synced_by, vec!["waiter".to_string()]);
    drop(d);
    Arc::into_inner(db).unwrap().shutdown().result.unwrap();
}

#[test]
fn an_async_waiter_is_served_by_the_background_threads() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 4);
    let h = ch.write((1, 1)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(h.wait_async(Durability::Durable)).unwrap(),
        Epoch::new(1)
    );
    let d = disk.disk.lock();
    assert_eq!(d.stored_by, vec!["test-flush".to_string()]);
    assert_eq!(d.synced_by, vec!["test-flush".to_string()]);
    drop(d);
    db.shutdown().result.unwrap();
}

#[test]
fn concurrent_durable_waiters_share_syncs_and_every_write_is_stored_once_in_order() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let threads = 8;
    let per_thread: u64 = 200;
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let ch = db.channel(format!("p{t}"), 4);
            let start = &start;
            s.spawn(move || {
                start.wait();
                for i in 0..per_thread {
                    let h = ch.write((t as u64, i)).unwrap();
                    let e = h.wait(Durability::Durable).unwrap();
                    assert!(e >= Epoch::new(1));
                }
            });
        }
    });
    let total = threads as u64 * per_thread;
    assert_eq!(db.watermark(Durability::Durable), Epoch::new(total));
    let d = disk.disk.lock();
    let epochs: Vec<u64> = d.writes.iter().map(|w| w.0.get()).collect();
    assert_eq!(epochs, (1..=total).collect::<Vec<_>>());
    assert!(d.syncs <= total, "one sync per write at most");
    for pair in d.ranges.windows(2) {
        assert_eq!(
            pair[0].last().next(),
            pair[1].first(),
            "stored ranges are contiguous"
        );
    }
    drop(d);
    db.shutdown().result.unwrap();
}
