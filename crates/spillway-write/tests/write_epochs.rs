//! Epochs: handed out from 1 without gaps, in apply order; stored in contiguous ranges, in
//! order; watermarks never run ahead of each other.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod write_support;

use std::collections::BTreeSet;
use std::time::Duration;

use spillway_write::{Config, Durability, Epoch};
use write_support::*;

#[test]
fn epochs_start_at_one_and_follow_apply_order() {
    let clock = spillway_write::ManualClock::new();
    let (db, _disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 8);
    for i in 0..20u64 {
        let h = ch.write((i, i)).unwrap();
        assert_eq!(h.wait(Durability::Applied).unwrap(), Epoch::new(i + 1));
        assert_eq!(h.take_result(), Some(Epoch::new(i + 1)));
        assert_eq!(h.take_result(), None, "the result is handed out once");
    }
    assert_eq!(db.watermark(Durability::Applied), Epoch::new(20));
    assert_eq!(db.watermark(Durability::Written), Epoch::ZERO);
    db.shutdown().result.unwrap();
}

#[test]
fn many_producers_get_distinct_contiguous_epochs_and_ranges_are_stored_in_order() {
    let config = Config {
        name: "epochs".into(),
        freeze_bytes: 16 * 37,
        freeze_interval: Some(Duration::from_millis(2)),
        max_frozen: 3,
        ..Config::default()
    };
    let (db, disk) = start(config);
    let producers = 4u64;
    let per = 500u64;
    let mut threads = Vec::new();
    for p in 0..producers {
        let ch = db.channel(format!("p{p}"), 16);
        threads.push(std::thread::spawn(move || {
            let mut epochs = Vec::new();
            for i in 0..per {
                let h = ch.write((p * per + i, i)).unwrap();
                // Every 50th write also waits for storage, to mix the demand trigger in.
                let level = if i % 50 == 0 {
                    Durability::Written
                } else {
                    Durability::Applied
                };
                epochs.push(h.wait(level).unwrap());
            }
            epochs
        }));
    }
    let mut all = BTreeSet::new();
    for t in threads {
        let epochs = t.join().unwrap();
        // One producer's writes are applied in the order it sent them.
        assert!(epochs.windows(2).all(|w| w[0] < w[1]));
        all.extend(epochs);
    }
    let n = producers * per;
    assert_eq!(all.len() as u64, n);
    assert_eq!(all.first(), Some(&Epoch::new(1)));
    assert_eq!(all.last(), Some(&Epoch::new(n)));

    let covered = db.flush(false).unwrap();
    assert_eq!(covered, Epoch::new(n));
    let out = db.shutdown();
    out.result.unwrap();
    let d = disk.disk.lock();
    assert!(
        d.ranges.len() > 1,
        "expected several batches, got {:?}",
        d.ranges
    );
    let mut next = Epoch::FIRST;
    for r in &d.ranges {
        assert_eq!(r.first(), next, "ranges not contiguous: {:?}", d.ranges);
        next = r.last().next();
    }
    assert_eq!(next, Epoch::new(n + 1));
    let stored: Vec<_> = d.writes.iter().map(|w| w.0).collect();
    let expected: Vec<_> = (1..=n).map(Epoch::new).collect();
    assert_eq!(stored, expected);
}

#[test]
fn watermarks_stay_ordered_while_they_move() {
    let config = Config {
        name: "marks".into(),
        freeze_bytes: 16 * 10,
        ..Config::default()
    };
    let (db, _disk) = start(config);
    let ch = db.channel("a", 4);
    let writer = std::thread::spawn(move || {
        for i in 0..2000u64 {
            ch.write((i % 7, i)).unwrap();
        }
    });
    let mut last = (Epoch::ZERO, Epoch::ZERO, Epoch::ZERO);
    while !writer.is_finished() {
        // Read in the order durable, written, applied so that a move in between can only
        // make the later reads larger.
        let durable = db.watermark(Durability::Durable);
        let written = db.watermark(Durability::Written);
        let applied = db.watermark(Durability::Applied);
        assert!(durable <= written && written <= applied);
        assert!(applied >= last.0 && written >= last.1 && durable >= last.2);
        last = (applied, written, durable);
    }
    writer.join().unwrap();
    let e = db.flush(true).unwrap();
    assert_eq!(e, Epoch::new(2000));
    assert_eq!(db.watermark(Durability::Durable), Epoch::new(2000));
    db.shutdown().result.unwrap();
}
