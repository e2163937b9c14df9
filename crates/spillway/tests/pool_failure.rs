//! A store that fails under the pool: nothing is lost, the error is reported.

use std::path::Path;
use std::sync::Arc;

use spillway::vfs::SimFs;
use spillway::{LogStore, LogStoreOptions, Pool};

#[test]
fn a_failing_store_keeps_values_resident_and_reports_the_error() {
    let fs = Arc::new(SimFs::new());
    let store = LogStore::open_on(
        fs.clone(),
        Path::new("/s"),
        LogStoreOptions::default().write_buffer(0),
    )
    .expect("open the store");
    let budget = 64 << 10;
    let pool = Pool::builder()
        .budget(budget)
        .store(Arc::new(store))
        .gc_after(0)
        .build()
        .expect("pool");
    // Some values page out fine.
    let early: Vec<_> = (0..40u32)
        .map(|i| pool.insert(vec![i; 1024]).unwrap())
        .collect();
    assert!(pool.stats().page_outs > 0);
    // From now on every write fails.
    fs.fail_at(1);
    let late: Vec<_> = (0..40u32)
        .map(|i| {
            pool.insert(vec![1000 + i; 1024])
                .expect("inserts go on, past the budget")
        })
        .collect();
    let s = pool.stats();
    assert!(s.errors > 0, "the failure is counted");
    assert!(s.last_error.is_some(), "and kept in the stats");
    // Nothing is lost: every value still reads back, the late ones from memory.
    for (i, h) in late.iter().enumerate() {
        assert!(h.is_resident());
        assert_eq!(h.get().unwrap()[0], 1000 + i as u32);
    }
    for (i, h) in early.iter().enumerate() {
        assert_eq!(h.get().unwrap()[0], i as u32);
    }
    // The next call that takes no value reports it.
    let err = pool.flush(spillway::Durability::Written).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("page-out failed") || msg.contains("refuses writes"),
        "{msg}"
    );
}
