//! Simulation: a seeded driver interleaves writes on several channels, pauses, flushes,
//! clock moves, waits, recoverable flush failures and (in some runs) a permanent failure,
//! checking the pipeline's invariants after each step and the fate of every write at the end.
//!
//! The operation sequence is a function of the seed; the pipeline's two threads still run on
//! the OS scheduler, so a seed replays the same operations, not the same thread interleaving.
//! The checks hold for every interleaving. Set `SPILLWAY_SIM_SEED` to run one seed.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod write_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spillway_write::{Config, Durability, Epoch, ManualClock, RejectReason};
use write_support::*;

struct Sent {
    channel: usize,
    key: u64,
    value: u64,
    handle: Handle,
}

fn level(rng: &mut StdRng) -> Durability {
    match rng.random_range(0..3) {
        0 => Durability::Applied,
        1 => Durability::Written,
        _ => Durability::Durable,
    }
}

fn run(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let clock = ManualClock::new();
    let config = Config {
        name: format!("sim-{seed}"),
        freeze_bytes: 16 * rng.random_range(1..30),
        freeze_interval: Some(Duration::from_secs(10)),
        max_frozen: rng.random_range(1..4),
        writer_batch: rng.random_range(1..64),
        ..quiet_config(&clock)
    };
    let (db, disk) = start(config);
    // Within the retry policy (two retries): injected failures alone never fail the pipeline.
    disk.set(|d| d.fail_cap_per_batch = Some(2));
    let channels: Vec<_> = (0..3)
        .map(|c| db.channel(format!("c{c}"), rng.random_range(1..8)))
        .collect();
    let fatal_at = rng.random_bool(0.3).then(|| rng.random_range(0..300));
    let mut failed = false;
    let mut sent: Vec<Sent> = Vec::new();
    let mut acked_written = BTreeSet::new();
    let ctx = |step: usize| format!("seed {seed} step {step}");

    for step in 0..300 {
        if fatal_at == Some(step) {
            disk.set(|d| d.fail_always = true);
        }
        match rng.random_range(0..100) {
            0..50 => {
                let c = rng.random_range(0..channels.len());
                let key = sent.len() as u64 + 1_000;
                let value = rng.random_range(0..1_000_000);
                match channels[c].try_write((key, value)) {
                    Ok(handle) => sent.push(Sent {
                        channel: c,
                        key,
                        value,
                        handle,
                    }),
                    Err(r) => {
                        assert_eq!(r.write, (key, value), "{}", ctx(step));
                        match r.reason {
                            RejectReason::Full => {}
                            RejectReason::Stopped(Error::WriteFailed { .. }) => failed = true,
                            other => panic!("{}: unexpected rejection {other:?}", ctx(step)),
                        }
                    }
                }
            }
            50..60 => {
                let c = rng.random_range(0..channels.len());
                if channels[c].is_paused() {
                    channels[c].resume();
                } else {
                    channels[c].pause();
                }
            }
            60..68 => match db.request_flush(rng.random_bool(0.3)) {
                Ok(e) => assert!(e <= db.watermark(Durability::Applied), "{}", ctx(step)),
                Err(Error::WriteFailed { .. }) => failed = true,
                Err(e) => panic!("{}: {e}", ctx(step)),
            },
            68..76 => clock.advance(Duration::from_secs(rng.random_range(0..15))),
            76..82 => {
                let n = rng.random_range(1..3);
                disk.set(|d| d.fail_next = n);
            }
            82..92 if !sent.is_empty() => {
                let i = rng.random_range(0..sent.len());
                let lvl = level(&mut rng);
                // A write parked in a paused channel is not applied until a resume: wait only
                // briefly for it.
                let parked =
                    channels[sent[i].channel].is_paused() && sent[i].handle.epoch().is_none();
                let timeout = Duration::from_millis(if parked { 5 } else { 10_000 });
                match sent[i].handle.wait_timeout(lvl, timeout) {
                    Ok(Some(e)) => {
                        if lvl >= Durability::Written {
                            acked_written.insert(e);
                        }
                    }
                    // Still queued in a paused channel.
                    Ok(None) => assert!(parked, "{}: a wait timed out", ctx(step)),
                    Err(Error::WriteFailed { .. }) => failed = true,
                    Err(e) => panic!("{}: {e}", ctx(step)),
                }
            }
            _ => {
                let view = db.view();
                check_view_epochs(&view);
                let all = view_writes(&view, &disk.disk.lock());
                drop(view);
                // The view's writes are what was sent, at the epochs the handles report.
                let by_key: BTreeMap<u64, &Sent> = sent.iter().map(|s| (s.key, s)).collect();
                for (e, k, v) in all {
                    let s = by_key[&k];
                    assert_eq!(s.value, v, "{}", ctx(step));
                    // (The ticket is completed just after the write becomes visible.)
                    let applied = s
                        .handle
                        .wait_timeout(Durability::Applied, Duration::from_secs(10));
                    assert_eq!(applied.unwrap(), Some(e), "{}", ctx(step));
                }
            }
        }
        let durable = db.watermark(Durability::Durable);
        let written = db.watermark(Durability::Written);
        let applied = db.watermark(Durability::Applied);
        assert!(durable <= written && written <= applied, "{}", ctx(step));
        if db.error().is_some() {
            failed = true;
            assert!(
                fatal_at.is_some_and(|f| f <= step),
                "{}: failed without cause",
                ctx(step)
            );
        }
    }

    for c in &channels {
        c.resume();
    }
    let out = db.shutdown();
    if failed {
        assert!(out.result.is_err(), "seed {seed}");
    }
    if fatal_at.is_none() {
        out.result.as_ref().unwrap();
    }
    if out.result.is_ok() {
        assert!(out.unflushed.is_empty());
    }

    // Every applied write is stored or handed back, once, in epoch order; every write the
    // pipeline did not apply was refused to its handle.
    let d = disk.disk.lock();
    let mut fate: Vec<(Epoch, u64, u64)> = d.writes.clone();
    for u in &out.unflushed {
        fate.extend(u.batch.writes.iter().copied());
    }
    for (i, w) in fate.iter().enumerate() {
        assert_eq!(w.0, Epoch::new(i as u64 + 1), "seed {seed}: gap or repeat");
    }
    let by_epoch: BTreeMap<Epoch, (u64, u64)> = fate.iter().map(|w| (w.0, (w.1, w.2))).collect();
    let mut applied = 0;
    for s in &sent {
        match s.handle.epoch() {
            Some(e) => {
                applied += 1;
                assert_eq!(by_epoch.get(&e), Some(&(s.key, s.value)), "seed {seed}");
            }
            None => {
                assert!(
                    out.result.is_err(),
                    "seed {seed}: a write neither applied nor refused"
                );
                assert!(s.handle.wait(Durability::Applied).is_err());
            }
        }
    }
    assert_eq!(applied, fate.len(), "seed {seed}");
    let stored: BTreeSet<Epoch> = d.writes.iter().map(|w| w.0).collect();
    for e in &acked_written {
        assert!(
            stored.contains(e),
            "seed {seed}: acknowledged write {e} not stored"
        );
    }
}

#[test]
fn seeded_simulations_keep_every_invariant() {
    if let Some(seed) = std::env::var("SPILLWAY_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(seed);
        return;
    }
    for seed in 0..40 {
        run(seed);
    }
}
