//! Container files from arbitrary bytes: opening (header, both commit slots, the directory)
//! never panics and never reserves more than the file justifies; whatever opens, every listed
//! section reads back as its checksum vouches or as an error, and `verify` agrees with the
//! reads.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use spillway::container::{Container, ContainerOptions};
use spillway_fuzz::file_from_bytes;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/c/f.spw");
    let fs = file_from_bytes(path, data);
    let opts = ContainerOptions::read_only().any_type(true);
    let Ok(c) = Container::open_on(Arc::new(fs), path, opts) else {
        return;
    };
    let damaged = c.verify().expect("verify reads what open accepted");
    for s in c.sections() {
        let read = c.read(&s.name);
        let bad = damaged.iter().any(|(n, _)| *n == s.name);
        assert_eq!(
            read.is_err(),
            bad,
            "read and verify disagree on {:?}",
            s.name
        );
        if let Ok(Some(bytes)) = read {
            assert_eq!(bytes.len() as u64, s.len);
        }
    }
});
