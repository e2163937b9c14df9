//! The roots file and the sync record on arbitrary bytes: no panic, no huge allocation, and a
//! roots file that decodes re-encodes to the same bytes; a sync file's newest valid slot
//! re-encodes to the bytes of that slot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spillway::format::{roots, sync};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = roots::decode(data) {
        assert_eq!(
            roots::encode(&r),
            data,
            "a roots file re-encodes differently"
        );
    }
    if let Ok(sync::SyncFile::Record(r)) = sync::decode_file(data) {
        let at = (r.generation % 2) as usize * sync::SLOT_SPACING;
        let slot = &data[at..at + sync::SLOT_LEN];
        assert_eq!(
            &sync::encode_slot(&r)[..],
            slot,
            "a sync slot re-encodes differently"
        );
    }
});
