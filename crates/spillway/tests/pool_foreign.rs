//! Handles of another pool: a pool stores only values whose handles are its own. Storing a
//! value that holds another pool's handle is an error naming both pools, and nothing is lost:
//! the value stays in memory, and the other pool's object stays its own.

use std::time::{Duration, Instant};

use spillway::{Error, Paged, Pool};

/// A pool over a log store in a temporary directory of its own, so that each has its own
/// description.
fn pool(budget: u64) -> Pool {
    Pool::builder()
        .budget(budget)
        .gc_after(0)
        .build()
        .expect("pool")
}

/// True if `err` names the stores of both pools.
fn names_both(err: &Error, a: &Pool, b: &Pool) -> bool {
    let msg = err.to_string();
    msg.contains(&a.store().describe()) && msg.contains(&b.store().describe())
}

#[test]
fn persist_and_set_root_refuse_a_value_holding_another_pools_handle() {
    let a = pool(64 << 20);
    let b = pool(64 << 20);
    let child = a.insert(vec![7u32; 100]).unwrap();
    let parent: Paged<Vec<Paged<Vec<u32>>>> = b.insert(vec![child.clone()]).unwrap();

    let err = b.persist(&parent).unwrap_err();
    assert!(
        matches!(err.root(), Error::ForeignHandle { .. }),
        "persist: {err}"
    );
    assert!(names_both(&err, &a, &b), "persist: {err}");
    // Like any failed page-out, the failure is also kept for the next call that takes no
    // value, which reports it first.
    let err = b.set_root("parent", &parent).unwrap_err();
    assert!(matches!(err, Error::PageOut { .. }), "{err}");
    assert!(names_both(&err, &a, &b), "{err}");
    let err = b.set_root("parent", &parent).unwrap_err();
    assert!(matches!(err.root(), Error::ForeignHandle { .. }), "{err}");
    assert!(b.roots().unwrap().is_empty(), "no root was set");
    assert!(parent.key().is_err(), "nor any key handed out");

    // Stored in its own pool first, the child is still another pool's handle.
    child.key().unwrap();
    let err = parent.key().unwrap_err();
    assert!(names_both(&err, &a, &b), "{err}");

    // Nothing was stored in the wrong place: the child pages out and back in through its pool,
    // and the parent is still in memory.
    a.shrink_to(0).unwrap();
    assert!(!child.is_resident());
    assert_eq!(child.get().unwrap()[99], 7);
    assert!(parent.is_resident());
    assert_eq!(parent.get().unwrap()[0].get().unwrap()[0], 7);
}

#[test]
fn a_handle_of_another_pool_cannot_be_named_or_persisted() {
    let a = pool(64 << 20);
    let b = pool(64 << 20);
    let h = a.insert(vec![1u8; 10]).unwrap();
    let err = b.set_root("h", &h).unwrap_err();
    assert!(matches!(err.root(), Error::ForeignHandle { .. }), "{err}");
    assert!(names_both(&err, &a, &b), "{err}");
    let err = b.persist(&h).unwrap_err();
    assert!(matches!(err.root(), Error::ForeignHandle { .. }), "{err}");
    assert!(b.roots().unwrap().is_empty());
    // In its own pool, it can.
    a.set_root("h", &h).unwrap();
}

#[test]
fn making_room_for_inserts_keeps_the_value_and_reports_the_error() {
    let a = pool(64 << 20);
    let budget = 256 << 10;
    let b = pool(budget);
    let child = a.insert(vec![3u64; 10]).unwrap();
    // Big enough to be the eviction's first choice among its peers.
    let parent = b.insert((vec![5u8; 64 << 10], child.clone())).unwrap();
    // Far more than the budget: the pool pages out around the parent.
    let others: Vec<_> = (0..64u32)
        .map(|i| b.insert(vec![i; 4 << 10]).unwrap())
        .collect();

    assert!(parent.is_resident(), "the parent is never paged out");
    let s = b.stats();
    assert!(s.errors > 0, "{s:?}");
    let last = s.last_error.expect("the last error is kept");
    assert!(last.contains(&a.store().describe()), "{last}");
    assert!(last.contains(&b.store().describe()), "{last}");
    // The next call that takes no value reports it.
    let err = b.flush(spillway::Durability::Written).unwrap_err();
    assert!(matches!(err, Error::PageOut { .. }), "{err}");
    assert!(names_both(&err, &a, &b), "{err}");

    // Nothing is lost.
    let g = parent.get().unwrap();
    assert_eq!(g.0[0], 5);
    assert_eq!(g.1.get().unwrap()[9], 3);
    for (i, h) in others.iter().enumerate() {
        assert_eq!(h.get().unwrap()[0], i as u32);
    }
    // The child is its own pool's still: out and back in through it.
    drop(g);
    a.shrink_to(0).unwrap();
    assert!(!child.is_resident());
    assert_eq!(child.get().unwrap()[0], 3);
    // The other values paged out fine.
    assert!(b.stats().page_outs > 0);
}

#[test]
fn a_background_page_out_keeps_the_value_and_reports_the_error() {
    let a = pool(64 << 20);
    let budget = 1 << 20;
    // Background page-out from 70 % of the budget (the default starts it at 98 %).
    let b = Pool::builder()
        .budget(budget)
        .gc_after(0)
        .page_out_watermarks(70, 65)
        .build()
        .expect("pool");
    let child = a.insert(vec![3u64; 10]).unwrap();
    let parent = b.insert((vec![5u8; 64 << 10], child.clone())).unwrap();
    // Past the start mark (70 %), under the budget: no insert pages out, the background
    // thread does.
    let others: Vec<_> = (0..12u8)
        .map(|i| b.insert(vec![i; 64 << 10]).unwrap())
        .collect();
    assert!(b.stats().resident_bytes < budget);
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.stats().errors == 0 {
        assert!(
            Instant::now() < deadline,
            "no background page-out: {:?}",
            b.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = b.stats();
    let last = s.last_error.expect("the last error is kept");
    assert!(last.contains(&a.store().describe()), "{last}");
    assert!(last.contains(&b.store().describe()), "{last}");
    assert!(parent.is_resident(), "the parent stays in memory");
    let err = b.gc().unwrap_err();
    assert!(matches!(err, Error::PageOut { .. }), "{err}");
    assert!(names_both(&err, &a, &b), "{err}");
    let g = parent.get().unwrap();
    assert_eq!(g.0[0], 5);
    assert_eq!(g.1.get().unwrap()[9], 3);
    for (i, h) in others.iter().enumerate() {
        assert_eq!(h.get().unwrap()[0], i as u8);
    }
}
