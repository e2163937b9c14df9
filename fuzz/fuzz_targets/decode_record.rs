//! Record, segment header, store marker and value type tag decoders on arbitrary bytes: no
//! panic, no huge allocation, and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spillway::format::record::{self, RecordKind};
use spillway::format::{marker, segment, value};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = record::decode(data) {
        let len = r.header.record_len() as usize;
        let mut again = Vec::new();
        let children = r.child_keys();
        record::encode(
            &mut again,
            r.header.kind,
            &r.header.key,
            &children,
            r.payload,
        );
        assert_eq!(again, &data[..len], "record re-encodes differently");
        if r.header.kind == RecordKind::Tombstone {
            assert!(r.payload.is_empty() && children.is_empty());
        }
    }
    if let Ok(id) = segment::decode_header(data) {
        assert_eq!(
            &segment::encode_header(id)[..],
            &data[..segment::SEGMENT_HEADER_LEN]
        );
    }
    if let Ok(v) = marker::decode(data) {
        assert_eq!(&marker::encode(v)[..], data);
    }
    if let Ok((tag, rest)) = value::decode(data) {
        let mut again = Vec::new();
        value::encode(tag, &mut again);
        again.extend_from_slice(rest);
        assert_eq!(again, data, "type tag re-encodes differently");
    }
});
