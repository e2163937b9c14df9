//! Named roots for any store: the default behind [`BlobStore::roots`] and
//! [`BlobStore::set_root`].
//!
//! The table of roots is kept in the store itself, in two *slots*: records under the two
//! reserved keys [`ContentKey::reserved`]`(0)` and `(1)`. Each slot holds a generation number
//! and the table, encoded as a `ROOTS` file (`docs/FORMAT.md`, "Roots slots"); its child keys are
//! the roots' keys. A change writes the slot that does *not* hold the newest table, with the
//! next generation: it deletes that slot, puts the new one and makes the store durable. A crash
//! at any step leaves the other slot, whole, so [`roots`] reads either the old table or the new
//! one, never a mix. Reading takes the valid slot with the highest generation.
//!
//! Changes are serialised within the process. A store that several processes or machines
//! change at once must override the roots with a mechanism that detects a lost race (a file
//! lock, a conditional put).

use parking_lot::Mutex;

use super::{BlobStore, Durability, Put};
use crate::error::{Error, Result};
use crate::format::roots::{self as roots_format, MAX_ROOT_NAME};
use crate::format::{DecodeError, check_crc, le_u32, le_u64, need};
use crate::key::ContentKey;

/// Magic bytes at the start of a roots slot.
pub const SLOT_MAGIC: [u8; 8] = *b"SPILLRSL";
/// Length of a slot's header: the magic and the generation.
pub const SLOT_HEADER_LEN: usize = 16;

/// One change of roots at a time in this process, over all stores that use the default.
static CHANGE: Mutex<()> = Mutex::new(());

/// A decoded slot: its generation and its table.
type Slot = (u64, Vec<(String, ContentKey)>);

/// Encodes a slot: the magic, the generation, the table as a `ROOTS` file, and a CRC32C of
/// every byte before it.
pub fn encode_slot(generation: u64, roots: &[(String, ContentKey)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SLOT_HEADER_LEN + 64 * roots.len());
    out.extend_from_slice(&SLOT_MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&roots_format::encode(roots));
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a slot.
pub fn decode_slot(b: &[u8]) -> std::result::Result<Slot, DecodeError> {
    need(b, SLOT_HEADER_LEN + 4)?;
    if b[..8] != SLOT_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let body = &b[..b.len() - 4];
    check_crc(le_u32(b, b.len() - 4), body)?;
    Ok((
        le_u64(b, 8),
        roots_format::decode(&body[SLOT_HEADER_LEN..])?,
    ))
}

/// Reads both slots: the newest valid one, and which slot it was in.
fn newest<S: BlobStore + ?Sized>(store: &S) -> Result<Option<(usize, Slot)>> {
    let mut best: Option<(usize, Slot)> = None;
    let mut damaged = Vec::new();
    for slot in 0..2u8 {
        let key = ContentKey::reserved(slot);
        let Some(blob) = store.get(&key)? else {
            continue;
        };
        match decode_slot(&blob.payload) {
            Ok(found) if best.as_ref().is_none_or(|(_, b)| found.0 > b.0) => {
                best = Some((usize::from(slot), found));
            }
            Ok(_) => {}
            Err(e) => damaged.push((key, e)),
        }
    }
    if best.is_none()
        && let Some((key, e)) = damaged.into_iter().next()
    {
        return Err(e.at("roots slot", format!("key {key} of {}", store.describe())));
    }
    Ok(best)
}

/// The named roots, sorted by name.
pub fn roots<S: BlobStore + ?Sized>(store: &S) -> Result<Vec<(String, ContentKey)>> {
    Ok(newest(store)?.map(|(_, (_, r))| r).unwrap_or_default())
}

/// Refuses a root name that is empty or longer than [`MAX_ROOT_NAME`] bytes (every backend
/// keeps this rule).
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_ROOT_NAME {
        return Err(Error::InvalidArgument(format!(
            "a root name must be 1 to {MAX_ROOT_NAME} bytes long, not {}",
            name.len()
        )));
    }
    Ok(())
}

/// Sets (`Some`) or removes (`None`) a named root, durably, after making the store durable.
pub fn set_root<S: BlobStore + ?Sized>(
    store: &S,
    name: &str,
    key: Option<ContentKey>,
) -> Result<()> {
    check_name(name)?;
    if let Some(k) = key
        && !store.contains(&k)?
    {
        return Err(Error::NotFound {
            key: k,
            store: store.describe(),
        });
    }
    let _one = CHANGE.lock();
    // The graph first, then the name that keeps it.
    store.flush(Durability::Durable)?;
    let (slot, generation, mut table) = match newest(store)? {
        Some((slot, (generation, table))) => (1 - slot, generation + 1, table),
        None => (0, 1, Vec::new()),
    };
    table.retain(|(n, _)| n != name);
    if let Some(k) = key {
        table.push((name.to_string(), k));
    }
    table.sort();
    let payload = encode_slot(generation, &table);
    let mut children: Vec<ContentKey> = table.iter().map(|(_, k)| *k).collect();
    children.sort_unstable();
    children.dedup();
    let target = ContentKey::reserved(slot as u8);
    // The other slot keeps the current table until this one is durable.
    store.delete(&[target])?;
    store.put(Put {
        key: target,
        children: &children,
        payload: &payload,
    })?;
    store.flush(Durability::Durable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_round_trip_and_every_byte_corruption() {
        let roots = vec![("a".to_string(), ContentKey::of(b"a", &[]))];
        let b = encode_slot(7, &roots);
        assert_eq!(decode_slot(&b).expect("decode"), (7, roots));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(decode_slot(&c).is_err(), "flip at {i} not detected");
        }
        for len in 0..b.len() {
            assert!(decode_slot(&b[..len]).is_err());
        }
    }
}
