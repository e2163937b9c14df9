//! A pool over each file backend other than the log store (the directory store, and SQLite with
//! the `sqlite` feature): a graph with shared children is paged out, read back through the
//! pool, named as a root, and found again by a new pool after the store is reopened.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spillway::store::DirStore;
use spillway::{BlobStore, Paged, Pool};

#[derive(Serialize, Deserialize, get_size2::GetSize, Debug, PartialEq, Clone)]
struct Leaf {
    name: String,
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Branch {
    label: String,
    leaves: Vec<Paged<Leaf>>,
}

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Tree {
    branches: Vec<Paged<Branch>>,
}

/// What the tree reads back as: per branch, its label and its leaves.
type Plain = Vec<(String, Vec<Leaf>)>;

fn leaf(i: u32) -> Leaf {
    Leaf {
        name: format!("leaf {i}"),
        data: (0..2000).map(|b| (b * 7 + i) as u8).collect(),
    }
}

/// Ten branches of four leaves; every branch shares leaf 0 and its neighbour's leaves.
fn expected() -> Plain {
    (0..10u32)
        .map(|b| {
            let leaves = vec![leaf(0), leaf(b + 1), leaf(b + 2), leaf(100 + b)];
            (format!("branch {b}"), leaves)
        })
        .collect()
}

fn build(pool: &Pool) -> Paged<Tree> {
    let mut leaves = std::collections::HashMap::new();
    let mut handle = |l: &Leaf| -> Paged<Leaf> {
        leaves
            .entry(l.name.clone())
            .or_insert_with(|| pool.insert(l.clone()).expect("insert leaf"))
            .clone()
    };
    let branches = expected()
        .iter()
        .map(|(label, ls)| {
            let leaves = ls.iter().map(&mut handle).collect();
            pool.insert(Branch {
                label: label.clone(),
                leaves,
            })
            .expect("insert branch")
        })
        .collect();
    pool.insert(Tree { branches }).expect("insert tree")
}

fn read(tree: &Paged<Tree>) -> Plain {
    let t = tree.get().expect("tree");
    t.branches
        .iter()
        .map(|b| {
            let b = b.get().expect("branch");
            let leaves = b
                .leaves
                .iter()
                .map(|l| Leaf::clone(&l.get().expect("leaf")))
                .collect();
            (b.label.clone(), leaves)
        })
        .collect()
}

fn pool_on(store: Arc<dyn BlobStore>) -> Pool {
    Pool::builder()
        .budget(1 << 20)
        .store(store)
        .build()
        .expect("pool")
}

/// The round trip over the store `open` opens at `path`.
fn round_trip(path: &Path, open: impl Fn(&Path) -> Arc<dyn BlobStore>) {
    let pool = pool_on(open(path));
    let tree = build(&pool);
    pool.shrink_to(0).expect("page everything out");
    assert!(!tree.is_resident());
    let stats = pool.stats();
    // 10 branches, 22 distinct leaves, the tree: shared leaves stored once.
    assert_eq!(stats.objects_written, 33, "{stats:?}");
    assert_eq!(read(&tree), expected(), "read back after a page-out");
    // Two branches that share a leaf read it as one object in memory.
    let t = tree.get().expect("tree");
    let a = t.branches[0].get().expect("branch").leaves[0].clone();
    let b = t.branches[1].get().expect("branch").leaves[0].clone();
    assert!(Paged::ptr_eq(&a, &b), "one key, one object in memory");
    drop((t, a, b));
    let key = pool.set_root("tree", &tree).expect("set_root");
    drop(tree);
    drop(pool);

    let store = open(path);
    assert_eq!(
        store.roots().expect("roots"),
        vec![("tree".to_string(), key)]
    );
    let pool = pool_on(store);
    let tree: Paged<Tree> = pool.root("tree").expect("root").expect("named");
    assert!(!tree.is_resident(), "hydrated lazily");
    assert_eq!(read(&tree), expected(), "read back after a reopen");
    // Nothing is garbage: every object is reachable from the root.
    drop(tree);
    let report = pool.gc().expect("gc");
    assert_eq!(pool.store().stats().objects, 33, "{report:?}");
}

#[test]
fn a_graph_round_trips_through_a_pool_on_a_directory_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    round_trip(&tmp.path().join("store"), |p| {
        Arc::new(DirStore::open(p).expect("open the directory store"))
    });
}

#[cfg(feature = "sqlite")]
#[test]
fn a_graph_round_trips_through_a_pool_on_an_sqlite_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    round_trip(&tmp.path().join("store.sqlite"), |p| {
        Arc::new(spillway::store::SqliteStore::open(p).expect("open the SQLite store"))
    });
}
