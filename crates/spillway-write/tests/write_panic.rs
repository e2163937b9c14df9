//! A panic in user code (the delta or the flusher) stops the pipeline without stranding
//! anyone: waiters, flushes and later writes get an error, and shutdown returns.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod write_support;

use spillway_write::{Durability, Epoch, Failure, ManualClock, RejectReason};
use write_support::*;

/// A pipeline with write 1 stored and write 2 applied.
fn one_stored_one_applied() -> (Db, std::sync::Arc<DiskCell>, Channel, Handle) {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 8);
    ch.write((1, 1)).unwrap();
    assert_eq!(db.flush(false).unwrap(), Epoch::new(1));
    let applied = ch.write((2, 2)).unwrap();
    applied.wait(Durability::Applied).unwrap();
    (db, disk, ch, applied)
}

/// Checks that the pipeline failed with a panic and that only the first write was stored.
fn check_failed_by_a_panic(db: Db, disk: &DiskCell, ch: &Channel, applied: &Handle) {
    assert!(matches!(
        applied.wait(Durability::Written),
        Err(Error::WriteFailed { .. })
    ));
    assert!(matches!(
        db.request_flush(false),
        Err(Error::WriteFailed { .. })
    ));
    let refused = ch.try_write((3, 3)).unwrap_err();
    assert!(matches!(refused.reason, RejectReason::Stopped(_)));
    let out = db.shutdown();
    let err = out.result.unwrap_err();
    let Error::WriteFailed { cause, .. } = &err else {
        panic!("unexpected error {err}");
    };
    assert!(matches!(cause, Failure::Panicked { .. }), "{cause}");
    // The delta the panic broke is lost, not handed back; what was stored stays stored.
    assert!(out.unflushed.is_empty());
    assert_eq!(disk.disk.lock().writes.len(), 1);
}

#[test]
fn a_panic_in_the_delta_on_the_producers_thread_fails_the_pipeline_and_ends_every_wait() {
    let (db, disk, ch, applied) = one_stored_one_applied();
    // Nothing is queued, so the producer applies its write itself, and the panic is its own.
    let boom = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ch.write((PANIC_KEY, 0))));
    assert!(boom.is_err());
    check_failed_by_a_panic(db, &disk, &ch, &applied);
}

#[test]
fn a_panic_in_the_delta_on_the_writer_thread_fails_the_pipeline_and_ends_every_wait() {
    let (db, disk, ch, applied) = one_stored_one_applied();
    // Queued behind a pause, the write is the writer thread's to apply.
    ch.pause();
    let boom = ch.write((PANIC_KEY, 0)).unwrap();
    ch.resume();
    assert!(boom.wait(Durability::Applied).is_err());
    check_failed_by_a_panic(db, &disk, &ch, &applied);
}

#[test]
fn a_panic_in_the_flusher_hands_the_batch_back() {
    let clock = ManualClock::new();
    let (db, disk) = start(quiet_config(&clock));
    let ch = db.channel("a", 8);
    disk.set(|d| d.panic_next = true);
    let h = ch.write((1, 1)).unwrap();
    assert!(matches!(db.flush(false), Err(Error::WriteFailed { .. })));
    assert!(h.wait(Durability::Written).is_err());
    assert_eq!(h.wait(Durability::Applied).unwrap(), Epoch::new(1));
    let out = db.shutdown();
    assert!(out.result.is_err());
    assert!(
        out.flusher.is_none(),
        "the flusher went down with its thread"
    );
    assert_eq!(out.unflushed.len(), 1);
    assert_eq!(out.unflushed[0].batch.writes, vec![(Epoch::new(1), 1, 1)]);
}
