//! Shutdown: every queued write is applied (paused channels included), every batch stored,
//! storage synced; afterwards writes are refused, waits end, subscribers are told.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod write_support;

use spillway_write::{Config, Durability, Epoch, ManualClock, RejectReason, SubscriptionError};
use write_support::*;

#[test]
fn shutdown_flushes_everything_queued_applied_or_frozen() {
    let clock = ManualClock::new();
    let config = Config {
        freeze_bytes: 16 * 3,
        max_frozen: 1,
        ..quiet_config(&clock)
    };
    let (db, disk) = start(config);
    let busy = db.channel("busy", 64);
    let paused = db.channel("paused", 8);
    paused.pause();
    let sub = db.subscribe();
    disk.set(|d| d.gate_closed = true);
    let mut handles: Vec<_> = (0..40).map(|i| busy.write((i, i)).unwrap()).collect();
    handles.extend((100..105).map(|i| paused.write((i, i)).unwrap()));
    // A batch is held at the gate: shutdown has frozen, queued and applied work to finish.
    disk.wait_until("a flush in progress", |d| d.at_gate == 1);
    let closer = std::thread::spawn(move || db.shutdown());
    disk.set(|d| d.gate_closed = false);
    let out = closer.join().unwrap();
    out.result.unwrap();
    assert!(out.unflushed.is_empty());

    let d = disk.disk.lock();
    let epochs: Vec<_> = d.writes.iter().map(|w| w.0.get()).collect();
    assert_eq!(epochs, (1..=45).collect::<Vec<_>>());
    assert!(
        d.map.contains_key(&104),
        "the paused channel's writes were applied"
    );
    assert_eq!(d.syncs, 1);
    drop(d);
    for h in &handles {
        assert!(h.wait(Durability::Durable).unwrap() <= Epoch::new(45));
    }

    let refused = busy.write((7, 7)).unwrap_err();
    assert!(matches!(
        refused.reason,
        RejectReason::Stopped(Error::Closed { .. })
    ));
    let mut last = None;
    loop {
        match sub.recv() {
            Ok(v) => last = Some(v),
            Err(e) => {
                assert_eq!(e, SubscriptionError::Closed);
                break;
            }
        }
    }
    let last = last.unwrap();
    assert_eq!(last.snapshot_epoch(), Epoch::new(45));
    assert!(last.frozen().is_empty());
}

#[test]
fn dropping_the_coordinator_shuts_it_down_cleanly() {
    let clock = ManualClock::new();
    let config = Config {
        sync_on_shutdown: false,
        ..quiet_config(&clock)
    };
    let (db, disk) = start(config);
    let ch = db.channel("a", 8);
    let h = ch.write((1, 1)).unwrap();
    drop(db);
    assert_eq!(h.wait(Durability::Written).unwrap(), Epoch::new(1));
    // Not synced (so configured), and the pipeline is gone: the wait ends with an error.
    assert!(matches!(
        h.wait(Durability::Durable),
        Err(Error::Closed { .. })
    ));
    assert_eq!(disk.disk.lock().syncs, 0);
}
