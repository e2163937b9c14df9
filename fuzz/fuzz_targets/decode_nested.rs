//! The codec with nested handles, through the pool's public API: arbitrary payloads with
//! arbitrary child lists are stored in a `MemStore`, then loaded with `Pool::load` as a type
//! holding `Paged` children (of its own type and of another) and walked with `get`. No panic;
//! every handle a value decodes to is one of its object's children; an object that does not
//! decode is an error naming it.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use spillway::{BlobStore, ContentKey, MemStore, Paged, Pool, Put};
use spillway_fuzz::{Leaf, Node, objects_from_bytes};

static POOL: OnceLock<(Pool, Arc<MemStore>)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (pool, store) = POOL.get_or_init(|| {
        let store = Arc::new(MemStore::new());
        let pool = Pool::builder()
            .budget(1 << 24)
            .store(store.clone())
            .build()
            .expect("a pool");
        (pool, store)
    });
    let objects = objects_from_bytes(data);
    let puts: Vec<Put<'_>> = objects.iter().map(|(p, c)| Put::new(p, c)).collect();
    let keys: Vec<ContentKey> = puts.iter().map(|p| p.key).collect();
    store.put_batch(&puts).expect("put into a MemStore");
    for (key, (_, children)) in keys.iter().zip(&objects).rev() {
        let Ok(node) = pool.load::<Node>(*key) else {
            continue;
        };
        walk(&node, children, store, 3);
        if let Ok(leaf) = pool.load::<Leaf>(*key) {
            let _ = leaf.get();
        }
    }
    drop(puts);
    store.delete(&keys).expect("delete from a MemStore");
});

/// Reads `node` and, `depth` levels down, its children; checks that every handle decoded
/// from it is one of `children`.
fn walk(node: &Paged<Node>, children: &[ContentKey], store: &MemStore, depth: u32) {
    let Ok(value) = node.get() else {
        return;
    };
    let handles = value
        .children
        .iter()
        .map(|c| c.key())
        .chain(value.leaf.iter().map(|l| l.key()));
    for k in handles {
        let k = k.expect("the key of a handle decoded from a stored object");
        assert!(
            children.contains(&k),
            "a handle to {k}, not a child of its object"
        );
    }
    if depth == 0 {
        return;
    }
    for c in &value.children {
        let grandchildren = match store.children(&c.key().expect("key")) {
            Ok(Some(g)) => g,
            _ => continue,
        };
        walk(c, &grandchildren, store, depth - 1);
    }
    if let Some(l) = &value.leaf {
        let _ = l.get();
    }
}
