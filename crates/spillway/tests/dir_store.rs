//! The directory store beyond the common contract: damage is reported naming the file, files
//! the store did not create are left alone, kept graphs survive deletes and come back, a
//! durable flush syncs only what was written since the last one, the lock, the marker.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::Obj;
use spillway::store::{DirStore, DirStoreOptions};
use spillway::{BlobStore, Durability, Error, ErrorKind, Paged, Pool};

#[test]
fn a_one_byte_corruption_is_reported_naming_the_file_never_returned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let child = Obj::generated(1, 10, vec![]);
    let o = Obj::generated(2, 3000, vec![child.key]);
    {
        let store = DirStore::open(&dir).expect("open");
        store.put_batch(&[child.put(), o.put()]).expect("put");
    }
    let path = DirStore::open_with(&dir, DirStoreOptions::default().read_only(true))
        .expect("open")
        .object_path(&o.key);
    let clean = std::fs::read(&path).expect("read the object file");
    // Every byte: header, child key, payload.
    for i in (0..clean.len()).step_by(7).chain([clean.len() - 1]) {
        let mut bytes = clean.clone();
        bytes[i] ^= 0x01;
        std::fs::write(&path, &bytes).expect("plant the damage");
        let store = DirStore::open(&dir).expect("open");
        let err = store.get(&o.key).expect_err(&format!("byte {i} flipped"));
        assert!(err.is_corruption(), "byte {i}: {err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "byte {i}: {err}"
        );
        // The header and the child keys are checked by children() too; the payload is not
        // read there.
        let head_len = 48 + 16;
        match store.children(&o.key) {
            Ok(c) => assert!(i >= head_len, "byte {i}: children {c:?}"),
            Err(e) => assert!(i < head_len && e.is_corruption(), "byte {i}: {e}"),
        }
        let report = store.check().expect("check");
        assert!(!report.is_clean(), "byte {i}");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains(&o.key.to_string())),
            "{report:?}"
        );
    }
    std::fs::write(&path, &clean).expect("repair");
    let store = DirStore::open(&dir).expect("open");
    assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
    assert!(store.check().expect("check").is_clean());
    // A cut file and an empty one.
    for len in [0, 20, clean.len() - 1] {
        std::fs::write(&path, &clean[..len]).expect("cut");
        let err = store.get(&o.key).expect_err("cut");
        assert!(err.is_corruption(), "{err}");
        assert!(store.children(&o.key).is_err(), "cut at {len}");
    }
    // Another object's file under this key's name.
    std::fs::write(
        &path,
        std::fs::read(store.object_path(&child.key)).expect("read"),
    )
    .expect("swap");
    let err = store.get(&o.key).expect_err("swapped");
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err}");
}

#[test]
fn files_the_store_did_not_create_are_left_alone_and_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let o = Obj::generated(3, 100, vec![]);
    let shard;
    {
        let store = DirStore::open(&dir).expect("open");
        store.put(o.put()).expect("put");
        shard = store
            .object_path(&o.key)
            .parent()
            .expect("shard")
            .to_path_buf();
    }
    let foreign = [
        dir.join("README"),
        dir.join("objects").join("notes.txt"),
        shard.join("copy of an object"),
        shard.join("0123456789abcdef0123456789abcdef.bak"),
        dir.join("kept").join("mine").join("photo.jpg"),
    ];
    for f in &foreign {
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, b"not spillway's").expect("write");
    }
    let store = DirStore::open(&dir).expect("open with foreign files");
    let report = store.open_report();
    for f in &foreign {
        assert!(f.exists(), "{} removed", f.display());
        let listed = report.unknown.iter().any(|u| f.starts_with(u));
        assert!(listed, "{} not reported in {report:?}", f.display());
    }
    assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
    store.delete(&[o.key]).expect("delete");
    store.flush(Durability::Durable).expect("flush");
    let notes = store.check().expect("check").notes;
    assert_eq!(notes.len(), report.unknown.len(), "{notes:?}");
    drop(store);
    for f in &foreign {
        assert!(f.exists(), "{} removed", f.display());
    }
    // Without a marker, a directory with files is not a store.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("data"), b"x").expect("write");
    let err = DirStore::open(&other).expect_err("not a store");
    assert_eq!(err.kind(), ErrorKind::NotAStore, "{err}");
    assert!(other.join("data").exists());
}

#[test]
fn temporary_files_of_a_crash_are_removed_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let o = Obj::generated(4, 100, vec![]);
    let path;
    {
        let store = DirStore::open(&dir).expect("open");
        store.put(o.put()).expect("put");
        path = store.object_path(&o.key);
    }
    let leftovers = [
        PathBuf::from(format!("{}.tmp", path.display())),
        dir.join("ROOTS.tmp"),
        dir.join("kept").join("half").join(o.key.to_string()),
    ];
    for f in &leftovers {
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, b"half written").expect("write");
    }
    // Read-only: listed, left.
    let ro = DirStore::open_with(&dir, DirStoreOptions::default().read_only(true)).expect("open");
    assert_eq!(ro.open_report().removed.len(), 3, "{:?}", ro.open_report());
    assert!(leftovers.iter().all(|f| f.exists()));
    drop(ro);
    let store = DirStore::open(&dir).expect("open");
    let report = store.open_report().clone();
    assert_eq!(report.removed.len(), 3, "{report:?}");
    assert!(report.unknown.is_empty(), "{report:?}");
    for f in &leftovers {
        assert!(!f.exists(), "{} left", f.display());
    }
    assert!(
        !dir.join("kept").join("half").exists(),
        "an interrupted persist's directory"
    );
    assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
}

#[test]
fn a_durable_flush_syncs_what_was_written_since_the_last_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = DirStore::open(tmp.path().join("store")).expect("open");
    let objs: Vec<Obj> = (0..3).map(|i| Obj::generated(10 + i, 50, vec![])).collect();
    let puts: Vec<_> = objs.iter().map(Obj::put).collect();
    store.put_batch(&puts).expect("put");
    let shards: std::collections::BTreeSet<_> = objs
        .iter()
        .map(|o| store.object_path(&o.key).parent().map(Path::to_path_buf))
        .collect();
    store.flush(Durability::Written).expect("written");
    assert_eq!(store.stats().syncs, 0, "Written syncs nothing");
    store.flush(Durability::Durable).expect("durable");
    // The three files, their shard directories, and `objects/` (new shards in it).
    let first = store.stats().syncs;
    assert_eq!(first, 3 + shards.len() as u64 + 1);
    store.flush(Durability::Durable).expect("again");
    assert_eq!(store.stats().syncs, first, "nothing new, nothing synced");
    store.delete(&[objs[0].key]).expect("delete");
    store.flush(Durability::Durable).expect("durable");
    assert_eq!(
        store.stats().syncs,
        first + 1,
        "the shard of the removed file"
    );
}

#[test]
fn a_second_writer_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let store = DirStore::open(&dir).expect("open");
    let o = Obj::generated(5, 10, vec![]);
    store.put(o.put()).expect("put");
    let err = DirStore::open(&dir).expect_err("locked");
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("process {}", std::process::id())),
        "{err}"
    );
    let ro = DirStore::open_with(&dir, DirStoreOptions::default().read_only(true)).expect("ro");
    assert_eq!(ro.get(&o.key).expect("get"), Some(o.blob()));
    assert_eq!(
        ro.put(Obj::generated(6, 1, vec![]).put())
            .expect_err("read-only")
            .kind(),
        ErrorKind::ReadOnly
    );
}

#[test]
fn a_newer_marker_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    drop(DirStore::open(&dir).expect("create"));
    let marker = dir.join("DIRSTORE");
    let current = spillway::format::object::DIR_STORE_VERSION;
    std::fs::write(
        &marker,
        spillway::format::object::encode_marker(current + 1),
    )
    .expect("write");
    let err = DirStore::open(&dir).expect_err("newer");
    match &err {
        Error::UnsupportedVersion {
            path,
            found,
            supported,
        } => assert_eq!((path, *found, *supported), (&marker, current + 1, current)),
        e => panic!("{e}"),
    }
}

#[derive(serde::Serialize, serde::Deserialize, get_size2::GetSize)]
struct Node {
    label: String,
    children: Vec<Paged<Node>>,
}

fn node(pool: &Pool, label: &str, children: Vec<Paged<Node>>) -> Paged<Node> {
    pool.insert(Node {
        label: label.to_string(),
        children,
    })
    .expect("insert")
}

fn labels(n: &Paged<Node>) -> Vec<String> {
    let g = n.get().expect("get");
    let mut out = vec![g.label.clone()];
    for c in &g.children {
        out.extend(labels(c));
    }
    out
}

#[test]
fn a_kept_graph_survives_deletes_and_a_restart_and_is_registered_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let open = || Arc::new(DirStore::open(&dir).expect("open"));
    let (key, want) = {
        let store = open();
        let pool = Pool::builder()
            .budget(1 << 20)
            .store(store.clone())
            .build()
            .expect("pool");
        let shared = node(&pool, "shared", vec![]);
        let a = node(&pool, "a", vec![shared.clone()]);
        let root = node(&pool, "root", vec![a, shared]);
        let key = root.key().expect("store the graph");
        let kept = store.persist(key, "build-7").expect("persist");
        assert_eq!((kept.root, kept.objects), (key, 3));
        assert!(matches!(
            store.persist(key, "build-7"),
            Err(Error::InvalidArgument(_))
        ));
        for bad in ["", ".hidden", "a/b", "x y"] {
            assert!(
                matches!(store.persist(key, bad), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
        let want = labels(&root);
        drop(root);
        // Nothing names the graph in the store: garbage collection deletes it.
        pool.gc().expect("gc");
        assert_eq!(store.stats().objects, 0);
        (key, want)
    };
    let store = open();
    assert!(!store.contains(&key).expect("contains"));
    assert_eq!(store.kept().expect("kept").len(), 1);
    assert_eq!(store.register("build-7").expect("register"), key);
    assert_eq!(store.stats().objects, 3);
    let pool = Pool::builder()
        .budget(1 << 20)
        .store(store.clone())
        .build()
        .expect("pool");
    let root: Paged<Node> = pool.load(key).expect("load");
    assert_eq!(labels(&root), want);
    assert!(store.check().expect("check").is_clean());
    // Registering again changes nothing; unpersisting leaves the objects.
    assert_eq!(store.register("build-7").expect("register"), key);
    store.unpersist("build-7").expect("unpersist");
    assert!(store.kept().expect("kept").is_empty());
    assert!(!dir.join("kept").join("build-7").exists());
    assert_eq!(labels(&root), want);
    assert!(matches!(
        store.register("build-7"),
        Err(Error::InvalidArgument(_))
    ));
    // A graph with an object missing is not kept.
    let lone = Obj::generated(9, 10, vec![Obj::generated(8, 10, vec![]).key]);
    store.put(lone.put()).expect("put");
    assert_eq!(
        store
            .persist(lone.key, "broken")
            .expect_err("missing child")
            .kind(),
        ErrorKind::NotFound
    );
    assert!(!dir.join("kept").join("broken").exists());
}
