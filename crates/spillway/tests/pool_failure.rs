//! A store that fails under the pool: nothing is lost, the error is reported.

use std::path::Path;
use std::sync::Arc;

use spillway::vfs::SimFs;
use spillway::{LogStore, LogStoreOptions, Pool};

#[test]
fn a_failing_store_keeps_values_resident_and_reports_the_error() {
    let fs = Arc::new(SimFs::new());
    let store = LogStore::open_on(
        fs.clone(),
        Path::new("/s"),
        LogStoreOptions::default().write_buffer(0),
    )
    .expect("open the store");
    let budget = 64 << 10;
    let pool = Pool::builder()
        .budget(budget)
        .store(Arc::new(store))
        .gc_after(0)
        .build()
        .expect("pool");
    // Some values page out fine.
    let early: Vec<_> = (0..40u32)
        .map(|i| pool.insert(vec![i; 1024]).unwrap())
        .collect();
    assert!(pool.stats().page_outs > 0);
    // From now on every write fails.
    fs.fail_at(1);
    let late: Vec<_> = (0..40u32)
        .map(|i| {
            pool.insert(vec![1000 + i; 1024])
                .expect("inserts go on, past the budget")
        })
        .collect();
    let s = pool.stats();
    assert!(s.errors > 0, "the failure is counted");
    assert!(s.last_error.is_some(), "and kept in the stats");
    // Nothing is lost: every value still reads back, the late ones from memory.
    for (i, h) in late.iter().enumerate() {
        assert!(h.is_resident());
        assert_eq!(h.get().unwrap()[0], 1000 + i as u32);
    }
    for (i, h) in early.iter().enumerate() {
        assert_eq!(h.get().unwrap()[0], i as u32);
    }
    // The next call that takes no value reports it.
    let err = pool.flush(spillway::Durability::Written).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("page-out failed") || msg.contains("refuses writes"),
        "{msg}"
    );
}

/// A value whose serialization fails on demand, and whose deserialization panics on demand.
#[derive(Debug, get_size2::GetSize)]
struct Fragile {
    fail_to_encode: bool,
    data: Vec<u8>,
}

static PANIC_ON_DECODE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
const PANIC_LEN: usize = 99;

impl serde::Serialize for Fragile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.fail_to_encode {
            return Err(serde::ser::Error::custom(
                "this value refuses to be encoded",
            ));
        }
        self.data.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Fragile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let data = Vec::<u8>::deserialize(d)?;
        // Only values of this one length panic, so other tests in this binary are unaffected.
        assert!(
            !(data.len() == PANIC_LEN && PANIC_ON_DECODE.load(std::sync::atomic::Ordering::SeqCst)),
            "a Deserialize that panics"
        );
        Ok(Fragile {
            fail_to_encode: false,
            data,
        })
    }
}

fn mem_pool(budget: u64) -> Pool {
    Pool::builder()
        .budget(budget)
        .store(Arc::new(spillway::MemStore::new()))
        .gc_after(0)
        .build()
        .expect("pool")
}

/// A value whose encoding fails after it wrote part of its bytes (or not, if `fails` is
/// false).
#[derive(serde::Deserialize, get_size2::GetSize)]
struct HalfWritten {
    fails: bool,
    data: Vec<u8>,
}

impl serde::Serialize for HalfWritten {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("HalfWritten", 2)?;
        st.serialize_field("fails", &false)?;
        st.serialize_field("data", &self.data)?;
        if self.fails {
            return Err(serde::ser::Error::custom("failed after writing its data"));
        }
        st.end()
    }
}

#[test]
fn a_value_whose_encoding_fails_midway_leaves_nothing_in_the_batch_of_the_others() {
    let pool = mem_pool(64 << 10);
    // Good and failing values alternate, so that they share page-out batches.
    let values: Vec<_> = (0..200u32)
        .map(|i| {
            let data: Vec<u8> = (0..1000 + i).map(|j| (i * 7 + j) as u8).collect();
            let h = pool.insert(HalfWritten {
                fails: i % 3 == 1,
                data: data.clone(),
            });
            (i, h.expect("insert"), data)
        })
        .collect();
    pool.shrink_to(0)
        .expect_err("the failing values cannot be paged out");
    for (i, h, data) in &values {
        if i % 3 == 1 {
            assert!(h.is_resident(), "value {i} cannot leave memory");
            assert!(h.key().is_err());
        } else {
            assert!(!h.is_resident(), "value {i} was paged out");
            assert_eq!(&h.get().expect("read back").data, data, "value {i}");
        }
    }
}

#[test]
fn a_value_that_cannot_be_encoded_does_not_block_the_page_out_of_others() {
    let pool = mem_pool(64 << 10);
    let bad = pool
        .insert(Fragile {
            fail_to_encode: true,
            data: vec![0; 4096],
        })
        .unwrap();
    let good: Vec<_> = (0..100u8)
        .map(|i| {
            pool.insert(Fragile {
                fail_to_encode: false,
                data: vec![i; 4096],
            })
            .unwrap()
        })
        .collect();
    let s = pool.stats();
    assert!(s.page_outs >= 80, "the others were paged out: {s:?}");
    assert!(s.errors > 0);
    assert!(bad.is_resident(), "the bad value stays in memory");
    let err = bad.key().unwrap_err();
    assert!(err.to_string().contains("Fragile"), "{err}");
    for (i, g) in good.iter().enumerate() {
        assert_eq!(g.get().unwrap().data[0], i as u8);
    }
}

#[test]
fn a_panicking_deserialize_fails_the_read_instead_of_hanging_it() {
    let pool = mem_pool(1 << 20);
    let h = pool
        .insert(Fragile {
            fail_to_encode: false,
            data: vec![7; PANIC_LEN],
        })
        .unwrap();
    h.key().unwrap();
    pool.shrink_to(0).unwrap();
    assert!(!h.is_resident());
    PANIC_ON_DECODE.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = h.get().unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    PANIC_ON_DECODE.store(false, std::sync::atomic::Ordering::SeqCst);
    // The load ended: the next read loads the value.
    assert_eq!(h.get().unwrap().data, vec![7; PANIC_LEN]);
}

/// A value whose `Drop` panics when told to.
#[derive(serde::Serialize, serde::Deserialize, get_size2::GetSize)]
struct Grenade {
    armed: bool,
}

impl Drop for Grenade {
    fn drop(&mut self) {
        if self.armed && !std::thread::panicking() {
            panic!("a value's drop panics");
        }
    }
}

/// A handle's last drop that panics in its value's `Drop` still lets go of the pool: its store
/// is closed, so the directory can be opened again.
#[test]
fn a_panic_in_a_values_drop_still_lets_go_of_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::builder().dir(dir.path()).build().unwrap();
    let h = pool.insert(Grenade { armed: true }).unwrap();
    drop(pool);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(h)));
    assert!(dropped.is_err(), "the value's drop panicked");
    // The pool, its store and the store's lock went with the handle's entry.
    let again = Pool::builder().dir(dir.path()).build();
    assert!(again.is_ok(), "the store is free again: {:?}", again.err());
}
