//! Writes seed inputs for the fuzz targets from real stores: `cargo run --bin make_seeds` in
//! `fuzz/`.

use std::path::Path;

use spillway::format::{checkpoint, segment};
use spillway::vfs::{SimFs, Vfs};
use spillway::{BlobStore, Durability, LogStore, LogStoreOptions, Put};
use spillway_fuzz::{DIR, bytes_from_files};

fn main() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let fs = std::sync::Arc::new(SimFs::new());
    let dir = Path::new(DIR);
    let opts = LogStoreOptions::default().segment_size(4096);
    let store = LogStore::open_on(fs.clone(), dir, opts).expect("open");
    let leaf_a = Put::new(b"leaf a", &[]);
    let leaf_b = Put::new(b"leaf b", &[]);
    let children = [leaf_a.key, leaf_b.key];
    let parent = Put::new(b"parent", &children);
    store.put_batch(&[leaf_a, leaf_b, parent]).expect("put");
    for i in 0..40u32 {
        let payload = vec![i as u8; 100 + i as usize * 7];
        store.put(Put::new(&payload, &[])).expect("put");
    }
    store.delete(&[leaf_b.key]).expect("delete");
    store.checkpoint().expect("checkpoint");
    store
        .put(Put::new(b"after the checkpoint", &[leaf_a.key]))
        .expect("put");
    store.flush(Durability::Durable).expect("flush");
    drop(store);

    let read = |name: &str| fs.read_file(&dir.join(name)).ok();
    let mut segments = Vec::new();
    for id in 1.. {
        match read(&segment::file_name(id)) {
            Some(s) => segments.push(s),
            None => break,
        }
    }
    let ckpt = read(checkpoint::CHECKPOINT_FILE);
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = seeds.join(target);
        std::fs::create_dir_all(&d).expect("seed dir");
        std::fs::write(d.join(name), bytes).expect("write seed");
    };
    write(
        "recover_log",
        "store-with-checkpoint",
        &bytes_from_files(ckpt.as_deref(), &segments[..segments.len().min(4)]),
    );
    write(
        "recover_log",
        "store-without-checkpoint",
        &bytes_from_files(None, &segments[..segments.len().min(4)]),
    );
    if let Some(c) = &ckpt {
        write("decode_checkpoint", "checkpoint", c);
    }
    let first = &segments[0];
    write(
        "decode_record",
        "segment-header",
        &first[..segment::SEGMENT_HEADER_LEN],
    );
    write(
        "decode_record",
        "records",
        &first[segment::SEGMENT_HEADER_LEN..],
    );
    // A container with sections of several kinds, after two checkpoints (both slots used).
    let file = Path::new("/c/seed.spw");
    fs.create_dir_all(Path::new("/c")).expect("mkdir");
    {
        use spillway::container::{Change, Container, ContainerOptions, SectionData, types};
        let section = |name, kind, required, bytes: &'static [u8]| {
            Change::Put(SectionData {
                name,
                kind,
                version: 1,
                required,
                mmap: true,
                index: !required,
                bytes: bytes.into(),
            })
        };
        let mut c =
            Container::open_on(fs.clone(), file, ContainerOptions::default()).expect("container");
        c.checkpoint([
            section("keys", types::KEY_INDEX, true, &[7u8; 300]),
            section("empty", types::U64_COLUMN, false, &[]),
        ])
        .expect("checkpoint");
        c.checkpoint([section("times", types::U64_COLUMN, true, &[9u8; 5000])])
            .expect("checkpoint");
    }
    write(
        "open_container",
        "two-checkpoints",
        &fs.read_file(file).expect("read container"),
    );
    // A pack of a small graph, written on the real file system (export renames into place).
    {
        let tmp = std::env::temp_dir().join(format!("spillway-seed-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("temporary directory");
        let mem = spillway::MemStore::new();
        let leaf = Put::new(b"leaf of the pack", &[]);
        let other = Put::new(b"another leaf", &[]);
        let keys = [leaf.key, other.key];
        let root = Put::new(b"root of the pack", &keys);
        mem.put_batch(&[leaf, other, root]).expect("put");
        mem.set_root("seed", Some(root.key)).expect("root");
        let pack = tmp.join("seed.spw");
        spillway::store::export_pack(&mem, &["seed".to_string()], &pack).expect("export");
        write(
            "open_pack",
            "small-graph",
            &std::fs::read(&pack).expect("read pack"),
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }
    roots_marker_and_sync_seeds(&write);
    nested_seeds(&write);
    println!("seeds written under {}", seeds.display());
}

/// Seeds of the roots file, the store marker and the sync record: encodings of real ones.
fn roots_marker_and_sync_seeds(write: &dyn Fn(&str, &str, &[u8])) {
    use spillway::format::{marker, roots, sync};
    let a = Put::new(b"a", &[]).key;
    let b = Put::new(b"b", &[a]).key;
    write("decode_roots", "empty", &roots::encode(&[]));
    write("decode_roots", "one", &roots::encode(&[("main".into(), a)]));
    write(
        "decode_roots",
        "three",
        &roots::encode(&[
            ("alpha".into(), a),
            ("beta".into(), b),
            (format!("spillway.persist.{b}"), b),
        ]),
    );
    write(
        "decode_marker",
        "version-2",
        &marker::encode(marker::STORE_VERSION),
    );
    write("decode_marker", "version-1", &marker::encode(1));
    // A store opened and closed three times: both slots of its SYNC file written.
    let fs = std::sync::Arc::new(SimFs::new());
    let dir = Path::new("/sync");
    for i in 0..3u8 {
        let store = LogStore::open_on(fs.clone(), dir, LogStoreOptions::default()).expect("open");
        store.put(Put::new(&[i; 40], &[])).expect("put");
        store.close().expect("close");
    }
    let file = fs.read_file(&dir.join(sync::SYNC_FILE)).expect("read SYNC");
    let mut raw = vec![0u8];
    raw.extend_from_slice(&file);
    write("decode_sync", "both-slots-file", &raw);
    let mut spread = vec![1u8];
    spread.extend_from_slice(&file[..sync::SLOT_LEN]);
    spread.extend_from_slice(&file[sync::SLOT_SPACING..sync::SLOT_SPACING + sync::SLOT_LEN]);
    write("decode_sync", "both-slots-spread", &spread);
    let mut first = vec![1u8];
    first.extend_from_slice(&file[..sync::SLOT_LEN]);
    write("decode_sync", "slot-0-only", &first);
}

/// Seeds of the codec target: the objects of real `Node` and `Leaf` values written by a pool,
/// children before parents.
fn nested_seeds(write: &dyn Fn(&str, &str, &[u8])) {
    use spillway::{ContentKey, MemStore, Pool};
    use spillway_fuzz::{Leaf, Node, bytes_from_objects};
    let store = std::sync::Arc::new(MemStore::new());
    let pool = Pool::builder()
        .store(store.clone())
        .build()
        .expect("a pool");
    let leaf = pool
        .insert(Leaf {
            name: "a leaf".into(),
            values: vec![1, 2, 300_000],
        })
        .expect("insert");
    let child = pool
        .insert(Node {
            value: 7,
            data: b"child".to_vec(),
            children: Vec::new(),
            leaf: Some(leaf.clone()),
        })
        .expect("insert");
    let root = pool
        .insert(Node {
            value: u64::MAX,
            data: vec![9; 20],
            children: vec![child.clone(), child],
            leaf: Some(leaf),
        })
        .expect("insert");
    let key = pool.persist(&root).expect("persist");
    // Post-order: children first, each object once.
    fn visit(
        store: &MemStore,
        key: ContentKey,
        order: &mut Vec<ContentKey>,
        out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) {
        if order.contains(&key) {
            return;
        }
        let blob = store.get(&key).expect("get").expect("stored");
        for c in &blob.children {
            visit(store, *c, order, out);
        }
        let refs = blob
            .children
            .iter()
            .map(|c| order.iter().position(|k| k == c).expect("visited") as u8)
            .collect();
        order.push(key);
        out.push((blob.payload, refs));
    }
    let mut order = Vec::new();
    let mut objects = Vec::new();
    visit(&store, key, &mut order, &mut objects);
    write("decode_nested", "node-graph", &bytes_from_objects(&objects));
    write(
        "decode_nested",
        "leaf-only",
        &bytes_from_objects(&objects[..1]),
    );
    write(
        "decode_nested",
        "node-with-missing-child",
        &bytes_from_objects(&objects[1..2]),
    );
}
