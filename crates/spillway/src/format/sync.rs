//! The sync record file, `SYNC`: how far the log store's log is known durable.
//!
//! After every `fdatasync` of the log that a caller is told about (a durable flush, a
//! checkpoint, the end of recovery), the store writes the position just synced into one of two
//! slots of this file and syncs it, before it acknowledges anything as durable. Recovery then
//! tells a torn tail (bytes at or after the recorded position: never acknowledged durable, cut)
//! from damage (a bad record before it: acknowledged data that rotted, reported, never cut).
//!
//! The file holds two slots of [`SLOT_LEN`] bytes, slot 0 at offset 0 and slot 1 at offset
//! [`SLOT_SPACING`] (so that they never share a disk page). Generation `g` is written into slot
//! `g % 2`: a write only ever touches the slot that does not hold the newest record, so a crash
//! during it leaves the other slot whole. A reader takes the valid slot with the higher
//! generation. A slot of all zeros (or missing: the file is shorter) was never written.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"SPILLSYN"` |
//! | 8 | 4 | format version, u32 (1) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | generation, u64 (at least 1) |
//! | 24 | 8 | segment id of the durable position |
//! | 32 | 8 | offset of the durable position within that segment |
//! | 40 | 4 | reserved, zero |
//! | 44 | 4 | CRC32C of bytes 0..44 |

use super::checkpoint::LogPosition;
use super::{DecodeError, check_crc, le_u32, le_u64, need};

/// File name of the sync record file inside a store directory.
pub const SYNC_FILE: &str = "SYNC";
/// Magic bytes at the start of a slot.
pub const SYNC_MAGIC: [u8; 8] = *b"SPILLSYN";
/// Sync record format version written by this build, and the newest it reads.
pub const SYNC_VERSION: u32 = 1;
/// Length of one slot.
pub const SLOT_LEN: usize = 48;
/// Offset of slot 1 (slot 0 is at offset 0).
pub const SLOT_SPACING: usize = 4096;

/// One slot: the durable position as of a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRecord {
    /// Grows by one with each write; the slot is `generation % 2`.
    pub generation: u64,
    /// Everything of the log before this position was synced.
    pub durable: LogPosition,
}

impl SyncRecord {
    /// Offset in the file of the slot this record is written to.
    pub fn slot_offset(&self) -> u64 {
        (self.generation % 2) * SLOT_SPACING as u64
    }
}

/// Encodes one slot.
pub fn encode_slot(r: &SyncRecord) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    b[..8].copy_from_slice(&SYNC_MAGIC);
    b[8..12].copy_from_slice(&SYNC_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&r.generation.to_le_bytes());
    b[24..32].copy_from_slice(&r.durable.segment.to_le_bytes());
    b[32..40].copy_from_slice(&r.durable.offset.to_le_bytes());
    let crc = crc32c::crc32c(&b[..44]);
    b[44..48].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes one slot (exactly [`SLOT_LEN`] bytes or more; the rest is ignored).
pub fn decode_slot(b: &[u8]) -> Result<SyncRecord, DecodeError> {
    need(b, SLOT_LEN)?;
    if b[..8] != SYNC_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    check_crc(le_u32(b, 44), &b[..44])?;
    let version = le_u32(b, 8);
    if version != SYNC_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    if le_u32(b, 12) != 0 || le_u32(b, 40) != 0 {
        return Err(DecodeError::Invalid(
            "reserved bytes of a sync record are not zero".into(),
        ));
    }
    let generation = le_u64(b, 16);
    if generation == 0 {
        return Err(DecodeError::Invalid("a sync record of generation 0".into()));
    }
    Ok(SyncRecord {
        generation,
        durable: LogPosition {
            segment: le_u64(b, 24),
            offset: le_u64(b, 32),
        },
    })
}

/// What a `SYNC` file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncFile {
    /// The newest valid slot.
    Record(SyncRecord),
    /// No slot was ever written whole: the file is empty or all zeros (its creation was cut
    /// short by a crash). The durable position is unknown.
    Blank,
}

/// Decodes a whole `SYNC` file. A slot that is neither valid nor blank is torn or damaged: it
/// is passed over if the other slot is valid (a crash tears only the slot being written). With
/// no valid slot, a file that holds only a torn first slot is [`SyncFile::Blank`] (the store's
/// first record was cut short); otherwise it is an error naming why a slot was refused.
pub fn decode_file(b: &[u8]) -> Result<SyncFile, DecodeError> {
    let slot = |i: usize| -> Option<&[u8]> {
        let start = i * SLOT_SPACING;
        b.get(start..b.len().min(start + SLOT_LEN))
            .filter(|s| !s.is_empty())
    };
    let mut best: Option<SyncRecord> = None;
    let mut problem = None;
    let mut written = 0;
    let mut written_slot = 0;
    for i in 0..2 {
        let Some(s) = slot(i) else { continue };
        if s.iter().all(|&x| x == 0) {
            continue;
        }
        written += 1;
        written_slot = i;
        match decode_slot(s) {
            Ok(r) if r.slot_offset() == (i * SLOT_SPACING) as u64 => {
                if best.is_none_or(|b| r.generation > b.generation) {
                    best = Some(r);
                }
            }
            Ok(r) => {
                problem = Some(DecodeError::Invalid(format!(
                    "slot {i} holds generation {}, which belongs in slot {}",
                    r.generation,
                    r.generation % 2
                )))
            }
            Err(e) => problem = Some(e),
        }
    }
    if b.len() > SLOT_SPACING + SLOT_LEN {
        return Err(DecodeError::Invalid(format!(
            "the file is {} bytes, at most {} expected",
            b.len(),
            SLOT_SPACING + SLOT_LEN
        )));
    }
    match (best, problem) {
        (Some(r), _) => Ok(SyncFile::Record(r)),
        (None, Some(e @ DecodeError::UnsupportedVersion(_))) => Err(e),
        // One slot written, and not whole: the first record's write was cut short (every later
        // write goes to the other slot, so after a second record both slots hold bytes).
        // Such a write leaves no byte outside its slot.
        (None, Some(_))
            if written == 1 && {
                let start = written_slot * SLOT_SPACING;
                b.iter()
                    .enumerate()
                    .all(|(at, &x)| x == 0 || (start..start + SLOT_LEN).contains(&at))
            } =>
        {
            Ok(SyncFile::Blank)
        }
        (None, Some(e)) => Err(e),
        (None, None) if b.iter().all(|&x| x == 0) => Ok(SyncFile::Blank),
        (None, None) => Err(DecodeError::Invalid(
            "non-zero bytes outside both slots".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_past_a_cut_first_write_is_damage() {
        // One slot of garbage alone reads as a first write cut short; bytes past it cannot be.
        let mut b = vec![0x5au8; SLOT_LEN];
        assert!(matches!(decode_file(&b), Ok(SyncFile::Blank)));
        b.extend_from_slice(&[0x5a; 52]);
        assert!(decode_file(&b).is_err(), "100 bytes of garbage are damage");
    }

    fn rec(generation: u64, segment: u64, offset: u64) -> SyncRecord {
        SyncRecord {
            generation,
            durable: LogPosition { segment, offset },
        }
    }

    fn file_with(records: &[SyncRecord]) -> Vec<u8> {
        let mut f = vec![0u8; SLOT_SPACING + SLOT_LEN];
        for r in records {
            let at = r.slot_offset() as usize;
            f[at..at + SLOT_LEN].copy_from_slice(&encode_slot(r));
        }
        f
    }

    #[test]
    fn slot_round_trip_and_every_byte_corruption() {
        let r = rec(7, 3, 4242);
        let b = encode_slot(&r);
        assert_eq!(decode_slot(&b), Ok(r));
        for i in 0..SLOT_LEN {
            for bit in [0x01, 0x80] {
                let mut c = b;
                c[i] ^= bit;
                assert!(
                    decode_slot(&c).is_err(),
                    "flip {bit:#x} at {i} not detected"
                );
            }
        }
        for cut in 0..SLOT_LEN {
            assert!(decode_slot(&b[..cut]).is_err());
        }
    }

    #[test]
    fn the_file_gives_the_newest_valid_slot() {
        let f = file_with(&[rec(4, 1, 100), rec(5, 2, 64)]);
        assert_eq!(decode_file(&f), Ok(SyncFile::Record(rec(5, 2, 64))));
        // The newer slot torn: the older one holds.
        let mut torn = f.clone();
        torn[SLOT_SPACING + 20] ^= 0xff;
        assert_eq!(decode_file(&torn), Ok(SyncFile::Record(rec(4, 1, 100))));
        // Only the first slot was ever written, so the file may end after it.
        let one = file_with(&[rec(2, 1, 32)]);
        assert_eq!(
            decode_file(&one[..SLOT_LEN]),
            Ok(SyncFile::Record(rec(2, 1, 32)))
        );
        assert_eq!(decode_file(&[]), Ok(SyncFile::Blank));
        assert_eq!(decode_file(&[0u8; 100]), Ok(SyncFile::Blank));
    }

    #[test]
    fn a_file_with_no_valid_slot_is_damage() {
        // A torn first record: as if never written.
        let f = file_with(&[rec(2, 1, 32)]);
        assert_eq!(decode_file(&f[..20]), Ok(SyncFile::Blank));
        let mut v = f.clone();
        v[8] = 9;
        let crc = crc32c::crc32c(&v[..44]);
        v[44..48].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_file(&v),
            Err(DecodeError::UnsupportedVersion(9)),
            "a newer version is never blank"
        );
        // Both slots written and neither valid.
        let mut both = file_with(&[rec(2, 1, 32), rec(3, 1, 64)]);
        both[5] ^= 1;
        both[SLOT_SPACING + 5] ^= 1;
        assert!(decode_file(&both).is_err());
        // A record in the wrong slot is refused.
        let mut g = file_with(&[rec(2, 1, 32)]);
        g[SLOT_SPACING..].copy_from_slice(&encode_slot(&rec(2, 1, 64)));
        g[5] ^= 1;
        assert!(decode_file(&g).is_err());
        // Too long.
        let mut h = file_with(&[rec(2, 1, 32)]);
        h.push(0);
        assert!(decode_file(&h).is_err());
        // Stray bytes between the slots.
        let mut s = vec![0u8; 100];
        s[60] = 1;
        assert!(decode_file(&s).is_err());
    }
}
