//! `Pool::compact` on the log store a pool opens, with the settings given to the builder.

use std::sync::Arc;

use spillway::{ErrorKind, LogStoreOptions, MemStore, Paged, Pool};

/// 64 KiB segments: a few hundred values of 2 KiB fill many.
fn options() -> LogStoreOptions {
    LogStoreOptions::default()
        .segment_size(64 << 10)
        .map_sealed(false)
}

fn value(i: u32) -> Vec<u32> {
    (0..512).map(|j| i * 1000 + j).collect()
}

#[test]
fn compact_gives_back_the_space_of_collected_objects() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kept_key = {
        let pool = Pool::builder()
            .budget(1 << 20)
            .dir_with(dir.path(), options())
            .deterministic(true)
            .build()
            .expect("a pool in a directory");
        let values: Vec<Paged<Vec<u32>>> = (0..400)
            .map(|i| pool.insert(value(i)).expect("insert"))
            .collect();
        pool.shrink_to(0).expect("page out");
        let kept = pool.insert(values[7..17].to_vec()).expect("insert");
        let kept_key = pool.set_root("kept", &kept).expect("set a root");
        drop((values, kept));
        let segments = pool.store().stats().segments;
        assert!(segments >= 8, "the settings were used: {segments} segments");
        let gc = pool.gc().expect("gc");
        assert_eq!(gc.deleted, 390, "{gc:?}");
        let disk = pool.store().stats().disk_bytes;
        let report = pool.compact().expect("compact");
        assert!(report.segments_removed > 0, "{report:?}");
        assert!(report.bytes_reclaimed > 0, "{report:?}");
        let after = pool.store().stats();
        assert!(after.disk_bytes < disk / 2, "{disk} -> {after:?}");
        assert_eq!(after.objects, 11, "the root and its ten children");
        // Nothing to do a second time.
        assert_eq!(pool.compact().expect("compact").segments_removed, 0);
        kept_key
    };
    // The compacted store reopens with its root.
    let pool = Pool::builder()
        .dir_with(dir.path(), options())
        .build()
        .expect("reopen");
    let kept: Paged<Vec<Paged<Vec<u32>>>> = pool.root("kept").expect("root").expect("kept");
    assert_eq!(kept.key().expect("key"), kept_key);
    let kept = kept.get().expect("get");
    assert_eq!(kept.len(), 10);
    assert_eq!(*kept[3].get().expect("get"), value(10));
}

#[test]
fn a_default_pool_compacts_its_temporary_store() {
    let pool = Pool::builder()
        .budget(1 << 20)
        .log_options(options())
        .build()
        .expect("a pool");
    let values: Vec<_> = (0..200)
        .map(|i| pool.insert(value(i)).expect("insert"))
        .collect();
    pool.shrink_to(0).expect("page out");
    drop(values);
    assert_eq!(pool.gc().expect("gc").deleted, 200);
    assert!(pool.compact().expect("compact").segments_removed > 0);
    assert_eq!(pool.store().stats().objects, 0);
}

#[test]
fn compact_over_a_given_store_says_what_to_do() {
    let pool = Pool::builder()
        .store(Arc::new(MemStore::new()))
        .build()
        .expect("a pool");
    let err = pool.compact().expect_err("nothing the pool opened");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("memory store"), "{err}");
}

#[test]
fn log_options_beside_a_given_store_are_refused() {
    let err = Pool::builder()
        .store(Arc::new(MemStore::new()))
        .log_options(options())
        .build()
        .expect_err("options for a store the pool does not open");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("log store options"), "{err}");
}

#[test]
fn read_only_options_open_a_pool_for_reading() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = {
        let pool = Pool::builder()
            .dir_with(dir.path(), options())
            .build()
            .expect("a pool");
        let v = pool.insert(value(1)).expect("insert");
        pool.set_root("v", &v).expect("set a root")
    };
    let pool = Pool::builder()
        .dir_with(dir.path(), options().read_only(true))
        .build()
        .expect("a read-only pool");
    let v: Paged<Vec<u32>> = pool.load(key).expect("load");
    assert_eq!(*v.get().expect("get"), value(1));
    let err = pool.compact().expect_err("read-only");
    assert_eq!(err.kind(), ErrorKind::ReadOnly);
}
