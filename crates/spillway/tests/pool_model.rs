//! A pool against an in-memory model, by property testing: random sequences of inserts (with
//! duplicates), clones, drops, reads, key/load round trips, shrinks, roots and collections,
//! under a budget so small that values are paged out and in all the time. Every read must equal
//! the model, `load` must give the live object for its key, and roots must name what they were
//! set to.
//!
//! `PROPTEST_CASES=n` runs more cases.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use spillway::{MemStore, Paged, Pool};

#[derive(Debug, Clone)]
enum Op {
    /// Insert the value made from `seed` (few seeds, so equal values recur) of `len` bytes.
    Insert {
        seed: u8,
        len: u16,
    },
    Clone(usize),
    Drop(usize),
    Get(usize),
    KeyLoad(usize),
    ShrinkTo(u16),
    SetRoot {
        handle: usize,
        name: u8,
    },
    Root(u8),
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u16..4).prop_map(|(seed, l)| Op::Insert { seed, len: l * 210 + 7 }),
        2 => any::<usize>().prop_map(Op::Clone),
        2 => any::<usize>().prop_map(Op::Drop),
        4 => any::<usize>().prop_map(Op::Get),
        2 => any::<usize>().prop_map(Op::KeyLoad),
        1 => (0u16..4096).prop_map(Op::ShrinkTo),
        1 => (any::<usize>(), 0u8..3).prop_map(|(handle, name)| Op::SetRoot { handle, name }),
        1 => (0u8..3).prop_map(Op::Root),
        1 => Just(Op::Gc),
    ]
}

fn value(seed: u8, len: u16) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(37).wrapping_add(i as u8))
        .collect()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let budget = 4096;
    let pool = Pool::builder()
        .budget(budget)
        .store(Arc::new(MemStore::new()))
        .gc_after(0)
        .build()
        .expect("a pool");
    let mut handles: Vec<(Paged<Vec<u8>>, Vec<u8>)> = Vec::new();
    let mut roots: HashMap<String, Vec<u8>> = HashMap::new();
    for op in ops {
        let pick = |i: usize, n: usize| if n == 0 { None } else { Some(i % n) };
        match op {
            Op::Insert { seed, len } => {
                let v = value(seed, len);
                handles.push((pool.insert(v.clone()).expect("insert"), v));
            }
            Op::Clone(i) => {
                if let Some(i) = pick(i, handles.len()) {
                    let (h, v) = &handles[i];
                    let copy = (h.clone(), v.clone());
                    prop_assert!(Paged::ptr_eq(&copy.0, h));
                    handles.push(copy);
                }
            }
            Op::Drop(i) => {
                if let Some(i) = pick(i, handles.len()) {
                    handles.swap_remove(i);
                }
            }
            Op::Get(i) => {
                if let Some(i) = pick(i, handles.len()) {
                    let (h, v) = &handles[i];
                    prop_assert_eq!(&*h.get().expect("get"), v);
                }
            }
            Op::KeyLoad(i) => {
                if let Some(i) = pick(i, handles.len()) {
                    let key = handles[i].0.key().expect("key");
                    let loaded: Paged<Vec<u8>> = pool.load(key).expect("load");
                    prop_assert_eq!(&*loaded.get().expect("get"), &handles[i].1);
                    // One key, one object: the loaded handle is one of the live handles with
                    // that key (equal values inserted separately may be distinct objects).
                    let mut same = false;
                    for (h, _) in &handles {
                        if Paged::ptr_eq(h, &loaded) {
                            same = true;
                            prop_assert_eq!(h.key().expect("key"), key);
                        }
                    }
                    prop_assert!(same, "load gave a new object while one was live");
                    handles.push((loaded, handles[i].1.clone()));
                }
            }
            Op::ShrinkTo(to) => {
                pool.shrink_to(u64::from(to)).expect("shrink_to");
                prop_assert!(pool.stats().resident_bytes <= u64::from(to).max(budget));
            }
            Op::SetRoot { handle, name } => {
                if let Some(i) = pick(handle, handles.len()) {
                    let name = format!("root{name}");
                    pool.set_root(&name, &handles[i].0).expect("set_root");
                    roots.insert(name, handles[i].1.clone());
                }
            }
            Op::Root(name) => {
                let name = format!("root{name}");
                let got: Option<Paged<Vec<u8>>> = pool.root(&name).expect("root");
                match (got, roots.get(&name)) {
                    (None, None) => {}
                    (Some(h), Some(v)) => prop_assert_eq!(&*h.get().expect("get"), v),
                    (got, want) => prop_assert!(false, "root {name}: {got:?}, model {want:?}"),
                }
            }
            Op::Gc => {
                pool.gc().expect("gc");
                pool.shrink_to(0).expect("shrink_to");
                for (h, v) in &handles {
                    prop_assert_eq!(&*h.get().expect("get after gc"), v);
                }
                for (name, v) in &roots {
                    let h: Paged<Vec<u8>> = pool.root(name).expect("root").expect("a root");
                    prop_assert_eq!(&*h.get().expect("get a root after gc"), v);
                }
            }
        }
        let s = pool.stats();
        prop_assert!(
            s.peak_resident_bytes <= budget,
            "peak {} over budget {budget}",
            s.peak_resident_bytes
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64)
    ))]

    #[test]
    fn the_pool_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
