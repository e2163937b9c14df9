//! Holds the code to `docs/FORMAT.md`: every field table in the document is parsed and checked
//! against bytes produced by the real encoders, and the document's constants against the code's.

use spillway::ContentKey;
use spillway::format::checkpoint::{self, Location, LogPosition};
use spillway::format::container;
use spillway::format::record::{self, RecordKind};
use spillway::format::{marker, segment};

const DOC: &str = include_str!("../../../docs/FORMAT.md");

#[derive(Debug)]
struct Row {
    offset: usize,
    size: usize,
    field: String,
}

/// The `nth` field table (offset | size | field) after the heading line that starts with
/// `heading`. Rows whose offset or size is a formula are skipped.
fn table(heading: &str, nth: usize) -> Vec<Row> {
    let start = DOC
        .lines()
        .position(|l| l.starts_with(heading))
        .unwrap_or_else(|| panic!("FORMAT.md has no heading {heading:?}"));
    let mut tables = Vec::new();
    let mut current: Option<Vec<Row>> = None;
    for line in DOC.lines().skip(start + 1) {
        if line.starts_with("## ") || line.starts_with("### ") {
            break;
        }
        if line.starts_with("| offset | size | field |") {
            current = Some(Vec::new());
            continue;
        }
        match (&mut current, line.starts_with('|')) {
            (Some(rows), true) => {
                let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
                if let (Ok(offset), Ok(size)) = (cells[0].parse(), cells[1].parse()) {
                    rows.push(Row {
                        offset,
                        size,
                        field: cells[2].to_string(),
                    });
                }
            }
            (Some(_), false) => tables.push(current.take().unwrap_or_default()),
            (None, _) => {}
        }
    }
    if let Some(rows) = current {
        tables.push(rows);
    }
    tables
        .into_iter()
        .nth(nth)
        .unwrap_or_else(|| panic!("FORMAT.md: table {nth} after {heading:?} is missing"))
}

fn le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

/// Checks each documented field against `bytes`. `known` maps a phrase of the field text to the
/// value the encoder was given.
fn check(what: &str, rows: &[Row], bytes: &[u8], fixed_len: usize, known: &[(&str, u64)]) {
    assert!(!rows.is_empty(), "{what}: no rows parsed");
    let mut expect_offset = 0;
    for r in rows {
        assert_eq!(
            r.offset, expect_offset,
            "{what}: field {:?} is not contiguous",
            r.field
        );
        expect_offset = r.offset + r.size;
        let got = &bytes[r.offset..r.offset + r.size];
        let f = r.field.as_str();
        if let Some(rest) = f.strip_prefix("magic `") {
            let magic = rest.trim_end_matches('`');
            assert_eq!(got, magic.as_bytes(), "{what}: magic");
        } else if let Some((a, b)) = f
            .strip_prefix("CRC32C of bytes ")
            .and_then(|r| r.split_once(".."))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        {
            assert_eq!(
                le(got),
                u64::from(crc32c::crc32c(&bytes[a..b])),
                "{what}: {f}"
            );
        } else if f.starts_with("reserved") || f.starts_with("flags, zero") {
            assert!(got.iter().all(|&b| b == 0), "{what}: {f} not zero");
        } else if let Some(v) = f.split_once("version (").map(|(_, v)| v) {
            let v: u64 = v.trim_end_matches(')').parse().expect("version number");
            assert_eq!(le(got), v, "{what}: {f}");
        } else if let Some((_, v)) = known.iter().find(|(phrase, _)| f.contains(phrase)) {
            assert_eq!(le(got), *v, "{what}: {f}");
        } else if f.starts_with("content key")
            || f.starts_with("CRC32C of")
            || f.starts_with("section name")
        {
            // Checked by the caller.
        } else {
            panic!("{what}: the test does not know how to check field {f:?}");
        }
    }
    assert_eq!(
        expect_offset, fixed_len,
        "{what}: the table's fixed part has the wrong length"
    );
}

#[test]
fn store_marker_matches_the_document() {
    let b = marker::encode(marker::STORE_VERSION);
    let rows = table("### Store marker", 0);
    check("marker", &rows, &b, marker::MARKER_LEN, &[]);
    assert!(
        rows.iter()
            .any(|r| r.field == format!("store format version ({})", marker::STORE_VERSION))
    );
    assert!(DOC.contains(&format!("`{}`", marker::MARKER_FILE)));
}

#[test]
fn sync_record_matches_the_document() {
    use spillway::format::sync::{self, SyncRecord};
    let r = SyncRecord {
        generation: 0x0a0b_0c0d,
        durable: LogPosition {
            segment: 0x0102_0304_0506_0708,
            offset: 0x1112_1314,
        },
    };
    let b = sync::encode_slot(&r);
    let rows = table("### Sync record", 0);
    check(
        "sync record",
        &rows,
        &b,
        sync::SLOT_LEN,
        &[
            ("generation", r.generation),
            ("segment id", r.durable.segment),
            ("offset of the durable position", r.durable.offset),
        ],
    );
    assert!(DOC.contains(&format!("### Sync record (`{}`)", sync::SYNC_FILE)));
    assert!(DOC.contains(&format!("slot 1 at offset {}", sync::SLOT_SPACING)));
    assert!(DOC.contains(&format!("two slots of {} bytes", sync::SLOT_LEN)));
    assert!(DOC.contains(&format!(
        "at most {} bytes long",
        thousands(sync::SLOT_SPACING + sync::SLOT_LEN)
    )));
    assert!(DOC.contains(&format!("| `{}` |", marker::MARKER_TMP_FILE)));
}

/// `n` with commas between groups of three digits, as the document writes numbers.
fn thousands(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn segment_header_matches_the_document() {
    let id = 0x0102_0304_0506_0708;
    let b = segment::encode_header(id);
    let rows = table("### Segment header", 0);
    check(
        "segment header",
        &rows,
        &b,
        segment::SEGMENT_HEADER_LEN,
        &[("segment id", id)],
    );
    assert!(DOC.contains(&format!(
        "### Segment header ({} bytes)",
        segment::SEGMENT_HEADER_LEN
    )));
    assert_eq!(segment::file_name(1), "seg-0000000000000001.log");
    assert!(DOC.contains("`seg-<id>.log`") && DOC.contains("16 lowercase hex digits"));
}

#[test]
fn record_matches_the_document() {
    let children = [ContentKey::of(b"c1", &[]), ContentKey::of(b"c2", &[])];
    let payload = b"twelve bytes";
    let key = ContentKey::of(payload, &children);
    let mut b = Vec::new();
    record::encode(&mut b, RecordKind::Put, &key, &children, payload);
    let rows = table("### Record", 0);
    check(
        "record",
        &rows,
        &b,
        record::RECORD_HEADER_LEN,
        &[
            ("kind: 1 = put", u64::from(record::KIND_PUT)),
            ("child count", 2),
            ("payload length", payload.len() as u64),
        ],
    );
    assert!(DOC.contains(&format!(
        "### Record ({}-byte header",
        record::RECORD_HEADER_LEN
    )));
    // The content key field, the body layout and the checksum's coverage.
    assert_eq!(&b[20..36], key.as_bytes());
    assert_eq!(&b[36..52], children[0].as_bytes());
    assert_eq!(&b[36 + 32..], payload);
    assert_eq!(le(&b[4..8]), u64::from(crc32c::crc32c(&b[8..])));
    assert!(DOC.contains("CRC32C of bytes 8..end of record"));
    assert!(DOC.contains(&format!(
        "kind: {} = put, {} = tombstone",
        record::KIND_PUT,
        record::KIND_TOMBSTONE
    )));
    assert_eq!(record::MAX_CHILDREN, 1_048_576);
    assert!(DOC.contains("at most 1,048,576"));
    assert_eq!(record::MAX_PAYLOAD_LEN, 1 << 30);
    assert!(DOC.contains("at most 1 GiB"));
}

#[test]
fn checkpoint_matches_the_document() {
    let key = ContentKey::of(b"x", &[]);
    let loc = Location {
        segment: 7,
        offset: 4242,
        len: 99,
    };
    let tail = LogPosition {
        segment: 9,
        offset: 1234,
    };
    let b = checkpoint::encode(tail, [(&key, &loc)].into_iter());
    let head = table("### Index checkpoint", 0);
    check(
        "checkpoint header",
        &head,
        &b,
        checkpoint::CHECKPOINT_HEADER_LEN,
        &[
            ("tail segment id", tail.segment),
            ("tail offset", tail.offset),
            ("entry count", 1),
        ],
    );
    let entries_crc = &head
        .iter()
        .find(|r| r.field.contains("entries region"))
        .expect("row")
        .offset;
    assert_eq!(
        le(&b[*entries_crc..entries_crc + 4]),
        u64::from(crc32c::crc32c(&b[checkpoint::CHECKPOINT_HEADER_LEN..]))
    );
    let entry = table("### Index checkpoint", 1);
    check(
        "checkpoint entry",
        &entry,
        &b[checkpoint::CHECKPOINT_HEADER_LEN..],
        checkpoint::CHECKPOINT_ENTRY_LEN,
        &[
            ("segment id", loc.segment),
            ("record offset", loc.offset),
            ("record length", u64::from(loc.len)),
        ],
    );
    assert_eq!(
        &b[checkpoint::CHECKPOINT_HEADER_LEN..][..16],
        key.as_bytes()
    );
    assert!(DOC.contains(&format!("`{}`", checkpoint::CHECKPOINT_FILE)));
    assert!(DOC.contains(&format!("`{}`", checkpoint::CHECKPOINT_TMP_FILE)));
}

#[test]
fn content_key_encoding_and_known_answers_match_the_document() {
    let rows = table("## Content keys", 0);
    assert_eq!((rows[0].offset, rows[0].size), (0, 16));
    assert_eq!(&spillway::key::KEY_DOMAIN_TAG[..15], b"spillway-key-v1");
    assert_eq!(spillway::key::KEY_DOMAIN_TAG[15], 0);
    assert!(
        rows[0]
            .field
            .contains("`spillway-key-v1` followed by one zero byte")
    );
    let leaf = ContentKey::of(b"spillway", &[]);
    let parent = ContentKey::of(b"", &[leaf, leaf]);
    assert!(
        DOC.contains(&format!("`{leaf}`")),
        "leaf key {leaf} not in FORMAT.md"
    );
    assert!(
        DOC.contains(&format!("`{parent}`")),
        "parent key {parent} not in FORMAT.md"
    );
}

#[test]
fn roots_file_matches_the_document() {
    use spillway::format::roots;
    let key = ContentKey::of(b"graph", &[]);
    let b = roots::encode(&[("build".to_string(), key)]);
    let head = table("### Named roots", 0);
    check(
        "roots header",
        &head,
        &b,
        roots::ROOTS_HEADER_LEN,
        &[("root count", 1)],
    );
    let entry = table("### Named roots", 1);
    let body = &b[roots::ROOTS_HEADER_LEN..];
    assert_eq!((entry[0].offset, entry[0].size), (0, 2));
    assert_eq!(le(&body[..2]), 5);
    assert_eq!(&body[2..7], b"build");
    assert_eq!(&body[7..23], key.as_bytes());
    assert_eq!(
        le(&b[b.len() - 4..]),
        u64::from(crc32c::crc32c(&b[..b.len() - 4]))
    );
    assert_eq!(roots::MAX_ROOT_NAME, 1024);
    assert!(DOC.contains("name length `m` (at most 1024)"));
    assert!(DOC.contains(&format!("`{}`", roots::ROOTS_FILE)));
    assert!(DOC.contains(&format!("`{}`", roots::ROOTS_TMP_FILE)));
}

#[test]
fn roots_slot_and_reserved_keys_match_the_document() {
    use spillway::format::roots;
    use spillway::store::default_roots::{SLOT_HEADER_LEN, encode_slot};
    let table_of = vec![("build".to_string(), ContentKey::of(b"graph", &[]))];
    let b = encode_slot(5, &table_of);
    check(
        "roots slot",
        &table("### Roots slots", 0),
        &b,
        SLOT_HEADER_LEN,
        &[("generation", 5)],
    );
    let body = &b[..b.len() - 4];
    assert_eq!(
        &body[SLOT_HEADER_LEN..],
        roots::encode(&table_of).as_slice()
    );
    assert_eq!(le(&b[b.len() - 4..]), u64::from(crc32c::crc32c(body)));
    let prefix = std::str::from_utf8(&spillway::key::RESERVED_KEY_PREFIX).expect("ASCII");
    assert!(DOC.contains(&format!("ASCII `{prefix}`")));
    for n in [0u8, 1, 255] {
        let k = ContentKey::reserved(n);
        assert!(k.is_reserved());
        assert_eq!(&k.as_bytes()[..15], prefix.as_bytes());
        assert_eq!(k.as_bytes()[15], n);
    }
    assert!(!ContentKey::of(b"spillway:reserv", &[]).is_reserved());
}

#[test]
fn directory_store_files_match_the_document() {
    use spillway::format::object;
    // The marker.
    let m = object::encode_marker(object::DIR_STORE_VERSION);
    let rows = table("### Directory store marker", 0);
    check("dir marker", &rows, &m, object::DIR_MARKER_LEN, &[]);
    assert!(DOC.contains(&format!(
        "### Directory store marker (`{}`, {} bytes)",
        object::DIR_MARKER_FILE,
        object::DIR_MARKER_LEN
    )));
    // An object file.
    let children = [ContentKey::of(b"c1", &[]), ContentKey::of(b"c2", &[])];
    let payload = b"a payload";
    let key = ContentKey::of(payload, &children);
    let b = object::encode(&key, &children, payload);
    let rows = table("### Object file", 0);
    check(
        "object file",
        &rows,
        &b,
        object::OBJECT_HEADER_LEN,
        &[("child count", 2), ("payload length", payload.len() as u64)],
    );
    assert!(DOC.contains(&format!(
        "### Object file ({}-byte header",
        object::OBJECT_HEADER_LEN
    )));
    let field = |name: &str| {
        rows.iter()
            .find(|r| r.field.starts_with(name))
            .unwrap_or_else(|| panic!("no field {name:?}"))
    };
    let k = field("content key");
    assert_eq!(&b[k.offset..k.offset + k.size], key.as_bytes());
    let p = field("CRC32C of the payload");
    assert_eq!(
        le(&b[p.offset..p.offset + 4]),
        u64::from(crc32c::crc32c(payload))
    );
    let h = field("CRC32C of bytes 0..44 followed by the child keys");
    let mut covered = b[..44].to_vec();
    covered.extend_from_slice(&b[48..48 + 32]);
    assert_eq!(
        le(&b[h.offset..h.offset + 4]),
        u64::from(crc32c::crc32c(&covered))
    );
    assert_eq!(&b[48..64], children[0].as_bytes());
    assert_eq!(&b[48 + 32..], payload);
    assert_eq!(b.len(), 48 + 16 * 2 + payload.len());
    // A kept graph's manifest.
    let mut keys = vec![key, children[0]];
    keys.sort_unstable();
    let man = object::encode_manifest(&object::Manifest {
        root: key,
        keys: keys.clone(),
    });
    let rows = table("### Kept graph manifest", 0);
    check(
        "manifest",
        &rows,
        &man,
        object::MANIFEST_HEADER_LEN,
        &[("object count", 2)],
    );
    assert_eq!(&man[16..32], key.as_bytes());
    assert_eq!(&man[40..56], keys[0].as_bytes());
    assert_eq!(man.len(), 40 + 16 * 2 + 4);
    assert_eq!(
        le(&man[man.len() - 4..]),
        u64::from(crc32c::crc32c(&man[..man.len() - 4]))
    );
    for name in [
        object::MANIFEST_FILE,
        object::MANIFEST_TMP_FILE,
        spillway::store::dir::CLEAN_FILE,
        spillway::store::dir::LOCK_FILE,
    ] {
        assert!(DOC.contains(&format!("`{name}`")), "{name}");
    }
    assert_eq!(spillway::store::dir::MAX_KEPT_NAME, 200);
    assert!(DOC.contains("1 to 200 ASCII letters"));
}

#[test]
fn container_structures_match_the_document() {
    use container::{DirEntry, Header, Slot};
    let h = Header {
        compat: 0x0102,
        incompat: 0,
        ..Header::new(container::DEFAULT_PAGE_SIZE)
    };
    let b = container::encode_header(&h);
    check(
        "container header",
        &table("### Container header", 0),
        &b,
        container::HEADER_LEN,
        &[
            ("page size", u64::from(container::DEFAULT_PAGE_SIZE)),
            // The longer phrase first: "compatible" is inside "incompatible".
            ("incompatible feature flags", 0),
            ("compatible feature flags", 0x0102),
        ],
    );
    assert!(DOC.contains(&format!(
        "### Container header ({} bytes)",
        container::HEADER_LEN
    )));
    assert!(DOC.contains("a power of two from 4,096 to 1,048,576 (4,096 by default)"));
    assert_eq!(
        (container::MIN_PAGE_SIZE, container::MAX_PAGE_SIZE),
        (4096, 1 << 20)
    );

    let entry = DirEntry {
        kind: 0x0A0B,
        version: 3,
        flags: container::FLAG_REQUIRED | container::FLAG_INDEX,
        crc: 0x1234_5678,
        offset: 4 * 4096,
        len: 777,
        name: "keys".into(),
    };
    let dir = container::encode_dir(std::slice::from_ref(&entry));
    check(
        "directory entry",
        &table("### Section directory entry", 0),
        &dir,
        container::DIR_ENTRY_LEN,
        &[
            ("section type", 0x0A0B),
            ("section version", 3),
            ("section flags", 5),
            ("data offset", 4 * 4096),
            ("data length", 777),
        ],
    );
    assert_eq!(&dir[32..36], b"keys");
    assert!(dir[36..64].iter().all(|&b| b == 0));
    assert_eq!(le(&dir[12..16]), 0x1234_5678);
    assert!(DOC.contains(&format!(
        "### Section directory entry ({} bytes)",
        container::DIR_ENTRY_LEN
    )));
    assert_eq!(
        (
            container::FLAG_REQUIRED,
            container::FLAG_MMAP,
            container::FLAG_INDEX
        ),
        (1, 2, 4)
    );
    assert!(DOC.contains("bit 0 *required*") && DOC.contains("bit 2 *index*"));
    assert_eq!(container::NAME_LEN, 32);
    assert!(DOC.contains("1 to 32 bytes of UTF-8 without NUL"));

    let slot = Slot {
        iteration: 42,
        dir_offset: 5 * 4096,
        count: 1,
        dir_crc: crc32c::crc32c(&dir),
        file_len: 6 * 4096,
    };
    let b = container::encode_slot(&slot);
    check(
        "commit slot",
        &table("### Commit slot", 0),
        &b,
        container::SLOT_LEN,
        &[
            ("iteration", 42),
            ("directory offset", 5 * 4096),
            ("section count", 1),
            ("file length", 6 * 4096),
        ],
    );
    assert_eq!(le(&b[28..32]), u64::from(crc32c::crc32c(&dir)));
    assert_eq!(container::MAX_SECTIONS, 65_536);
    assert!(DOC.contains("at most 65,536"));
    assert_eq!(container::decode_slot(&b, &h), Ok(slot));
    assert_eq!(container::decode_dir(&dir, &slot, &h), Ok(vec![entry]));
}

#[test]
fn pack_index_entry_matches_the_document() {
    use spillway::format::pack;
    let key = ContentKey::of(b"packed", &[]);
    let mut b = Vec::new();
    pack::encode_entry(
        &mut b,
        &pack::IndexEntry {
            key,
            offset: 0x0102_0304_0506,
            len: 777,
        },
    );
    check(
        "pack index entry",
        &table("### Pack index entry", 0),
        &b,
        pack::INDEX_ENTRY_LEN,
        &[("record offset", 0x0102_0304_0506), ("record length", 777)],
    );
    assert_eq!(&b[..16], key.as_bytes());
    assert!(DOC.contains(&format!(
        "### Pack index entry ({} bytes)",
        pack::INDEX_ENTRY_LEN
    )));
    for (name, kind, version) in [
        (
            pack::OBJECTS_SECTION,
            spillway::container::types::OBJECTS,
            pack::OBJECTS_VERSION,
        ),
        (
            pack::INDEX_SECTION,
            spillway::container::types::OBJECT_INDEX,
            pack::INDEX_VERSION,
        ),
        (
            pack::ROOTS_SECTION,
            spillway::container::types::ROOTS,
            pack::ROOTS_VERSION,
        ),
    ] {
        assert!(
            DOC.contains(&format!("| `{name}` | {kind} | {version} |")),
            "section {name} of type {kind}, version {version}"
        );
    }
}

#[test]
fn value_payload_matches_the_document() {
    use spillway::format::value::{self, TypeTag};
    let rows = table("## Value payload", 0);
    // The hash is the one fixed-size field; the version's size varies (its row is checked as
    // text below).
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].offset, rows[0].size), (0, value::TYPE_HASH_LEN));
    assert!(
        rows[0]
            .field
            .starts_with("type hash: the first 4 bytes of the BLAKE3 hash")
    );
    assert!(DOC.contains(&format!(
        "| 4 | 1–{} | schema version, u32 as an unsigned LEB128 varint, shortest form |",
        value::MAX_VERSION_LEN
    )));
    // The document's example, byte for byte, through the pool's own encoding.
    let pool = spillway::Pool::builder()
        .budget(1 << 20)
        .store(std::sync::Arc::new(spillway::MemStore::new()))
        .schema::<(u8, u8)>("point", 300)
        .build()
        .expect("pool");
    let key = pool.insert((1u8, 2u8)).expect("insert").key().expect("key");
    let payload = spillway::BlobStore::get(&**pool.store(), &key)
        .expect("get")
        .expect("stored")
        .payload;
    let mut expected = Vec::new();
    value::encode(TypeTag::of("point", 300), &mut expected);
    expected.extend_from_slice(&[1, 2]);
    assert_eq!(payload, expected);
    let hex: Vec<String> = payload.iter().map(|b| format!("{b:02x}")).collect();
    let shown = format!("`{}`", hex.join(" "));
    assert!(
        DOC.contains(&format!("is stored as the bytes {shown}")),
        "FORMAT.md should show the example as {shown}"
    );
}

#[test]
fn sqlite_schema_version_matches_the_document() {
    let v = spillway::store::sqlite::SCHEMA_VERSION;
    assert!(
        DOC.contains(&format!("one row, the schema version ({v})")),
        "FORMAT.md should give SQLite schema version {v}"
    );
    assert!(DOC.contains(&format!("| SQLite schema | {v} |")));
}
