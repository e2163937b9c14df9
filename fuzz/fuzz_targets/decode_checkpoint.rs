//! Index checkpoint decoder on arbitrary bytes: no panic, no allocation beyond the input, and
//! whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spillway::format::checkpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = checkpoint::decode(data) {
        let again = checkpoint::encode(c.tail, c.entries.iter().map(|(k, l)| (k, l)));
        assert_eq!(again, data, "checkpoint re-encodes differently");
    }
});
