//! The S3 store against a real S3-compatible server on 127.0.0.1 (`.ci/s3-server` starts one;
//! CI always does): the store contract, a graph shared between two processes and hydrated
//! lazily, roots that detect a lost race, retries of failed requests, an upload cut off
//! mid-way, and a collection that spares another machine's upload in progress.
//!
//! Each test skips, with a message, when run by hand without the server.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::proxy::Proxy;
use common::{Obj, s3_location};
use serde::{Deserialize, Serialize};
use spillway::{BlobStore, ErrorKind, Paged, Pool, S3Store, S3StoreOptions};

const CHILD_ENV: &str = "SPILLWAY_S3_CHILD_URL";

/// Test options: no grace period, few retries, so that failures show quickly.
fn opts() -> S3StoreOptions {
    S3StoreOptions::default()
        .gc_grace(Duration::ZERO)
        .max_retries(2)
}

fn open(url: &str) -> S3Store {
    S3Store::open(url, opts()).expect("open the S3 store")
}

#[test]
fn objects_round_trip_dedup_and_are_checked() {
    let Some(url) = s3_location("round-trip") else {
        return;
    };
    let store = open(&url);
    let leaf = Obj::generated(1, 3000, vec![]);
    let parent = Obj::generated(2, 100, vec![leaf.key]);
    store
        .put_batch(&[leaf.put(), parent.put()])
        .expect("put_batch");
    assert_eq!(store.get(&parent.key).expect("get"), Some(parent.blob()));
    assert_eq!(
        store.children(&parent.key).expect("children"),
        Some(vec![leaf.key])
    );
    assert!(store.contains(&leaf.key).expect("contains"));
    // A second put of the same key is a create-only put that finds it: deduplicated.
    let before = store.stats();
    store.put(leaf.put()).expect("put again");
    assert_eq!(store.stats().dedup_hits, before.dedup_hits + 1);
    // Another store on the same prefix (another machine) sees the same objects.
    let other = open(&url);
    let mut keys = other.keys().expect("keys");
    keys.sort();
    let mut want = vec![leaf.key, parent.key];
    want.sort();
    assert_eq!(keys, want);
    other.delete(&[leaf.key]).expect("delete");
    assert_eq!(store.get(&leaf.key).expect("get"), None);
}

#[test]
fn a_large_object_goes_up_in_parts() {
    let Some(url) = s3_location("multipart") else {
        return;
    };
    let store = S3Store::open(&url, opts().multipart_threshold(5 << 20)).expect("open");
    let big = Obj::generated(7, 6 << 20, vec![]);
    store.put(big.put()).expect("multipart put");
    assert_eq!(store.get(&big.key).expect("get"), Some(big.blob()));
}

#[test]
fn a_root_changed_by_another_writer_meanwhile_is_a_conflict() {
    let Some(url) = s3_location("root-race") else {
        return;
    };
    let a = open(&url);
    let b = open(&url);
    let x = Obj::generated(10, 10, vec![]);
    let y = Obj::generated(11, 10, vec![]);
    a.put_batch(&[x.put(), y.put()]).expect("put");
    a.set_root("graph", Some(x.key)).expect("first set");
    // Both read version 1; b changes it first; a's change then loses the race.
    let seen_a = a.root_version("graph").expect("version");
    let seen_b = b.root_version("graph").expect("version");
    assert_eq!((seen_a, seen_b), (1, 1));
    b.set_root_after("graph", Some(y.key), seen_b)
        .expect("b wins");
    let err = a
        .set_root_after("graph", Some(x.key), seen_a)
        .expect_err("a lost the race");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("retry"), "{err}");
    // Nothing was overwritten: the root is b's.
    assert_eq!(
        a.roots().expect("roots"),
        vec![("graph".to_string(), y.key)]
    );
    // Removal is a version too.
    a.set_root("graph", None).expect("remove");
    assert!(b.roots().expect("roots").is_empty());
}

/// A root is read by one listing of its own versions and one read: the number of other roots
/// does not matter.
#[test]
fn one_root_is_read_without_listing_the_others() {
    let Some(url) = s3_location("root-one") else {
        return;
    };
    let store = open(&url);
    let objs: Vec<Obj> = (0..12)
        .map(|i| Obj::generated(40 + i, 10, vec![]))
        .collect();
    store
        .put_batch(&objs.iter().map(Obj::put).collect::<Vec<_>>())
        .expect("put");
    for (i, o) in objs.iter().enumerate() {
        store.set_root(&format!("r{i}"), Some(o.key)).expect("set");
    }
    // A second version of one of them: the newest is read.
    store.set_root("r7", Some(objs[3].key)).expect("set again");
    store.set_root("r9", None).expect("remove");
    let reads = |name: &str| {
        let before = store.requests();
        let key = store.root(name).expect("root");
        (key, store.requests() - before)
    };
    assert_eq!(reads("r5"), (Some(objs[5].key), 2));
    assert_eq!(reads("r7"), (Some(objs[3].key), 2));
    assert_eq!(reads("r9"), (None, 2), "a removed root");
    assert_eq!(
        reads("never-set"),
        (None, 1),
        "a root never set: its listing is empty"
    );
    assert_eq!(store.root_version("r7").expect("version"), 2);
    // The same answers as the full listing.
    let all = store.roots().expect("roots");
    assert_eq!(all.len(), 11);
    assert!(all.contains(&("r7".to_string(), objs[3].key)));
}

#[test]
fn many_writers_of_one_root_never_overwrite_each_other() {
    let Some(url) = s3_location("root-writers") else {
        return;
    };
    let objs: Vec<Obj> = (0..8).map(|i| Obj::generated(20 + i, 10, vec![])).collect();
    open(&url)
        .put_batch(&objs.iter().map(Obj::put).collect::<Vec<_>>())
        .expect("put");
    // Four "machines" (stores of their own), each setting the root twice from a version it read.
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let url = url.clone();
                let objs = &objs;
                s.spawn(move || {
                    let store = open(&url);
                    let (mut won, mut lost) = (0, 0);
                    for i in 0..2 {
                        let seen = store.root_version("r").expect("version");
                        match store.set_root_after("r", Some(objs[t * 2 + i].key), seen) {
                            Ok(()) => won += 1,
                            Err(e) if e.kind() == ErrorKind::Conflict => lost += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    (won, lost)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let won: usize = results.iter().map(|r| r.0).sum();
    // Every success made exactly one version, in sequence: none was lost to an overwrite.
    assert_eq!(open(&url).root_version("r").expect("version"), won as u64);
    assert!(won >= 1);
}

#[test]
fn failed_requests_are_retried_and_a_cut_upload_leaves_nothing_visible() {
    let Some(url) = s3_location("faults") else {
        return;
    };
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT") else {
        return;
    };
    let upstream = endpoint.trim_start_matches("http://").to_string();
    let proxy = Proxy::start(upstream);
    let through = S3Store::open(&url, opts().endpoint(proxy.endpoint())).expect("open");
    let direct = open(&url);

    // Three 500s, then success: the client's retries carry the put through.
    let a = Obj::generated(30, 2000, vec![]);
    proxy.faults.fail_next.store(3, Ordering::SeqCst);
    let put = S3Store::open(&url, opts().max_retries(5).endpoint(proxy.endpoint()))
        .expect("open")
        .put(a.put());
    put.expect("retried through the failures");
    assert_eq!(proxy.faults.injected.load(Ordering::SeqCst), 3);
    assert_eq!(direct.get(&a.key).expect("get"), Some(a.blob()));

    // Every PUT cut off after 1,000 bytes of its body: the writer reports the failure, and no
    // part of the object is visible.
    let b = Obj::generated(31, 100_000, vec![]);
    proxy.faults.cut_puts_after.store(1000, Ordering::SeqCst);
    let err = through.put(b.put()).expect_err("the upload was cut");
    assert_eq!(err.kind(), ErrorKind::Remote, "{err}");
    assert!(err.to_string().contains(&b.key.to_string()), "{err}");
    assert!(!direct.contains(&b.key).expect("contains"));
    assert_eq!(direct.get(&b.key).expect("get"), None);
    proxy.faults.cut_puts_after.store(0, Ordering::SeqCst);
    through.put(b.put()).expect("once the network is back");
    assert_eq!(direct.get(&b.key).expect("get"), Some(b.blob()));
}

#[test]
fn a_collection_spares_objects_younger_than_the_grace_period() {
    let Some(url) = s3_location("gc-grace") else {
        return;
    };
    // Another machine's upload in progress: objects written, no root naming them yet.
    let uploading = Obj::generated(40, 500, vec![]);
    open(&url).put(uploading.put()).expect("put");
    let patient =
        Arc::new(S3Store::open(&url, opts().gc_grace(Duration::from_secs(3600))).expect("open"));
    let pool = Pool::builder()
        .store(Arc::clone(&patient) as Arc<dyn BlobStore>)
        .build()
        .expect("pool");
    let report = pool.gc().expect("gc");
    assert_eq!(report.deleted, 1, "asked to delete it");
    assert_eq!(
        patient.kept_young(),
        1,
        "but it is younger than the grace period"
    );
    assert!(patient.contains(&uploading.key).expect("contains"));
    // With no grace period it goes.
    let hasty = Arc::new(open(&url));
    let pool = Pool::builder()
        .store(Arc::clone(&hasty) as Arc<dyn BlobStore>)
        .build()
        .expect("pool");
    pool.gc().expect("gc");
    assert!(!hasty.contains(&uploading.key).expect("contains"));
}

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Node {
    label: u32,
    data: Vec<u8>,
    children: Vec<Paged<Node>>,
}

/// The child process: builds a tree of 1 + 8 + 64 nodes in a pool over the S3 store, names it
/// `tree`, and exits.
#[test]
#[ignore = "the child process of a_graph_written_by_one_process_is_hydrated_lazily_by_another"]
fn s3_writer_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Arc::new(open(&url));
    let pool = Pool::builder()
        .store(store as Arc<dyn BlobStore>)
        .build()
        .expect("pool");
    let node = |label: u32, children: Vec<Paged<Node>>| {
        pool.insert(Node {
            label,
            data: vec![label as u8; 256],
            children,
        })
        .expect("insert")
    };
    let mids: Vec<Paged<Node>> = (0..8)
        .map(|m| {
            node(
                100 + m,
                (0..8).map(|l| node(1000 + m * 8 + l, vec![])).collect(),
            )
        })
        .collect();
    let root = node(1, mids);
    pool.set_root("tree", &root).expect("set_root");
}

#[test]
fn a_graph_written_by_one_process_is_hydrated_lazily_by_another() {
    let Some(url) = s3_location("two-processes") else {
        return;
    };
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "s3_writer_child", "--nocapture"])
        .env(CHILD_ENV, &url)
        .status()
        .expect("run the child");
    assert!(status.success(), "the writer failed");

    let store = Arc::new(open(&url));
    let pool = Pool::builder()
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .build()
        .expect("pool");
    let root: Paged<Node> = pool.root("tree").expect("roots").expect("the root");
    let gets = || store.stats().gets;
    assert_eq!(gets(), 0, "nothing is fetched until touched");
    let r = root.get().expect("root");
    assert_eq!((r.label, r.children.len()), (1, 8));
    assert_eq!(gets(), 1, "the root alone");
    let third = r.children[3].get().expect("a child");
    assert_eq!(third.label, 103);
    let leaf = third.children[5].get().expect("a grandchild");
    assert_eq!((leaf.label, leaf.data.len()), (1000 + 3 * 8 + 5, 256));
    assert_eq!(gets(), 3, "one path: three objects of 73 fetched");
    assert!(matches!(pool.root::<Node>("absent"), Ok(None)));
}
