//! The contract of `BlobStore`, run over every backend of the crate and over `Minimal`, a
//! backend that implements only the required methods and gets the rest (named roots, batched
//! reads, the description) from the trait's defaults: what a third party writing a backend
//! must keep, and what it gets for free. A new backend adds one line to `each_backend`. The S3
//! store runs too when the local S3 test server is up (always in CI).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::{Minimal, Obj};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spillway::store::DirStore;
use spillway::{BlobStore, ContentKey, Durability, Error, LogStore, MemStore, Put};

/// A fresh store of each backend, with a name for messages. The temporary directory lives as
/// long as the store.
fn each_backend() -> Vec<(&'static str, Arc<dyn BlobStore>, Option<tempfile::TempDir>)> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = LogStore::open_with(tmp.path().join("store"), common::small_opts(16 << 10))
        .expect("log store");
    let dir_tmp = tempfile::tempdir().expect("tempdir");
    let dir = DirStore::open(dir_tmp.path().join("store")).expect("directory store");
    let mut backends: Vec<(&'static str, Arc<dyn BlobStore>, Option<tempfile::TempDir>)> = vec![
        ("memory", Arc::new(MemStore::new()), None),
        ("log", Arc::new(log), Some(tmp)),
        ("directory", Arc::new(dir), Some(dir_tmp)),
        ("minimal", Arc::new(Minimal::default()), None),
    ];
    // The local cache in front of a remote store (here a memory one).
    let cache_dir = tempfile::tempdir().expect("tempdir");
    let local = LogStore::open_with(cache_dir.path().join("cache"), common::small_opts(16 << 10))
        .expect("cache log");
    let cached = spillway::store::CachedStore::open(local, Arc::new(MemStore::new()), 1 << 20)
        .expect("cached store");
    backends.push(("cached", Arc::new(cached), Some(cache_dir)));
    // The S3 store, on the local test server (see `common::s3_location`), with no grace period
    // so that deletes take effect at once.
    if let Some(url) = common::s3_location("conformance") {
        let opts = spillway::S3StoreOptions::default().gc_grace(std::time::Duration::ZERO);
        backends.push((
            "s3",
            Arc::new(spillway::S3Store::open(&url, opts).expect("S3 store")),
            None,
        ));
    }
    #[cfg(feature = "sqlite")]
    {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sqlite = spillway::store::SqliteStore::open(tmp.path().join("store.sqlite"))
            .expect("sqlite store");
        backends.push(("sqlite", Arc::new(sqlite), Some(tmp)));
    }
    backends
}

/// Runs `check` on every backend.
fn for_each(check: impl Fn(&str, &dyn BlobStore)) {
    for (name, store, _tmp) in each_backend() {
        check(name, store.as_ref());
    }
}

/// Objects whose keys are only those of objects stored: user keys for `keys()` comparisons.
fn user_keys(store: &dyn BlobStore) -> Vec<ContentKey> {
    let mut k: Vec<ContentKey> = store
        .keys()
        .expect("keys")
        .into_iter()
        .filter(|k| !k.is_reserved())
        .collect();
    k.sort_unstable();
    k
}

#[test]
fn writes_are_visible_at_once_and_read_back_exactly() {
    for_each(|name, store| {
        let leaf = Obj::generated(1, 300, vec![]);
        let parent = Obj::generated(2, 40, vec![leaf.key]);
        store
            .put_batch(&[leaf.put(), parent.put()])
            .expect("put_batch");
        // Applied: visible before any flush.
        assert_eq!(
            store.get(&leaf.key).expect("get"),
            Some(leaf.blob()),
            "{name}"
        );
        assert_eq!(
            store.get(&parent.key).expect("get"),
            Some(parent.blob()),
            "{name}"
        );
        assert!(store.contains(&parent.key).expect("contains"), "{name}");
        assert_eq!(
            store.children(&parent.key).expect("children"),
            Some(vec![leaf.key]),
            "{name}"
        );
        assert_eq!(
            store.children(&leaf.key).expect("children"),
            Some(vec![]),
            "{name}"
        );
        let absent = ContentKey::of(b"never stored", &[]);
        assert_eq!(store.get(&absent).expect("get"), None, "{name}");
        assert_eq!(store.children(&absent).expect("children"), None, "{name}");
        assert!(!store.contains(&absent).expect("contains"), "{name}");
        assert_eq!(
            store
                .get_many(&[parent.key, absent, leaf.key])
                .expect("get_many"),
            vec![Some(parent.blob()), None, Some(leaf.blob())],
            "{name}"
        );
        assert_eq!(
            store
                .contains_many(&[absent, parent.key, absent, leaf.key])
                .expect("contains_many"),
            vec![false, true, false, true],
            "{name}"
        );
        assert_eq!(
            store.contains_many(&[]).expect("contains_many"),
            Vec::<bool>::new(),
            "{name}"
        );
        for level in [
            Durability::Applied,
            Durability::Written,
            Durability::Durable,
        ] {
            store.flush(level).expect("flush");
        }
        assert_eq!(
            store.get(&leaf.key).expect("get"),
            Some(leaf.blob()),
            "{name}"
        );
        assert!(!store.describe().is_empty());
    });
}

#[test]
fn a_key_already_stored_is_not_written_again() {
    for_each(|name, store| {
        let o = Obj::generated(3, 500, vec![]);
        store.put(o.put()).expect("put");
        let before = store.stats();
        store.put(o.put()).expect("put again");
        store
            .put_batch(&[o.put(), o.put()])
            .expect("a batch of the same");
        let after = store.stats();
        assert_eq!(after.puts, before.puts, "{name}: nothing written again");
        assert_eq!(after.dedup_hits, before.dedup_hits + 3, "{name}");
        assert_eq!(user_keys(store), vec![o.key], "{name}");
    });
}

#[test]
fn deletes_remove_and_ignore_what_is_not_stored() {
    for_each(|name, store| {
        let a = Obj::generated(4, 100, vec![]);
        let b = Obj::generated(5, 100, vec![]);
        store.put_batch(&[a.put(), b.put()]).expect("put");
        store
            .delete(&[a.key, ContentKey::of(b"absent", &[])])
            .expect("delete");
        assert_eq!(store.get(&a.key).expect("get"), None, "{name}");
        assert_eq!(store.children(&a.key).expect("children"), None, "{name}");
        assert_eq!(user_keys(store), vec![b.key], "{name}");
        // Stored again after a delete: a new put.
        store.put(a.put()).expect("put");
        assert_eq!(store.get(&a.key).expect("get"), Some(a.blob()), "{name}");
    });
}

#[test]
fn named_roots_are_set_replaced_listed_and_removed() {
    for_each(|name, store| {
        assert!(store.roots().expect("roots").is_empty(), "{name}");
        let a = Obj::generated(6, 10, vec![]);
        let b = Obj::generated(7, 10, vec![]);
        store.put_batch(&[a.put(), b.put()]).expect("put");
        store.set_root("zeta", Some(a.key)).expect("set");
        store.set_root("alpha", Some(b.key)).expect("set");
        assert_eq!(
            store.roots().expect("roots"),
            vec![("alpha".to_string(), b.key), ("zeta".to_string(), a.key)],
            "{name}: sorted by name"
        );
        store.set_root("zeta", Some(b.key)).expect("replace");
        store.set_root("alpha", None).expect("remove");
        store.set_root("never set", None).expect("removing nothing");
        assert_eq!(
            store.roots().expect("roots"),
            vec![("zeta".to_string(), b.key)],
            "{name}"
        );
        // Refused: a key not stored, an empty name, a name too long.
        let absent = ContentKey::of(b"absent", &[]);
        assert!(
            matches!(
                store.set_root("x", Some(absent)),
                Err(Error::NotFound { .. })
            ),
            "{name}"
        );
        for bad in [String::new(), "n".repeat(1025)] {
            assert!(
                matches!(
                    store.set_root(&bad, Some(a.key)),
                    Err(Error::InvalidArgument(_))
                ),
                "{name}"
            );
        }
        assert_eq!(store.roots().expect("roots").len(), 1, "{name}");
        // The roots' own records (if the store keeps them as records) are reserved keys, never
        // user objects.
        assert_eq!(user_keys(store), {
            let mut k = vec![a.key, b.key];
            k.sort_unstable();
            k
        });
    });
}

#[test]
fn the_default_roots_survive_the_loss_of_either_slot() {
    // A change deletes one slot and writes it again: a crash in between leaves the other slot,
    // and with it the table as it was before the change.
    let store = Minimal::default();
    let a = Obj::generated(8, 10, vec![]);
    let b = Obj::generated(9, 10, vec![]);
    store.put_batch(&[a.put(), b.put()]).expect("put");
    store.set_root("first", Some(a.key)).expect("set");
    store.set_root("second", Some(b.key)).expect("set");
    let both = store.roots().expect("roots");
    assert_eq!(both.len(), 2);
    // The newest table is in slot 1 (generation 2); losing it leaves generation 1.
    store
        .delete(&[ContentKey::reserved(1)])
        .expect("lose slot 1");
    assert_eq!(
        store.roots().expect("roots"),
        vec![("first".to_string(), a.key)]
    );
    // A slot whose bytes are damaged is skipped for the other.
    store.set_root("second", Some(b.key)).expect("set");
    assert_eq!(store.roots().expect("roots"), both);
    let damaged = Put {
        key: ContentKey::reserved(0),
        children: &[],
        payload: b"SPILLRSL garbage",
    };
    store.delete(&[damaged.key]).expect("delete");
    store.put(damaged).expect("damage slot 0");
    assert_eq!(store.roots().expect("roots"), both, "slot 1 still holds it");
    store
        .delete(&[ContentKey::reserved(1)])
        .expect("lose slot 1");
    let err = store.roots().expect_err("no valid slot left");
    assert!(err.is_corruption(), "{err}");
}

/// A random sequence of operations on every backend, checked against a map after each step.
#[test]
fn every_backend_agrees_with_a_model() {
    for (name, store, _tmp) in each_backend() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut model: HashMap<ContentKey, Obj> = HashMap::new();
        let mut roots: BTreeMap<String, ContentKey> = BTreeMap::new();
        let pool: Vec<Obj> = (0..40u64)
            .map(|i| Obj::generated(100 + i, rng.random_range(0..3000), vec![]))
            .collect();
        for step in 0..600 {
            match rng.random_range(0..10) {
                0..=3 => {
                    let n = rng.random_range(1..5);
                    let batch: Vec<&Obj> = (0..n).map(|_| &pool[rng.random_range(0..40)]).collect();
                    let puts: Vec<Put<'_>> = batch.iter().map(|o| o.put()).collect();
                    store.put_batch(&puts).expect("put_batch");
                    for o in batch {
                        model.insert(o.key, o.clone());
                    }
                }
                4..=5 => {
                    let k = pool[rng.random_range(0..40)].key;
                    // A root keeps its object in this model: delete only unrooted keys.
                    if !roots.values().any(|r| *r == k) {
                        store.delete(&[k]).expect("delete");
                        model.remove(&k);
                    }
                }
                6 => {
                    let level = [
                        Durability::Applied,
                        Durability::Written,
                        Durability::Durable,
                    ][rng.random_range(0..3)];
                    store.flush(level).expect("flush");
                }
                7 => {
                    let rname = format!("root-{}", rng.random_range(0..4));
                    let k = pool[rng.random_range(0..40)].key;
                    if model.contains_key(&k) {
                        store.set_root(&rname, Some(k)).expect("set_root");
                        roots.insert(rname, k);
                    } else {
                        store.set_root(&rname, None).expect("remove root");
                        roots.remove(&rname);
                    }
                }
                _ => {
                    let o = &pool[rng.random_range(0..40)];
                    let want = model.get(&o.key).map(Obj::blob);
                    assert_eq!(store.get(&o.key).expect("get"), want, "{name} step {step}");
                    assert_eq!(
                        store.children(&o.key).expect("children"),
                        want.map(|b| b.children),
                        "{name} step {step}"
                    );
                }
            }
            // The whole listing after every step; on the S3 emulator (a few hundred requests
            // a second, seven of them for this check) after every tenth and the last.
            if name == "s3" && step % 10 != 9 && step != 599 {
                continue;
            }
            let mut want: Vec<ContentKey> = model.keys().copied().collect();
            want.sort_unstable();
            assert_eq!(user_keys(store.as_ref()), want, "{name} step {step}");
            let got: BTreeMap<String, ContentKey> =
                store.roots().expect("roots").into_iter().collect();
            assert_eq!(got, roots, "{name} step {step}");
            // One root by name, as the pool asks for it, agrees with the list.
            for r in 0..5 {
                let rname = format!("root-{r}");
                assert_eq!(
                    store.root(&rname).expect("root"),
                    roots.get(&rname).copied(),
                    "{name} step {step}: {rname}"
                );
            }
        }
    }
}

/// A put over the format's limits (here a child list one key longer than a record holds) is
/// refused with `TooLarge` by every store that writes records, before anything is written.
#[test]
fn a_put_over_the_limits_is_refused_whole() {
    use spillway::format::record::MAX_CHILDREN;
    let children = vec![ContentKey::of(b"child", &[]); MAX_CHILDREN as usize + 1];
    let small = Obj::generated(1, 100, Vec::new());
    let big = Put::new(b"parent", &children);
    for_each(|name, store| {
        if !matches!(name, "log" | "directory" | "sqlite" | "cached") {
            return;
        }
        match store.put_batch(&[small.put(), big]) {
            Err(Error::TooLarge { what, .. }) => assert_eq!(what, "child key list", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(!store.contains(&small.key).expect("contains"), "{name}");
        assert!(!store.contains(&big.key).expect("contains"), "{name}");
    });
}
