//! `PagedMap` against `std::collections::BTreeMap`, by property testing: random inserts,
//! removals, lookups, ranges and bulk builds, with everything paged out between steps and the
//! map saved and reopened from its log store in the middle; nodes are tiny so that splits and
//! merges happen all the time. Plus: a change stores only its path, a clone is a snapshot, and a
//! map many times the budget keeps the budget.
//!
//! `PROPTEST_CASES=n` runs more cases.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use spillway::{MapOptions, PagedMap, PagedSet, Pool};

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u32),
    Remove(u16),
    Get(u16),
    Range(u16, u16, bool),
    PageOut,
    Reopen,
    Bulk(Vec<u16>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u16..400, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        5 => (0u16..400).prop_map(Op::Remove),
        3 => (0u16..400).prop_map(Op::Get),
        2 => (0u16..400, 0u16..400, any::<bool>()).prop_map(|(a, b, i)| Op::Range(a, b, i)),
        1 => Just(Op::PageOut),
        1 => Just(Op::Reopen),
        1 => proptest::collection::vec(0u16..400, 0..200).prop_map(Op::Bulk),
    ]
}

/// The value stored for `v`: a few bytes, so that the byte bound splits nodes too.
fn value(v: u32) -> Vec<u8> {
    v.to_le_bytes().repeat((v % 5) as usize + 1)
}

fn options() -> MapOptions {
    MapOptions::new(4, 96)
}

fn pool(dir: &std::path::Path) -> Pool {
    Pool::builder()
        .budget(16 << 10)
        .deterministic(true)
        .dir(dir)
        .build()
        .expect("a pool")
}

fn same(map: &PagedMap<u16, Vec<u8>>, model: &BTreeMap<u16, Vec<u8>>) -> Result<(), TestCaseError> {
    prop_assert_eq!(map.len(), model.len() as u64);
    let got: Vec<(u16, Vec<u8>)> = map.iter().collect::<spillway::Result<_>>().expect("iter");
    let want: Vec<(u16, Vec<u8>)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
    prop_assert_eq!(got, want);
    prop_assert_eq!(
        map.first().expect("first"),
        model.first_key_value().map(|(k, v)| (*k, v.clone()))
    );
    prop_assert_eq!(
        map.last().expect("last"),
        model.last_key_value().map(|(k, v)| (*k, v.clone()))
    );
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pool = pool(dir.path());
    let mut map: PagedMap<u16, Vec<u8>> = PagedMap::with_options(&pool, options());
    let mut model: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                let old = map.insert(k, value(v)).expect("insert");
                prop_assert_eq!(old, model.insert(k, value(v)));
            }
            Op::Remove(k) => {
                prop_assert_eq!(map.remove(&k).expect("remove"), model.remove(&k));
            }
            Op::Get(k) => {
                prop_assert_eq!(map.get(&k).expect("get"), model.get(&k).cloned());
                prop_assert_eq!(
                    map.contains_key(&k).expect("contains"),
                    model.contains_key(&k)
                );
            }
            Op::Range(a, b, inclusive) => {
                let (lo, hi) = (a.min(b), a.max(b));
                let end = if inclusive {
                    Bound::Included(hi)
                } else {
                    Bound::Excluded(hi)
                };
                // An excluded start when it differs from the end (`BTreeMap` refuses a range
                // whose bounds are equal and both excluded).
                let start = if lo < hi {
                    Bound::Excluded(lo)
                } else {
                    Bound::Included(lo)
                };
                let got: Vec<_> = map
                    .range((start, end))
                    .collect::<spillway::Result<_>>()
                    .expect("range");
                let want: Vec<_> = model
                    .range((start, end))
                    .map(|(k, v)| (*k, v.clone()))
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::PageOut => {
                pool.shrink_to(0).expect("shrink");
            }
            Op::Reopen => {
                map.save(&pool, "map").expect("save");
                drop(map);
                drop(pool);
                pool = self::pool(dir.path());
                map = PagedMap::open(&pool, "map").expect("open").expect("saved");
            }
            Op::Bulk(mut keys) => {
                keys.sort_unstable();
                keys.dedup();
                map = PagedMap::from_sorted_with(
                    &pool,
                    options(),
                    keys.iter().map(|&k| (k, value(u32::from(k)))),
                )
                .expect("bulk build");
                model = keys.iter().map(|&k| (k, value(u32::from(k)))).collect();
            }
        }
        same(&map, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_paged_map_behaves_as_a_btreemap(ops in proptest::collection::vec(op(), 1..160)) {
        run(ops)?;
    }
}

#[test]
fn a_bulk_build_refuses_unsorted_keys() {
    let pool = Pool::builder().budget(1 << 20).build().unwrap();
    let err = PagedMap::from_sorted(&pool, [(1u32, 0u8), (3, 0), (2, 0)]).unwrap_err();
    assert!(err.to_string().contains("strictly increasing"), "{err}");
    let err = PagedMap::from_sorted(&pool, [(1u32, 0u8), (1, 0)]).unwrap_err();
    assert!(err.to_string().contains("entry 1"), "{err}");
}

/// One insert into a large map stores the new path and nothing else: the rest is shared.
#[test]
fn a_change_stores_only_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(dir.path());
    let map = PagedMap::from_sorted_with(
        &pool,
        MapOptions::new(16, 4096),
        (0..20_000u64).map(|k| (k * 2, k)),
    )
    .unwrap();
    map.save(&pool, "a").unwrap();
    let depth = map.depth().unwrap();
    assert!(depth >= 4, "depth {depth}");
    let before = pool.stats().objects_written;
    let mut changed = map.clone();
    changed.insert(1001, 7).unwrap();
    changed.save(&pool, "b").unwrap();
    // The new path, plus the header that names the map.
    let written = pool.stats().objects_written - before;
    assert_eq!(
        written,
        depth as u64 + 1,
        "an insert wrote {written} objects at depth {depth}"
    );
    // The snapshot did not change.
    assert_eq!(map.get(&1001).unwrap(), None);
    assert_eq!(changed.get(&1001).unwrap(), Some(7));
    assert_eq!(map.len() + 1, changed.len());
}

/// A map forty times the budget: the budget holds, and every entry reads back.
#[test]
fn a_map_larger_than_the_budget_keeps_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::builder()
        .budget(64 << 10)
        .deterministic(true)
        .dir(dir.path())
        .build()
        .unwrap();
    let mut map = PagedMap::new(&pool);
    for k in 0..20_000u32 {
        map.insert(k.wrapping_mul(2_654_435_761), [k; 8]).unwrap();
    }
    let mut n = 0;
    let mut last = None;
    for e in map.iter() {
        let (k, v) = e.unwrap();
        assert!(last < Some(k));
        last = Some(k);
        assert_eq!(k, v[0].wrapping_mul(2_654_435_761));
        n += 1;
    }
    assert_eq!(n, 20_000);
    let stats = pool.stats();
    assert!(
        stats.peak_resident_bytes <= stats.budget_bytes,
        "peak {} over the budget {}",
        stats.peak_resident_bytes,
        stats.budget_bytes
    );
    assert!(stats.page_outs > 0 && stats.page_ins > 0);
}

#[test]
fn a_set_saved_and_opened() {
    let dir = tempfile::tempdir().unwrap();
    {
        let pool = pool(dir.path());
        let mut set = PagedSet::from_sorted(&pool, ["a".to_string(), "c".to_string()]).unwrap();
        assert!(set.insert("b".to_string()).unwrap());
        assert!(!set.insert("b".to_string()).unwrap());
        assert!(set.remove(&"c".to_string()).unwrap());
        set.save(&pool, "names").unwrap();
    }
    let pool = pool(dir.path());
    let set: PagedSet<String> = PagedSet::open(&pool, "names").unwrap().unwrap();
    let all: Vec<String> = set.iter().collect::<spillway::Result<_>>().unwrap();
    assert_eq!(all, ["a", "b"]);
    assert!(set.contains(&"a".to_string()).unwrap());
    assert_eq!(set.len(), 2);
}
