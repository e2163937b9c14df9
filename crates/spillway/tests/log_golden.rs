//! Golden fixtures: store directories written by each store format version and checked in, so
//! that a change that cannot read them (or writes something else) fails here.
//!
//! - `fixtures/log-store-v<n>`: puts (one with children), a tombstone, two segments, a
//!   checkpoint (and from version 2 the `SYNC` file);
//! - `fixtures/log-store-v<n>-corrupt`: the same with one payload byte flipped in a sealed
//!   segment.
//!
//! This build writes version 3 byte for byte and reads all three. A writable open upgrades a
//! version 1 store to version 2 (a `SYNC` file), never to 3: its values carry no type tag, and a
//! pool refuses every store below 3. Regenerate the current version's fixtures (only for a
//! deliberate format change, with a new version; keep the old ones) with
//! `cargo test -p spillway --test log_golden -- --ignored regenerate_fixtures`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::bytes;
use spillway::format::{marker, segment};
use spillway::{Blob, BlobStore, ContentKey, Error, LogStore, LogStoreOptions};

const FIXTURE: &str = "log-store-v3";
const CORRUPT_FIXTURE: &str = "log-store-v3-corrupt";
const V2_FIXTURE: &str = "log-store-v2";
const V2_CORRUPT_FIXTURE: &str = "log-store-v2-corrupt";
const V1_FIXTURE: &str = "log-store-v1";
const V1_CORRUPT_FIXTURE: &str = "log-store-v1-corrupt";
/// Where the flipped byte is: in the payload of `big` (the second record of segment 1).
const BIG_OFFSET: u64 = 32 + 36 + 13;
const FLIPPED_BYTE: u64 = BIG_OFFSET + 36 + 100;

/// The objects of the fixture, in the order they are written.
fn objects() -> Vec<(&'static str, Blob)> {
    let blob = |payload: Vec<u8>, children: Vec<ContentKey>| Blob { children, payload };
    let leaf = blob(b"golden leaf a".to_vec(), vec![]);
    let big = blob(bytes(1, 1200), vec![]);
    let parent = blob(b"parent".to_vec(), vec![leaf.key(), big.key()]);
    let c = blob(bytes(2, 1500), vec![]);
    let d = blob(bytes(3, 1500), vec![parent.key()]);
    vec![
        ("leaf", leaf),
        ("big", big),
        ("parent", parent),
        ("c", c),
        ("d", d),
    ]
}

fn doomed() -> Blob {
    Blob {
        children: vec![],
        payload: b"deleted before the checkpoint".to_vec(),
    }
}

fn opts() -> LogStoreOptions {
    LogStoreOptions::default().segment_size(4096)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().into_string().expect("name"),
                fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    out.sort();
    out
}

/// Writes the fixture store into `dir` (which must not exist) and removes its lock file.
fn write_fixture(dir: &Path) {
    let store = LogStore::open_with(dir, opts()).expect("open");
    for (_, b) in objects() {
        store
            .put(spillway::Put::new(&b.payload, &b.children))
            .expect("put");
    }
    let gone = doomed();
    store
        .put(spillway::Put::new(&gone.payload, &gone.children))
        .expect("put");
    store.delete(&[gone.key()]).expect("delete");
    store.close().expect("close");
    fs::remove_file(dir.join("LOCK")).expect("remove lock");
}

/// Copies a fixture to a temporary directory (opening for writing creates the lock file).
fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(name);
    fs::create_dir(&dir).expect("mkdir");
    for (file, data) in files(&fixture(name)) {
        fs::write(dir.join(file), data).expect("copy");
    }
    (tmp, dir)
}

#[test]
#[ignore = "regenerates the checked-in fixtures"]
fn regenerate_fixtures() {
    let good = fixture(FIXTURE);
    let bad = fixture(CORRUPT_FIXTURE);
    for d in [&good, &bad] {
        if d.exists() {
            fs::remove_dir_all(d).expect("remove old fixture");
        }
    }
    write_fixture(&good);
    fs::create_dir_all(&bad).expect("mkdir");
    for (file, mut data) in files(&good) {
        if file == segment::file_name(1) {
            data[FLIPPED_BYTE as usize] ^= 0x01;
        }
        fs::write(bad.join(file), data).expect("write");
    }
}

#[test]
fn the_fixtures_read_back_exactly() {
    reads_back_exactly(FIXTURE, true, marker::STORE_VERSION);
    reads_back_exactly(V2_FIXTURE, true, marker::SYNC_VERSION);
}

#[test]
fn the_version_1_fixture_reads_back_and_is_upgraded() {
    // Read-only, it is read as it is and nothing changes.
    let (_tmp, dir) = copy(V1_FIXTURE);
    let before = files(&dir);
    let store = LogStore::open_with(&dir, opts().read_only(true)).expect("open read-only");
    assert_eq!(store.recovery().durable_mark, None);
    assert_eq!(store.keys().expect("keys").len(), objects().len());
    drop(store);
    assert_eq!(files(&dir), before, "a read-only open changed the store");
    // A writable open upgrades it to version 2: `SYNC` written, then the marker.
    reads_back_exactly(V1_FIXTURE, false, marker::SYNC_VERSION);
}

/// Checks that `fixture` holds the objects, with their checkpoint and without it, and that a
/// writable open leaves its marker at `version`.
fn reads_back_exactly(fixture: &str, has_sync: bool, version: u32) {
    let (_tmp, dir) = copy(fixture);
    let names: Vec<_> = files(&dir).into_iter().map(|(n, _)| n).collect();
    let mut expected_names = vec![
        "STORE",
        "index.ckpt",
        "seg-0000000000000001.log",
        "seg-0000000000000002.log",
    ];
    if has_sync {
        expected_names.insert(1, "SYNC");
    }
    assert_eq!(names, expected_names);

    let store = LogStore::open_with(&dir, opts()).expect("open");
    assert_eq!(
        fs::read(dir.join("STORE")).expect("marker"),
        marker::encode(version),
        "a writable open leaves the marker at version {version}"
    );
    assert!(dir.join("SYNC").exists());
    let rec = store.recovery();
    assert!(
        rec.checkpoint_used && rec.checkpoint_problem.is_none(),
        "{rec:?}"
    );
    assert_eq!((rec.bytes_scanned, rec.records_replayed), (0, 0), "{rec:?}");
    assert!(rec.torn_tail.is_none());
    assert_eq!(rec.durable_mark.is_some(), has_sync, "{rec:?}");

    let objs = objects();
    // The key derivation is part of the format: pin two keys.
    assert_eq!(
        objs[0].1.key().to_string(),
        "d5ca36c2f0de46e8ac44053a58ed9181"
    );
    assert_eq!(
        objs[2].1.key().to_string(),
        "091856bf94be348f0756940c16c6186f"
    );
    let mut keys = store.keys().expect("keys");
    keys.sort();
    let mut expected: Vec<_> = objs.iter().map(|(_, b)| b.key()).collect();
    expected.sort();
    assert_eq!(keys, expected);
    for (name, b) in &objs {
        assert_eq!(
            store.get(&b.key()).expect("get").as_ref(),
            Some(b),
            "{name}"
        );
    }
    assert_eq!(
        store.get(&doomed().key()).expect("get"),
        None,
        "the tombstone holds"
    );
    let stats = store.stats();
    assert_eq!((stats.objects, stats.segments), (5, 2));
    drop(store);

    // A full scan (no checkpoint) reaches the same state.
    fs::remove_file(dir.join("index.ckpt")).expect("remove");
    let store = LogStore::open_with(&dir, opts().read_only(true)).expect("open read-only");
    assert_eq!(store.recovery().records_replayed, 7);
    let mut keys = store.keys().expect("keys");
    keys.sort();
    assert_eq!(keys, expected);
    assert_eq!(
        store.get(&objs[4].1.key()).expect("get").as_ref(),
        Some(&objs[4].1)
    );
}

#[test]
fn the_corrupt_fixture_names_the_damage() {
    for fixture in [CORRUPT_FIXTURE, V2_CORRUPT_FIXTURE, V1_CORRUPT_FIXTURE] {
        corrupt_fixture_names_the_damage(fixture);
    }
}

fn corrupt_fixture_names_the_damage(fixture: &str) {
    let (_tmp, dir) = copy(fixture);
    let store = LogStore::open_with(&dir, opts()).expect("open: the checkpoint covers the damage");
    let objs = objects();
    let err = store.get(&objs[1].1.key()).expect_err("damaged record");
    match &err {
        Error::ChecksumMismatch { what, location, .. } => {
            assert_eq!(*what, "record");
            assert!(
                location.ends_with(&format!("{} offset {BIG_OFFSET}", segment::file_name(1))),
                "{location}"
            );
        }
        other => panic!("expected a checksum mismatch, got {other}"),
    }
    for i in [0, 2, 3, 4] {
        assert_eq!(
            store.get(&objs[i].1.key()).expect("get").as_ref(),
            Some(&objs[i].1)
        );
    }
}

#[test]
fn this_version_writes_the_fixture_byte_for_byte() {
    // If this fails after a deliberate format change, bump the version, keep the old fixture
    // (old stores must stay readable) and add one for the new version.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    write_fixture(&dir);
    let fresh = files(&dir);
    let golden = files(&fixture(FIXTURE));
    assert_eq!(fresh.len(), golden.len());
    for ((name, a), (gname, b)) in fresh.iter().zip(&golden) {
        assert_eq!(name, gname);
        assert!(a == b, "{name} differs from the fixture");
    }
}

/// Stores below version 3 open and read as blobs; a pool refuses them, naming the store and its
/// version, before writing anything; a version 3 store takes a pool.
#[test]
fn a_store_without_type_tags_reads_as_blobs_and_a_pool_refuses_it() {
    for (fixture, version) in [(V1_FIXTURE, 1), (V2_FIXTURE, 2)] {
        let (_tmp, dir) = copy(fixture);
        let store = LogStore::open_with(&dir, opts().read_only(true)).expect("open");
        assert_eq!(store.format_version(), version);
        let refusal = store.untagged_values().expect("untagged values");
        assert_eq!(refusal.kind(), spillway::ErrorKind::OldFormat);
        drop(store);
        let err = spillway::Pool::builder()
            .budget(1 << 20)
            .dir(&dir)
            .build()
            .map(|_| ())
            .expect_err("a pool refuses a store without type tags");
        let msg = err.to_string();
        assert_eq!(err.kind(), spillway::ErrorKind::OldFormat, "{msg}");
        assert!(
            msg.contains(&dir.display().to_string())
                && msg.contains("type tag")
                && (msg.contains("format version 1") || msg.contains("format version 2")),
            "{msg}"
        );
    }
    let (_tmp, dir) = copy(FIXTURE);
    let store = LogStore::open_with(&dir, opts()).expect("open");
    assert_eq!(store.format_version(), 3);
    assert!(store.untagged_values().is_none());
    drop(store);
    spillway::Pool::builder()
        .budget(1 << 20)
        .dir(&dir)
        .build()
        .expect("a pool over a version 3 store");
}
