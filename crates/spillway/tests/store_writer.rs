//! A log store's writes on the write pipeline: durability waits, group commit, reads of applied
//! writes, and failures that strand nobody.

use std::path::Path;
use std::sync::Arc;

use spillway::store::{Blob, StoreWriter};
use spillway::vfs::SimFs;
use spillway::write::Config;
use spillway::{BlobStore, Durability, LogStore, LogStoreOptions};

fn blob(i: u64) -> Blob {
    Blob {
        children: vec![],
        payload: format!("object {i}").into_bytes().repeat(8),
    }
}

#[test]
fn many_writers_waiting_for_durable_share_syncs_and_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Arc::new(LogStore::open(&dir).unwrap());
    let writer = Arc::new(StoreWriter::new(store.clone(), Config::default()).unwrap());
    let threads = 16;
    let per_thread = 25;
    std::thread::scope(|s| {
        for t in 0..threads {
            let writer = Arc::clone(&writer);
            s.spawn(move || {
                for i in 0..per_thread {
                    let b = blob(t * 1000 + i);
                    let key = b.key();
                    let h = writer.put(vec![b]).unwrap();
                    h.wait(Durability::Applied).unwrap();
                    assert!(writer.get(&key).unwrap().is_some(), "read your own write");
                    h.wait(Durability::Durable).unwrap();
                }
            });
        }
    });
    let waits = threads * per_thread;
    let syncs = store.stats().syncs;
    assert!(
        syncs < waits / 2,
        "{syncs} syncs for {waits} durable waits: no group commit"
    );
    Arc::try_unwrap(writer).unwrap().shutdown().unwrap();
    drop(store);
    let store = LogStore::open(&dir).unwrap();
    for t in 0..threads {
        for i in 0..per_thread {
            let b = blob(t * 1000 + i);
            assert_eq!(store.get(&b.key()).unwrap().unwrap(), b);
        }
    }
}

#[test]
fn deletes_shadow_puts_in_every_layer() {
    let store = Arc::new(spillway::MemStore::new());
    let writer = StoreWriter::new(store.clone(), Config::default()).unwrap();
    let b = blob(1);
    let key = b.key();
    writer
        .put(vec![b])
        .unwrap()
        .wait(Durability::Written)
        .unwrap();
    assert!(store.contains(&key).unwrap());
    writer
        .delete(vec![key])
        .unwrap()
        .wait(Durability::Applied)
        .unwrap();
    assert!(
        writer.get(&key).unwrap().is_none(),
        "the delete in the delta wins"
    );
    writer.flush(Durability::Written).unwrap();
    assert!(!store.contains(&key).unwrap());
}

#[test]
fn a_failing_store_fails_the_waiters_instead_of_hanging() {
    let fs = Arc::new(SimFs::new());
    let store = Arc::new(
        LogStore::open_on(fs.clone(), Path::new("/s"), LogStoreOptions::default()).unwrap(),
    );
    let config = Config {
        retry: spillway::write::RetryPolicy::never(),
        ..Config::default()
    };
    let writer = StoreWriter::new(store, config).unwrap();
    writer
        .put(vec![blob(1)])
        .unwrap()
        .wait(Durability::Durable)
        .unwrap();
    fs.fail_at(1);
    let h = writer.put(vec![blob(2)]).unwrap();
    let err = h.wait(Durability::Durable).unwrap_err();
    assert!(err.to_string().contains("simulated crash"), "{err}");
    // Later writes are refused with the same story.
    let later = writer.put(vec![blob(3)]);
    assert!(later.is_err() || later.unwrap().wait(Durability::Written).is_err());
}
