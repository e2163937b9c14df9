//! The store marker (`STORE`) on arbitrary bytes: the decoder never panics, what decodes
//! re-encodes to the same bytes, and a store with it as its marker opens only if it decodes to
//! a version this build reads; otherwise open fails naming the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spillway::format::marker;
use spillway::{LogStore, LogStoreOptions};
use spillway_fuzz::{DIR, store_with_file};

fuzz_target!(|data: &[u8]| {
    let decoded = marker::decode(data);
    if let Ok(v) = decoded {
        assert_eq!(
            marker::encode(v)[..],
            data[..],
            "the marker re-encodes differently"
        );
    }
    let fs = store_with_file(marker::MARKER_FILE, data);
    // The directory holds a segment: a damaged marker is not taken for a creation cut short.
    match LogStore::open_on(
        fs,
        Path::new(DIR),
        LogStoreOptions::default().read_only(true),
    ) {
        Ok(_) => {
            let v = decoded.expect("a store opened with a marker that does not decode");
            assert!(v <= marker::STORE_VERSION, "a store of version {v} opened");
        }
        Err(e) => assert!(e.to_string().contains("STORE"), "{e}"),
    }
});
