//! Recovery over arbitrary store contents (checkpoint and segment files): opening either fails
//! with an error or yields a store whose reads never panic, that accepts new writes, and that
//! reopens with those writes intact, both after a crash right after the durable flush and
//! after a clean close. Where a normal open refuses the store as damaged, repair mode (which
//! cuts a torn tail and salvages damaged segments) must give a store with the same guarantees.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use spillway::vfs::SimFs;
use spillway::{BlobStore, Durability, LogStore, LogStoreOptions, Put};
use spillway_fuzz::{DIR, store_from_bytes};

fn exercise(fs: Arc<SimFs>, opts: LogStoreOptions) {
    let Ok(store) = LogStore::open_on(fs.clone(), Path::new(DIR), opts.clone()) else {
        return;
    };
    let keys = store.keys().expect("keys");
    for k in &keys {
        let _ = store.get(k);
    }
    let fresh = Put::new(b"written after recovery", &[]);
    store.put(fresh).expect("put after recovery");
    store
        .flush(Durability::Durable)
        .expect("durable flush after recovery");
    // The process dies here: whatever open left on disk must agree with what it appended since.
    let crashed = Arc::new(fs.process_crash_image());
    drop(store);
    for (fs, when) in [(crashed, "after a crash"), (fs, "after close")] {
        let store = LogStore::open_on(fs, Path::new(DIR), opts.clone())
            .unwrap_or_else(|e| panic!("reopen {when}: {e}"));
        let blob = store
            .get(&fresh.key)
            .unwrap_or_else(|e| panic!("get {when}: {e}"))
            .unwrap_or_else(|| panic!("the fresh object is lost {when}"));
        assert_eq!(blob.payload, b"written after recovery");
    }
}

fuzz_target!(|data: &[u8]| {
    let opts = LogStoreOptions::default().segment_size(1 << 16);
    exercise(store_from_bytes(data), opts.clone());
    exercise(store_from_bytes(data), opts.repair(true));
});
