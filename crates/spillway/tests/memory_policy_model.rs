//! Eviction policies against reference models, under random operation sequences.
//!
//! LRU is compared step by step with a `VecDeque` model that must pick the very same victims.
//! S3-FIFO is held here to the contract every policy keeps: victims were tracked, with their
//! recorded size, and were not pinned; enough bytes come back when enough are evictable; the
//! tracked bytes are the sum of the live entries; a removed entry never comes back as a victim;
//! and every call terminates, pinned entries or not. (Its choices are held to a reference
//! simulator's by `pool_replay.rs`.)

use std::collections::{HashMap, HashSet, VecDeque};

use proptest::prelude::*;
use spillway::memory::{EntryId, EvictionPolicy, Lru, PolicyKind, Residents, S3Fifo};

/// The runtime as a policy sees it: hit counters and pins.
#[derive(Default)]
struct Fake {
    hits: HashMap<EntryId, u8>,
    pinned: HashSet<EntryId>,
}

impl Residents for Fake {
    fn take_hits(&mut self, id: EntryId) -> u8 {
        self.hits.remove(&id).unwrap_or(0)
    }
    fn can_evict(&mut self, id: EntryId) -> bool {
        !self.pinned.contains(&id)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        id: EntryId,
        bytes: u64,
        ghost: Option<u64>,
    },
    Resize {
        id: EntryId,
        bytes: u64,
    },
    Remove {
        id: EntryId,
    },
    Access {
        id: EntryId,
        hits: u8,
    },
    Pin {
        id: EntryId,
    },
    Unpin {
        id: EntryId,
    },
    Evict {
        bytes: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..24u64;
    prop_oneof![
        4 => (id.clone(), 0..100u64, proptest::option::of(0..32u64))
            .prop_map(|(id, bytes, ghost)| Op::Insert { id, bytes, ghost }),
        1 => (id.clone(), 0..100u64).prop_map(|(id, bytes)| Op::Resize { id, bytes }),
        1 => id.clone().prop_map(|id| Op::Remove { id }),
        4 => (id.clone(), 1..5u8).prop_map(|(id, hits)| Op::Access { id, hits }),
        1 => id.clone().prop_map(|id| Op::Pin { id }),
        1 => id.prop_map(|id| Op::Unpin { id }),
        2 => (0..400u64).prop_map(|bytes| Op::Evict { bytes }),
    ]
}

/// The capacity the policies are built for: about what the generated entries add up to.
const CAPACITY: u64 = 1000;

/// LRU reference: least recently used at the front.
#[derive(Default)]
struct LruModel {
    order: VecDeque<(EntryId, u64)>,
}

impl LruModel {
    fn position(&self, id: EntryId) -> Option<usize> {
        self.order.iter().position(|&(i, _)| i == id)
    }

    fn insert(&mut self, id: EntryId, bytes: u64) {
        if let Some(at) = self.position(id) {
            self.order.remove(at);
        }
        self.order.push_back((id, bytes));
    }

    fn touch(&mut self, id: EntryId) {
        if let Some(e) = self.position(id).and_then(|at| self.order.remove(at)) {
            self.order.push_back(e);
        }
    }

    fn evict(&mut self, bytes: u64, pinned: &HashSet<EntryId>) -> Vec<(EntryId, u64)> {
        let mut out = Vec::new();
        let mut freed = 0;
        let mut steps = self.order.len();
        while freed < bytes && steps > 0 {
            steps -= 1;
            let Some((id, size)) = self.order.pop_front() else {
                break;
            };
            if pinned.contains(&id) {
                self.order.push_back((id, size));
            } else {
                freed += size;
                out.push((id, size));
            }
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lru_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..200)) {
        let mut lru = Lru::new();
        let mut model = LruModel::default();
        let mut rt = Fake::default();
        for op in ops {
            match op {
                Op::Insert { id, bytes, ghost } => {
                    lru.insert(id, bytes, ghost);
                    model.insert(id, bytes);
                }
                Op::Resize { id, bytes } => {
                    lru.resize(id, bytes);
                    if let Some(at) = model.position(id) {
                        model.order[at].1 = bytes;
                    }
                }
                Op::Remove { id } => {
                    lru.remove(id);
                    if let Some(at) = model.position(id) {
                        model.order.remove(at);
                    }
                }
                Op::Access { id, .. } => {
                    lru.record_accesses(&[id]);
                    model.touch(id);
                }
                Op::Pin { id } => { rt.pinned.insert(id); }
                Op::Unpin { id } => { rt.pinned.remove(&id); }
                Op::Evict { bytes } => {
                    let got: Vec<_> = lru.evict(bytes, &mut rt).into_iter().map(|v| (v.id, v.bytes)).collect();
                    let want = model.evict(bytes, &rt.pinned);
                    prop_assert_eq!(got, want);
                }
            }
            let order: Vec<_> = model.order.iter().map(|&(id, _)| id).collect();
            prop_assert_eq!(lru.order(), order);
            prop_assert_eq!(lru.tracked_bytes(), model.order.iter().map(|e| e.1).sum::<u64>());
            prop_assert_eq!(lru.len(), model.order.len());
        }
    }

    #[test]
    fn s3fifo_keeps_the_policy_contract(ops in proptest::collection::vec(op(), 1..300)) {
        check_contract(Box::new(S3Fifo::new(CAPACITY)), ops)?;
    }

    #[test]
    fn lru_keeps_the_policy_contract(ops in proptest::collection::vec(op(), 1..300)) {
        check_contract(Box::new(Lru::new()), ops)?;
    }
}

fn check_contract(mut policy: Box<dyn EvictionPolicy>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut live: HashMap<EntryId, u64> = HashMap::new();
    let mut rt = Fake::default();
    for op in ops {
        match op {
            Op::Insert { id, bytes, ghost } => {
                policy.insert(id, bytes, ghost);
                live.insert(id, bytes);
            }
            Op::Resize { id, bytes } => {
                policy.resize(id, bytes);
                if let Some(b) = live.get_mut(&id) {
                    *b = bytes;
                }
            }
            Op::Remove { id } => {
                policy.remove(id);
                live.remove(&id);
            }
            Op::Access { id, hits } => {
                if live.contains_key(&id) {
                    let h = rt.hits.entry(id).or_default();
                    *h = h.saturating_add(hits);
                    if policy.wants_access_log() {
                        policy.record_accesses(&[id]);
                    }
                }
            }
            Op::Pin { id } => {
                rt.pinned.insert(id);
            }
            Op::Unpin { id } => {
                rt.pinned.remove(&id);
            }
            Op::Evict { bytes } => {
                let evictable: u64 = live
                    .iter()
                    .filter(|(id, _)| !rt.pinned.contains(id))
                    .map(|(_, b)| b)
                    .sum();
                let victims = policy.evict(bytes, &mut rt);
                let mut freed = 0;
                for v in victims {
                    let (id, size) = (v.id, v.bytes);
                    prop_assert!(!rt.pinned.contains(&id), "pinned entry {id} evicted");
                    let tracked = live.remove(&id);
                    prop_assert_eq!(
                        tracked,
                        Some(size),
                        "victim {} was not tracked with that size",
                        id
                    );
                    freed += size;
                    if v.ghost {
                        policy.remember(id, size);
                    }
                }
                if evictable >= bytes {
                    prop_assert!(
                        freed >= bytes,
                        "freed {freed} of {bytes} with {evictable} evictable"
                    );
                }
            }
        }
        prop_assert_eq!(policy.tracked_bytes(), live.values().sum::<u64>());
        prop_assert_eq!(policy.len(), live.len());
        for id in live.keys() {
            prop_assert!(policy.contains(*id));
        }
    }
    Ok(())
}

/// Every policy, asked for everything while every entry is pinned and hot, returns nothing,
/// keeps everything, and returns.
#[test]
fn eviction_terminates_when_everything_is_pinned() {
    for kind in [PolicyKind::S3Fifo, PolicyKind::Lru] {
        let mut policy = kind.build(CAPACITY);
        let mut rt = Fake::default();
        for id in 0..10_000u64 {
            policy.insert(id, 100, Some(id));
            rt.pinned.insert(id);
        }
        for round in 0..5 {
            for id in 0..10_000u64 {
                rt.hits.insert(id, 3);
            }
            let victims = policy.evict(u64::MAX, &mut rt);
            assert!(victims.is_empty(), "{kind:?} round {round}");
            assert_eq!(policy.len(), 10_000);
            assert_eq!(policy.tracked_bytes(), 1_000_000);
        }
        // Unpinning half lets exactly that half go.
        for id in (0..10_000u64).step_by(2) {
            rt.pinned.remove(&id);
        }
        let victims = policy.evict(u64::MAX, &mut rt);
        assert_eq!(victims.len(), 5_000, "{kind:?}");
        assert!(victims.iter().all(|v| v.id % 2 == 0));
    }
}

/// A runtime that reports hits on every question must not keep `evict` spinning.
#[test]
fn eviction_terminates_under_endless_hits() {
    struct AlwaysHot;
    impl Residents for AlwaysHot {
        fn take_hits(&mut self, _id: EntryId) -> u8 {
            u8::MAX
        }
        fn can_evict(&mut self, _id: EntryId) -> bool {
            true
        }
    }
    let mut policy = S3Fifo::new(CAPACITY);
    for id in 0..1_000u64 {
        policy.insert(id, 1, None);
    }
    let victims = policy.evict(u64::MAX, &mut AlwaysHot);
    assert!(victims.is_empty());
    assert_eq!(policy.len(), 1_000);
}
