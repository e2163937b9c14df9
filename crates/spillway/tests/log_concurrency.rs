//! Concurrency smoke test on the real file system: threads putting, reading, deleting,
//! flushing and compacting at once always read the right bytes, and concurrent durable flushes
//! share their syncs (group commit).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use common::Obj;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spillway::{BlobStore, ContentKey, Durability, LogStore, LogStoreOptions};

const THREADS: u64 = 4;
const ROUNDS: u64 = 150;

fn opts() -> LogStoreOptions {
    common::busy_opts()
}

/// Objects every thread puts (dedup across threads) and never deletes.
fn shared(i: u64) -> Obj {
    Obj::generated(1_000_000 + i, 300, Vec::new())
}

/// One thread's work; returns the state of its own keys.
fn worker(store: &LogStore, t: u64) -> HashMap<ContentKey, Option<Obj>> {
    let mut rng = StdRng::seed_from_u64(t);
    let mut mine: HashMap<ContentKey, Option<Obj>> = HashMap::new();
    let mut order: Vec<ContentKey> = Vec::new();
    for round in 0..ROUNDS {
        let objs: Vec<Obj> = (0..3)
            .map(|j| {
                let children = order.last().map(|k| vec![*k]).unwrap_or_default();
                Obj::generated(
                    t << 32 | round << 4 | j,
                    rng.random_range(0..1200),
                    children,
                )
            })
            .collect();
        let s = shared(round % 20);
        let mut puts: Vec<_> = objs.iter().map(Obj::put).collect();
        puts.push(s.put());
        store.put_batch(&puts).expect("put");
        for o in objs {
            order.push(o.key);
            mine.insert(o.key, Some(o));
        }
        assert_eq!(store.get(&s.key).expect("get shared"), Some(s.blob()));
        if rng.random_bool(0.3) {
            let k = order[rng.random_range(0..order.len())];
            store.delete(&[k]).expect("delete");
            mine.insert(k, None);
        }
        // Read back a few of our keys, old and new: the bytes must be exact.
        for _ in 0..4 {
            let k = order[rng.random_range(0..order.len())];
            let got = store.get(&k).expect("get");
            assert_eq!(
                got,
                mine[&k].as_ref().map(Obj::blob),
                "thread {t}, round {round}"
            );
        }
        match rng.random_range(0..10) {
            0..3 => store.flush(Durability::Durable).expect("flush"),
            3..5 => store.flush(Durability::Written).expect("flush"),
            5 if t == 0 => {
                store.compact().expect("compact");
            }
            6 if t == 1 => store.checkpoint().expect("checkpoint"),
            _ => {}
        }
    }
    mine
}

#[test]
fn concurrent_readers_writers_and_compaction_agree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let store = Arc::new(LogStore::open_with(&dir, opts()).expect("open"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || worker(&store, t))
        })
        .collect();
    let states: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect();
    let removed = store.compact().expect("final compaction").segments_removed;
    let stats = store.stats();
    assert!(
        stats.segments > 2 || removed > 0,
        "the test should roll and compact: {stats:?}"
    );
    Arc::into_inner(store)
        .expect("sole owner")
        .close()
        .expect("close");

    let store = LogStore::open_with(&dir, opts()).expect("reopen");
    let mut expected = 20;
    for state in &states {
        for (k, o) in state {
            assert_eq!(store.get(k).expect("get"), o.as_ref().map(Obj::blob));
            expected += u64::from(o.is_some());
        }
    }
    for i in 0..20 {
        assert_eq!(
            store.get(&shared(i).key).expect("get"),
            Some(shared(i).blob())
        );
    }
    assert_eq!(store.stats().objects, expected);
}

#[test]
fn concurrent_durable_flushes_share_syncs() {
    const WRITERS: u64 = 16;
    const EACH: u64 = 15;
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        LogStore::open_with(tmp.path().join("store"), LogStoreOptions::default()).expect("open"),
    );
    // Start from a synced state so that only the loop's syncs are counted.
    store.flush(Durability::Durable).expect("flush");
    let before = store.stats().syncs;
    let barrier = Arc::new(Barrier::new(WRITERS as usize));
    let handles: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..EACH {
                    let o = Obj::generated(t << 32 | i, 200, Vec::new());
                    store.put(o.put()).expect("put");
                    store.flush(Durability::Durable).expect("flush");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer");
    }
    let syncs = store.stats().syncs - before;
    let flushes = WRITERS * EACH;
    eprintln!("{flushes} durable flushes, {syncs} syncs");
    assert!(syncs > 0);
    // Each sync should cover the flushes of every thread that arrived while the previous one
    // ran: with 16 writers, far fewer syncs than flushes.
    assert!(
        syncs * 3 <= flushes,
        "group commit should share syncs: {syncs} syncs for {flushes} flushes"
    );
}

#[test]
fn records_on_either_side_of_the_lock_holding_limit_read_back_while_segments_roll() {
    // A read of a record up to 64 KiB holds the segment readers' lock, a longer one clones its
    // reader: both read the right bytes while a writer seals segments and compaction removes
    // them (the writers of that lock).
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open_with(dir.path(), opts().segment_size(128 << 10)).expect("open");
    let lens = [1000, (64 << 10) - 36, (64 << 10) - 35, 200 << 10];
    let objs: Vec<Obj> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| Obj::generated(7_000 + i as u64, len, Vec::new()))
        .collect();
    for o in &objs {
        store.put(o.put()).expect("put");
    }
    store.flush(Durability::Written).expect("flush");
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..40u64 {
                let churn: Vec<Obj> = (0..8)
                    .map(|j| Obj::generated(round << 8 | j, 20_000, Vec::new()))
                    .collect();
                for o in &churn {
                    store.put(o.put()).expect("put");
                }
                store.flush(Durability::Written).expect("flush");
                let keys: Vec<ContentKey> = churn.iter().map(|o| o.key).collect();
                store.delete(&keys).expect("delete");
                store.compact().expect("compact");
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut reads = 0u64;
        while !done.load(std::sync::atomic::Ordering::SeqCst) || reads < 100 {
            for o in &objs {
                assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
                reads += 1;
            }
        }
    });
}
