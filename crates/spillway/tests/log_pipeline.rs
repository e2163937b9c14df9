//! The log store's write path on the write pipeline: applied records are read from the
//! pipeline until they are written (across segment rolls too), a full buffer is written in the
//! background, durable flushes share syncs, and a failed background write poisons the store
//! without losing what readers could see.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Obj;
use spillway::vfs::{SimFs, Vfs};
use spillway::{BlobStore, Durability, Error, LogStore, LogStoreOptions};

fn objects(n: u64) -> Vec<Obj> {
    (0..n).map(|i| Obj::generated(i, 100, vec![])).collect()
}

fn segment_files(fs: &SimFs, dir: &Path) -> usize {
    fs.read_dir(dir)
        .expect("list")
        .iter()
        .filter(|n| n.starts_with("seg-"))
        .count()
}

fn reopen(fs: SimFs, dir: &Path) -> LogStore {
    LogStore::open_on(
        Arc::new(fs),
        dir,
        LogStoreOptions::default().segment_size(4096),
    )
    .expect("reopen")
}

#[test]
fn applied_records_are_read_from_the_pipeline_until_written_across_segment_rolls() {
    let fs = SimFs::new();
    let dir = Path::new("/store");
    // A buffer larger than everything written: nothing leaves the pipeline until a flush.
    let opts = LogStoreOptions::default()
        .segment_size(4096)
        .write_buffer(1 << 20);
    let store = LogStore::open_on(Arc::new(fs.clone()), dir, opts).expect("open");
    let objs: Vec<Obj> = (0..60).map(|i| Obj::generated(i, 200, vec![])).collect();
    for chunk in objs.chunks(7) {
        let puts: Vec<_> = chunk.iter().map(Obj::put).collect();
        store.put_batch(&puts).expect("put");
    }
    assert!(
        store.stats().segments >= 3,
        "60 × 200 B roll 4 KiB segments"
    );
    assert_eq!(
        segment_files(&fs, dir),
        1,
        "new segments wait for the flusher"
    );
    assert_eq!(store.stats().bytes_written, 0);
    for o in &objs {
        assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()), "applied");
    }
    // A crash now loses them: they were only applied.
    let lost = reopen(fs.process_crash_image(), dir);
    assert_eq!(lost.stats().objects, 0);
    drop(lost);

    store.flush(Durability::Written).expect("write");
    assert_eq!(segment_files(&fs, dir) as u64, store.stats().segments);
    for o in &objs {
        assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()), "written");
    }
    let crashed = reopen(fs.process_crash_image(), dir);
    for o in &objs {
        assert_eq!(crashed.get(&o.key).expect("get"), Some(o.blob()));
    }
    drop(crashed);

    store.flush(Durability::Durable).expect("sync");
    let powered_off = reopen(fs.power_loss_image(7), dir);
    for o in &objs {
        assert_eq!(powered_off.get(&o.key).expect("get"), Some(o.blob()));
    }
}

#[test]
fn a_full_buffer_is_written_in_the_background() {
    let fs = SimFs::new();
    let dir = Path::new("/store");
    let opts = LogStoreOptions::default().write_buffer(4096);
    let store = LogStore::open_on(Arc::new(fs.clone()), dir, opts).expect("open");
    let objs = objects(100);
    for o in &objs {
        store.put(o.put()).expect("put");
    }
    // No flush: the pipeline froze each full buffer and its flush thread wrote it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.stats().bytes_written < 8192 {
        assert!(Instant::now() < deadline, "the background write never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    for o in &objs {
        assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
    }
}

#[test]
fn concurrent_durable_writers_share_syncs_and_all_survive_power_loss() {
    let fs = SimFs::new();
    let dir = Path::new("/store");
    let store =
        LogStore::open_on(Arc::new(fs.clone()), dir, LogStoreOptions::default()).expect("open");
    let syncs_before = store.stats().syncs;
    let objs = objects(8 * 25);
    std::thread::scope(|s| {
        for part in objs.chunks(25) {
            let store = &store;
            s.spawn(move || {
                for o in part {
                    store.put(o.put()).expect("put");
                    store.flush(Durability::Durable).expect("durable");
                }
            });
        }
    });
    // A durable round syncs the log, then the sync record: at most two syncs per flush, fewer
    // when writers share a round.
    let syncs = store.stats().syncs - syncs_before;
    assert!(syncs > 0 && syncs <= 2 * objs.len() as u64, "{syncs} syncs");
    let img = fs.power_loss_image(3);
    let after = LogStore::open_on(Arc::new(img), dir, LogStoreOptions::default()).expect("open");
    for o in &objs {
        assert_eq!(after.get(&o.key).expect("get"), Some(o.blob()));
    }
}

#[test]
fn a_failed_background_write_poisons_the_store_and_reads_go_on() {
    let fs = SimFs::new();
    let dir = Path::new("/store");
    let opts = LogStoreOptions::default()
        .segment_size(4096)
        .write_buffer(1024);
    let store = LogStore::open_on(Arc::new(fs.clone()), dir, opts).expect("open");
    let objs: Vec<Obj> = (0..200).map(|i| Obj::generated(i, 150, vec![])).collect();
    fs.fail_at(3);
    let mut applied = Vec::new();
    let mut refused = None;
    for o in &objs {
        match store.put(o.put()) {
            Ok(()) => applied.push(o),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        // Give the flush thread time to hit the failure.
        std::thread::sleep(Duration::from_millis(1));
    }
    let err = match refused {
        Some(e) => e,
        None => store
            .flush(Durability::Written)
            .expect_err("the injected failure stops the writes"),
    };
    assert!(
        matches!(err, Error::Poisoned { .. }) || err.root().to_string().contains("injected"),
        "{err}"
    );
    assert!(store.poisoned().is_some());
    assert!(matches!(
        store.put(objs[199].put()),
        Err(Error::Poisoned { .. })
    ));
    // Every put that returned Ok is still readable, written or not.
    for o in &applied {
        assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
    }
}

#[test]
fn a_submitted_write_waits_for_the_level_it_needs() {
    let fs = SimFs::new();
    let dir = Path::new("/store");
    let store =
        LogStore::open_on(Arc::new(fs.clone()), dir, LogStoreOptions::default()).expect("open");
    let objs = objects(3);
    let h = store
        .submit_puts(&[objs[0].put(), objs[1].put()])
        .expect("submit");
    assert!(h.epoch().is_some(), "applied on return");
    assert_eq!(h.take_result().map(|a| a.puts), Some(2));
    h.wait(Durability::Written).expect("written");
    let crashed = reopen(fs.process_crash_image(), dir);
    assert_eq!(crashed.stats().objects, 2);
    drop(crashed);

    // A key that is only applied, submitted again: nothing is appended, but the second
    // handle covers the first put, which comes before it in the log.
    store.put(objs[2].put()).expect("put");
    let again = store.submit_puts(&[objs[2].put()]).expect("submit");
    assert_eq!(again.take_result().map(|a| a.puts), Some(0));
    again.wait(Durability::Durable).expect("durable");
    let powered_off = reopen(fs.power_loss_image(11), dir);
    assert_eq!(
        powered_off.get(&objs[2].key).expect("get"),
        Some(objs[2].blob())
    );
    drop(powered_off);

    let d = store.submit_deletes(&[objs[0].key]).expect("delete");
    assert_eq!(d.take_result().map(|a| a.tombstones), Some(1));
    d.wait(Durability::Durable).expect("durable");
    let powered_off = reopen(fs.power_loss_image(12), dir);
    assert_eq!(powered_off.get(&objs[0].key).expect("get"), None);
    assert_eq!(
        powered_off.get(&objs[1].key).expect("get"),
        Some(objs[1].blob())
    );
}

#[test]
fn async_durable_waits_never_block_a_current_thread_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(LogStore::open(dir.path()).expect("open"));
    let objs = objects(32);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let done = rt.block_on(async {
        let mut tasks = Vec::new();
        for o in objs.clone() {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let h = store.submit_puts(&[o.put()]).expect("submit");
                h.wait_async(Durability::Durable).await.expect("durable")
            }));
        }
        let mut n = 0;
        for t in tasks {
            t.await.expect("task");
            n += 1;
        }
        n
    });
    assert_eq!(done, objs.len());
    drop(store);
    let reopened = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(reopened.stats().objects, objs.len() as u64);
}

/// Large batches become chunks without a copy (delta.rs, `ADOPT_MIN`) when they fit in the
/// current segment and hold no stored key; otherwise they are copied record by record, rolling
/// segments as needed. Either way every record reads back from the pipeline, then from the
/// files, then after a reopen.
#[test]
fn large_batches_read_back_whether_adopted_whole_or_copied() {
    let fs = SimFs::new();
    let dir = Path::new("/store");
    let opts = LogStoreOptions::default()
        .segment_size(1 << 20)
        .write_buffer(4 << 20);
    let store = LogStore::open_on(Arc::new(fs.clone()), dir, opts.clone()).expect("open");
    let big = |from: u64, n: u64| -> Vec<Obj> {
        (from..from + n)
            .map(|i| Obj::generated(i, 2000, vec![]))
            .collect()
    };
    // 1: fits in the first segment, all fresh (adopted).
    let a = big(0, 100);
    // 2: one key already stored (copied), still in the first segment.
    let mut b = big(100, 100);
    b.push(a[7].clone());
    // 3: does not fit in what is left of the segment (copied, rolling to the next).
    let c = big(200, 300);
    // 4: fits in the new segment (adopted), after a flush in between.
    let d = big(500, 100);
    let mut all: Vec<Obj> = Vec::new();
    for (i, batch) in [a, b, c, d].into_iter().enumerate() {
        let puts: Vec<_> = batch.iter().map(Obj::put).collect();
        store.put_batch(&puts).expect("put");
        if i == 2 {
            store.flush(Durability::Written).expect("flush");
        }
        all.extend(batch);
    }
    let check = |s: &LogStore, when: &str| {
        for o in &all {
            let got = s.get(&o.key).expect("get").unwrap_or_else(|| {
                panic!("{when}: {} missing", o.key);
            });
            assert_eq!(got.payload, o.payload, "{when}: {}", o.key);
        }
    };
    check(&store, "applied");
    assert!(
        store.stats().segments >= 2,
        "the third batch rolled a segment"
    );
    store.flush(Durability::Durable).expect("flush");
    check(&store, "written");
    store.close().expect("close");
    let report = spillway::store::log::verify_on(Arc::new(fs.clone()), dir).expect("verify");
    assert!(report.is_clean(), "{report:?}");
    let store = LogStore::open_on(Arc::new(fs), dir, opts).expect("reopen");
    check(&store, "reopened");
}
