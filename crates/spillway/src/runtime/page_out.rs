//! Page-out: encoding graphs bottom-up and writing them to the store in batches.
//!
//! Invariants:
//! - A record is written only after the records of its children: a parent's key names its
//!   children's keys, so it is encoded only once they have keys, and a batch is written in the
//!   order it was encoded.
//! - An entry is counted in the registry (and marked stored) under the collector's state lock,
//!   in the same critical section that writes or dedups its record: a collection either sees
//!   the write in its protected set or sees the entry among the live keys.
//! - A value that cannot be stored (its encoding fails, passes the store's limits, or holds a
//!   handle of another pool) stays resident, and so do the values above it; the rest of the
//!   graphs are stored. The error is recorded, and returned if a graph asked for failed.
//! - A pool stores only its own handles. While a thread stores a batch, it knows the batch's
//!   pool ([`current_pool`]); a handle of another pool met in a value being encoded fails that
//!   value's encoding ([`note_foreign`]), so another pool's object is never written to this
//!   pool's store nor marked stored by this pool, and its key (which this store may not hold)
//!   never becomes a child key here.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::Ordering;

use super::erased::{Encoded, EntryId, ErasedRef};
use super::gc::Collector;
use super::registry::{PoolId, Registry};
use super::stats::{Counters, Errors};
use crate::error::{Error, Result};
use crate::format::record::{self, MAX_CHILDREN, MAX_PAYLOAD_LEN};
use crate::key::{BuildKeyHasher, ContentKey};
use crate::memory::MAPPED_FROM;
use crate::store::{BlobStore, Put};

/// Page-out writes are grouped into batches of about [`BlobStore::batch_bytes`] bytes (1 MiB
/// by default, 64 KiB for the log store), payloads and [`entry_overhead`] counted. A batch lives
/// twice while it is handed over (the encoded values here, the store's records until they are
/// written), outside the budget, so it is kept small: 1 MiB paged out as fast as 4 MiB did and
/// took about 16 MiB off the peak RSS of a pool inserting far more than its budget.
///
/// A batch's payloads are encoded one after another into one buffer ([`Outgoing::bytes`]), kept
/// from batch to batch of a page-out: encoding a value allocates nothing of its own, where a
/// vector per value grew by doubling (a 1 KiB value took 2 KiB, in several reallocations) and
/// left its holes between the values in the heap.
///
/// A buffer that can stay below glibc's threshold for mappings ([`MAPPED_FROM`]) with room for
/// half a batch more than the batch is given that room before its first value, so that it does
/// not grow by doubling past the threshold: only a value of more than half a batch makes it
/// grow. A 64 KiB batch's buffer (the log store's) thus comes from the heap, where the next
/// page-out reuses it; a mapping of glibc's would raise its thresholds when freed (see
/// `memory::mapped`). A larger batch's buffer grows as values are added, from nothing, so that
/// a page-out of a few small values allocates little.
fn first_room(batch_bytes: usize) -> usize {
    let room = batch_bytes.saturating_add(batch_bytes / 2);
    if room < MAPPED_FROM { room } else { 0 }
}

/// An encoded object waiting to be written: the entry, its key, child keys and where its
/// payload is in the batch's buffer.
type Pending = (ErasedRef, ContentKey, Vec<ContentKey>, Range<usize>);

/// What an object adds to its batch besides its payload: its place in the batch and the rest
/// of its record (header and child keys), which the store holds with the payload while it
/// writes (the log store's record; what other stores hold is no larger). Counted against
/// [`BlobStore::batch_bytes`] with the payloads, so that a batch of many small objects is as
/// small as its size says.
fn entry_overhead(children: usize) -> usize {
    std::mem::size_of::<Pending>() + record::record_len(children, 0) as usize
}

/// The objects of a batch being written, and their payloads one after another.
#[derive(Default)]
struct Outgoing {
    pending: Vec<Pending>,
    /// The sum of [`entry_overhead`] over `pending`.
    overhead: usize,
    bytes: Vec<u8>,
}

/// A page-out: the parts of the pool it writes through.
pub(crate) struct PageOut<'a> {
    pub store: &'a dyn BlobStore,
    pub stats: &'a Counters,
    pub errors: &'a Errors,
    pub registry: &'a Registry,
    pub collector: &'a Collector,
}

impl PageOut<'_> {
    /// Stores the graphs under `roots` bottom-up, without recursion: an entry whose children
    /// have no keys yet is encoded again after them.
    pub fn store_graphs(&self, roots: &[ErasedRef]) -> Result<()> {
        let mut stack: Vec<ErasedRef> = roots.to_vec();
        let batch_bytes = self.store.batch_bytes();
        let mut batch = Outgoing::default();
        let _batch = BatchScope::enter(self.registry.pool());
        // Values that cannot be stored (their encoding fails or passes the store's limits), and
        // the parents above them: they stay resident, and the rest of the graphs are stored.
        let mut failed: HashMap<EntryId, ()> = HashMap::new();
        let mut first_error: Option<Error> = None;
        while let Some(e) = stack.last().cloned() {
            if e.is_stored() || in_current_batch(e.id()) || failed.contains_key(&e.id()) {
                stack.pop();
                continue;
            }
            if batch.bytes.capacity() == 0 {
                batch.bytes.reserve_exact(first_room(batch_bytes));
            }
            let encoded = e.encode(&mut batch.bytes).and_then(|enc| match enc {
                Encoded::Done {
                    ref children,
                    ref payload,
                    ..
                } if payload.len() > MAX_PAYLOAD_LEN as usize
                    || children.len() > MAX_CHILDREN as usize =>
                {
                    batch.bytes.truncate(payload.start);
                    Err(Error::TooLarge {
                        what: "encoded value (payload or child list) for the store",
                        len: (payload.len() + 16 * children.len()) as u64,
                        limit: u64::from(MAX_PAYLOAD_LEN),
                    })
                }
                other => Ok(other),
            });
            match encoded {
                Err(err) => {
                    stack.pop();
                    failed.insert(e.id(), ());
                    let shared = self.errors.record(err);
                    first_error.get_or_insert(Error::Shared(shared));
                }
                Ok(Encoded::Done {
                    key,
                    children,
                    payload,
                }) => {
                    stack.pop();
                    e.set_key(key);
                    BATCH.with(|b| b.borrow_mut().entries.insert(e.id()));
                    batch.overhead += entry_overhead(children.len());
                    batch.pending.push((e, key, children, payload));
                    if batch.bytes.len() + batch.overhead >= batch_bytes {
                        self.write_batch(&mut batch)?;
                    }
                }
                Ok(Encoded::Missing(children)) => {
                    if children.iter().any(|c| failed.contains_key(&c.id())) {
                        stack.pop();
                        failed.insert(e.id(), ());
                    } else {
                        stack.extend(children);
                    }
                }
                Ok(Encoded::Stored) => {
                    stack.pop();
                }
            }
        }
        self.write_batch(&mut batch)?;
        match first_error {
            Some(err) if roots.iter().any(|r| failed.contains_key(&r.id())) => Err(err),
            _ => Ok(()),
        }
    }

    /// Writes a batch, each distinct key once, under the collector's state lock (which every
    /// batch takes, so batches are written one at a time).
    ///
    /// An entry that is stored by now was stored by another thread's batch since this one
    /// encoded it (a child of a victim that was itself a victim elsewhere, or a value whose key
    /// a caller asked for): it is the same object, so it is neither written again nor counted
    /// as a dedup hit. Of the others, an entry whose key is stored already, or appears earlier
    /// in this batch, is a dedup hit: a distinct object with equal content.
    fn write_batch(&self, outgoing: &mut Outgoing) -> Result<()> {
        let Outgoing {
            pending: batch,
            overhead,
            bytes,
        } = outgoing;
        if batch.is_empty() {
            return Ok(());
        }
        let mut gc = self.collector.writing();
        // The entries not stored by now, and of those the first of each key, in encoding
        // order (children before parents). The others stay in `batch`, which the caller drops
        // once the lock is released: no entry's count is dropped under it.
        let fresh: Vec<usize> = (0..batch.len())
            .filter(|&i| !batch[i].0.is_stored())
            .collect();
        let mut seen: HashSet<ContentKey, BuildKeyHasher> =
            HashSet::with_capacity_and_hasher(fresh.len(), BuildKeyHasher::default());
        let distinct: Vec<usize> = fresh
            .iter()
            .copied()
            .filter(|&i| seen.insert(batch[i].1))
            .collect();
        // Protected before asking the store: a collection cannot delete a key between the
        // answer "stored" and the entry's registration.
        let keys: Vec<ContentKey> = distinct.iter().map(|&i| batch[i].1).collect();
        for key in &keys {
            gc.protect(*key);
        }
        let stored = self.store.contains_many(&keys)?;
        let mut puts = Vec::with_capacity(distinct.len());
        let mut written = 0;
        let mut dedup_hits = (fresh.len() - distinct.len()) as u64;
        for (&i, stored) in distinct.iter().zip(stored) {
            let (_, key, children, payload) = &batch[i];
            if stored {
                dedup_hits += 1;
            } else {
                written += payload.len() as u64;
                puts.push(Put {
                    key: *key,
                    children,
                    payload: &bytes[payload.clone()],
                });
            }
        }
        self.store.put_batch(&puts)?;
        self.stats
            .objects_written
            .fetch_add(puts.len() as u64, Ordering::Relaxed);
        self.stats
            .bytes_written
            .fetch_add(written, Ordering::Relaxed);
        self.stats
            .dedup_hits
            .fetch_add(dedup_hits, Ordering::Relaxed);
        drop(puts);
        // Still under the collector's state lock: a collection that starts after the write
        // sees the entries among the live keys.
        for &i in &fresh {
            let (e, key, _, _) = &batch[i];
            e.mark_stored(*key);
            self.registry.register(e);
        }
        drop(gc);
        batch.clear();
        bytes.clear();
        *overhead = 0;
        Ok(())
    }
}

/// The batch this thread is storing.
#[derive(Default)]
struct Batch {
    /// The pool storing it.
    pool: Option<PoolId>,
    /// Entries encoded into the batch, keys known but not written yet. A parent encoded in the
    /// same batch may refer to them by key, since the batch writes children before parents; a
    /// parent encoded by another thread may not, since that thread's batch might fail and never
    /// write them.
    entries: HashSet<EntryId>,
    /// The store of another pool whose handle the value being encoded holds.
    foreign: Option<String>,
}

crate::sync::thread_local! {
    static BATCH: RefCell<Batch> = RefCell::default();
}

/// True if the entry is in this thread's batch (see [`Batch::entries`]).
pub(crate) fn in_current_batch(id: EntryId) -> bool {
    BATCH.with(|b| b.borrow().entries.contains(&id))
}

/// The pool whose batch this thread is storing, if it is storing one.
pub(crate) fn current_pool() -> Option<PoolId> {
    BATCH.with(|b| b.borrow().pool)
}

/// Notes that the value being encoded on this thread holds a handle of the pool over `store`:
/// the handle fails the encoding, and [`take_foreign`] then names that pool.
pub(crate) fn note_foreign(store: String) {
    BATCH.with(|b| b.borrow_mut().foreign = Some(store));
}

/// The store of the other pool whose handle the value just encoded on this thread holds, if it
/// held one (see [`note_foreign`]).
pub(crate) fn take_foreign() -> Option<String> {
    BATCH.with(|b| b.borrow_mut().foreign.take())
}

/// Sets up this thread's batch for a `store_graphs` call, and clears it when the call ends,
/// however it ends.
struct BatchScope {
    /// The pool of the batch this one interrupts, if any.
    outer: Option<PoolId>,
}

impl BatchScope {
    fn enter(pool: PoolId) -> BatchScope {
        let outer = BATCH.with(|b| {
            let mut b = b.borrow_mut();
            b.entries.clear();
            b.foreign = None;
            b.pool.replace(pool)
        });
        BatchScope { outer }
    }
}

impl Drop for BatchScope {
    fn drop(&mut self) {
        BATCH.with(|b| {
            let mut b = b.borrow_mut();
            b.pool = self.outer;
            b.entries.clear();
            b.foreign = None;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_store_batch_buffer_is_given_room_below_the_mapping_threshold() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::store::LogStore::open(dir.path()).expect("a new log store");
        let batch = store.batch_bytes();
        let room = first_room(batch);
        assert!(
            room > batch && room < MAPPED_FROM,
            "a log store's batch of {batch} bytes gets room {room}, which should be more than \
             the batch and below {MAPPED_FROM}"
        );
    }

    #[test]
    fn a_batch_too_large_to_stay_below_the_threshold_starts_with_no_room() {
        // The largest batch whose room, half a batch more, is below 128 KiB.
        assert_eq!(MAPPED_FROM, 131_072);
        let largest = 87_381;
        assert_eq!(first_room(largest), 131_071);
        assert!(first_room(largest) < MAPPED_FROM);
        assert_eq!(first_room(largest + 1), 0);
        assert_eq!(first_room(MAPPED_FROM), 0);
        assert_eq!(first_room(1 << 20), 0);
        assert_eq!(first_room(usize::MAX), 0);
    }

    #[test]
    fn an_empty_batch_size_gives_no_room() {
        assert_eq!(first_room(0), 0);
    }

    /// A memory store that asks for small batches and records what each one held: its objects,
    /// and the bytes that all but the last count for against the batch size.
    #[derive(Debug)]
    struct Recording {
        inner: crate::store::MemStore,
        batch_bytes: usize,
        batches: parking_lot::Mutex<Vec<(usize, usize)>>,
    }

    impl BlobStore for Recording {
        fn put_batch(&self, batch: &[Put<'_>]) -> Result<()> {
            let cost = |p: &Put<'_>| p.payload.len() + entry_overhead(p.children.len());
            let bytes: usize = batch.iter().map(cost).sum();
            let last = batch.last().map_or(0, cost);
            self.batches.lock().push((batch.len(), bytes - last));
            self.inner.put_batch(batch)
        }
        fn get(&self, key: &ContentKey) -> Result<Option<crate::store::Blob>> {
            self.inner.get(key)
        }
        fn contains(&self, key: &ContentKey) -> Result<bool> {
            self.inner.contains(key)
        }
        fn children(&self, key: &ContentKey) -> Result<Option<Vec<ContentKey>>> {
            self.inner.children(key)
        }
        fn delete(&self, keys: &[ContentKey]) -> Result<()> {
            self.inner.delete(keys)
        }
        fn keys(&self) -> Result<Vec<ContentKey>> {
            self.inner.keys()
        }
        fn flush(&self, durability: crate::store::Durability) -> Result<()> {
            self.inner.flush(durability)
        }
        fn stats(&self) -> crate::store::StoreStats {
            self.inner.stats()
        }
        fn batch_bytes(&self) -> usize {
            self.batch_bytes
        }
    }

    #[test]
    fn a_page_out_of_small_objects_counts_their_records_against_the_batch_size() {
        let store = std::sync::Arc::new(Recording {
            inner: crate::store::MemStore::new(),
            batch_bytes: 4096,
            batches: Default::default(),
        });
        let pool = crate::Pool::builder()
            .budget(1 << 30)
            .store(store.clone())
            .deterministic(true)
            .build()
            .expect("a pool over a memory store");
        // Payloads of a few bytes: 4096 bytes of them alone would be hundreds of objects.
        let handles: Vec<crate::Paged<u64>> = (0..2_000u64)
            .map(|i| pool.insert(i).expect("insert"))
            .collect();
        pool.shrink_to(0).expect("everything paged out");
        assert!(handles.iter().all(|h| !h.is_resident()));
        let batches = store.batches.lock().clone();
        let objects: usize = batches.iter().map(|&(n, _)| n).sum();
        assert_eq!(objects, handles.len(), "every object written once");
        for &(n, before_last) in &batches {
            // A batch is sent once it reaches the size, so all but its last object are below it;
            // and each object's record alone takes its header and a byte of payload or more.
            assert!(
                before_last < 4096,
                "a batch of {n} objects counts {before_last} bytes"
            );
            assert!(
                n <= 4096 / (record::RECORD_HEADER_LEN + 1) + 1,
                "a batch of {n} objects"
            );
        }
        assert!((0..2_000u64).all(|i| *handles[i as usize].get().expect("read") == i));
    }
}
