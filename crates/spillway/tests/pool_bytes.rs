//! `Bytes` fields through a pool: a 1 MiB buffer paged out and back in, and values derived
//! through spillway's re-exports alone.

mod common;

use spillway::serde::{Deserialize, Serialize};
use spillway::{Bytes, Paged, Pool};

/// Derived through `spillway::serde`, with no serde of the test's own named.
#[derive(Serialize, Deserialize, get_size2::GetSize)]
#[serde(crate = "spillway::serde")]
struct Blob {
    name: String,
    data: Bytes,
}

fn pool(budget: u64) -> Pool {
    common::mem_pool(budget)
}

/// 1 MiB of bytes of every value, in no simple pattern.
fn mebibyte(seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..1 << 20)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

#[test]
fn a_mebibyte_of_bytes_pages_out_and_back_in() {
    let pool = pool(8 << 20);
    let data = mebibyte(1);
    let blob = pool
        .insert(Blob {
            name: "one".into(),
            data: data.clone().into(),
        })
        .unwrap();
    // Charged its deep size, the buffer included.
    assert!(pool.stats().resident_bytes >= 1 << 20);
    pool.shrink_to(0).unwrap();
    assert!(!blob.is_resident());
    let s = pool.stats();
    // A length (3 bytes of varint) and the bytes, the name beside them.
    assert!(
        s.bytes_written >= 1 << 20 && s.bytes_written <= (1 << 20) + 16,
        "{s:?}"
    );
    let back = blob.get().unwrap();
    assert_eq!(pool.stats().page_ins, 1);
    assert_eq!(back.name, "one");
    assert_eq!(back.data.len(), 1 << 20);
    assert!(back.data == data, "the bytes come back as they were");
}

/// `Bytes` is stored as a `Vec<u8>` is: a value stored with a `Vec<u8>` field reads back with a
/// `Bytes` field under the same key. The two structs stand for one type before and after the
/// field changed (two builds of a program): one stable name, one version, two pools over one
/// store.
#[test]
fn a_vec_field_stored_before_reads_back_as_bytes() {
    #[derive(Serialize, Deserialize, get_size2::GetSize)]
    #[serde(crate = "spillway::serde")]
    struct Old {
        name: String,
        data: Vec<u8>,
    }
    let store = std::sync::Arc::new(spillway::MemStore::new());
    let over_store = || {
        Pool::builder()
            .budget(8 << 20)
            .store(store.clone())
            .deterministic(true)
    };
    let before = over_store().schema::<Old>("blob", 0).build().unwrap();
    let old = before
        .insert(Old {
            name: "before".into(),
            data: mebibyte(2),
        })
        .unwrap();
    let key = before.persist(&old).unwrap();
    drop((old, before));
    let pool = over_store().schema::<Blob>("blob", 0).build().unwrap();
    let new: Paged<Blob> = pool.load(key).unwrap();
    let new = new.get().unwrap();
    assert_eq!(new.name, "before");
    assert!(new.data == mebibyte(2));
}

/// An entry counts its charged size in 32 bits and keeps a larger one aside: sizes on either
/// side of 4 GiB are charged, released on page-out, charged again on page-in and released when
/// the handle goes, exactly.
#[test]
fn sizes_of_four_gibibytes_and_more_are_charged_and_released_exactly() {
    const GIB: u64 = 1 << 30;
    let pool = pool(20 * GIB);
    let sizes = [u64::from(u32::MAX) - 1, u64::from(u32::MAX), 6 * GIB];
    let handles: Vec<Paged<u64>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| pool.insert_with_size(i as u64, s).unwrap())
        .collect();
    let all: u64 = sizes.iter().sum();
    assert_eq!(pool.stats().resident_bytes, all);
    pool.shrink_to(0).unwrap();
    assert_eq!(pool.stats().resident_bytes, 0);
    assert!(handles.iter().all(|h| !h.is_resident()));
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(*h.get().unwrap(), i as u64);
    }
    assert_eq!(pool.stats().resident_bytes, all, "charged again on page-in");
    let mut handles = handles;
    let last = handles.pop().unwrap();
    drop(last);
    assert_eq!(pool.stats().resident_bytes, all - 6 * GIB);
    pool.shrink_to(0).unwrap();
    assert_eq!(pool.stats().resident_bytes, 0);
    drop(handles);
    assert_eq!(pool.stats().resident_bytes, 0);
}
