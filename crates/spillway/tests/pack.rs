//! Packs: export a root's graph, copy the file, open it read-only as a pool's store and walk it
//! lazily; exports are deterministic; a damaged index is rebuilt; imports set roots after the
//! data; writes and bad requests are refused.

mod common;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spillway::container::{Container, ContainerOptions};
use spillway::store::{PackStore, export_pack, import_pack};
use spillway::{BlobStore, Durability, ErrorKind, LogStore, MemStore, Paged, Pool, Put};

/// A tree: `fanout` children per node, `depth` levels under the root.
#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Node {
    value: u64,
    data: Vec<u8>,
    children: Vec<Paged<Node>>,
}

fn tree(pool: &Pool, value: u64, depth: u32, fanout: u64) -> Paged<Node> {
    let children = if depth == 0 {
        Vec::new()
    } else {
        (0..fanout)
            .map(|i| tree(pool, value * 10 + i + 1, depth - 1, fanout))
            .collect()
    };
    pool.insert(Node {
        value,
        data: vec![(value % 251) as u8; 300],
        children,
    })
    .expect("insert")
}

/// A log store in `dir` holding a tree of depth 4, fanout 4 (341 nodes) under the root
/// "tree", and a second root "leaf" inside it.
fn store_with_tree(dir: &Path) -> Arc<LogStore> {
    let store = Arc::new(LogStore::open(dir).expect("store"));
    let pool = Pool::builder()
        .budget(1 << 20)
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .build()
        .expect("pool");
    let root = tree(&pool, 0, 4, 4);
    pool.set_root("tree", &root).expect("root");
    let leaf = root.get().expect("get").children[3].clone();
    pool.set_root("leaf", &leaf).expect("root");
    pool.flush(Durability::Durable).expect("flush");
    store
}

fn pack_of(store: &dyn BlobStore, names: &[&str], path: &Path) -> spillway::store::ExportReport {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    export_pack(store, &names, path).expect("export")
}

#[test]
fn an_exported_pack_copied_elsewhere_is_walked_lazily_through_a_pool() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store_with_tree(&tmp.path().join("store"));
    let file = tmp.path().join("tree.spw");
    let report = pack_of(store.as_ref(), &["tree"], &file);
    assert_eq!(report.objects, 341);
    assert_eq!(report.roots.len(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Another machine: a copy of the file, nothing else.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let copy = elsewhere.path().join("copy.spw");
    std::fs::copy(&file, &copy).expect("copy");
    let pack = Arc::new(PackStore::open(&copy).expect("open pack"));
    assert_eq!(pack.open_report().index_rebuilt, None);
    assert_eq!(pack.roots().expect("roots").len(), 1);
    let pool = Pool::builder()
        .budget(64 << 10)
        .store(Arc::clone(&pack) as Arc<dyn BlobStore>)
        .build()
        .expect("pool over the pack");
    let root: Paged<Node> = pool.root("tree").expect("root").expect("named");
    // One path down: the root and one node per level are read, nothing else.
    let mut node = root;
    let mut path = Vec::new();
    loop {
        let next = {
            let g = node.get().expect("get");
            path.push(g.value);
            assert_eq!(g.data, vec![(g.value % 251) as u8; 300]);
            g.children.last().cloned()
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    assert_eq!(path, [0, 4, 44, 444, 4444]);
    assert_eq!(pack.stats().gets, 5, "only the path was read");
    // Writes are refused.
    let e = pack
        .put_batch(&[Put::new(b"new", &[])])
        .expect_err("read-only");
    assert_eq!(e.kind(), ErrorKind::ReadOnly);
    assert_eq!(
        pack.set_root("x", None).expect_err("read-only").kind(),
        ErrorKind::ReadOnly
    );
}

#[test]
fn the_same_graph_exports_to_the_same_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store_with_tree(&tmp.path().join("store"));
    pack_of(store.as_ref(), &["tree", "leaf"], &tmp.path().join("a.spw"));
    // The same objects put in another order, in another kind of store.
    let mem = MemStore::new();
    let mut keys = store.keys().expect("keys");
    keys.sort();
    keys.reverse();
    for k in &keys {
        let b = store.get(k).expect("get").expect("there");
        mem.put(Put::new(&b.payload, &b.children)).expect("put");
    }
    for (name, key) in store.roots().expect("roots") {
        mem.set_root(&name, Some(key)).expect("root");
    }
    pack_of(&mem, &["leaf", "tree"], &tmp.path().join("b.spw"));
    let a = std::fs::read(tmp.path().join("a.spw")).expect("a");
    let b = std::fs::read(tmp.path().join("b.spw")).expect("b");
    assert!(a == b, "two exports of one graph differ");
}

#[test]
fn a_damaged_index_is_rebuilt_and_a_damaged_record_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store_with_tree(&tmp.path().join("store"));
    let file = tmp.path().join("p.spw");
    pack_of(store.as_ref(), &["tree"], &file);
    let (index, objects) = {
        let c = Container::open_with(&file, ContainerOptions::read_only()).expect("open");
        (
            c.section("object-index").expect("index"),
            c.section("objects").expect("objects"),
        )
    };
    let mut bytes = std::fs::read(&file).expect("read");
    bytes[index.offset as usize + 100] ^= 0x04;
    std::fs::write(&file, &bytes).expect("write");
    let pack = PackStore::open(&file).expect("opens: the index is derived");
    let why = pack.open_report().index_rebuilt.clone().expect("rebuilt");
    assert!(why.contains("checksum"), "{why}");
    assert!(pack.open_report().damaged_ranges.is_empty());
    for k in store.keys().expect("keys") {
        assert_eq!(pack.get(&k).expect("get"), store.get(&k).expect("get"));
    }
    drop(pack);
    // A damaged record as well: its read names the pack, the rebuild steps over it.
    bytes[objects.offset as usize + 60] ^= 0x01;
    std::fs::write(&file, &bytes).expect("write");
    let pack = PackStore::open(&file).expect("open");
    assert_eq!(pack.open_report().damaged_ranges.len(), 1);
    assert_eq!(
        pack.stats().objects,
        340,
        "one record lost, the others kept"
    );
}

#[test]
fn import_copies_the_data_then_sets_the_roots() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store_with_tree(&tmp.path().join("store"));
    let file = tmp.path().join("p.spw");
    pack_of(store.as_ref(), &["tree", "leaf"], &file);
    let pack = PackStore::open(&file).expect("open");
    let target = LogStore::open(tmp.path().join("target")).expect("target");
    let r = import_pack(&pack, &target, false).expect("import");
    assert_eq!(r.objects, 341);
    assert_eq!(
        target.roots().expect("roots"),
        store.roots().expect("roots")
    );
    for k in store.keys().expect("keys") {
        assert_eq!(target.get(&k).expect("get"), store.get(&k).expect("get"));
    }
    // Again: nothing new, the roots unchanged.
    import_pack(&pack, &target, false).expect("import twice");
    // A root of the same name naming something else: refused unless replacing.
    let other = Put::new(b"other", &[]);
    target.put(other).expect("put");
    target.set_root("tree", Some(other.key)).expect("root");
    let e = import_pack(&pack, &target, false).expect_err("conflict");
    assert!(e.to_string().contains("\"tree\""), "{e}");
    import_pack(&pack, &target, true).expect("replace");
    assert_eq!(
        target.root("tree").expect("root"),
        store.root("tree").expect("root")
    );
}

#[test]
fn bad_exports_are_refused_and_leave_no_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = store_with_tree(&tmp.path().join("store"));
    let file = tmp.path().join("p.spw");
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let e = export_pack(store.as_ref(), &names(&["nope"]), &file).expect_err("no such root");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("\"nope\""), "{e}");
    assert!(!file.exists());
    // A graph with a hole.
    let mem = MemStore::new();
    let missing = spillway::ContentKey::of(b"never stored", &[]);
    let parent = Put::new(b"parent", std::slice::from_ref(&missing));
    mem.put(parent).expect("put");
    mem.set_root("r", Some(parent.key)).expect("root");
    let e = export_pack(&mem, &names(&["r"]), &file).expect_err("hole");
    assert!(e.to_string().contains("does not hold"), "{e}");
    assert!(!file.exists());
    pack_of(store.as_ref(), &["tree"], &file);
    let e = export_pack(store.as_ref(), &names(&["tree"]), &file).expect_err("exists");
    assert!(e.to_string().contains("exists"), "{e}");
}

#[test]
fn a_pack_whose_root_is_not_among_its_objects_is_not_imported() {
    use spillway::container::types;
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("odd.spw");
    let stranger = spillway::ContentKey::of(b"not in the pack", &[]);
    let roots = spillway::format::roots::encode(&[("r".to_string(), stranger)]);
    {
        let mut c = Container::open(&file).expect("create");
        // The objects section at this build's version (version 1 is refused first, as a pack
        // whose values carry no type tag).
        let objects = spillway::container::Change::Put(spillway::container::SectionData {
            name: "objects",
            kind: types::OBJECTS,
            version: spillway::format::pack::OBJECTS_VERSION,
            required: true,
            mmap: true,
            index: false,
            bytes: (&[][..]).into(),
        });
        c.checkpoint([
            objects,
            common::section("object-index", types::OBJECT_INDEX, false, &[]),
            common::section("roots", types::ROOTS, true, &roots),
        ])
        .expect("checkpoint");
    }
    let pack = PackStore::open(&file).expect("opens");
    let target = MemStore::new();
    let e = import_pack(&pack, &target, false).expect_err("root not held");
    assert!(e.to_string().contains("does not hold"), "{e}");
    assert!(target.keys().expect("keys").is_empty());
    assert!(target.roots().expect("roots").is_empty());
}

/// A log store of format 1 (values without type tags): a store written as blobs, its marker
/// then set to version 1, as an older build left it, and opened again (which upgrades it to
/// version 2, values still without tags).
fn version_1_store(dir: &Path) -> LogStore {
    use spillway::format::marker;
    {
        let store = LogStore::open(dir).expect("store");
        let leaf = Put::new(b"an untagged leaf", &[]);
        let key = leaf.key;
        store.put_batch(&[leaf]).expect("put");
        store.set_root("old", Some(key)).expect("root");
        store.close().expect("close");
    }
    std::fs::write(dir.join(marker::MARKER_FILE), marker::encode(1)).expect("marker");
    LogStore::open(dir).expect("reopen")
}

#[test]
fn a_pack_says_whether_its_values_carry_type_tags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // From a version 1 store: objects section version 1, which a pool refuses, and which
    // imports only into a store without tags either.
    let old = version_1_store(&tmp.path().join("old"));
    // Its writable reopen upgraded it to version 2 (a `SYNC` file); its values have no tags.
    assert_eq!(old.format_version(), 2);
    let path = tmp.path().join("old.spw");
    pack_of(&old, &["old"], &path);
    let pack = PackStore::open(&path).expect("open");
    let refusal = pack.untagged_values().expect("untagged");
    assert!(refusal.to_string().contains("version 1"), "{refusal}");
    let err = Pool::builder()
        .budget(1 << 20)
        .store(Arc::new(PackStore::open(&path).expect("open")))
        .build()
        .map(|_| ())
        .expect_err("a pool refuses an untagged pack");
    assert_eq!(err.kind(), ErrorKind::OldFormat, "{err}");
    let tagged = LogStore::open(tmp.path().join("new")).expect("store");
    let err = import_pack(&pack, &tagged, false).expect_err("untagged into tagged");
    assert_eq!(err.kind(), ErrorKind::OldFormat, "{err}");
    assert!(tagged.keys().expect("keys").is_empty() && tagged.roots().expect("roots").is_empty());
    let other_old = version_1_store(&tmp.path().join("old2"));
    import_pack(&pack, &other_old, true).expect("untagged into untagged");

    // From a version 2 store: version 2, which a pool opens.
    let new = store_with_tree(&tmp.path().join("tree"));
    let path = tmp.path().join("new.spw");
    pack_of(&*new, &["leaf"], &path);
    let pack = PackStore::open(&path).expect("open");
    assert!(pack.untagged_values().is_none());
    Pool::builder()
        .budget(1 << 20)
        .store(Arc::new(pack))
        .build()
        .expect("a pool over a tagged pack");
}

/// A record whose checksum holds but whose bytes are another key's (a pack written wrongly or
/// altered, as a fuzzer found): reading that key is an error naming the pack, never the other
/// object's bytes, and an import stops without writing anything.
#[test]
fn a_record_whose_bytes_are_another_keys_is_refused() {
    use spillway::container::types;
    use spillway::format::record::{self, RecordKind};
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("odd.spw");
    let real = spillway::ContentKey::of(b"some bytes", &[]);
    // The same key with one hex digit changed.
    let mut hex = real.to_string().into_bytes();
    hex[10] = if hex[10] == b'0' { b'1' } else { b'0' };
    let claimed: spillway::ContentKey =
        String::from_utf8(hex).expect("hex").parse().expect("a key");
    let mut objects = Vec::new();
    record::encode(&mut objects, RecordKind::Put, &claimed, &[], b"some bytes");
    {
        let mut c = Container::open(&file).expect("create");
        c.checkpoint([
            spillway::container::Change::Put(spillway::container::SectionData {
                name: "objects",
                kind: types::OBJECTS,
                version: spillway::format::pack::OBJECTS_VERSION,
                required: true,
                mmap: true,
                index: false,
                bytes: objects.as_slice().into(),
            }),
            common::section(
                "roots",
                types::ROOTS,
                true,
                &spillway::format::roots::encode(&[]),
            ),
        ])
        .expect("checkpoint");
    }
    let pack = PackStore::open(&file).expect("opens (the index is rebuilt from the objects)");
    assert_eq!(pack.keys().expect("keys"), vec![claimed]);
    let e = pack.get(&claimed).expect_err("another key's bytes");
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    let target = MemStore::new();
    import_pack(&pack, &target, false).expect_err("not imported");
    assert!(target.keys().expect("keys").is_empty());
}
