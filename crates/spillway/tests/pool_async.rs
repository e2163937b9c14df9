//! Async reads: many tasks awaiting page-ins at once never deadlock the executor (the pool loads
//! on its own I/O threads), concurrent loads of one key happen once, and a load that fails gives
//! every caller an error naming the key and the store, for blocking and async callers alike.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use spillway::{BlobStore, MemStore, Paged, Pool};

fn value(i: u64) -> Vec<u64> {
    (0..64).map(|j| i * 1000 + j).collect()
}

fn setup(io_threads: usize) -> (Arc<MemStore>, Pool) {
    let store = Arc::new(MemStore::new());
    let pool = Pool::builder()
        .budget(16 << 20)
        .store(Arc::clone(&store) as Arc<dyn BlobStore>)
        .io_threads(io_threads)
        .build()
        .expect("a pool");
    (store, pool)
}

/// `n` values, stored and paged out.
fn paged_out(pool: &Pool, n: u64) -> Vec<Paged<Vec<u64>>> {
    let handles: Vec<_> = (0..n)
        .map(|i| pool.insert(value(i)).expect("insert"))
        .collect();
    pool.shrink_to(0).expect("shrink_to");
    assert!(handles.iter().all(|h| !h.is_resident()));
    handles
}

#[test]
fn a_current_thread_runtime_with_every_task_awaiting_a_page_in_does_not_deadlock() {
    let (_store, pool) = setup(1);
    let handles = paged_out(&pool, 200);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let tasks: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = h.clone();
                tokio::spawn(async move {
                    let g = h.get_async().await.expect("get_async");
                    assert_eq!(*g, value(i as u64));
                })
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(30), async {
            for t in tasks {
                t.await.expect("a task panicked");
            }
        })
        .await
        .expect("tasks awaiting page-ins did not finish: deadlock");
    });
    assert_eq!(pool.stats().page_ins, 200);
}

#[test]
fn many_tasks_on_two_workers_load_each_key_once() {
    let (_store, pool) = setup(2);
    let distinct = 10u64;
    let handles = paged_out(&pool, distinct);
    let before = pool.stats().page_ins;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let tasks: Vec<_> = (0..100u64)
            .map(|t| {
                let i = t % distinct;
                let h = handles[i as usize].clone();
                tokio::spawn(async move {
                    let g = h.get_async().await.expect("get_async");
                    assert_eq!(*g, value(i));
                    // Keep the value pinned so that all tasks see one load.
                    g
                })
            })
            .collect();
        let guards = tokio::time::timeout(Duration::from_secs(30), async {
            let mut guards = Vec::new();
            for t in tasks {
                guards.push(t.await.expect("a task panicked"));
            }
            guards
        })
        .await
        .expect("tasks awaiting page-ins did not finish: deadlock");
        for (t, g) in guards.iter().enumerate() {
            let first = &guards[t % distinct as usize];
            assert!(std::ptr::eq::<Vec<u64>>(&**g, &**first));
        }
    });
    assert_eq!(pool.stats().page_ins, before + distinct);
}

/// A handle whose record was deleted from the store under the pool.
fn deleted(store: &MemStore, pool: &Pool) -> (Paged<Vec<u64>>, String) {
    let h = pool.insert(value(7)).expect("insert");
    let key = h.key().expect("key");
    pool.shrink_to(0).expect("shrink_to");
    store.delete(&[key]).expect("delete");
    (h, key.to_string())
}

fn assert_names_key_and_store(err: &spillway::Error, key: &str) {
    let msg = err.to_string();
    assert!(msg.contains(key), "{msg}");
    assert!(msg.contains("memory store"), "{msg}");
}

#[test]
fn a_failed_load_is_an_error_for_blocking_callers() {
    let (store, pool) = setup(2);
    let (h, key) = deleted(&store, &pool);
    // Several threads at once: each gets the error, none hangs.
    let (tx, rx) = mpsc::channel();
    for _ in 0..4 {
        let h = h.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = h.get().map(|_| ());
            let _ = tx.send(r);
        });
    }
    for _ in 0..4 {
        let r = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a blocking reader of a deleted key hung");
        assert_names_key_and_store(&r.expect_err("a deleted key read back"), &key);
    }
    // And again, later: still an error, not a hang.
    assert_names_key_and_store(&h.get().expect_err("a deleted key read back"), &key);
    assert!(!h.is_resident());
}

#[test]
fn a_failed_load_is_an_error_for_async_callers() {
    let (store, pool) = setup(2);
    let (h, key) = deleted(&store, &pool);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.get_async().await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            let r = tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("an async reader of a deleted key hung")
                .expect("a task panicked");
            assert_names_key_and_store(&r.expect_err("a deleted key read back"), &key);
        }
        let again = tokio::time::timeout(Duration::from_secs(30), h.get_async())
            .await
            .expect("an async reader of a deleted key hung");
        assert_names_key_and_store(&again.expect_err("a deleted key read back"), &key);
    });
}
