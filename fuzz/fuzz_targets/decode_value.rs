//! Values that hold handles, decoded from arbitrary bytes through a pool: the input is a value's
//! body (after its type tag) and the number of children it lists. The pool reads it from a
//! memory store as a value holding handles, and its children as byte buffers. No read may
//! panic; a read that succeeds hands out handles only to the children the record lists.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use spillway::{BlobStore, ContentKey, MemStore, Paged, Pool, Put};

/// A value with handles: a label and a list of children.
type Parent = (u32, Vec<Paged<Vec<u8>>>);

/// The type tags of `Parent` and `Vec<u8>` as this build writes them: the first bytes of a stored
/// value's payload, taken from real values.
fn tags() -> (Vec<u8>, Vec<u8>) {
    let store = Arc::new(MemStore::new());
    let pool = Pool::builder()
        .budget(1 << 20)
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .build()
        .expect("a pool");
    let leaf = pool.insert(Vec::<u8>::new()).expect("insert");
    let parent = pool.insert((0u32, vec![leaf.clone()])).expect("insert");
    let tag = |h: ContentKey, body: usize| {
        let p = store.get(&h).expect("get").expect("stored").payload;
        p[..p.len() - body].to_vec()
    };
    // The leaf's body is postcard's empty vector (1 byte); the parent's a 0 label and a list of
    // one child index (3 bytes).
    (
        tag(parent.key().expect("key"), 3),
        tag(leaf.key().expect("key"), 1),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, body)) = data.split_first() else {
        return;
    };
    let (parent_tag, leaf_tag) = tags();
    let store = Arc::new(MemStore::new());
    let children: Vec<ContentKey> = (0..n % 5)
        .map(|i| {
            let mut payload = leaf_tag.clone();
            payload.extend_from_slice(&[1, i]);
            let key = ContentKey::of(&payload, &[]);
            store
                .put_batch(&[Put {
                    key,
                    payload: &payload,
                    children: &[],
                }])
                .expect("put");
            key
        })
        .collect();
    let mut payload = parent_tag;
    payload.extend_from_slice(body);
    let key = ContentKey::of(&payload, &children);
    store
        .put_batch(&[Put {
            key,
            payload: &payload,
            children: &children,
        }])
        .expect("put");
    let pool = Pool::builder()
        .budget(1 << 20)
        .store(store as Arc<dyn BlobStore>)
        .build()
        .expect("a pool");
    let Ok(h) = pool.load::<Parent>(key) else {
        return;
    };
    if let Ok(g) = h.get() {
        for c in &g.1 {
            let ck = c.key().expect("a decoded child has its key");
            assert!(
                children.contains(&ck),
                "a handle to a key the record does not list"
            );
            let _ = c.get();
        }
    }
});
