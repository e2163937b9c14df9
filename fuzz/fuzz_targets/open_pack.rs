//! Pack files from arbitrary bytes: opening (the container, its index checked or rebuilt from
//! the objects, its roots) never panics; whatever opens answers every listed key with the
//! object of that key or an error, never another object's bytes.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use spillway::BlobStore;
use spillway::store::PackStore;
use spillway_fuzz::file_from_bytes;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/p/f.spw");
    let fs = file_from_bytes(path, data);
    let Ok(pack) = PackStore::open_on(Arc::new(fs), path) else {
        return;
    };
    let keys = pack.keys().expect("keys of an open pack");
    for k in keys.iter().take(64) {
        if let Ok(Some(blob)) = pack.get(k) {
            assert_eq!(blob.key(), *k, "a pack returned another object's bytes");
        }
        let _ = pack.children(k);
        let _ = pack.contains(k);
    }
    let _ = pack.roots();
    let _ = pack.verify_objects();
});
