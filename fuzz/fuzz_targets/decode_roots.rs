//! The roots file (`ROOTS`) on arbitrary bytes: the decoder never panics and what decodes
//! re-encodes to the same bytes; a log store holding the file as its `ROOTS` opens and lists
//! exactly those roots, or fails naming the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spillway::format::roots;
use spillway::{BlobStore, LogStore, LogStoreOptions};
use spillway_fuzz::{DIR, store_with_file};

fuzz_target!(|data: &[u8]| {
    let decoded = roots::decode(data);
    if let Ok(r) = &decoded {
        assert_eq!(roots::encode(r), data, "roots re-encode differently");
    }
    let fs = store_with_file(roots::ROOTS_FILE, data);
    let opened = LogStore::open_on(
        fs,
        Path::new(DIR),
        LogStoreOptions::default().read_only(true),
    );
    match (opened, decoded) {
        (Ok(store), Ok(r)) => assert_eq!(store.roots().expect("the roots of an open store"), r),
        (Ok(store), Err(_)) => {
            let e = store
                .roots()
                .expect_err("roots that do not decode were listed");
            assert!(e.to_string().contains("ROOTS"), "{e}");
        }
        (Err(e), _) => assert!(e.to_string().contains("ROOTS"), "{e}"),
    }
});
