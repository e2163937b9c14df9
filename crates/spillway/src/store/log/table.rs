//! [`KeyTable`]: the index's map from key to record location, dense.
//!
//! An open-addressing table with linear probing in Robin Hood order, whose slots hold the key
//! and a packed location inline: 26 bytes a slot (key 16, segment id in 3 bytes, offset in 4,
//! length in 3, all little-endian), with no control bytes, no padding and no pointer. A lookup
//! reads one run of adjacent slots starting at the key's home slot, usually one or two cache
//! lines. A location that does not pack is kept in a side map, `wide`, instead: a segment id of
//! 2^24 or more (segment ids only grow, so a store that has written sixteen million segments,
//! a petabyte at the default segment size, keeps every new location there, correctly but at
//! a map's cost), an offset of 2^32 or more (only a store made with a segment size over 4 GiB
//! has one), a record of 16 MiB or more (whose own size dwarfs the side map's cost), or a zero
//! length. It is empty or nearly so in practice.
//!
//! Invariants:
//! - a key is in at most one of the slots and `wide`;
//! - an empty slot is all zeros; an occupied one has a non-zero length (a record is never
//!   empty, and a location of length zero goes to `wide`);
//! - Robin Hood order: walking the slots from a key's home slot (the position its hash maps to,
//!   wrapping around at the end), every slot up to the key's own is occupied by a key whose
//!   distance from its home is at least the distance walked so far. A lookup therefore stops
//!   at the first empty slot or the first slot whose key is nearer its home than the walk;
//! - at most 7/8 of the slots are occupied: the table then grows by a quarter, so that it stays
//!   between 70 % and 87.5 % full once it is past its minimum size, and the average slot
//!   cost per key is about 36 bytes. It never shrinks by itself.
//!
//! Keys are BLAKE3 outputs, so their bytes serve as the hash directly; the home slot is the
//! high half of the hash times the slot count (no power-of-two size is needed, which is what
//! allows the small growth steps). The buffer of a table of [`MAPPED_FROM`] bytes or more is
//! an anonymous mapping of its own, never a block of the system allocator: glibc's serves
//! such a block from a mapping too, and when that is freed at a growth it raises its
//! thresholds to the block's size, after which the process keeps that much more freed memory
//! in each heap (see `memory::mapped`). From [`HUGE_FROM`] bytes on, the kernel is asked to
//! back the mapping with huge pages: a lookup in a table of millions of keys then misses the
//! TLB far less often. On Linux a mapped table grows in place (the mapping is extended and
//! the keys moved inside it), so a growth never holds the old and the new buffer at once,
//! only the table and a list of 8 bytes per key: for an index of a hundred million keys,
//! about 2.2 GB less at the moment it grows (its old buffer is about 3 GB). That list is a
//! [`Mapped`] block too, for the same reason as the table: from glibc's allocator, a list of
//! 1.5 MB (at 192,000 keys) was a mapping whose release raised its thresholds.

use crate::format::checkpoint::Location;
use crate::key::{ContentKey, KEY_LEN, KeyMap};
use crate::memory::{Mapped, MappedVec};

/// Bytes a slot takes.
pub(super) const SLOT_LEN: usize = KEY_LEN + 10;
/// Where a slot's fields start: segment id (3 bytes), offset (4), length (3).
const SEGMENT_AT: usize = KEY_LEN;
const OFFSET_AT: usize = KEY_LEN + 3;
const LEN_AT: usize = KEY_LEN + 7;
/// Segment ids and lengths that pack into their 3 bytes are below this.
const LIMIT_24: u64 = 1 << 24;
/// Slots of an empty table.
const MIN_SLOTS: usize = 16;
/// Tables of this many bytes or more live in an anonymous mapping of their own: the size from
/// which the pool's other tables do (see `memory::mapped`).
const MAPPED_FROM: usize = crate::memory::MAPPED_FROM;
/// Mapped tables of this many bytes or more are advised for huge pages.
const HUGE_FROM: usize = 4 << 20;

/// A slot's bytes.
type Slot = [u8; SLOT_LEN];

/// See the module docs.
pub(super) struct KeyTable {
    buf: Buf,
    /// Number of slots (`buf` holds exactly this many).
    slots: usize,
    /// Occupied slots.
    used: usize,
    /// Locations that do not pack into a slot.
    wide: KeyMap<Location>,
    /// Buffers of this many bytes or more are mapped ([`MAPPED_FROM`]; smaller in tests).
    mapped_from: usize,
    /// Growths made in place (see [`KeyTable::grow_mapping`]), for the tests to tell.
    #[cfg(test)]
    grown_in_place: usize,
}

impl std::fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyTable")
            .field("len", &self.len())
            .field("slots", &self.slots)
            .field("wide", &self.wide.len())
            .finish()
    }
}

impl Default for KeyTable {
    fn default() -> Self {
        KeyTable::with_slots(MIN_SLOTS)
    }
}

/// A slot buffer, zeroed when made.
enum Buf {
    Heap(Box<[u8]>),
    Mapped(memmap2::MmapMut),
}

impl Buf {
    fn zeroed(bytes: usize, mapped_from: usize) -> Buf {
        if bytes >= mapped_from
            && let Ok(map) = memmap2::MmapOptions::new().len(bytes).map_anon()
        {
            advise_huge(&map);
            return Buf::Mapped(map);
        }
        Buf::Heap(vec![0u8; bytes].into_boxed_slice())
    }

    fn slots(&self) -> &[Slot] {
        let bytes: &[u8] = match self {
            Buf::Heap(b) => b,
            Buf::Mapped(m) => m,
        };
        bytes.as_chunks().0
    }

    fn slots_mut(&mut self) -> &mut [Slot] {
        let bytes: &mut [u8] = match self {
            Buf::Heap(b) => b,
            Buf::Mapped(m) => m,
        };
        bytes.as_chunks_mut().0
    }
}

/// Asks for huge pages for a mapped table of [`HUGE_FROM`] bytes or more. Only advice:
/// without it (or without transparent huge pages) the table works the same, with more TLB
/// misses.
fn advise_huge(map: &memmap2::MmapMut) {
    #[cfg(target_os = "linux")]
    if map.len() >= HUGE_FROM {
        let _ = map.advise(memmap2::Advice::HugePage);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = map;
}

/// The hash of a key: its first eight bytes (uniform for a content key) mixed with the next
/// eight (which tell reserved keys apart: they share their first fifteen bytes).
fn hash(key: &[u8; KEY_LEN]) -> u64 {
    let (lo, hi) = key.split_at(8);
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(lo);
    b.copy_from_slice(hi);
    u64::from_le_bytes(a) ^ u64::from_le_bytes(b)
}

/// The home slot of a hash in a table of `slots` slots.
fn home(hash: u64, slots: usize) -> usize {
    ((u128::from(hash) * slots as u128) >> 64) as usize
}

fn key_of(s: &Slot) -> &[u8; KEY_LEN] {
    s.first_chunk().unwrap_or(&[0; KEY_LEN])
}

fn field32(s: &Slot, at: usize) -> u32 {
    u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]])
}

fn field24(s: &Slot, at: usize) -> u32 {
    u32::from_le_bytes([s[at], s[at + 1], s[at + 2], 0])
}

fn occupied(s: &Slot) -> bool {
    field24(s, LEN_AT) != 0
}

fn location_of(s: &Slot) -> Location {
    Location {
        segment: u64::from(field24(s, SEGMENT_AT)),
        offset: u64::from(field32(s, OFFSET_AT)),
        len: field24(s, LEN_AT),
    }
}

/// The slot of `key` at `loc`, if the location packs.
fn pack(key: &ContentKey, loc: Location) -> Option<Slot> {
    let offset = u32::try_from(loc.offset).ok()?;
    if loc.segment >= LIMIT_24 || loc.len == 0 || u64::from(loc.len) >= LIMIT_24 {
        return None;
    }
    let mut s = [0u8; SLOT_LEN];
    s[..KEY_LEN].copy_from_slice(key.as_bytes());
    s[SEGMENT_AT..OFFSET_AT].copy_from_slice(&loc.segment.to_le_bytes()[..3]);
    s[OFFSET_AT..LEN_AT].copy_from_slice(&offset.to_le_bytes());
    s[LEN_AT..].copy_from_slice(&loc.len.to_le_bytes()[..3]);
    Some(s)
}

impl KeyTable {
    fn with_slots(slots: usize) -> KeyTable {
        KeyTable::with_slots_mapped_from(slots, MAPPED_FROM)
    }

    fn with_slots_mapped_from(slots: usize, mapped_from: usize) -> KeyTable {
        KeyTable {
            buf: Buf::zeroed(slots * SLOT_LEN, mapped_from),
            slots,
            used: 0,
            wide: KeyMap::default(),
            mapped_from,
            #[cfg(test)]
            grown_in_place: 0,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.used + self.wide.len()
    }

    /// Bytes of memory the table holds (its slots, and an estimate for the side map).
    pub fn allocated_bytes(&self) -> usize {
        self.slots * SLOT_LEN + self.wide.capacity() * (KEY_LEN + 32)
    }

    /// Distance of slot `i` from the home of the key in it.
    fn distance(&self, i: usize, s: &Slot) -> usize {
        let h = home(hash(key_of(s)), self.slots);
        if i >= h { i - h } else { i + self.slots - h }
    }

    /// The slot index of `key`, if it is in the slots.
    fn find(&self, key: &[u8; KEY_LEN]) -> Option<usize> {
        let slots = self.buf.slots();
        let mut i = home(hash(key), self.slots);
        let mut walked = 0;
        loop {
            let s = &slots[i];
            if !occupied(s) {
                return None;
            }
            if key_of(s) == key {
                return Some(i);
            }
            if self.distance(i, s) < walked {
                return None;
            }
            walked += 1;
            i += 1;
            if i == self.slots {
                i = 0;
            }
        }
    }

    /// Where `key`'s record is.
    #[inline]
    pub fn get(&self, key: &ContentKey) -> Option<Location> {
        match self.find(key.as_bytes()) {
            Some(i) => Some(location_of(&self.buf.slots()[i])),
            None if self.wide.is_empty() => None,
            None => self.wide.get(key).copied(),
        }
    }

    /// Reads the home slot of each key, with no load waiting for another: the memory latency
    /// of a batch's lookups then overlaps instead of adding up, and the lookups that follow
    /// find their slots in cache. Only a hint to the memory system: it changes nothing.
    pub fn touch<'a>(&self, keys: impl IntoIterator<Item = &'a ContentKey>) {
        let slots = self.buf.slots();
        let mut seen = 0u8;
        for k in keys {
            seen ^= slots[home(hash(k.as_bytes()), self.slots)][LEN_AT];
        }
        std::hint::black_box(seen);
    }

    /// True if `key` is in the table.
    pub fn contains_key(&self, key: &ContentKey) -> bool {
        self.get(key).is_some()
    }

    /// Points `key` at `loc`; returns where it pointed before.
    pub fn insert(&mut self, key: ContentKey, loc: Location) -> Option<Location> {
        let Some(slot) = pack(&key, loc) else {
            let old = self.remove_from_slots(&key);
            return self.wide.insert(key, loc).or(old);
        };
        if let Some(i) = self.find(key.as_bytes()) {
            let old = location_of(&self.buf.slots()[i]);
            self.buf.slots_mut()[i] = slot;
            return Some(old);
        }
        let old = if self.wide.is_empty() {
            None
        } else {
            self.wide.remove(&key)
        };
        if (self.used + 1) * 8 > self.slots * 7 {
            self.grow();
        }
        self.place(slot);
        old
    }

    /// Puts a slot of a key not in the slots, shifting richer ones along (Robin Hood).
    fn place(&mut self, mut slot: Slot) {
        let n = self.slots;
        let mut i = home(hash(key_of(&slot)), n);
        let mut walked = 0;
        loop {
            let s = self.buf.slots()[i];
            if !occupied(&s) {
                self.buf.slots_mut()[i] = slot;
                self.used += 1;
                return;
            }
            let d = self.distance(i, &s);
            if d < walked {
                self.buf.slots_mut()[i] = slot;
                slot = s;
                walked = d;
            }
            walked += 1;
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Makes room for `additional` more keys without growing on the way.
    pub fn reserve(&mut self, additional: usize) {
        let need = (self.used + additional).saturating_mul(8).div_ceil(7);
        if need > self.slots {
            self.resize(need);
        }
    }

    /// Makes room: a quarter more slots (at least the minimum), every key placed again.
    fn grow(&mut self) {
        self.resize((self.slots + self.slots / 4).max(MIN_SLOTS));
    }

    /// Moves every key into a buffer of `slots` slots (enough for them).
    ///
    /// Read from just after an empty slot, the old slots come in the order of their homes, and
    /// so of their hashes' high bits, which order the new homes too: each key is appended
    /// after the last one placed (at its new home, or the slot after the last if that is
    /// further), with no probing. The few keys that break the order go through
    /// [`place`](Self::place): those that shared an old home but have new homes out of order,
    /// those that would wrap around the new table's end, and those read after the walk wraps
    /// around the old table's end.
    fn resize(&mut self, slots: usize) {
        #[cfg(target_os = "linux")]
        if self.grow_mapping(slots) {
            return;
        }
        let old = std::mem::replace(
            &mut self.buf,
            Buf::zeroed(slots * SLOT_LEN, self.mapped_from),
        );
        self.slots = slots;
        self.used = 0;
        let old = old.slots();
        // A table is never full, so there is an empty slot.
        let start = old.iter().position(|s| !occupied(s)).map_or(0, |i| i + 1);
        // Until a key reaches the new table's end: every slot from `end` on is empty, and every
        // key appended so far has its home at most `last_home`. From then on `at >= slots` for
        // every key, so all of them go through `place`.
        let mut end = 0;
        let mut last_home = 0;
        for s in old[start..].iter().filter(|s| occupied(s)) {
            let h = home(hash(key_of(s)), slots);
            let at = h.max(end);
            if h < last_home || at >= slots {
                // Stops at the first empty slot from `h`: `end` at the latest while `end` is
                // inside the table; a key past the end wraps around to its start.
                self.place(*s);
                if end < slots && occupied(&self.buf.slots()[end]) {
                    end += 1;
                }
                continue;
            }
            self.buf.slots_mut()[at] = *s;
            self.used += 1;
            end = at + 1;
            last_home = h;
        }
        for s in old[..start].iter().filter(|s| occupied(s)) {
            self.place(*s);
        }
    }

    /// Grows a mapped buffer to `slots` slots where it is, instead of into a second buffer:
    /// the mapping is extended (its new bytes are zero, and the kernel moves its pages rather
    /// than copying them), then the keys are moved to their new places inside it. The table
    /// then never holds two buffers at once, which a copy would, for a moment, at the size of
    /// both. False (nothing changed) if the buffer is not mapped, `slots` is not larger, the
    /// slot numbers would not fit in 32 bits, or the mapping cannot be extended.
    ///
    /// The keys read from the first empty slot to the end come in the order of their homes
    /// (see [`resize`](Self::resize)). Each one's new place `p` follows the last one's, at its
    /// new home or just after the last if that is further, as when copying; its old place is
    /// `q`. A key with `p < q` moves at once, in that forward walk: every slot in `p..q` is
    /// free by then (keys before it are at their new places, which are before `p`, or wait at
    /// old places before `p`; keys after it are after `q`). A key with `p > q` waits, and those
    /// move in a second walk, backward: every key after it has left its old place, and every
    /// key before it sits before its `p`. The keys that break the order (the run at the start,
    /// which may have wrapped around the end; keys whose new homes are out of order; keys that
    /// would pass the new end) are set aside and placed again at the end, through
    /// [`place`](Self::place).
    #[cfg(target_os = "linux")]
    fn grow_mapping(&mut self, slots: usize) -> bool {
        let old_slots = self.slots;
        if slots <= old_slots || u32::try_from(slots).is_err() {
            return false;
        }
        let Buf::Mapped(map) = &mut self.buf else {
            return false;
        };
        // SAFETY: `&mut self` holds no reference into the mapping, and nothing else refers to
        // it; an anonymous private mapping keeps its bytes when it grows, and the new ones are
        // zero.
        #[expect(unsafe_code, reason = "growing the table's own anonymous mapping")]
        let grown = unsafe {
            map.remap(
                slots * SLOT_LEN,
                memmap2::RemapOptions::new().may_move(true),
            )
        };
        if grown.is_err() {
            return false;
        }
        advise_huge(map);
        self.slots = slots;
        let all = self.buf.slots_mut();
        // Both lists are the pool's own mappings once large (see the module docs).
        let mut aside = MappedVec::<Slot>::new_in(Mapped);
        // A table is never full, so there is an empty slot.
        let first_empty = all[..old_slots]
            .iter()
            .position(|s| !occupied(s))
            .unwrap_or(0);
        for s in &mut all[..first_empty] {
            aside.push(*s);
            *s = [0; SLOT_LEN];
        }
        let mut later = MappedVec::<(u32, u32)>::with_capacity_in(self.used, Mapped);
        let mut end = 0;
        let mut last_home = 0;
        let mut kept = 0;
        for q in first_empty..old_slots {
            let s = all[q];
            if !occupied(&s) {
                continue;
            }
            let h = home(hash(key_of(&s)), slots);
            let p = h.max(end);
            if h < last_home || p >= slots {
                aside.push(s);
                all[q] = [0; SLOT_LEN];
                continue;
            }
            last_home = h;
            end = p + 1;
            kept += 1;
            match p.cmp(&q) {
                std::cmp::Ordering::Less => {
                    all[p] = s;
                    all[q] = [0; SLOT_LEN];
                }
                std::cmp::Ordering::Equal => {}
                // Both fit in 32 bits: `slots` does.
                std::cmp::Ordering::Greater => later.push((q as u32, p as u32)),
            }
        }
        for &(q, p) in later.iter().rev() {
            all[p as usize] = all[q as usize];
            all[q as usize] = [0; SLOT_LEN];
        }
        self.used = kept;
        for s in aside {
            self.place(s);
        }
        #[cfg(test)]
        {
            self.grown_in_place += 1;
        }
        true
    }

    /// Forgets `key`; returns where it was.
    pub fn remove(&mut self, key: &ContentKey) -> Option<Location> {
        match self.remove_from_slots(key) {
            Some(old) => Some(old),
            None if self.wide.is_empty() => None,
            None => self.wide.remove(key),
        }
    }

    /// Removes `key` from the slots, shifting the run after it back by one.
    fn remove_from_slots(&mut self, key: &ContentKey) -> Option<Location> {
        let mut i = self.find(key.as_bytes())?;
        let n = self.slots;
        let old = location_of(&self.buf.slots()[i]);
        loop {
            let next = if i + 1 == n { 0 } else { i + 1 };
            let s = self.buf.slots()[next];
            if !occupied(&s) || self.distance(next, &s) == 0 {
                break;
            }
            self.buf.slots_mut()[i] = s;
            i = next;
        }
        self.buf.slots_mut()[i] = [0; SLOT_LEN];
        self.used -= 1;
        Some(old)
    }

    /// Every key and its location, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ContentKey, Location)> + '_ {
        self.buf
            .slots()
            .iter()
            .filter(|s| occupied(s))
            .map(|s| (ContentKey::from_bytes(*key_of(s)), location_of(s)))
            .chain(self.wide.iter().map(|(k, l)| (*k, *l)))
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = ContentKey> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Every location, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = Location> + '_ {
        self.iter().map(|(_, l)| l)
    }

    /// Checks the invariants (for tests).
    #[cfg(test)]
    fn check(&self) {
        let slots = self.buf.slots();
        assert_eq!(slots.len(), self.slots);
        assert_eq!(slots.iter().filter(|s| occupied(s)).count(), self.used);
        assert!(self.used * 8 <= self.slots * 7);
        for (i, s) in slots.iter().enumerate() {
            if !occupied(s) {
                assert_eq!(s, &[0; SLOT_LEN], "an empty slot is zeroed");
                continue;
            }
            let key = ContentKey::from_bytes(*key_of(s));
            assert_eq!(self.find(key.as_bytes()), Some(i), "slot {i} is found");
            assert!(!self.wide.contains_key(&key));
            // Every slot between the home and this one holds a key at least as far from home.
            let d = self.distance(i, s);
            for back in 1..=d {
                let j = (i + self.slots - back) % self.slots;
                assert!(occupied(&slots[j]));
                assert!(self.distance(j, &slots[j]) >= d - back);
            }
        }
        for (key, loc) in &self.wide {
            assert!(
                pack(key, *loc).is_none(),
                "{loc:?} of the side map would pack"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Keys from a small pool, so that operations hit the same keys again; some share their
    /// hash's high bits (the same home slot), as reserved keys almost do.
    fn key(n: u16) -> ContentKey {
        let mut b = [0u8; KEY_LEN];
        if n.is_multiple_of(3) {
            // Same first eight bytes for all of these, told apart by the last byte only.
            b[..8].copy_from_slice(b"spillway");
            b[14..].copy_from_slice(&n.to_le_bytes());
        } else {
            b = *ContentKey::of(&n.to_le_bytes(), &[]).as_bytes();
        }
        ContentKey::from_bytes(b)
    }

    #[test]
    fn locations_pack_up_to_the_limits_of_their_fields() {
        let k = key(1);
        let cases = [
            ((1 << 24) - 1, u64::from(u32::MAX), (1 << 24) - 1, true),
            (0, 0, 1, true),
            (1 << 24, 0, 36, false),
            (0, 1 << 32, 36, false),
            (0, 0, 1 << 24, false),
            (0, 0, 0, false),
        ];
        for (segment, offset, len, packs) in cases {
            let loc = Location {
                segment,
                offset,
                len,
            };
            let slot = pack(&k, loc);
            assert_eq!(slot.is_some(), packs, "{loc:?}");
            if let Some(s) = slot {
                assert_eq!((key_of(&s), location_of(&s)), (k.as_bytes(), loc));
                assert!(occupied(&s));
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, Location),
        Remove(u16),
        Reserve(usize),
    }

    fn location() -> impl Strategy<Value = Location> {
        prop_oneof![
            8 => (1u64..100, 0u64..1 << 26, 36u32..1 << 20),
            // Locations that do not pack: the side map.
            1 => (0u64..u64::MAX, (1u64 << 32)..u64::MAX, 0u32..u32::MAX),
            1 => ((1u64 << 24)..u64::MAX, 0u64..100, 36u32..100),
            1 => (1u64..100, 0u64..100, (1u32 << 24)..u32::MAX),
            1 => (1u64..100, 0u64..100, Just(0u32)),
            // Packs at the edge; and just past it, on either field of 3 bytes.
            1 => (Just((1u64 << 24) - 1), Just(u64::from(u32::MAX)), Just((1u32 << 24) - 1)),
            1 => (Just(1u64 << 24), Just(u64::from(u32::MAX)), Just((1u32 << 24) - 1)),
            1 => (Just((1u64 << 24) - 1), Just(u64::from(u32::MAX)), Just(1u32 << 24)),
        ]
        .prop_map(|(segment, offset, len)| Location {
            segment,
            offset,
            len,
        })
    }

    fn op(pool: u16) -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..pool, location()).prop_map(|(k, l)| Op::Insert(k, l)),
            1 => (0..pool).prop_map(Op::Remove),
            1 => (0usize..200).prop_map(Op::Reserve),
        ]
    }

    /// A table whose buffers are mapped from `mapped_from` bytes on: from the first growth past
    /// a page, so that growing in place is what the model checks, or never.
    fn table(mapped: bool) -> KeyTable {
        KeyTable::with_slots_mapped_from(MIN_SLOTS, if mapped { 4096 } else { usize::MAX })
    }

    fn run(ops: &[Op], pool: u16, mapped: bool) {
        let mut t = table(mapped);
        let mut model: HashMap<ContentKey, Location> = HashMap::new();
        for op in ops {
            match *op {
                Op::Insert(k, l) => assert_eq!(t.insert(key(k), l), model.insert(key(k), l)),
                Op::Remove(k) => assert_eq!(t.remove(&key(k)), model.remove(&key(k))),
                Op::Reserve(n) => {
                    let slots = t.slots;
                    t.reserve(n);
                    assert!(t.slots >= slots && (t.used + n) * 8 <= t.slots * 7);
                }
            }
            assert_eq!(t.len(), model.len());
        }
        t.check();
        let pool_keys: Vec<ContentKey> = (0..pool).map(key).collect();
        t.touch(&pool_keys);
        for k in 0..pool {
            assert_eq!(t.get(&key(k)), model.get(&key(k)).copied());
            assert_eq!(t.contains_key(&key(k)), model.contains_key(&key(k)));
        }
        let mut all: Vec<_> = t.iter().collect();
        all.sort();
        let mut expected: Vec<_> = model.into_iter().collect();
        expected.sort();
        assert_eq!(all, expected);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec(op(64), 0..400)) {
            run(&ops, 64, false);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn behaves_like_a_hash_map_when_large(ops in proptest::collection::vec(op(3000), 0..4000)) {
            run(&ops, 3000, false);
        }

        #[test]
        fn behaves_like_a_hash_map_when_mapped_and_grown_in_place(
            ops in proptest::collection::vec(op(3000), 0..4000)
        ) {
            run(&ops, 3000, true);
        }
    }

    /// A key whose hash is `h` (its last eight bytes zero).
    fn key_with_hash(h: u64) -> ContentKey {
        let mut b = [0u8; KEY_LEN];
        b[..8].copy_from_slice(&h.to_le_bytes());
        ContentKey::from_bytes(b)
    }

    #[test]
    fn growing_keeps_the_order_with_crowded_and_wrapping_homes() {
        grow_crowded_and_wrapping(false);
    }

    #[test]
    fn growing_in_place_keeps_the_order_with_crowded_and_wrapping_homes() {
        grow_crowded_and_wrapping(true);
    }

    fn grow_crowded_and_wrapping(mapped: bool) {
        // Hashes from a fixed sequence, bent into clusters: near the top (homes that wrap
        // around the end), in runs a few apart (one old home, new homes out of order), and
        // spread out; the invariants are checked after every growth.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut t = table(mapped);
        let mut model = HashMap::new();
        // Fewer keys in a debug build, where the checks after each growth cost most of the
        // test's time (the clusters make long probe runs): still more than ten growths.
        let keys = if cfg!(debug_assertions) {
            10_000
        } else {
            20_000
        };
        for i in 0..keys {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let h = match i % 4 {
                0 => u64::MAX - (x >> 44),
                1 => (x & !0xfff) | u64::from(i % 7),
                2 => 0x8000_0000_0000_0000 + (x >> 40) * 3,
                _ => x,
            };
            let k = key_with_hash(h);
            let loc = Location {
                segment: 1,
                offset: u64::from(i),
                len: 1 + i,
            };
            let slots = t.slots;
            assert_eq!(t.insert(k, loc), model.insert(k, loc));
            if t.slots != slots {
                t.check();
                assert_eq!(
                    matches!(t.buf, Buf::Mapped(_)),
                    mapped && t.slots * SLOT_LEN >= 4096
                );
            }
        }
        t.check();
        // From 4 KiB, every growth (more than ten of them) was made in place, on Linux.
        assert_eq!(t.grown_in_place > 10, mapped && cfg!(target_os = "linux"));
        for (k, loc) in &model {
            assert_eq!(t.get(k), Some(*loc));
        }
        assert_eq!(t.len(), model.len());
    }

    #[test]
    fn a_full_cycle_of_a_large_table_keeps_every_key() {
        // Large enough for a mapped buffer; every key in, a third out, the rest still found.
        let n = 300_000u32;
        let keys: Vec<ContentKey> = (0..n)
            .map(|i| ContentKey::of(&i.to_le_bytes(), &[]))
            .collect();
        let loc = |i: u32| Location {
            segment: u64::from(i % 7) + 1,
            offset: u64::from(i) * 100,
            len: 36 + i % 1000,
        };
        let mut t = KeyTable::default();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.insert(*k, loc(i as u32)), None);
        }
        assert!(matches!(t.buf, Buf::Mapped(_)) || cfg!(not(unix)));
        assert_eq!(t.grown_in_place > 0, cfg!(target_os = "linux"));
        assert!(
            t.allocated_bytes() <= n as usize * 41,
            "{} bytes",
            t.allocated_bytes()
        );
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            assert_eq!(t.remove(k), Some(loc(i as u32)));
        }
        t.check();
        for (i, k) in keys.iter().enumerate() {
            let expected = (i % 3 != 0).then(|| loc(i as u32));
            assert_eq!(t.get(k), expected);
        }
        assert_eq!(t.len(), keys.len() - keys.len().div_ceil(3));
    }
}
