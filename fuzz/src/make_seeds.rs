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
    println!("seeds written under {}", seeds.display());
}
