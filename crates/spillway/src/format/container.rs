//! The container file (`.spw`): a header, two alternating commit slots, and sections of typed
//! data found through a section directory. `docs/FORMAT.md` ("Container file") is the
//! specification; this module encodes and decodes its fixed structures.
//!
//! Layout, with `P` the page size recorded in the header:
//!
//! - bytes `0..P`: the header (64 bytes, then zeros);
//! - bytes `P..2P` and `2P..3P`: commit slots 0 and 1 (64 bytes each, then zeros);
//! - from `3P` on: section data and directories, each starting on a page boundary.
//!
//! Header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SPILLCTR` |
//! | 8 | 4 | container format version (1) |
//! | 12 | 4 | page size |
//! | 16 | 8 | compatible feature flags |
//! | 24 | 8 | incompatible feature flags |
//! | 32 | 28 | reserved, zero |
//! | 60 | 4 | CRC32C of bytes 0..60 |
//!
//! Commit slot:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `SPILLSLT` |
//! | 8 | 8 | iteration |
//! | 16 | 8 | directory offset |
//! | 24 | 4 | section count |
//! | 28 | 4 | CRC32C of the directory |
//! | 32 | 8 | file length |
//! | 40 | 20 | reserved, zero |
//! | 60 | 4 | CRC32C of bytes 0..60 |
//!
//! Directory entry (one per section, the directory is `count` of them back to back):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | section type |
//! | 4 | 4 | section version |
//! | 8 | 4 | section flags |
//! | 12 | 4 | CRC32C of the section's data |
//! | 16 | 8 | data offset |
//! | 24 | 8 | data length |
//! | 32 | 32 | section name |
//!
//! The slot with the higher iteration among the valid ones is the container's state; a slot
//! that fails its checks is as if never written. Decoders never trust a length: a directory is
//! bounded by [`MAX_SECTIONS`], and every offset and length is checked against the file length
//! the slot records before anything is read or reserved.

use super::{DecodeError, check_crc, le_u32, le_u64, need};

/// Magic bytes at the start of a container file.
pub const CONTAINER_MAGIC: [u8; 8] = *b"SPILLCTR";
/// Magic bytes at the start of a commit slot.
pub const SLOT_MAGIC: [u8; 8] = *b"SPILLSLT";
/// The container format version this build writes and the newest it reads.
pub const CONTAINER_VERSION: u32 = 1;
/// Length of the header's encoded part.
pub const HEADER_LEN: usize = 64;
/// Length of a commit slot's encoded part.
pub const SLOT_LEN: usize = 64;
/// Length of a directory entry.
pub const DIR_ENTRY_LEN: usize = 64;
/// Length of the name field of a directory entry: names are 1 to 32 bytes of UTF-8.
pub const NAME_LEN: usize = 32;
/// The page size a new container gets.
pub const DEFAULT_PAGE_SIZE: u32 = 4096;
/// Smallest page size (and the alignment a reader can rely on for memory maps).
pub const MIN_PAGE_SIZE: u32 = 4096;
/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 1 << 20;
/// Most sections a directory holds.
pub const MAX_SECTIONS: u32 = 1 << 16;
/// Compatible feature flags this build knows (an unknown one is ignored by readers).
pub const KNOWN_COMPAT_FEATURES: u64 = 0;
/// Incompatible feature flags this build knows (an unknown one makes a reader refuse the file).
pub const KNOWN_INCOMPAT_FEATURES: u64 = 0;

/// Section flag: a reader that does not know the section's type must refuse the file.
pub const FLAG_REQUIRED: u32 = 1;
/// Section flag: the data can be used in place from a memory map.
pub const FLAG_MMAP: u32 = 2;
/// Section flag: an index, derived from data sections and rebuilt from them if damaged.
pub const FLAG_INDEX: u32 = 4;
/// Every section flag this build defines.
pub const KNOWN_FLAGS: u32 = FLAG_REQUIRED | FLAG_MMAP | FLAG_INDEX;

/// The container's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Container format version.
    pub version: u32,
    /// Page size: sections start on multiples of it.
    pub page_size: u32,
    /// Features an older reader may ignore.
    pub compat: u64,
    /// Features an older reader must refuse.
    pub incompat: u64,
}

impl Header {
    /// The header of a new container with `page_size`.
    pub fn new(page_size: u32) -> Header {
        Header {
            version: CONTAINER_VERSION,
            page_size,
            compat: 0,
            incompat: 0,
        }
    }

    /// Offset of commit slot `i` (0 or 1).
    pub fn slot_offset(&self, i: usize) -> u64 {
        u64::from(self.page_size) * (1 + i as u64)
    }

    /// Where section data may start: after the header and both slots.
    pub fn data_start(&self) -> u64 {
        u64::from(self.page_size) * 3
    }
}

/// Encodes a header.
pub fn encode_header(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[..8].copy_from_slice(&CONTAINER_MAGIC);
    b[8..12].copy_from_slice(&h.version.to_le_bytes());
    b[12..16].copy_from_slice(&h.page_size.to_le_bytes());
    b[16..24].copy_from_slice(&h.compat.to_le_bytes());
    b[24..32].copy_from_slice(&h.incompat.to_le_bytes());
    let crc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a header and checks that this build can read the file: its version, its page size
/// and its incompatible features.
pub fn decode_header(b: &[u8]) -> Result<Header, DecodeError> {
    check_fixed(b, &CONTAINER_MAGIC, 32, "header")?;
    let h = Header {
        version: le_u32(b, 8),
        page_size: le_u32(b, 12),
        compat: le_u64(b, 16),
        incompat: le_u64(b, 24),
    };
    if h.version == 0 || h.version > CONTAINER_VERSION {
        return Err(DecodeError::UnsupportedVersion(h.version));
    }
    if !h.page_size.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&h.page_size) {
        return Err(DecodeError::Invalid(format!(
            "page size {} is not a power of two from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE}",
            h.page_size
        )));
    }
    let unknown = h.incompat & !KNOWN_INCOMPAT_FEATURES;
    if unknown != 0 {
        return Err(DecodeError::Invalid(format!(
            "the file uses incompatible features {unknown:#x} that this build does not know \
             (written by a newer spillway)"
        )));
    }
    Ok(h)
}

/// Checks a 64-byte structure's length, magic and checksum (over bytes 0..60, stored at 60),
/// and that its reserved bytes, from `reserved` to 60, are zero.
fn check_fixed(b: &[u8], magic: &[u8; 8], reserved: usize, what: &str) -> Result<(), DecodeError> {
    need(b, 64)?;
    if b[..8] != *magic {
        return Err(DecodeError::BadMagic);
    }
    check_crc(le_u32(b, 60), &b[..60])?;
    if b[reserved..60].iter().any(|&x| x != 0) {
        return Err(DecodeError::Invalid(format!(
            "reserved {what} bytes are not zero"
        )));
    }
    Ok(())
}

/// A commit slot: which directory is the container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Higher wins; the first commit is 1.
    pub iteration: u64,
    /// Where the directory is.
    pub dir_offset: u64,
    /// Sections in the directory.
    pub count: u32,
    /// CRC32C of the directory's bytes.
    pub dir_crc: u32,
    /// The file's length when the slot was written: every byte the state uses is before it.
    pub file_len: u64,
}

impl Slot {
    /// Bytes of the slot's directory.
    pub fn dir_len(&self) -> u64 {
        u64::from(self.count) * DIR_ENTRY_LEN as u64
    }
}

/// Encodes a commit slot.
pub fn encode_slot(s: &Slot) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    b[..8].copy_from_slice(&SLOT_MAGIC);
    b[8..16].copy_from_slice(&s.iteration.to_le_bytes());
    b[16..24].copy_from_slice(&s.dir_offset.to_le_bytes());
    b[24..28].copy_from_slice(&s.count.to_le_bytes());
    b[28..32].copy_from_slice(&s.dir_crc.to_le_bytes());
    b[32..40].copy_from_slice(&s.file_len.to_le_bytes());
    let crc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a commit slot of a container with header `h`, checking that its directory lies in
/// the data area, page-aligned, within the file length it records.
pub fn decode_slot(b: &[u8], h: &Header) -> Result<Slot, DecodeError> {
    check_fixed(b, &SLOT_MAGIC, 40, "slot")?;
    let s = Slot {
        iteration: le_u64(b, 8),
        dir_offset: le_u64(b, 16),
        count: le_u32(b, 24),
        dir_crc: le_u32(b, 28),
        file_len: le_u64(b, 32),
    };
    if s.iteration == 0 {
        return Err(DecodeError::Invalid("iteration 0".into()));
    }
    if s.count > MAX_SECTIONS {
        return Err(DecodeError::TooLarge {
            what: "section directory",
            len: u64::from(s.count),
            limit: u64::from(MAX_SECTIONS),
        });
    }
    check_extent("the directory", s.dir_offset, s.dir_len(), h, s.file_len)?;
    Ok(s)
}

/// Checks that `len` bytes at `offset` lie in the data area, page-aligned, before `file_len`.
fn check_extent(
    what: &str,
    offset: u64,
    len: u64,
    h: &Header,
    file_len: u64,
) -> Result<(), DecodeError> {
    let end = offset.checked_add(len);
    if offset < h.data_start()
        || !offset.is_multiple_of(u64::from(h.page_size))
        || end.is_none_or(|e| e > file_len)
    {
        return Err(DecodeError::Invalid(format!(
            "{what} at offset {offset}, {len} bytes, is outside the data area (from {} to the \
             file length {file_len}) or not on a page boundary",
            h.data_start()
        )));
    }
    Ok(())
}

/// One section as the directory records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// What the section holds; the reader's code for it decides how to read it.
    pub kind: u32,
    /// The section's own format version.
    pub version: u32,
    /// [`FLAG_REQUIRED`], [`FLAG_MMAP`], [`FLAG_INDEX`].
    pub flags: u32,
    /// CRC32C of the data.
    pub crc: u32,
    /// Where the data starts (a page boundary).
    pub offset: u64,
    /// Bytes of data.
    pub len: u64,
    /// The section's name, unique in the container: 1 to 32 bytes of UTF-8, no NUL.
    pub name: String,
}

/// Checks a section name: 1 to [`NAME_LEN`] bytes, no NUL.
pub fn check_name(name: &str) -> Result<(), DecodeError> {
    if name.is_empty() || name.len() > NAME_LEN || name.contains('\0') {
        return Err(DecodeError::Invalid(format!(
            "section name {name:?} is not 1 to {NAME_LEN} bytes without NUL"
        )));
    }
    Ok(())
}

/// Encodes a directory (the caller has checked the names).
pub fn encode_dir(entries: &[DirEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * DIR_ENTRY_LEN);
    for e in entries {
        let mut b = [0u8; DIR_ENTRY_LEN];
        b[0..4].copy_from_slice(&e.kind.to_le_bytes());
        b[4..8].copy_from_slice(&e.version.to_le_bytes());
        b[8..12].copy_from_slice(&e.flags.to_le_bytes());
        b[12..16].copy_from_slice(&e.crc.to_le_bytes());
        b[16..24].copy_from_slice(&e.offset.to_le_bytes());
        b[24..32].copy_from_slice(&e.len.to_le_bytes());
        let n = e.name.len().min(NAME_LEN);
        b[32..32 + n].copy_from_slice(&e.name.as_bytes()[..n]);
        out.extend_from_slice(&b);
    }
    out
}

/// Decodes the directory `b` that slot `s` points at: its checksum, every entry's flags, name
/// and extent; names unique, sections and the directory not overlapping.
pub fn decode_dir(b: &[u8], s: &Slot, h: &Header) -> Result<Vec<DirEntry>, DecodeError> {
    let len = usize::try_from(s.dir_len()).map_err(|_| DecodeError::TooLarge {
        what: "section directory",
        len: s.dir_len(),
        limit: usize::MAX as u64,
    })?;
    need(b, len)?;
    let b = &b[..len];
    check_crc(s.dir_crc, b)?;
    let mut out = Vec::with_capacity(s.count as usize);
    for (i, e) in b.chunks_exact(DIR_ENTRY_LEN).enumerate() {
        let raw_name = &e[32..64];
        let end = raw_name.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        if raw_name[end..].iter().any(|&c| c != 0) {
            return Err(DecodeError::Invalid(format!(
                "section {i}: bytes after the name's end are not zero"
            )));
        }
        let name = std::str::from_utf8(&raw_name[..end])
            .map_err(|_| DecodeError::Invalid(format!("section {i}: name is not UTF-8")))?
            .to_string();
        check_name(&name).map_err(|e| DecodeError::Invalid(format!("section {i}: {e}")))?;
        let entry = DirEntry {
            kind: le_u32(e, 0),
            version: le_u32(e, 4),
            flags: le_u32(e, 8),
            crc: le_u32(e, 12),
            offset: le_u64(e, 16),
            len: le_u64(e, 24),
            name,
        };
        if entry.flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::Invalid(format!(
                "section {:?}: unknown flags {:#x}",
                entry.name,
                entry.flags & !KNOWN_FLAGS
            )));
        }
        check_extent(
            &format!("section {:?}", entry.name),
            entry.offset,
            entry.len,
            h,
            s.file_len,
        )?;
        out.push(entry);
    }
    let mut names: Vec<&str> = out.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(DecodeError::Invalid(format!(
            "two sections are named {:?}",
            w[0]
        )));
    }
    let mut extents: Vec<(u64, u64, &str)> = out
        .iter()
        .filter(|e| e.len > 0)
        .map(|e| (e.offset, e.offset + e.len, e.name.as_str()))
        .collect();
    if s.count > 0 {
        extents.push((s.dir_offset, s.dir_offset + s.dir_len(), "the directory"));
    }
    extents.sort_unstable();
    if let Some(w) = extents.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(DecodeError::Invalid(format!(
            "{} and {} overlap",
            w[0].2, w[1].2
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<DirEntry> {
        vec![
            DirEntry {
                kind: 1,
                version: 1,
                flags: FLAG_REQUIRED | FLAG_MMAP,
                crc: 0xdead_beef,
                offset: 3 * 4096,
                len: 5000,
                name: "objects".into(),
            },
            DirEntry {
                kind: 2,
                version: 3,
                flags: FLAG_INDEX,
                crc: 7,
                offset: 5 * 4096,
                len: 0,
                name: "x".repeat(NAME_LEN),
            },
        ]
    }

    fn slot_for(dir: &[u8]) -> Slot {
        Slot {
            iteration: 9,
            dir_offset: 6 * 4096,
            count: (dir.len() / DIR_ENTRY_LEN) as u32,
            dir_crc: crc32c::crc32c(dir),
            file_len: 7 * 4096,
        }
    }

    #[test]
    fn header_round_trip_and_every_byte_corruption() {
        let h = Header::new(DEFAULT_PAGE_SIZE);
        let b = encode_header(&h);
        assert_eq!(decode_header(&b), Ok(h));
        for i in 0..b.len() {
            let mut c = b;
            c[i] ^= 0x10;
            assert!(decode_header(&c).is_err(), "flip at {i} not detected");
        }
        assert!(matches!(
            decode_header(&b[..40]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn a_newer_version_or_unknown_incompatible_feature_is_refused() {
        let newer = Header {
            version: CONTAINER_VERSION + 1,
            ..Header::new(DEFAULT_PAGE_SIZE)
        };
        assert_eq!(
            decode_header(&encode_header(&newer)),
            Err(DecodeError::UnsupportedVersion(CONTAINER_VERSION + 1))
        );
        let feature = Header {
            incompat: 1 << 40,
            ..Header::new(DEFAULT_PAGE_SIZE)
        };
        assert!(decode_header(&encode_header(&feature)).is_err());
        // A compatible feature this build does not know is fine.
        let compat = Header {
            compat: 1 << 40,
            ..Header::new(DEFAULT_PAGE_SIZE)
        };
        assert_eq!(decode_header(&encode_header(&compat)), Ok(compat));
        for page in [0, 512, 4095, 3 << 12, 2 << 20] {
            let odd = Header::new(page);
            assert!(decode_header(&encode_header(&odd)).is_err(), "page {page}");
        }
    }

    #[test]
    fn slot_round_trip_and_every_byte_corruption() {
        let h = Header::new(DEFAULT_PAGE_SIZE);
        let dir = encode_dir(&entries());
        let s = slot_for(&dir);
        let b = encode_slot(&s);
        assert_eq!(decode_slot(&b, &h), Ok(s));
        for i in 0..b.len() {
            let mut c = b;
            c[i] ^= 0x01;
            assert!(decode_slot(&c, &h).is_err(), "flip at {i} not detected");
        }
        // An all-zero (never written) slot is not a slot.
        assert_eq!(
            decode_slot(&[0u8; SLOT_LEN], &h),
            Err(DecodeError::BadMagic)
        );
    }

    #[test]
    fn a_slot_pointing_outside_the_file_is_refused() {
        let h = Header::new(DEFAULT_PAGE_SIZE);
        let dir = encode_dir(&entries());
        let good = slot_for(&dir);
        for bad in [
            Slot {
                dir_offset: 4096, // inside the slots
                ..good
            },
            Slot {
                dir_offset: 6 * 4096 + 1, // not on a page
                ..good
            },
            Slot {
                file_len: 6 * 4096 + 10, // the directory runs past the end
                ..good
            },
            Slot {
                dir_offset: u64::MAX - 10, // overflow
                ..good
            },
            Slot {
                count: MAX_SECTIONS + 1,
                ..good
            },
        ] {
            assert!(decode_slot(&encode_slot(&bad), &h).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn directory_round_trip_and_every_byte_corruption() {
        let h = Header::new(DEFAULT_PAGE_SIZE);
        let e = entries();
        let dir = encode_dir(&e);
        let s = slot_for(&dir);
        assert_eq!(decode_dir(&dir, &s, &h), Ok(e));
        for i in 0..dir.len() {
            let mut c = dir.clone();
            c[i] ^= 0x80;
            assert!(decode_dir(&c, &s, &h).is_err(), "flip at {i} not detected");
        }
        assert!(matches!(
            decode_dir(&dir[..100], &s, &h),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn bad_directories_are_refused_even_with_a_matching_checksum() {
        let h = Header::new(DEFAULT_PAGE_SIZE);
        let check = |e: Vec<DirEntry>| {
            let dir = encode_dir(&e);
            decode_dir(&dir, &slot_for(&dir), &h)
        };
        let mut dup = entries();
        dup[1].name = dup[0].name.clone();
        assert!(check(dup).is_err(), "duplicate names");
        let mut overlap = entries();
        overlap[1].offset = 4 * 4096;
        overlap[1].len = 10;
        assert!(check(overlap).is_err(), "overlapping sections");
        let mut over_dir = entries();
        over_dir[0].len = 3 * 4096 + 1;
        assert!(check(over_dir).is_err(), "a section over the directory");
        let mut flags = entries();
        flags[0].flags |= 8;
        assert!(check(flags).is_err(), "unknown flag");
        let mut past = entries();
        past[0].len = 1 << 40;
        assert!(check(past).is_err(), "past the end of the file");
    }
}
