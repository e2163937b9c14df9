//! Crash tests of the directory store on the simulated file system: the store stops at every
//! mutating operation of a workload in turn (so at every point of every object file's write,
//! rename and sync), then is reopened from what a killed process leaves (everything written)
//! and from what a power loss leaves (only what was synced, plus any prefix of the rest).
//! Every write acknowledged at the level that survives the failure must be there, whole; no
//! temporary file may survive the reopen; nothing torn may be returned as data.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::Obj;
use spillway::store::{DirStore, DirStoreOptions};
use spillway::vfs::SimFs;
use spillway::{BlobStore, ContentKey, Durability};

const DIR: &str = "/store";

/// What the workload got acknowledged, and at which level.
#[derive(Debug, Default)]
struct Acked {
    /// Stored (put_batch returned): survives a process crash.
    written: BTreeMap<ContentKey, Obj>,
    /// Made durable by a flush that returned: survives a power loss.
    durable: BTreeMap<ContentKey, Obj>,
    /// Keys whose delete returned.
    deleted: Vec<ContentKey>,
    /// The root set last, durably.
    root: Option<ContentKey>,
}

fn open(fs: &SimFs) -> spillway::Result<DirStore> {
    DirStore::open_on(
        Arc::new(fs.clone()),
        Path::new(DIR),
        DirStoreOptions::default(),
    )
}

/// Leaf and parent of round `i`.
fn round(i: u64) -> (Obj, Obj) {
    let leaf = Obj::generated(100 + i, 300 + 50 * i as usize, vec![]);
    let parent = Obj::generated(200 + i, 64, vec![leaf.key]);
    (leaf, parent)
}

/// Every object the workload may write.
fn every_object() -> BTreeMap<ContentKey, Obj> {
    (0..6)
        .flat_map(|i| {
            let (l, p) = round(i);
            [(l.key, l), (p.key, p)]
        })
        .collect()
}

/// Six rounds: a leaf and a parent, a durable flush, a delete of an older leaf, a root.
fn workload(store: &DirStore, acked: &mut Acked) -> spillway::Result<()> {
    for i in 0..6u64 {
        let (leaf, parent) = round(i);
        store.put_batch(&[leaf.put(), parent.put()])?;
        for o in [&leaf, &parent] {
            acked.written.insert(o.key, o.clone());
        }
        store.flush(Durability::Durable)?;
        acked.durable.extend(acked.written.clone());
        if i >= 2 {
            let (old, _) = round(i - 2);
            store.delete(&[old.key])?;
            acked.written.remove(&old.key);
            acked.deleted.push(old.key);
        }
        if i == 3 {
            store.set_root("latest", Some(parent.key))?;
            acked.root = Some(parent.key);
        }
    }
    Ok(())
}

/// Checks a store reopened after a crash against what was acknowledged.
fn check_reopened(fs: &SimFs, acked: &Acked, must_have: &BTreeMap<ContentKey, Obj>, at: &str) {
    let store = open(fs).unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
    let report = store.open_report().clone();
    assert!(report.unknown.is_empty(), "{at}: {report:?}");
    for (k, o) in must_have {
        if acked.deleted.contains(k) {
            continue;
        }
        assert_eq!(
            store.get(k).unwrap_or_else(|e| panic!("{at}: {k}: {e}")),
            Some(o.blob()),
            "{at}: acknowledged object {k}"
        );
    }
    // Anything else found is whole or reported as damage, never wrong data; a put of it
    // makes it whole again.
    for k in store.keys().expect("keys") {
        match store.get(&k) {
            Ok(Some(b)) => assert_eq!(b.key(), k, "{at}: wrong data under {k}"),
            Ok(None) => {}
            Err(e) => {
                assert!(e.is_corruption(), "{at}: {k}: {e}");
                let o = &every_object()[&k];
                store.put(o.put()).expect("put again");
                assert_eq!(store.get(&k).expect("get"), Some(o.blob()), "{at}");
            }
        }
    }
    if let Some(root) = acked.root {
        assert_eq!(
            store.roots().expect("roots"),
            vec![("latest".to_string(), root)],
            "{at}"
        );
    }
    // No temporary file is left in the store.
    let names = |d: &Path| spillway::vfs::Vfs::read_dir(fs, d).unwrap_or_default();
    for shard in names(&Path::new(DIR).join("objects")) {
        let shard = Path::new(DIR).join("objects").join(shard);
        for n in names(&shard) {
            assert!(
                !n.ends_with(".tmp"),
                "{at}: {} left",
                shard.join(n).display()
            );
        }
    }
    assert!(
        !names(Path::new(DIR)).iter().any(|n| n.ends_with(".tmp")),
        "{at}"
    );
}

#[test]
fn every_crash_point_leaves_every_acknowledged_write() {
    // The number of operations the whole workload takes.
    let total = {
        let fs = SimFs::new();
        let store = open(&fs).expect("open");
        let before = fs.ops();
        workload(&store, &mut Acked::default()).expect("the workload without failures");
        fs.ops() - before
    };
    assert!(total > 40, "{total} operations");
    let mut temporaries_left = 0;
    for n in 1..=total {
        let fs = SimFs::new();
        let store = open(&fs).expect("open");
        fs.fail_at(n);
        let mut acked = Acked::default();
        let outcome = workload(&store, &mut acked);
        assert!(outcome.is_err(), "operation {n} of {total} did not fail");
        drop(store);
        let crashed = fs.process_crash_image();
        let left = spillway::vfs::Vfs::read_dir(&crashed, &Path::new(DIR).join("objects"))
            .unwrap_or_default()
            .into_iter()
            .flat_map(|s| {
                spillway::vfs::Vfs::read_dir(&crashed, &Path::new(DIR).join("objects").join(s))
                    .unwrap_or_default()
            })
            .filter(|n| n.ends_with(".tmp"))
            .count();
        temporaries_left += left;
        check_reopened(
            &crashed,
            &acked,
            &acked.written,
            &format!("process crash at operation {n}"),
        );
        for seed in 0..3 {
            check_reopened(
                &fs.power_loss_image(seed),
                &acked,
                &acked.durable,
                &format!("power loss at operation {n}, seed {seed}"),
            );
        }
    }
    // The points between an object file's creation and its rename were among them.
    assert!(temporaries_left > 0, "no crash left a temporary file");
}

#[test]
fn a_torn_object_found_after_an_unclean_close_is_written_again() {
    let fs = SimFs::new();
    let o = Obj::generated(7, 500, vec![]);
    {
        let store = open(&fs).expect("open");
        store.put(o.put()).expect("put");
        store.flush(Durability::Durable).expect("flush");
        // No clean close: the process dies.
        std::mem::forget(store);
    }
    let crashed = fs.process_crash_image();
    let path = {
        let ro = DirStore::open_on(
            Arc::new(crashed.clone()),
            Path::new(DIR),
            DirStoreOptions::default().read_only(true),
        )
        .expect("open");
        assert!(!ro.open_report().clean);
        ro.object_path(&o.key)
    };
    // What a power loss can leave of a file whose name was durable before its bytes.
    crashed.corrupt(&path, 100, &[0; 64]).expect("tear");
    let store = open(&crashed).expect("reopen");
    assert!(store.get(&o.key).expect_err("torn").is_corruption());
    store.put(o.put()).expect("put again");
    assert_eq!(store.stats().puts, 1, "written again, not skipped");
    assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
    // After a clean close the files are trusted: a put of a stored key writes nothing.
    drop(store);
    let store = open(&crashed).expect("reopen");
    assert!(store.open_report().clean);
    store.put(o.put()).expect("put");
    assert_eq!(store.stats().puts, 0);
    assert_eq!(store.stats().dedup_hits, 1);
}
