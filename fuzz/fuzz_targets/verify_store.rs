//! Verification and repair over arbitrary store contents (checkpoint, roots and segment files):
//! `verify` never panics and never changes a byte; after a repair, `verify` finds no damaged
//! range, no missing data, no lost key and no torn tail (what is left, if anything, is a graph
//! with holes or a damaged roots file, which no repair can restore).
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use spillway::store::log::verify_on;
use spillway::{LogStore, LogStoreOptions};
use spillway_fuzz::{DIR, snapshot, store_from_bytes};

fuzz_target!(|data: &[u8]| {
    let fs = store_from_bytes(data);
    let dir = Path::new(DIR);
    let before = snapshot(&fs);
    let first = verify_on(fs.clone(), dir);
    assert_eq!(snapshot(&fs), before, "verify changed the store");
    let opts = LogStoreOptions::default()
        .segment_size(1 << 16)
        .repair(true);
    let Ok(store) = LogStore::open_on(fs.clone(), dir, opts) else {
        return;
    };
    // A store that repair opens, verify read before it too.
    let first = first.expect("verify failed on a store that repair opens");
    drop(first);
    if store.close().is_err() {
        return;
    }
    let after = verify_on(fs.clone(), dir).expect("verify after repair");
    assert!(after.damaged.is_empty(), "{:?}", after.damaged);
    assert!(after.missing.is_empty(), "{:?}", after.missing);
    assert!(after.lost_keys.is_empty(), "{:?}", after.lost_keys);
    assert!(after.torn_tail.is_none(), "{:?}", after.torn_tail);
    let _ = Arc::clone(&fs);
});
