//! Packs: a container file holding a graph of objects, to copy between machines and open
//! read-only as a store. Three sections (see `docs/FORMAT.md`, "Pack"):
//!
//! - `objects` (type 1, required, mmap-able): the objects as log records (a put each, the
//!   format of the log store's segments), back to back in key order;
//! - `object-index` (type 2, an index, mmap-able): one 32-byte entry per object, sorted by key,
//!   derived from `objects` and rebuilt from it when damaged;
//! - `roots` (type 3, required): the pack's named roots, in the format of the log store's
//!   `ROOTS` file.
//!
//! Index entry:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 16 | content key |
//! | 16 | 8 | record offset in the objects section |
//! | 24 | 4 | record length |
//! | 28 | 4 | reserved, zero |

use super::record::{self, RECORD_HEADER_LEN, RecordKind};
use super::{DecodeError, le_u32, le_u64};
use crate::key::{ContentKey, KEY_LEN};

/// Name of the objects section.
pub const OBJECTS_SECTION: &str = "objects";
/// Name of the index section.
pub const INDEX_SECTION: &str = "object-index";
/// Name of the roots section.
pub const ROOTS_SECTION: &str = "roots";
/// Version of the objects section's format: the newest this build writes and reads.
pub const OBJECTS_VERSION: u32 = 2;
/// The first objects version whose values, as a pool stores them, start with a type tag (see
/// [`value`](super::value)). Versions 1 and 2 hold the same records; an export writes version 1
/// from a store whose values have no tag (a log store of format 1).
pub const TAGGED_VALUES_VERSION: u32 = 2;
/// Version of the index section's format.
pub const INDEX_VERSION: u32 = 1;
/// Version of the roots section's format.
pub const ROOTS_VERSION: u32 = 1;
/// Length of an index entry.
pub const INDEX_ENTRY_LEN: usize = 32;

/// Where one object's record is in the objects section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The object's key.
    pub key: ContentKey,
    /// Offset of its record in the objects section.
    pub offset: u64,
    /// Length of the record.
    pub len: u32,
}

/// Appends an index entry.
pub fn encode_entry(out: &mut Vec<u8>, e: &IndexEntry) {
    out.extend_from_slice(e.key.as_bytes());
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.len.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
}

/// Entry `i` of an index whose bytes were checked by [`check_index`].
pub fn entry(index: &[u8], i: usize) -> IndexEntry {
    let b = &index[i * INDEX_ENTRY_LEN..(i + 1) * INDEX_ENTRY_LEN];
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(&b[..KEY_LEN]);
    IndexEntry {
        key: ContentKey::from_bytes(k),
        offset: le_u64(b, 16),
        len: le_u32(b, 24),
    }
}

/// Checks an index against the objects section's length: whole entries, keys strictly
/// ascending, every record inside the section and at least a record header long, reserved
/// bytes zero. Then [`entry`] and [`find`] may trust it.
pub fn check_index(index: &[u8], objects_len: u64) -> Result<usize, DecodeError> {
    if !index.len().is_multiple_of(INDEX_ENTRY_LEN) {
        return Err(DecodeError::Invalid(format!(
            "the index is {} bytes, not a whole number of {INDEX_ENTRY_LEN}-byte entries",
            index.len()
        )));
    }
    let n = index.len() / INDEX_ENTRY_LEN;
    for i in 0..n {
        let b = &index[i * INDEX_ENTRY_LEN..(i + 1) * INDEX_ENTRY_LEN];
        if b[28..32] != [0; 4] {
            return Err(DecodeError::Invalid(format!(
                "index entry {i}: reserved bytes are not zero"
            )));
        }
        let e = entry(index, i);
        let end = e.offset.checked_add(u64::from(e.len));
        if (e.len as usize) < RECORD_HEADER_LEN || end.is_none_or(|end| end > objects_len) {
            return Err(DecodeError::Invalid(format!(
                "index entry {i}: a record of {} bytes at {} is outside the {objects_len} bytes \
                 of objects",
                e.len, e.offset
            )));
        }
        if i > 0 && index[(i - 1) * INDEX_ENTRY_LEN..][..KEY_LEN] >= b[..KEY_LEN] {
            return Err(DecodeError::Invalid(format!(
                "index entry {i}: keys are not in strictly ascending order"
            )));
        }
    }
    Ok(n)
}

/// The entry of `key` in a checked index of `n` entries (binary search).
pub fn find(index: &[u8], n: usize, key: &ContentKey) -> Option<IndexEntry> {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let k = &index[mid * INDEX_ENTRY_LEN..][..KEY_LEN];
        match k.cmp(key.as_bytes().as_slice()) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(entry(index, mid)),
        }
    }
    None
}

/// Rebuilds the index from the objects section: every record in order, each checked (its
/// checksum, a put); returns the index bytes and the byte ranges that did not decode (skipped:
/// the scan resumes at the next record magic).
pub fn rebuild_index(objects: &[u8]) -> (Vec<u8>, Vec<(u64, u64)>) {
    let mut entries: Vec<IndexEntry> = Vec::new();
    let mut damaged: Vec<(u64, u64)> = Vec::new();
    let mut at = 0usize;
    while at < objects.len() {
        match record::decode(&objects[at..]) {
            Ok(r) if r.header.kind == RecordKind::Put => {
                let len = r.header.record_len() as usize;
                entries.push(IndexEntry {
                    key: r.header.key,
                    offset: at as u64,
                    len: len as u32,
                });
                at += len;
            }
            _ => {
                // Skip to the next record magic after this byte.
                let next = objects[at + 1..]
                    .windows(4)
                    .position(|w| w == record::RECORD_MAGIC)
                    .map_or(objects.len(), |p| at + 1 + p);
                damaged.push((at as u64, next as u64));
                at = next;
            }
        }
    }
    entries.sort_by_key(|e| e.key);
    entries.dedup_by_key(|e| e.key);
    let mut out = Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN);
    for e in &entries {
        encode_entry(&mut out, e);
    }
    (out, damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(n: u8) -> (Vec<u8>, Vec<IndexEntry>) {
        let mut out = Vec::new();
        let mut entries = Vec::new();
        for i in 0..n {
            let payload = vec![i; 10 + i as usize];
            let key = ContentKey::of(&payload, &[]);
            let at = out.len() as u64;
            record::encode(&mut out, RecordKind::Put, &key, &[], &payload);
            entries.push(IndexEntry {
                key,
                offset: at,
                len: (out.len() as u64 - at) as u32,
            });
        }
        entries.sort_by_key(|e| e.key);
        (out, entries)
    }

    #[test]
    fn index_round_trip_find_and_rebuild() {
        let (objs, entries) = objects(20);
        let mut index = Vec::new();
        for e in &entries {
            encode_entry(&mut index, e);
        }
        assert_eq!(check_index(&index, objs.len() as u64), Ok(20));
        for e in &entries {
            assert_eq!(find(&index, 20, &e.key), Some(*e));
        }
        assert_eq!(find(&index, 20, &ContentKey::of(b"absent", &[])), None);
        assert_eq!(rebuild_index(&objs), (index, vec![]));
    }

    #[test]
    fn bad_indexes_are_refused() {
        let (objs, entries) = objects(5);
        let mut index = Vec::new();
        for e in &entries {
            encode_entry(&mut index, e);
        }
        let len = objs.len() as u64;
        assert!(check_index(&index[..40], len).is_err(), "a partial entry");
        let mut unsorted = index.clone();
        unsorted[..32].copy_from_slice(&index[32..64]);
        assert!(check_index(&unsorted, len).is_err(), "a key out of order");
        let mut outside = index.clone();
        outside[16..24].copy_from_slice(&(len - 10).to_le_bytes());
        assert!(check_index(&outside, len).is_err(), "a record past the end");
        let mut reserved = index.clone();
        reserved[30] = 1;
        assert!(check_index(&reserved, len).is_err(), "reserved bytes");
    }

    #[test]
    fn a_rebuild_skips_damage_and_keeps_every_record_that_checks_out() {
        let (mut objs, entries) = objects(10);
        let victim = entries[3];
        objs[victim.offset as usize + RECORD_HEADER_LEN + 2] ^= 1;
        let (index, damaged) = rebuild_index(&objs);
        assert_eq!(damaged.len(), 1);
        let n = check_index(&index, objs.len() as u64).expect("valid");
        assert_eq!(n, 9);
        assert_eq!(find(&index, n, &victim.key), None);
        for e in entries.iter().filter(|e| e.key != victim.key) {
            assert_eq!(find(&index, n, &e.key), Some(*e));
        }
    }
}
