//! Bad input gets a clear error: foreign directories, newer versions, damaged records, absurd
//! lengths, a held lock, read-only access and failing syncs. Torn tails, lost data and repair
//! are in `log_repair.rs`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Obj, objects_of_1000 as objects};
use spillway::format::record::RECORD_HEADER_LEN;
use spillway::format::{checkpoint, marker, segment};
use spillway::vfs::{OpenMode, SimFs, Vfs};
use spillway::{BlobStore, Durability, Error, LogStore, LogStoreOptions};

fn opts() -> LogStoreOptions {
    LogStoreOptions::default().segment_size(4096)
}

/// A closed store in a fresh directory holding `objs`, written one by one in order.
fn store_with(objs: &[Obj]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let store = LogStore::open_with(&dir, opts()).expect("open");
    for o in objs {
        store.put(o.put()).expect("put");
    }
    store.close().expect("close");
    (tmp, dir)
}

fn seg(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment::file_name(id))
}

/// Offset of the `i`-th record of a segment whose records all have `len` bytes.
fn nth_record(i: u64, len: u64) -> u64 {
    segment::SEGMENT_HEADER_LEN as u64 + i * len
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let mut data = fs::read(path).expect("read");
    let at = offset as usize;
    data[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, data).expect("write");
}

const REC: u64 = RECORD_HEADER_LEN as u64 + 1000;

#[test]
fn a_directory_with_other_files_is_not_a_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    fs::write(tmp.path().join("notes.txt"), b"mine").expect("write");
    let err = LogStore::open(tmp.path()).expect_err("must refuse");
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    // Nothing was written into someone else's directory.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")]);
    // A STORE file that is not ours is no better.
    fs::write(
        tmp.path().join(marker::MARKER_FILE),
        b"something else entirely",
    )
    .expect("write");
    let err = LogStore::open(tmp.path()).expect_err("must refuse");
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
}

#[test]
fn a_newer_store_version_is_refused() {
    let (_tmp, dir) = store_with(&objects(1));
    fs::write(
        dir.join(marker::MARKER_FILE),
        marker::encode(marker::STORE_VERSION + 1),
    )
    .expect("write");
    for read_only in [false, true] {
        let err = LogStore::open_with(&dir, opts().read_only(read_only)).expect_err("must refuse");
        match &err {
            Error::UnsupportedVersion {
                found, supported, ..
            } => {
                assert_eq!(
                    (*found, *supported),
                    (marker::STORE_VERSION + 1, marker::STORE_VERSION)
                );
            }
            other => panic!("expected UnsupportedVersion, got {other}"),
        }
        assert!(err.to_string().contains("upgrade"), "{err}");
    }
}

#[test]
fn a_damaged_record_in_a_sealed_segment_is_named_on_get() {
    let objs = objects(10);
    let (_tmp, dir) = store_with(&objs);
    assert!(
        seg(&dir, 3).exists(),
        "the store should span three segments"
    );
    // Object 1 is the second record of segment 1 (covered by the checkpoint, so open does not
    // scan it). Flip one payload byte.
    let at = nth_record(1, REC);
    let mut data = fs::read(seg(&dir, 1)).expect("read");
    data[at as usize + RECORD_HEADER_LEN + 500] ^= 0x20;
    fs::write(seg(&dir, 1), data).expect("write");

    let store = LogStore::open_with(&dir, opts()).expect("open");
    assert!(store.recovery().checkpoint_used);
    let err = store
        .get(&objs[1].key)
        .expect_err("must not return damaged bytes");
    assert!(err.is_corruption(), "{err}");
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&segment::file_name(1)) && msg.contains(&format!("offset {at}")),
        "{msg}"
    );
    // Its neighbours are fine.
    for i in [0, 2, 9] {
        assert_eq!(store.get(&objs[i].key).expect("get"), Some(objs[i].blob()));
    }
    drop(store);

    // Without the checkpoint the scan meets it: a sealed segment, so opening fails.
    fs::remove_file(dir.join("index.ckpt")).expect("remove");
    let err = LogStore::open_with(&dir, opts()).expect_err("must refuse");
    assert!(err.is_corruption(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&segment::file_name(1)) && msg.contains(&format!("offset {at}")),
        "{msg}"
    );
}

#[test]
fn absurd_lengths_are_rejected_without_allocating() {
    // Segments 1 to 3 hold three objects each, segment 4 (the last) objects 9 and 10.
    let objs = objects(11);
    let (_tmp, dir) = store_with(&objs);
    // A payload length of 4 GiB - 1 in a sealed segment's record: found on get.
    let at = nth_record(2, REC);
    patch(&seg(&dir, 1), at + 16, &u32::MAX.to_le_bytes());
    let store = LogStore::open_with(&dir, opts()).expect("open");
    let err = store.get(&objs[2].key).expect_err("must refuse");
    assert!(err.is_corruption(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("exceeds the limit") && msg.contains(&format!("offset {at}")),
        "{msg}"
    );
    drop(store);

    // A child count past the limit in the middle of the last segment: found by the scan.
    fs::remove_file(dir.join("index.ckpt")).expect("remove");
    patch(&seg(&dir, 1), at + 16, &1000u32.to_le_bytes());
    let at = nth_record(0, REC);
    patch(&seg(&dir, 4), at + 12, &u32::MAX.to_le_bytes());
    let err = LogStore::open_with(&dir, opts()).expect_err("must refuse");
    assert!(err.is_corruption(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&segment::file_name(4)) && msg.contains(&format!("offset {at}")),
        "{msg}"
    );

    // A huge (but legal) length in the last record of the last segment, which the sync record
    // says is durable: acknowledged data that was damaged, refused, never cut.
    patch(&seg(&dir, 4), at + 12, &0u32.to_le_bytes());
    let last = nth_record(1, REC);
    patch(&seg(&dir, 4), last + 16, &(1u32 << 30).to_le_bytes());
    let err = LogStore::open_with(&dir, opts()).expect_err("damage before the durable mark");
    let msg = err.to_string();
    assert!(
        msg.contains(&segment::file_name(4))
            && msg.contains(&format!("offset {last}"))
            && msg.contains("acknowledged data that was damaged"),
        "{msg}"
    );
    // Without the sync record (as a version 1 store), the same bytes are a torn write.
    fs::remove_file(dir.join("SYNC")).expect("remove");
    let store = LogStore::open_with(&dir, opts()).expect("open");
    assert_eq!(
        store.recovery().torn_tail.as_ref().map(|t| t.offset),
        Some(last)
    );
    assert_eq!(store.get(&objs[9].key).expect("get"), Some(objs[9].blob()));
    assert_eq!(store.get(&objs[10].key).expect("get"), None);
}

#[test]
fn a_second_writer_is_refused_with_the_holder_named() {
    let objs = objects(2);
    let (_tmp, dir) = store_with(&objs[..1]);
    let store = LogStore::open_with(&dir, opts()).expect("open");
    // The OS lock belongs to an open file description, so even this process cannot take it twice.
    let err = LogStore::open_with(&dir, opts()).expect_err("must refuse");
    match &err {
        Error::Locked { holder, .. } => {
            assert!(
                holder.contains(&format!("process {}", std::process::id())),
                "{holder}"
            );
        }
        other => panic!("expected Locked, got {other}"),
    }
    assert!(err.to_string().contains("read-only"), "{err}");

    // Read-only access works alongside the writer and refuses writes.
    let ro = LogStore::open_with(&dir, opts().read_only(true)).expect("read-only open");
    assert_eq!(ro.get(&objs[0].key).expect("get"), Some(objs[0].blob()));
    assert!(matches!(ro.put(objs[1].put()), Err(Error::ReadOnly { .. })));
    assert!(matches!(
        ro.delete(&[objs[0].key]),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(ro.compact(), Err(Error::ReadOnly { .. })));
    assert!(matches!(ro.checkpoint(), Err(Error::ReadOnly { .. })));
    assert_eq!(ro.get(&objs[0].key).expect("get"), Some(objs[0].blob()));

    // Closing the writer releases the lock.
    store.close().expect("close");
    let store = LogStore::open_with(&dir, opts()).expect("open after close");
    drop(store);
    drop(ro);
}

#[test]
fn a_failing_sync_poisons_the_store_and_loses_nothing_acknowledged() {
    let fs = SimFs::new();
    let dir = Path::new("/store");
    let objs = objects(4);
    let store = LogStore::open_on(Arc::new(fs.clone()), dir, opts()).expect("open");
    store
        .put_batch(&[objs[0].put(), objs[1].put()])
        .expect("put");
    store.flush(Durability::Durable).expect("flush");
    store.put(objs[2].put()).expect("put");
    store.flush(Durability::Written).expect("write");
    // The next operation is the fsync of the segment: make it fail.
    fs.fail_at(1);
    let err = store
        .flush(Durability::Durable)
        .expect_err("the sync fails");
    assert!(matches!(err.root(), Error::Io { op: "fsync", .. }), "{err}");
    assert!(store.poisoned().is_some());
    // Writes are refused and name the first failure; reads go on.
    let err = store.put(objs[3].put()).expect_err("poisoned");
    assert!(
        matches!(err, Error::Poisoned { .. }) && err.to_string().contains("fsync"),
        "{err}"
    );
    assert!(matches!(
        store.flush(Durability::Written),
        Err(Error::Poisoned { .. })
    ));
    for o in &objs[..3] {
        assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
    }
    assert!(matches!(store.close(), Err(Error::Poisoned { .. })));

    let img = fs.power_loss_image(3);
    let store = LogStore::open_on(Arc::new(img), dir, opts()).expect("reopen");
    for o in &objs[..2] {
        assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
    }
    if let Some(b) = store.get(&objs[2].key).expect("get") {
        assert_eq!(b, objs[2].blob());
    }
}

#[test]
fn an_interrupted_creation_does_not_block_the_directory() {
    // A crash while the marker was being written leaves a short STORE and nothing else.
    let full = marker::encode(marker::STORE_VERSION);
    for len in [0, 5, marker::MARKER_LEN - 1] {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join(marker::MARKER_FILE), &full[..len]).expect("write");
        let err =
            LogStore::open_with(tmp.path(), opts().read_only(true)).expect_err("no store yet");
        assert!(matches!(err, Error::NotAStore { .. }), "{err}");
        let store = LogStore::open(tmp.path()).expect("created again");
        store.close().expect("close");
        assert_eq!(
            fs::read(tmp.path().join(marker::MARKER_FILE)).expect("read"),
            full
        );
    }
    // A short marker next to log files is damage, not an interrupted creation.
    let (_tmp, dir) = store_with(&objects(1));
    fs::write(dir.join(marker::MARKER_FILE), &full[..5]).expect("write");
    let err = LogStore::open_with(&dir, opts()).expect_err("damaged marker");
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn a_checkpoint_entry_whose_end_overflows_is_not_trusted() {
    let fs = SimFs::new();
    let dir = Path::new("/store");
    let objs = objects(2);
    let store = LogStore::open_on(Arc::new(fs.clone()), dir, opts()).expect("open");
    for o in &objs {
        store.put(o.put()).expect("put");
    }
    store.close().expect("close");

    // A well-formed checkpoint (both checksums right) with one entry whose offset plus length
    // wraps around to a small number, which looks like a place inside segment 1.
    let path = dir.join(checkpoint::CHECKPOINT_FILE);
    let mut c = checkpoint::decode(&fs.read_file(&path).expect("read")).expect("decode");
    let bogus = Obj::generated(99, 10, Vec::new());
    c.entries.push((
        bogus.key,
        checkpoint::Location {
            segment: 1,
            offset: u64::MAX - 3,
            len: 100,
        },
    ));
    let bytes = checkpoint::encode(c.tail, c.entries.iter().map(|(k, l)| (k, l)));
    let f = fs.open(&path, OpenMode::Create).expect("open");
    f.set_len(0).expect("truncate");
    f.write_at(&bytes, 0).expect("write");

    let store = LogStore::open_on(Arc::new(fs.clone()), dir, opts()).expect("reopen");
    let problem = store
        .recovery()
        .checkpoint_problem
        .clone()
        .expect("the checkpoint is refused");
    assert!(problem.contains("not in the log"), "{problem}");
    assert!(!store.contains(&bogus.key).expect("contains"));
    for o in &objs {
        assert_eq!(store.get(&o.key).expect("get"), Some(o.blob()));
    }
}

#[test]
fn verify_names_a_damaged_record_on_any_file_system() {
    let fs = SimFs::new();
    let dir = Path::new("/store");
    let objs = objects(5);
    let store = LogStore::open_on(Arc::new(fs.clone()), dir, opts()).expect("open");
    for o in &objs {
        store.put(o.put()).expect("put");
    }
    store.close().expect("close");
    let clean = spillway::store::log::verify_on(Arc::new(fs.clone()), dir).expect("verify");
    assert!(clean.is_clean(), "{:?}", clean.problems);
    assert_eq!(clean.puts, 5);
    assert_eq!(clean.live_objects, 5);

    // A flipped payload byte of the second record of the first segment.
    fs.corrupt(
        &dir.join(segment::file_name(1)),
        nth_record(1, REC) as usize + 100,
        &[0xff],
    )
    .expect("corrupt");
    let report = spillway::store::log::verify_on(Arc::new(fs), dir).expect("verify");
    assert!(!report.is_clean());
    let named = format!("{} offset {}", segment::file_name(1), nth_record(1, REC));
    assert!(
        report.problems.iter().any(|p| p.contains(&named)),
        "{:?}",
        report.problems
    );
    assert!(matches!(
        spillway::store::log::verify_on(Arc::new(SimFs::new()), Path::new("/nothing")),
        Err(Error::NotAStore { .. })
    ));
}
