//! Model test: random operation sequences on a `LogStore` (with small segments, so that rolls,
//! checkpoints and compactions happen often) must behave like a `HashMap`, across reopens.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use common::Obj;
use proptest::prelude::*;
use spillway::format::record::record_len;
use spillway::vfs::{OpenMode, SimFs, Vfs};
use spillway::{BlobStore, ContentKey, Durability, LogStore, LogStoreOptions};

const POOL: usize = 16;

#[derive(Debug, Clone)]
enum Op {
    /// Puts these pool objects as one batch (repeats included).
    Put(Vec<usize>),
    Delete(Vec<usize>),
    Get(usize),
    Contains(usize),
    Flush(Durability),
    Reopen,
    Checkpoint,
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec(0..POOL, 1..4).prop_map(Op::Put),
        4 => prop::collection::vec(0..POOL, 1..3).prop_map(Op::Delete),
        2 => (0..POOL).prop_map(Op::Get),
        1 => (0..POOL).prop_map(Op::Contains),
        2 => prop_oneof![
            Just(Durability::Applied),
            Just(Durability::Written),
            Just(Durability::Durable)
        ]
        .prop_map(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Checkpoint),
        2 => Just(Op::Compact),
    ]
}

/// The pool: object `i` has a random size and up to two children among the objects before it.
fn pool() -> impl Strategy<Value = Vec<Obj>> {
    prop::collection::vec((0usize..3000, 0usize..3), POOL).prop_map(|specs| {
        let mut objs: Vec<Obj> = Vec::new();
        for (i, (len, nchildren)) in specs.into_iter().enumerate() {
            let children = (0..nchildren.min(i)).map(|c| objs[i - 1 - c].key).collect();
            objs.push(Obj::generated(i as u64, len, children));
        }
        objs
    })
}

fn options() -> impl Strategy<Value = LogStoreOptions> {
    (
        4096u64..16384,
        0usize..8192,
        prop_oneof![Just(4096u64), Just(1 << 20)],
    )
        .prop_map(|(seg, buf, ckpt)| {
            LogStoreOptions::default()
                .segment_size(seg)
                .write_buffer(buf)
                .checkpoint_every(ckpt)
                .compact_below(0.9)
        })
}

enum Backend {
    Sim(SimFs),
    Disk(tempfile::TempDir),
}

impl Backend {
    fn open(&self, opts: &LogStoreOptions) -> LogStore {
        match self {
            Backend::Sim(fs) => {
                LogStore::open_on(Arc::new(fs.clone()), Path::new("/store"), opts.clone())
            }
            Backend::Disk(dir) => LogStore::open_with(dir.path().join("store"), opts.clone()),
        }
        .expect("open")
    }
}

fn check_reads(store: &LogStore, objs: &[Obj], model: &HashMap<ContentKey, usize>) {
    for o in objs {
        let expected = model.get(&o.key).map(|&i| objs[i].blob());
        assert_eq!(
            store.get(&o.key).expect("get"),
            expected,
            "get of object {o:?}"
        );
        assert_eq!(
            store.contains(&o.key).expect("contains"),
            expected.is_some()
        );
    }
    let stats = store.stats();
    assert_eq!(stats.objects, model.len() as u64, "object count");
    let live: u64 = model
        .values()
        .map(|&i| record_len(objs[i].children.len(), objs[i].payload.len()))
        .sum();
    assert_eq!(stats.live_bytes, live, "live bytes");
}

/// After a flush, the store's idea of its disk use is the size of its segment files.
fn check_disk_bytes(backend: &Backend, store: &LogStore) {
    let Backend::Sim(fs) = backend else { return };
    let dir = Path::new("/store");
    let mut total = 0;
    for name in fs.read_dir(dir).expect("list") {
        if spillway::format::segment::parse_file_name(&name).is_some() {
            total += fs
                .open(&dir.join(&name), OpenMode::Read)
                .expect("open")
                .len()
                .expect("len");
        }
    }
    assert_eq!(
        store.stats().disk_bytes,
        total,
        "disk bytes vs segment files"
    );
}

fn run(backend: Backend, opts: LogStoreOptions, objs: Vec<Obj>, ops: Vec<Op>) {
    let mut store = backend.open(&opts);
    let mut model: HashMap<ContentKey, usize> = HashMap::new();
    for op in ops {
        match op {
            Op::Put(idx) => {
                let puts: Vec<_> = idx.iter().map(|&i| objs[i].put()).collect();
                store.put_batch(&puts).expect("put");
                for i in idx {
                    model.insert(objs[i].key, i);
                }
            }
            Op::Delete(idx) => {
                let keys: Vec<_> = idx.iter().map(|&i| objs[i].key).collect();
                store.delete(&keys).expect("delete");
                for k in keys {
                    model.remove(&k);
                }
            }
            Op::Get(i) => {
                let got = store.get(&objs[i].key).expect("get");
                assert_eq!(got, model.get(&objs[i].key).map(|&j| objs[j].blob()));
            }
            Op::Contains(i) => {
                assert_eq!(
                    store.contains(&objs[i].key).expect("contains"),
                    model.contains_key(&objs[i].key)
                );
            }
            Op::Flush(level) => {
                store.flush(level).expect("flush");
                if level > Durability::Applied {
                    check_disk_bytes(&backend, &store);
                }
            }
            Op::Reopen => {
                drop(store);
                store = backend.open(&opts);
                let keys: BTreeSet<_> = store.keys().expect("keys").into_iter().collect();
                let expected: BTreeSet<_> = model.keys().copied().collect();
                assert_eq!(keys, expected, "key set after reopen");
                assert!(
                    store.recovery().torn_tail.is_none(),
                    "{:?}",
                    store.recovery()
                );
            }
            Op::Checkpoint => store.checkpoint().expect("checkpoint"),
            Op::Compact => {
                store.compact().expect("compact");
            }
        }
        check_reads(&store, &objs, &model);
    }
    store.close().expect("close");
    let store = backend.open(&opts);
    let keys: BTreeSet<_> = store.keys().expect("keys").into_iter().collect();
    assert_eq!(keys, model.keys().copied().collect::<BTreeSet<_>>());
    check_reads(&store, &objs, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn log_store_matches_a_hash_map_on_sim_fs(
        opts in options(),
        objs in pool(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run(Backend::Sim(SimFs::new()), opts, objs, ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn log_store_matches_a_hash_map_on_disk(
        opts in options(),
        objs in pool(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(Backend::Disk(tempfile::tempdir().expect("tempdir")), opts, objs, ops);
    }
}
