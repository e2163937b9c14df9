//! The sync record (`SYNC`) on arbitrary bytes: the first byte picks the layout (odd: the
//! next 48 bytes are slot 0 and the rest goes at slot 1's offset, so that both slots are
//! reached; even: the rest is the file). The decoder never panics; a record it returns is a
//! valid slot in the place its generation names and re-encodes to the bytes there; a store
//! with the file as its `SYNC` opens, or fails naming a file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spillway::format::sync::{self, SLOT_LEN, SLOT_SPACING, SyncFile};
use spillway::{LogStore, LogStoreOptions};
use spillway_fuzz::{DIR, store_with_file};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 1 {
        let (first, second) = rest.split_at(rest.len().min(SLOT_LEN));
        let mut f = first.to_vec();
        if !second.is_empty() {
            f.resize(SLOT_SPACING, 0);
            f.extend_from_slice(second);
        }
        f
    } else {
        rest.to_vec()
    };
    if let Ok(SyncFile::Record(r)) = sync::decode_file(&file) {
        assert!(r.generation >= 1, "generation 0 accepted");
        let at = r.slot_offset() as usize;
        assert_eq!(
            file[at..at + SLOT_LEN],
            sync::encode_slot(&r)[..],
            "the slot re-encodes differently"
        );
    }
    let fs = store_with_file(sync::SYNC_FILE, &file);
    if let Err(e) = LogStore::open_on(
        fs,
        Path::new(DIR),
        LogStoreOptions::default().read_only(true),
    ) {
        let text = e.to_string();
        assert!(text.contains("SYNC") || text.contains("seg-"), "{text}");
    }
});
