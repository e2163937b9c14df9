//! A pool that counts its own memory in its budget (`PoolBuilder::budget_includes_metadata`):
//! the metadata is charged beside the values, the values get what is left, the charge follows
//! the handles as they come and go, stops at three quarters of the budget, and is reported.

use spillway::{Paged, Pool, PoolStats};

/// A deterministic pool over a fresh log store in a temporary directory (so that the store's
/// index is part of the metadata), counting its metadata in its budget if `counted`.
fn pool(budget: u64, counted: bool) -> (tempfile::TempDir, Pool) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pool = Pool::builder()
        .budget(budget)
        .dir(dir.path())
        .deterministic(true)
        .budget_includes_metadata(counted)
        .build()
        .expect("a pool over a fresh log store");
    (dir, pool)
}

/// 1 KiB values, each distinct.
fn value(i: u64) -> Vec<u8> {
    let mut v = vec![0u8; 1024];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

/// The bytes of values resident: what the budget counts minus the charge.
fn values(s: &PoolStats) -> u64 {
    s.resident_bytes - s.metadata_charged_bytes
}

#[test]
fn the_metadata_is_charged_and_the_values_get_the_rest() {
    const BUDGET: u64 = 8 << 20;
    const N: u64 = 30_000;
    let (_d1, counted) = pool(BUDGET, true);
    let (_d2, plain) = pool(BUDGET, false);
    let a: Vec<Paged<Vec<u8>>> = (0..N).map(|i| counted.insert(value(i)).unwrap()).collect();
    let b: Vec<Paged<Vec<u8>>> = (0..N).map(|i| plain.insert(value(i)).unwrap()).collect();
    let (sa, sb) = (counted.stats(), plain.stats());

    assert_eq!(sb.metadata_charged_bytes, 0, "{sb:?}");
    // Up to date after `stats`: everything measured, under the cap.
    assert_eq!(
        sa.metadata_charged_bytes,
        sa.metadata_bytes + sa.store_index_bytes,
        "{sa:?}"
    );
    assert!(sa.metadata_charged_bytes > N * 64, "{sa:?}");
    // The budget holds (a deterministic pool evicts before it passes it), metadata included.
    assert!(sa.peak_resident_bytes <= BUDGET, "{sa:?}");
    assert!(sb.peak_resident_bytes <= BUDGET, "{sb:?}");
    // The values got what the metadata left: less than the plain pool's by about the charge
    // (within the lag of one update step, about 1 % of the budget, which `stats` charged
    // after the last reservation).
    assert!(
        values(&sa) + sa.metadata_charged_bytes <= BUDGET + BUDGET / 50,
        "{sa:?}"
    );
    let less = values(&sb) - values(&sa);
    assert!(
        less + (1 << 20) >= sa.metadata_charged_bytes,
        "values {} vs {}, charged {}",
        values(&sa),
        values(&sb),
        sa.metadata_charged_bytes
    );
    // Every value reads back.
    for i in (0..N).step_by(997) {
        assert_eq!(*a[i as usize].get().unwrap(), value(i));
        assert_eq!(*b[i as usize].get().unwrap(), value(i));
    }
}

#[test]
fn the_charge_stops_at_three_quarters_and_values_keep_the_rest() {
    const BUDGET: u64 = 1 << 20;
    let (_d, pool) = pool(BUDGET, true);
    // 40,000 handles' metadata is several times the budget.
    let handles: Vec<Paged<u64>> = (0..40_000u64).map(|i| pool.insert(i).unwrap()).collect();
    let s = pool.stats();
    assert!(s.metadata_bytes > BUDGET, "{s:?}");
    assert_eq!(s.metadata_charged_bytes, BUDGET - BUDGET / 4, "{s:?}");
    assert!(s.resident_bytes <= BUDGET, "{s:?}");
    // A quarter of the budget still holds values, and every value reads back.
    assert!(values(&s) > BUDGET / 8, "{s:?}");
    for (i, h) in handles.iter().enumerate().step_by(401) {
        assert_eq!(*h.get().unwrap(), i as u64);
    }
}

#[test]
fn dropped_handles_give_their_charge_back() {
    let (_d, pool) = pool(16 << 20, true);
    let base = pool.stats().metadata_charged_bytes;
    let handles: Vec<Paged<Vec<u8>>> = (0..20_000)
        .map(|i| pool.insert(value(i)).unwrap())
        .collect();
    let full = pool.stats().metadata_charged_bytes;
    // Every entry is counted, at more than 64 bytes.
    assert!(full >= base + 20_000 * 64, "{base} then {full}");
    drop(handles);
    let after = pool.stats();
    // The entries are gone; the tables keep some capacity, the store's index its records.
    assert!(
        full - after.metadata_charged_bytes >= 20_000 * 64,
        "{full} then {after:?}"
    );
    assert_eq!(
        after.metadata_charged_bytes,
        after.metadata_bytes + after.store_index_bytes
    );
    assert_eq!(values(&after), 0, "no value is left: {after:?}");
}

#[test]
fn shrink_to_counts_values_only() {
    let (_d, pool) = pool(16 << 20, true);
    let handles: Vec<Paged<Vec<u8>>> = (0..2_000).map(|i| pool.insert(value(i)).unwrap()).collect();
    for h in &handles {
        h.key().unwrap();
    }
    pool.shrink_to(0).unwrap();
    let s = pool.stats();
    assert!(s.metadata_charged_bytes > 0, "{s:?}");
    assert_eq!(values(&s), 0, "every value is paged out: {s:?}");
    assert!(handles.iter().all(|h| !h.is_resident()));
    assert_eq!(*handles[1234].get().unwrap(), value(1234));
}

/// With the background page-out and two threads inserting and reading at once, the charge
/// keeps up and the budget holds, metadata included (within the lag of one update step).
#[test]
fn the_charge_holds_under_threads_and_the_background_page_out() {
    const BUDGET: u64 = 8 << 20;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pool = Pool::builder()
        .budget(BUDGET)
        .dir(dir.path())
        .budget_includes_metadata(true)
        .build()
        .expect("a pool over a fresh log store");
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let pool = &pool;
            s.spawn(move || {
                let handles: Vec<Paged<Vec<u8>>> = (0..15_000)
                    .map(|i| pool.insert(value(t << 32 | i)).unwrap())
                    .collect();
                for (i, h) in handles.iter().enumerate().step_by(7) {
                    assert_eq!(*h.get().unwrap(), value(t << 32 | i as u64));
                }
                handles
            });
        }
    });
    let s = pool.stats();
    assert!(s.metadata_charged_bytes > 0, "{s:?}");
    assert!(
        s.peak_resident_bytes <= BUDGET + BUDGET / 50,
        "peak {} of a budget of {BUDGET}: {s:?}",
        s.peak_resident_bytes
    );
    assert_eq!(s.errors, 0, "{s:?}");
}
