//! Stored values know their type: a value read as another type, or as another version of its
//! type, is an error that names both (never wrong data), through every path that decodes one
//! (a root, `load`, a child handle of a graph written by an earlier pool); a registered upgrade
//! reads an older version as the current type; trait objects are tagged by their trait; and a
//! damaged tag is an error, never a panic.

mod common;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spillway::format::value::TypeTag;
use spillway::{BlobStore, DeepSize, Error, ErrorKind, MemStore, Paged, Pool, PoolBuilder, Put};

fn builder(dir: &Path) -> PoolBuilder {
    Pool::builder()
        .budget(16 << 20)
        .dir(dir)
        .deterministic(true)
}

fn root_of<T: ?Sized + spillway::Pageable>(pool: &Pool, name: &str) -> Paged<T> {
    pool.root(name).expect("read roots").expect("the root")
}

/// The error of reading root `name` of `pool` as a `T`.
fn root_error<T: ?Sized + spillway::Pageable>(pool: &Pool, name: &str) -> Error {
    match root_of::<T>(pool, name).get() {
        Ok(_) => panic!("root {name} read as {}", std::any::type_name::<T>()),
        Err(e) => e,
    }
}

#[derive(Serialize, Deserialize, get_size2::GetSize, Debug, Clone, PartialEq)]
struct Point {
    x: u32,
    y: u32,
}

#[derive(Serialize, Deserialize, get_size2::GetSize, Debug, Clone, PartialEq)]
struct Label {
    text: String,
}

#[test]
fn a_root_read_as_another_type_is_an_error_naming_both_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let pool = builder(dir.path()).build().expect("pool");
        let s = pool.insert("forty-two".to_string()).expect("insert");
        pool.set_root("name", &s).expect("root");
    }
    let pool = builder(dir.path()).build().expect("reopen");
    // Read as its own type, it is what was stored.
    assert_eq!(
        *root_of::<String>(&pool, "name").get().expect("get"),
        "forty-two"
    );
    for err in [
        root_error::<Vec<u64>>(&pool, "name"),
        root_error::<u32>(&pool, "name"),
    ] {
        assert_eq!(err.kind(), ErrorKind::TypeMismatch, "{err}");
        let msg = err.to_string();
        // The type it was read as by name; the type found by its tag (its Rust path's hash).
        let string_tag = TypeTag::of(std::any::type_name::<String>(), 0);
        assert!(msg.contains(&format!("{:#010x}", string_tag.hash)), "{msg}");
        assert!(
            msg.contains("Vec<u64>") || msg.contains("\"u32\" version 0"),
            "{msg}"
        );
    }

    // With stable names registered, both types are named.
    let dir = tempfile::tempdir().expect("tempdir");
    let named = |d: &Path| {
        builder(d)
            .schema::<Point>("point", 0)
            .schema::<Label>("label", 3)
    };
    {
        let pool = named(dir.path()).build().expect("pool");
        let p = pool.insert(Point { x: 1, y: 2 }).expect("insert");
        pool.set_root("p", &p).expect("root");
    }
    let pool = named(dir.path()).build().expect("reopen");
    let err = root_error::<Label>(&pool, "p");
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::TypeMismatch, "{msg}");
    assert!(
        msg.contains("stored as \"point\" version 0")
            && msg.contains("read as \"label\" version 3"),
        "{msg}"
    );
    assert_eq!(
        *root_of::<Point>(&pool, "p").get().expect("get"),
        Point { x: 1, y: 2 }
    );
}

#[test]
fn load_as_another_type_is_an_error_and_the_right_type_still_reads() {
    let pool = common::mem_pool(1 << 20);
    let p = pool.insert(Point { x: 7, y: 8 }).expect("insert");
    let key = p.key().expect("store");
    pool.shrink_to(0).expect("page out");
    // Same layout (two varints), another type: postcard alone would decode it.
    let wrong: Paged<(u32, u32)> = pool.load(key).expect("a handle");
    let err = wrong.get().map(|_| ()).expect_err("not a (u32, u32)");
    assert!(
        matches!(err.root(), Error::TypeMismatch { key: k, .. } if *k == key),
        "{err}"
    );
    assert!(err.to_string().contains("(u32, u32)"), "{err}");
    let right: Paged<Point> = pool.load(key).expect("a handle");
    assert_eq!(*right.get().expect("get"), Point { x: 7, y: 8 });
    assert_eq!(*p.get().expect("get"), Point { x: 7, y: 8 });
}

mod written {
    use super::*;

    #[derive(Serialize, Deserialize, get_size2::GetSize)]
    pub struct Parent {
        pub name: String,
        pub child: Paged<Point>,
    }
}

mod read {
    use super::*;

    /// The parent as a later program declares it: the same name and version, but its child
    /// is now another type.
    #[derive(Serialize, Deserialize, get_size2::GetSize)]
    pub struct Parent {
        pub name: String,
        pub child: Paged<Label>,
    }
}

#[test]
fn a_child_handle_of_another_type_fails_when_it_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let pool = builder(dir.path())
            .schema::<written::Parent>("parent", 0)
            .build()
            .expect("pool");
        let child = pool.insert(Point { x: 3, y: 4 }).expect("insert");
        let parent = pool
            .insert(written::Parent {
                name: "p".into(),
                child,
            })
            .expect("insert");
        pool.set_root("parent", &parent).expect("root");
    }
    let pool = builder(dir.path())
        .schema::<read::Parent>("parent", 0)
        .build()
        .expect("reopen");
    let parent = root_of::<read::Parent>(&pool, "parent");
    let parent = parent.get().expect("the parent's own type matches");
    assert_eq!(parent.name, "p");
    let err = parent
        .child
        .get()
        .map(|_| ())
        .expect_err("the child is a point");
    assert_eq!(err.kind(), ErrorKind::TypeMismatch, "{err}");
    assert!(err.to_string().contains("Label"), "{err}");
}

/// `Config` as version 1 of the program stored it.
#[derive(Serialize, Deserialize, get_size2::GetSize, Debug, Clone)]
struct ConfigV1 {
    name: String,
    parts: Vec<Paged<Label>>,
}

/// `Config` at version 2: a field added.
#[derive(Serialize, Deserialize, get_size2::GetSize, Debug, Clone)]
struct Config {
    name: String,
    parts: Vec<Paged<Label>>,
    retries: u32,
}

/// Writes `n` version 1 configs, each with a child, under roots `config-{i}`.
fn write_v1(dir: &Path, n: u32) {
    let pool = builder(dir)
        .schema::<ConfigV1>("config", 1)
        .build()
        .expect("pool");
    for i in 0..n {
        let part = pool
            .insert(Label {
                text: format!("part {i}"),
            })
            .expect("insert");
        let c = pool
            .insert(ConfigV1 {
                name: format!("config {i}"),
                parts: vec![part],
            })
            .expect("insert");
        pool.set_root(&format!("config-{i}"), &c).expect("root");
    }
}

#[test]
fn an_older_version_without_an_upgrade_is_an_error_naming_both_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_v1(dir.path(), 1);
    let pool = builder(dir.path())
        .schema::<Config>("config", 2)
        .build()
        .expect("reopen");
    let err = root_error::<Config>(&pool, "config-0");
    match err.root() {
        Error::SchemaVersion {
            name,
            expected,
            found,
            ..
        } => assert_eq!((name.as_str(), *expected, *found), ("config", 2, 1)),
        other => panic!("expected a version error, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("version 1") && msg.contains("version 2") && msg.contains(".upgrade::<"),
        "{msg}"
    );
    drop(pool);

    // A pool at an older version than the store's values says that they are newer.
    let pool = builder(dir.path())
        .schema::<ConfigV1>("config", 0)
        .build()
        .expect("reopen");
    let err = root_error::<ConfigV1>(&pool, "config-0");
    assert!(err.to_string().contains("newer version"), "{err}");
}

#[test]
fn a_registered_upgrade_reads_older_versions_as_the_new_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_v1(dir.path(), 5);
    let upgraded_pool = |d: &Path| {
        builder(d)
            .schema::<Config>("config", 2)
            .upgrade::<ConfigV1, Config>(1, |old| Config {
                name: old.name,
                parts: old.parts,
                retries: 3,
            })
            .build()
            .expect("reopen")
    };
    let pool = upgraded_pool(dir.path());
    let mut handles = Vec::new();
    for i in 0..5 {
        let h = root_of::<Config>(&pool, &format!("config-{i}"));
        let stored_key = pool.roots().expect("roots")[i].1;
        {
            let c = h.get().expect("upgraded");
            assert_eq!(
                (c.name.as_str(), c.retries),
                (format!("config {i}").as_str(), 3)
            );
            // The children came through the upgrade as handles, and read.
            assert_eq!(c.parts[0].get().expect("child").text, format!("part {i}"));
            // The handle keeps the stored key; the new value has a key of its own.
            assert_eq!(h.key().expect("key"), stored_key);
            assert_ne!(pool.key_of(&*c).expect("key_of"), stored_key);
        }
        handles.push(h);
    }
    // Paged out and in again: upgraded again.
    pool.shrink_to(0).expect("page out");
    assert_eq!(handles[2].get().expect("again").retries, 3);

    // An update stores the value at version 2, which reads without the upgrade.
    let new = pool.update(&handles[0], |c| c.retries = 5).expect("update");
    pool.set_root("config-0", &new).expect("root");
    drop((handles, new, pool));
    let pool = builder(dir.path())
        .schema::<Config>("config", 2)
        .build()
        .expect("reopen");
    assert_eq!(
        root_of::<Config>(&pool, "config-0")
            .get()
            .expect("v2")
            .retries,
        5
    );
    let err = root_error::<Config>(&pool, "config-1");
    assert_eq!(
        err.kind(),
        ErrorKind::SchemaVersion,
        "still version 1: {err}"
    );
}

#[test]
fn the_builder_refuses_inconsistent_registrations() {
    let refused = |b: PoolBuilder, says: &str| {
        let err = b.budget(1 << 20).build().map(|_| ()).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.to_string().contains(says), "{err}");
    };
    let up = |old: ConfigV1| Config {
        name: old.name,
        parts: old.parts,
        retries: 0,
    };
    refused(
        Pool::builder().upgrade::<ConfigV1, Config>(1, up),
        "is not: give it its stable name",
    );
    refused(
        Pool::builder()
            .schema::<Config>("config", 1)
            .upgrade::<ConfigV1, Config>(1, up),
        "is not from an older version",
    );
    refused(
        Pool::builder()
            .schema::<Config>("config", 2)
            .upgrade::<ConfigV1, Config>(1, up)
            .upgrade::<ConfigV1, Config>(1, up),
        "two upgrades",
    );
    refused(
        Pool::builder()
            .schema::<Point>("shared", 0)
            .schema::<Label>("shared", 0),
        "are both registered as \"shared\"",
    );
    refused(
        Pool::builder()
            .schema::<Point>("point", 0)
            .schema::<Point>("point again", 0),
        "registered twice",
    );
}

#[typetag::serde]
trait Shape: DeepSize + Send + Sync {
    fn area(&self) -> f64;
}
spillway::pageable_dyn!(Shape, "shape");

#[typetag::serde]
trait Colour: DeepSize + Send + Sync {
    fn name(&self) -> String;
}
spillway::pageable_dyn!(Colour);

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Square {
    side: f64,
}

#[typetag::serde]
impl Shape for Square {
    fn area(&self) -> f64 {
        self.side * self.side
    }
}

#[typetag::serde(name = "Square")]
impl Colour for Square {
    fn name(&self) -> String {
        format!("square {}", self.side)
    }
}

#[test]
fn trait_objects_round_trip_under_their_name_and_another_trait_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let pool = builder(dir.path()).build().expect("pool");
        let s: Paged<dyn Shape> = pool
            .insert_boxed(Box::new(Square { side: 3.0 }) as Box<dyn Shape>)
            .expect("insert");
        pool.set_root("shape", &s).expect("root");
    }
    let pool = builder(dir.path()).build().expect("reopen");
    assert_eq!(
        root_of::<dyn Shape>(&pool, "shape")
            .get()
            .expect("get")
            .area(),
        9.0
    );
    // The same typetag name under another trait: the bytes would decode, the tag refuses them.
    let err = root_error::<dyn Colour>(&pool, "shape");
    assert_eq!(err.kind(), ErrorKind::TypeMismatch, "{err}");
    let msg = err.to_string();
    let shape_tag = TypeTag::of("shape", 0);
    assert!(
        msg.contains("dyn pool_types::Colour")
            && msg.contains(&format!("{:#010x}", shape_tag.hash)),
        "{msg}"
    );
}

#[test]
fn a_damaged_tag_is_an_error_never_a_panic_nor_a_value() {
    let store = Arc::new(MemStore::new());
    let pool = Pool::builder()
        .budget(1 << 20)
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .schema::<Point>("point", 300)
        .deterministic(true)
        .build()
        .expect("pool");
    let key = pool
        .insert(Point { x: 1, y: 2 })
        .expect("insert")
        .key()
        .expect("store");
    let good = store.get(&key).expect("get").expect("stored").payload;
    // The tag is 4 hash bytes and a 2-byte version (300); then the point.
    let tag_len = 6;
    let mut damaged = Vec::new();
    for i in 0..tag_len {
        for bit in 0..8 {
            let mut b = good.clone();
            b[i] ^= 1 << bit;
            damaged.push(b);
        }
    }
    for cut in 0..tag_len {
        damaged.push(good[..cut].to_vec());
    }
    for payload in damaged {
        store.put_batch(&[Put::new(&payload, &[])]).expect("put");
        let key = spillway::Blob {
            payload: payload.clone(),
            children: vec![],
        }
        .key();
        let h: Paged<Point> = pool.load(key).expect("a handle");
        let err = h
            .get()
            .map(|p| p.clone())
            .expect_err("a damaged tag is not a point");
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Corrupted | ErrorKind::TypeMismatch | ErrorKind::SchemaVersion
            ),
            "{payload:?}: {err}"
        );
    }
}

/// Directory stores and SQLite databases written before type tags (version 1: the same files
/// and tables) still open as stores, and a pool refuses them, naming the version.
#[test]
fn directory_and_sqlite_stores_of_version_1_are_refused_by_a_pool() {
    use spillway::format::object;
    use spillway::{DirStore, SqliteStore};
    let refused = |store: Arc<dyn BlobStore>| {
        let err = Pool::builder()
            .budget(1 << 20)
            .store(store)
            .build()
            .map(|_| ())
            .expect_err("a version 1 store");
        assert_eq!(err.kind(), ErrorKind::OldFormat, "{err}");
        assert!(err.to_string().contains("format version 1"), "{err}");
    };
    let tmp = tempfile::tempdir().expect("tempdir");

    let dir = tmp.path().join("dir");
    let key = {
        let store = DirStore::open(&dir).expect("create");
        assert_eq!(store.format_version(), object::DIR_STORE_VERSION);
        let put = Put::new(b"old bytes", &[]);
        store.put_batch(&[put]).expect("put");
        put.key
    };
    std::fs::write(dir.join(object::DIR_MARKER_FILE), object::encode_marker(1)).expect("marker");
    let store = DirStore::open(&dir).expect("a version 1 store opens");
    assert_eq!(store.format_version(), 1);
    assert_eq!(
        store.get(&key).expect("get").expect("held").payload,
        b"old bytes"
    );
    refused(Arc::new(store));

    let db = tmp.path().join("store.db");
    {
        let store = SqliteStore::open(&db).expect("create");
        assert_eq!(
            store.schema_version(),
            spillway::store::sqlite::SCHEMA_VERSION
        );
    }
    let conn = rusqlite::Connection::open(&db).expect("open with rusqlite");
    conn.execute("UPDATE spillway_schema SET version = 1", [])
        .expect("set version 1");
    drop(conn);
    let store = SqliteStore::open(&db).expect("a version 1 database opens");
    assert_eq!(store.schema_version(), 1);
    refused(Arc::new(store));
}
