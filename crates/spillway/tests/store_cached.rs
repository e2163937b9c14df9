//! The local cache in front of a remote store: `Durable` means remote, reads go through and stay
//! local, the disk budget holds, and objects a crash left only local are uploaded later.

mod common;

use std::sync::Arc;

use common::{Minimal, Obj};
use spillway::store::CachedStore;
use spillway::{BlobStore, Durability, LogStore};

fn local(dir: &std::path::Path) -> LogStore {
    LogStore::open_with(dir.join("cache"), common::small_opts(64 << 10)).expect("cache log")
}

#[test]
fn durable_means_remote_and_reads_stay_local_after_the_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Arc::new(Minimal::default());
    let cache = CachedStore::open(local(tmp.path()), remote.clone(), 64 << 20).expect("open");
    let leaf = Obj::generated(1, 2000, vec![]);
    let parent = Obj::generated(2, 100, vec![leaf.key]);
    cache.put_batch(&[leaf.put(), parent.put()]).expect("put");
    // Applied and Written: local only.
    cache.flush(Durability::Written).expect("written");
    assert!(!remote.contains(&parent.key).expect("contains"));
    assert_eq!(cache.cache_stats().pending, 2);
    // Durable: in the remote store.
    cache.flush(Durability::Durable).expect("durable");
    assert_eq!(remote.get(&parent.key).expect("get"), Some(parent.blob()));
    assert_eq!(cache.cache_stats().pending, 0);

    // An object only remote (another machine's): fetched once, then read locally.
    let theirs = Obj::generated(3, 500, vec![]);
    remote.put(theirs.put()).expect("their put");
    let reads = remote.payload_reads();
    for _ in 0..3 {
        assert_eq!(cache.get(&theirs.key).expect("get"), Some(theirs.blob()));
    }
    assert_eq!(
        remote.payload_reads(),
        reads + 1,
        "one remote read, then local"
    );
    // A root is set remote, after the graph.
    cache.set_root("g", Some(parent.key)).expect("root");
    assert_eq!(
        remote.roots().expect("roots"),
        vec![("g".to_string(), parent.key)]
    );
}

#[test]
fn the_disk_budget_holds_once_copies_are_remote() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Arc::new(Minimal::default());
    let budget = 1 << 20;
    let cache = CachedStore::open(local(tmp.path()), remote.clone(), budget).expect("open");
    let objs: Vec<Obj> = (0..400)
        .map(|i| Obj::generated(100 + i, 20_000, vec![]))
        .collect();
    for chunk in objs.chunks(40) {
        cache
            .put_batch(&chunk.iter().map(Obj::put).collect::<Vec<_>>())
            .expect("put");
        cache.flush(Durability::Durable).expect("durable");
    }
    let s = cache.cache_stats();
    // 8 MB written through a 1 MiB cache: the log is trimmed and compacted back under budget
    // (plus the segment being written).
    assert!(
        s.local_disk_bytes <= budget + (64 << 10),
        "{} bytes on disk for a budget of {budget}",
        s.local_disk_bytes
    );
    // Everything is still there, from the remote store where not local.
    for o in objs.iter().step_by(37) {
        assert_eq!(cache.get(&o.key).expect("get"), Some(o.blob()));
    }
}

#[test]
fn objects_a_crash_left_only_local_are_uploaded_at_the_next_durable_flush() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Arc::new(Minimal::default());
    let objs: Vec<Obj> = (0..10)
        .map(|i| Obj::generated(200 + i, 300, vec![]))
        .collect();
    {
        let cache = CachedStore::open(local(tmp.path()), remote.clone(), 64 << 20).expect("open");
        cache
            .put_batch(&objs.iter().map(Obj::put).collect::<Vec<_>>())
            .expect("put");
        cache.flush(Durability::Written).expect("written");
        // The process stops here, before a durable flush.
    }
    assert!(!remote.contains(&objs[0].key).expect("contains"));
    let cache = CachedStore::open(local(tmp.path()), remote.clone(), 64 << 20).expect("reopen");
    assert_eq!(cache.cache_stats().pending, 10);
    cache.flush(Durability::Durable).expect("durable");
    for o in &objs {
        assert_eq!(remote.get(&o.key).expect("get"), Some(o.blob()));
    }
}

#[test]
fn the_cache_works_in_front_of_s3() {
    let Some(url) = common::s3_location("cached") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let s3 =
        Arc::new(spillway::S3Store::open(&url, spillway::S3StoreOptions::default()).expect("s3"));
    let cache = CachedStore::open(local(tmp.path()), s3.clone(), 64 << 20).expect("open");
    let o = Obj::generated(300, 5000, vec![]);
    cache.put(o.put()).expect("put");
    assert!(!s3.contains(&o.key).expect("contains"));
    cache.flush(Durability::Durable).expect("durable");
    assert_eq!(s3.get(&o.key).expect("get"), Some(o.blob()));
}
